"""`monitor check`, `monitor match` and `monitor schema` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app

ROOT = Path(__file__).parent.parent
RULES = ROOT / "rules"
runner = CliRunner()


def test_check_ok_prints_a_one_line_summary() -> None:
    result = runner.invoke(app, ["check", str(RULES)])
    assert result.exit_code == 0
    assert result.output.startswith("ok: ") and result.output.count("\n") == 1


def test_check_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: a\n    query: '@nope'\n  - id: b\n    query: x\n    severity: hgh\n"
    )
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'r.yaml'}:3:13: rule 'a': unknown entity '@nope'")
    assert "unknown severity 'hgh'" in lines[1]


def test_match_plain_text_prints_explained_json_lines(tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text(
        "KIM JONG\u2011UN inspects kamikaze drones\n"
        "Pyongyang showed loitering munitions to Russian officials.\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["match", str(story), "--rules", str(RULES)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    by_rule = {row["rule"]: row for row in rows}
    assert {"kamikaze-drones", "kim-jong-un", "nk-drones"} <= set(by_rule)
    row = by_rule["kim-jong-un"]
    assert set(row) == {"article_id", "rule", "severity", "hits", "snippet"}
    assert row["hits"][0] == {
        "term": "@kim-jong-un",
        "field": "title",
        "start": 0,
        "end": 11,
        "text": "KIM JONG\u2011UN",
    }


def test_match_reads_article_jsonl_and_feeds(tmp_path: Path) -> None:
    article = {
        "id": "x1",
        "feed": "Yonhap English",
        "feed_url": "https://en.yna.co.kr/RSS/news.xml",
        "title": "North Korea fires ICBM",
        "fetched_at": "2024-06-01T00:00:00Z",
    }
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps(article) + "\n" + json.dumps({**article, "id": "x2"}) + "\n")
    feed = tmp_path / "f.xml"
    feed.write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>T</title><link>https://e.org/</link>"
        "<item><title>Russia and North Korea sign defence treaty</title><link>https://e.org/1</link>"
        "<guid>g1</guid></item></channel></rss>"
    )
    result = runner.invoke(app, ["match", str(jsonl), str(feed), "--rules", str(RULES)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["article_id"] for r in rows if r["rule"] == "nk-missile-critical"} == {"x1", "x2"}
    assert any(r["rule"] == "defense-treaty" for r in rows)


def test_match_bad_source_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an article"}')
    result = runner.invoke(app, ["match", str(bad), "--rules", str(RULES)])
    assert result.exit_code != 0
    assert "not Article JSON" in str(result.exception)


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "rule" in schema["$defs"] and "feed" in schema["$defs"]
    feeds = json.loads(runner.invoke(app, ["schema", "--kind", "feeds"]).output)
    assert feeds["title"] == "wire-monitor feeds.yaml"


def test_check_refuses_a_digest_the_dispatcher_could_not_schedule(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules:\n  - id: d\n    query: x\n    digest: daily 25:00\n")
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"{tmp_path / 'r.yaml'}:4:13: rule 'd': digest: invalid digest 'daily 25:00': "
        "'25:00' is not a time of day: hours 00-23, minutes 00-59\n"
    )


def test_check_one_file_uses_the_entities_and_feeds_of_its_directory() -> None:
    result = runner.invoke(app, ["check", str(RULES / "defence-asia.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"ok: 11 rules in {RULES / 'defence-asia.yaml'}, checked with the 4 files of {RULES} ("
    )


def test_check_one_file_reports_its_own_problems_and_counts_the_others(tmp_path: Path) -> None:
    (tmp_path / "entities.yaml").write_text("entities:\n  nk: {aliases: [DPRK]}\n")
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - id: same\n    query: '@nk AND @nkk'\n  - id: b\n    query: '@nk'\n"
    )
    (tmp_path / "b.yaml").write_text("rules:\n  - id: same\n    query: '@nope'\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    note = f"note: 1 problem(s) in other files of {tmp_path} not shown"
    note += f" (run: monitor check {tmp_path})"
    result = runner.invoke(app, ["check", str(a)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{a}:2:9: duplicate rule id 'same' (first at {b}:2:5)",
        f"{a}:3:21: rule 'same': unknown entity '@nkk' (did you mean '@nk'?)",
        note,
    ]
    (tmp_path / "a.yaml").write_text("rules:\n  - id: a\n    query: '@nk'\n")
    result = runner.invoke(app, ["check", str(a)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"ok: 1 rules in {a}, checked with the 3 files of {tmp_path} (1 ")
    assert lines[1] == note
