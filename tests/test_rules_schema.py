"""The JSON Schema of rules/ files: the shipped files and README examples validate, and the
schema and the models accept the same keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from monitor.rules import ChannelPolicy, FeedConfig, json_schema
from monitor.rules.model import EntitySpec, RuleSpec

ROOT = Path(__file__).parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))
#: A README YAML block preceded by this comment is not a rules/ file and is not validated.
OPT_OUT = "<!-- not-a-rules-file -->"


def _yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _readme_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"(?:^|\n)(?P<before>[^\n]*)\n```yaml\n(?P<body>.*?)\n```", readme, re.S):
        if OPT_OUT not in m.group("before"):
            blocks.append(m.group("body"))
    return blocks


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_shipped_rules_file_validates(path: Path) -> None:
    jsonschema.validate(_yaml(path.read_text(encoding="utf-8")), json_schema())


def test_readme_yaml_blocks_validate() -> None:
    blocks = _readme_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        jsonschema.validate(_yaml(block), json_schema())


def test_schema_rejects_what_the_loader_rejects() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    assert not validator.is_valid({"rules": [{"id": "x", "query": "a", "severity": "hgh"}]})
    assert not validator.is_valid({"rules": [{"id": "x"}]})
    assert not validator.is_valid({"rules": [{"id": "x", "query": "a", "any": ["b"]}]})
    assert not validator.is_valid({"feeds": [{"url": "https://e.org", "interval": "soon"}]})
    assert not validator.is_valid({"entities": {"x": {"aliases": []}}})
    assert validator.is_valid(
        {"rules": [{"id": "x", "all": [{"any": ["a", "@b"]}], "none": ["c"]}]}
    )


def test_schema_and_models_know_the_same_keys() -> None:
    defs = json_schema()["$defs"]

    def model_keys(model: Any) -> set[str]:
        return {f.alias or n for n, f in model.model_fields.items()}

    assert set(defs["rule"]["properties"]) == model_keys(RuleSpec)
    assert set(defs["feed"]["properties"]) == model_keys(FeedConfig)
    assert set(defs["channel"]["properties"]) == model_keys(ChannelPolicy)
    assert set(defs["entity"]["properties"]) == model_keys(EntitySpec)


def test_the_committed_schema_copy_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "rules.schema.json").read_text(encoding="utf-8"))
    assert committed == json_schema(), "run: monitor schema > docs/rules.schema.json"
