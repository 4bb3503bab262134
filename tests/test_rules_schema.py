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

from monitor.errors import RuleError
from monitor.rules import ChannelPolicy, FeedConfig, json_schema, load_rules
from monitor.rules.model import EntitySpec, RuleSpec
from monitor.schema import parse_positive_duration

ROOT = Path(__file__).parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))
#: A README YAML block preceded by this comment is not a rules/ file and is not validated.
OPT_OUT = "<!-- not-a-rules-file -->"


def _yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _readme_blocks() -> list[tuple[int, str]]:
    """The README's YAML blocks that are rules/ files, each with the line its text starts on."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"(?:^|\n)(?P<before>[^\n]*)\n```yaml\n(?P<body>.*?)\n```", readme, re.S):
        if OPT_OUT not in m.group("before"):
            blocks.append((readme.count("\n", 0, m.start("body")) + 1, m.group("body")))
    return blocks


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_shipped_rules_file_validates(path: Path) -> None:
    jsonschema.validate(_yaml(path.read_text(encoding="utf-8")), json_schema())


def test_readme_yaml_blocks_validate() -> None:
    blocks = _readme_blocks()
    assert len(blocks) >= 2
    for _, block in blocks:
        jsonschema.validate(_yaml(block), json_schema())


def _file_name(block: Any) -> str:
    """The rules/ file a README block would be: its top-level keys decide."""
    if {"feeds", "defaults"} & set(block):
        return "feeds.yaml"
    return "channels.yaml" if "channels" in block else "x.yaml"


def test_readme_yaml_blocks_load_without_problems(tmp_path: Path) -> None:
    """Each block is loaded by the real loader, as the file it would be, with the README's
    entities when it defines none: a query, entity reference or digest the README shows
    must be one ``monitor check`` accepts."""
    blocks = [(line, text, _yaml(text)) for line, text in _readme_blocks()]
    entities = {k: v for _, _, data in blocks for k, v in (data.get("entities") or {}).items()}
    found = []
    for line, text, data in blocks:
        directory = tmp_path / f"block-{line}"
        directory.mkdir()
        (directory / _file_name(data)).write_text(text, encoding="utf-8")
        if _file_name(data) == "x.yaml" and "entities" not in data:
            entities_file = directory / "entities.yaml"
            entities_file.write_text(json.dumps({"entities": entities}), encoding="utf-8")
        try:
            load_rules(directory)
        except RuleError as exc:
            found += [_in_readme(p, directory, line) for p in exc.problems]
    assert found == []


def _in_readme(problem: str, directory: Path, first_line: int) -> str:
    """A problem of a block written out to ``directory``, placed in README.md instead."""
    m = re.match(rf"^{re.escape(str(directory))}/\S+?:(\d+):(\d+): (.*)$", problem)
    if m is None:
        return problem
    return f"README.md:{first_line + int(m.group(1)) - 1}:{m.group(2)}: {m.group(3)}"


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


@pytest.mark.parametrize(
    "duration",
    ["0s", "00m", "0.0h", " 0 w ", "0ms", "0.5s", "10s", "1w", "05m", "1.0d", "100ms", "5 x"],
)
def test_schema_takes_the_durations_the_loader_takes(duration: str) -> None:
    """A zero duration is refused by the loader; an editor must not show it as valid."""
    validator = jsonschema.Draft202012Validator(json_schema())
    try:
        parse_positive_duration(duration)
    except ValueError:
        loads = False
    else:
        loads = True
    for data in (
        {"feeds": [{"url": "https://e.org", "interval": duration}]},
        {"rules": [{"id": "x", "query": "a", "throttle": duration}]},
    ):
        assert validator.is_valid(data) is loads


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
