"""`monitor check`, `monitor match` and `monitor schema` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


#: Article JSON: the fields an Article needs, and a title the rules under rules/ match.
ARTICLE = {
    "id": "x1",
    "feed": "Yonhap English",
    "feed_url": "https://en.yna.co.kr/RSS/news.xml",
    "title": "North Korea fires ICBM",
    "fetched_at": "2024-06-01T00:00:00Z",
}


def test_match_reads_article_jsonl_and_feeds(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps(ARTICLE) + "\n" + json.dumps({**ARTICLE, "id": "x2"}) + "\n")
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


def _matches(*args: str) -> list[dict[str, object]]:
    """`monitor match ARGS --rules rules/`: its JSON lines; it must succeed."""
    result = runner.invoke(app, ["match", *args, "--rules", str(RULES)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def _match_error(*args: str) -> str:
    """`monitor match ARGS --rules rules/` must fail; the message it fails with."""
    result = runner.invoke(app, ["match", *args, "--rules", str(RULES)])
    assert result.exit_code != 0 and result.exception is not None, result.output
    return str(result.exception)


@pytest.mark.parametrize(
    ("name", "first_line"),
    [
        ("story", "[UPDATE] North Korea fires ICBM"),
        ("story", "{Seoul} North Korea fires ICBM"),
        ("story", "<b>North Korea</b> fires ICBM"),
        ("story", "<item>North Korea</item> fires ICBM"),  # feedparser reads this leniently
        ("story", "\ufeff[1] North Korea fires ICBM"),
        ("story.txt", "<rss>North Korea fires ICBM"),
        ("story.md", '{"id": "North Korea fires ICBM"}'),
        ("story.text", "[UPDATE] North Korea fires ICBM"),
    ],
)
def test_match_reads_plain_text_whatever_its_first_character(
    tmp_path: Path, name: str, first_line: str
) -> None:
    story = tmp_path / name
    story.write_text(first_line + "\nPyongyang launched it at dawn.\n", encoding="utf-8")
    rows = _matches(str(story))
    (row,) = [r for r in rows if r["rule"] == "nk-missile-critical"]
    assert row["article_id"] == f"file:{story}"
    hits = row["hits"]
    assert isinstance(hits, list)
    assert {"field": "content", "text": "Pyongyang"}.items() <= hits[-1].items()
    title = first_line.lstrip("\ufeff")
    assert all(title[h["start"] : h["end"]] == h["text"] for h in hits if h["field"] == "title")


RSS = (
    "<?xml version='1.0'?><rss version='2.0'><channel><title>T</title><link>https://e.org/</link>"
    "<item><title>North Korea fires ICBM</title><link>https://e.org/1</link><guid>g1</guid>"
    "</item></channel></rss>"
)


@pytest.mark.parametrize(
    ("name", "text", "encoding"),
    [
        ("wire", RSS, "utf-8"),
        ("wire", RSS.replace("'1.0'?", "'1.0' encoding='utf-16'?"), "utf-16"),
        ("wire.txt.rss", RSS, "utf-8"),
        ("wire.feed", '{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": '
         '[{"id": "g1", "url": "https://e.org/1", "title": "North Korea fires ICBM"}]}', "utf-8"),
    ],
)  # fmt: skip
def test_match_reads_a_feed_as_monitor_parse_does(
    tmp_path: Path, name: str, text: str, encoding: str
) -> None:
    feed = tmp_path / name
    feed.write_bytes(text.encode(encoding))
    parsed = runner.invoke(app, ["parse", str(feed)])
    assert parsed.exit_code == 0, parsed.output
    (article,) = [json.loads(line) for line in parsed.output.splitlines()]
    assert article["title"] == "North Korea fires ICBM"
    rows = _matches(str(feed))
    assert {r["article_id"] for r in rows if r["rule"] == "nk-missile-critical"} == {article["id"]}


def test_match_reads_article_json_by_content_when_the_name_does_not_say(tmp_path: Path) -> None:
    lines = tmp_path / "export"
    lines.write_text(json.dumps(ARTICLE) + "\n\n" + json.dumps({**ARTICLE, "id": "x2"}) + "\n")
    array = tmp_path / "export2"
    array.write_text(json.dumps([{**ARTICLE, "id": "x3"}], indent=2))
    rows = _matches(str(lines), str(array))
    assert [r["article_id"] for r in rows if r["rule"] == "nk-missile-critical"] == [
        "x1",
        "x2",
        "x3",
    ]


def test_match_json_that_is_not_article_json_names_the_file_and_line(tmp_path: Path) -> None:
    story = tmp_path / "story.json"
    story.write_text("[UPDATE] North Korea fires ICBM\nPyongyang launched it.\n")
    assert _match_error(str(story)) == (
        f"{story}:1:2: not Article JSON: invalid JSON: Expecting value"
    )
    pretty = tmp_path / "pretty.json"
    pretty.write_text('{\n  "id": "x1",\n  "feed": "f"\n  "title": "t"\n}\n')
    assert _match_error(str(pretty)) == (
        f"{pretty}:4:3: not Article JSON: invalid JSON: Expecting ',' delimiter"
    )
    lines = tmp_path / "a.jsonl"
    good = json.dumps(ARTICLE)
    lines.write_text(good + "\n" + good + "\n{id: 3}\n")
    assert _match_error(str(lines)) == (
        f"{lines}:3:2: not Article JSON: invalid JSON: "
        "Expecting property name enclosed in double quotes"
    )
    lines.write_text(good + '\n{"id": "x2"}\n')
    assert _match_error(str(lines)) == (
        f"{lines}:2: not Article JSON: feed: Field required; feed_url: Field required; "
        "fetched_at: Field required"
    )


def test_match_valid_json_that_is_no_article_is_an_error_whatever_the_name(
    tmp_path: Path,
) -> None:
    # only text that is no JSON at all is a plain-text story; JSON of the wrong shape is a mistake
    export = tmp_path / "export"
    export.write_text('[{"id": "x1", "title": "North Korea fires ICBM"}]')
    assert _match_error(str(export)) == (
        f"{export}: item 1: not Article JSON: feed: Field required; feed_url: Field required; "
        "fetched_at: Field required"
    )


def test_match_file_named_as_a_feed_that_is_not_one_is_an_error(tmp_path: Path) -> None:
    feed = tmp_path / "wire.xml"
    feed.write_text("[UPDATE] North Korea fires ICBM\n")
    assert _match_error(str(feed)).startswith(f"{feed}: not a feed")


def test_match_prints_every_match_of_the_same_article_given_twice(tmp_path: Path) -> None:
    # match reports what it is given: no de-duplication by article id (that is the daemon's job)
    article = {**ARTICLE, "id": "same"}
    twice = tmp_path / "twice.jsonl"
    twice.write_text(json.dumps(article) + "\n" + json.dumps(article) + "\n")
    rows = _matches(str(twice), str(twice))
    assert [r["article_id"] for r in rows if r["rule"] == "nk-missile-critical"] == ["same"] * 4
    story = tmp_path / "story.txt"
    story.write_text("North Korea fires ICBM\n")
    rows = _matches(str(story), str(story))
    assert [r["rule"] for r in rows].count("nk-missile-critical") == 2


def test_check_says_why_not_cannot_be_a_side_of_near_and_where(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: a\n    query: 'drone NOT racing NEAR/3 show'\n"
    )
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"{tmp_path / 'r.yaml'}:3:19: rule 'a': 'NOT racing' cannot be a side of NEAR/3: "
        "NOT binds tighter than NEAR/3, and NEAR/3 needs a term or an (x OR y) group of terms "
        "on each side; to exclude the pair write NOT (x NEAR/3 y)\n"
    )


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
