"""`monitor check`, `monitor match` and `monitor schema` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from monitor.cli import app
from monitor.rules import load_rules

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


LONG_NUMBER = "1" * 5000
TOO_LONG = (
    "not Article JSON: invalid JSON: Exceeds the limit (4300 digits) for integer string "
    "conversion: value has 5000 digits"
)


def test_match_article_json_escaping_half_a_surrogate_pair_is_matched(tmp_path: Path) -> None:
    """``"\\ud800"`` is valid JSON but no character: it is printed as U+FFFD, no traceback."""
    source = tmp_path / "a.json"
    title = "North Korea fires ICBM \\ud800 into the sea"  # an escape, as JSON writes it
    source.write_text(json.dumps(ARTICLE).replace("North Korea fires ICBM", title))
    found = _matches(str(source))
    assert found and all(m["article_id"] == "x1" for m in found)
    assert any("ICBM \ufffd into" in str(m["snippet"]) for m in found)


def test_match_json_python_cannot_read_is_a_clean_error(tmp_path: Path) -> None:
    """A number of 5000 digits (more than ``int`` converts) or 100,000 nested arrays (deeper
    than the stack) is an error naming the file and line, not a traceback."""
    number = tmp_path / "number.json"
    number.write_text(f'{{"id": {LONG_NUMBER}}}')
    assert _match_error(str(number)) == f"{number}:1: {TOO_LONG}"
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    assert (
        _match_error(str(deep))
        == f"{deep}:1: not Article JSON: invalid JSON: nested too deeply to read"
    )
    lines = tmp_path / "a.jsonl"
    lines.write_text(json.dumps(ARTICLE) + "\n" + f'{{"id": {LONG_NUMBER}}}\n')
    assert _match_error(str(lines)) == f"{lines}:2: {TOO_LONG}"
    pretty = tmp_path / "pretty.json"
    pretty.write_text(f'{{\n  "id": {LONG_NUMBER}\n}}\n')  # the reader says not where
    assert _match_error(str(pretty)) == f"{pretty}: {TOO_LONG}"


@pytest.mark.parametrize("text", [f'{{"id": {LONG_NUMBER}}}', "[" * 100_000, f"[{LONG_NUMBER}]"])
def test_match_sniffs_json_python_cannot_read_as_plain_text(tmp_path: Path, text: str) -> None:
    """Without a JSON extension, what does not read as JSON is a story (as any non-JSON is)."""
    story = tmp_path / "story"
    story.write_text(text + "\nNorth Korea fires ICBM\n")
    rows = _matches(str(story))
    assert {r["article_id"] for r in rows if r["rule"] == "nk-missile-critical"} == {
        f"file:{story}"
    }


def test_match_a_json_feed_inside_an_array_is_named_as_such(tmp_path: Path) -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "T",
        "items": [{"id": "g1", "url": "https://e.org/1", "title": "North Korea fires ICBM"}],
    }
    wrapped = tmp_path / "feed.json"
    wrapped.write_text(json.dumps([feed], indent=2))
    assert _match_error(str(wrapped)) == (
        f"{wrapped}: item 1: not Article JSON: a JSON Feed, which is read only as a whole file"
        " (not as an item of an array or a line of JSON Lines)"
    )
    wrapped.write_text(json.dumps(feed, indent=2))
    assert [r["rule"] for r in _matches(str(wrapped))].count("nk-missile-critical") == 1


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


def files_beside(named: Path) -> list[Path]:
    """The files a file checked alone is checked with: the other YAML files beside it."""
    return [p for p in [*named.parent.glob("*.yaml"), *named.parent.glob("*.yml")] if p != named]


def assert_checks_alone(named: Path, rules: int, entities: int, feeds: int, channels: int) -> None:
    """``monitor check FILE`` passes with its own ``rules`` and what its directory lends it."""
    result = runner.invoke(app, ["check", str(named)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"ok: {rules} rules, {entities} entities, {feeds} feeds, {channels} channels in {named}, "
        f"with {len(files_beside(named))} other files of {named.parent}; "
    )


def test_check_one_file_uses_the_entities_feeds_and_channels_of_its_directory() -> None:
    named = RULES / "defence-asia.yaml"
    own_rules = len(YAML(typ="safe").load(named.read_text(encoding="utf-8"))["rules"])
    whole = load_rules(RULES)
    counts = len(whole.entities), len(whole.feeds.feeds), len(whole.channels)
    assert_checks_alone(named, own_rules, *counts)


def test_check_one_file_checks_and_match_applies_the_feed_tags_of_its_directory(
    tmp_path: Path,
) -> None:
    """``feeds: [korea]`` in the file names a tag of the directory's feeds.yaml: a misspelt tag
    is caught, and ``match --feed`` applies the tag."""
    (tmp_path / "feeds.yaml").write_text(
        "feeds:\n  - {url: 'https://e.org/a', name: Yonhap, tags: [korea]}\n"
    )
    named = tmp_path / "r.yaml"
    named.write_text("rules:\n  - id: r\n    query: ICBM\n    feeds: [koera]\n")
    result = runner.invoke(app, ["check", str(named)])
    assert result.exit_code == 1
    assert "no feed or feed tag 'koera' (did you mean 'korea'?)" in result.output
    named.write_text("rules:\n  - id: r\n    query: ICBM\n    feeds: [korea]\n")
    story = tmp_path / "story.txt"
    story.write_text("North Korea fires ICBM\n")
    args = ["match", str(story), "--rules", str(named), "--feed", "Yonhap"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["rule"] for line in result.output.splitlines()] == ["r"]


def test_check_an_edited_copy_beside_its_original(tmp_path: Path) -> None:
    """``cp x.yaml x.new.yaml``, edit, ``monitor check x.new.yaml``: the original's rule ids
    and problems are not the copy's; its entities, and the directory's feeds and channels, are
    shared."""
    (tmp_path / "entities.yaml").write_text("entities:\n  nk: {aliases: [DPRK]}\n")
    original = (
        "entities:\n  cn: {aliases: [PRC]}\n"
        "rules:\n  - id: same\n    query: '@nk OR @cn'\n  - id: b\n    query: '@nope'\n"
    )
    (tmp_path / "x.yaml").write_text(original)
    (tmp_path / "feeds.yaml").write_text("feeds:\n  - url: https://e.org/a\n")
    (tmp_path / "channels.yaml").write_text("channels:\n  desk: {rate_limit: 5/min}\n")
    (tmp_path / "docker-compose.yml").write_text("services:\n  db: {image: postgres}\n")
    copy = tmp_path / "x.new.yaml"
    copy.write_text(original.replace("'@nope'", "'@nk AND @nkk'"))
    result = runner.invoke(app, ["check", str(copy)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{copy}:7:21: rule 'b': unknown entity '@nkk' (did you mean '@nk'?)",
        f"note: entity 'cn' is also defined at {tmp_path / 'x.yaml'}:2:3: this file's is used"
        " here, and the directory as a whole will not load with both",
    ]
    copy.write_text(original.replace("'@nope'", "'@nk AND drone'"))
    assert_checks_alone(copy, rules=2, entities=2, feeds=1, channels=1)
    assert len(files_beside(copy)) == 5


def test_check_one_file_names_the_files_beside_it_that_cannot_be_read(tmp_path: Path) -> None:
    """A file beside the one checked that is not YAML, or whose entities are wrong, is left out
    of the context: one note names it; its problems are not printed as the checked file's."""
    (tmp_path / "entities.yaml").write_text("entities:\n  nk: {aliases: [DPRK]}\n")
    (tmp_path / "notes.yml").write_text("a: [unclosed\n")
    (tmp_path / "old.yaml").write_text("entities:\n  - nk\nrules: 7\n")
    named = tmp_path / "a.yaml"
    named.write_text("rules:\n  - id: a\n    query: '@nk'\n")
    note = (
        f"note: 2 other file(s) of {tmp_path} not read in full, they have problems:"
        f" notes.yml, old.yaml (run: monitor check {tmp_path})"
    )
    result = runner.invoke(app, ["check", str(named)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [note]
    named.write_text("rules:\n  - id: a\n    query: '@nk OR @old'\n")
    result = runner.invoke(app, ["check", str(named)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{named}:3:20: rule 'a': unknown entity '@old'",
        note,
    ]


def test_check_feeds_yaml_checks_every_rule_that_names_a_feed(tmp_path: Path) -> None:
    """Editing feeds.yaml and checking it: a rule elsewhere whose ``feeds:`` gate no longer
    names a feed is reported (the daemon would refuse the reload)."""
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - {url: 'https://e.org/a', name: Wire A}\n")
    (tmp_path / "r.yaml").write_text("rules:\n  - id: r\n    query: x\n    feeds: [Wire B]\n")
    result = runner.invoke(app, ["check", str(feeds)])
    assert result.exit_code == 1
    assert result.output == (
        f"{tmp_path / 'r.yaml'}:4:13: rule 'r': no feed or feed tag 'Wire B'"
        " (did you mean 'Wire A'?)\n"
    )


def test_two_feeds_files_in_one_directory_are_a_problem(tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text("feeds:\n  - {url: 'https://e.org/a', name: A}\n")
    (tmp_path / "feeds.yml").write_text("feeds:\n  - {url: 'https://e.org/c', name: C}\n")
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"{tmp_path / 'feeds.yml'}:1:1: a second feeds file beside {tmp_path / 'feeds.yaml'}:"
        " keep one\n"
    )


def test_match_with_one_file_says_what_beside_it_could_not_be_read(tmp_path: Path) -> None:
    """A broken feeds.yaml beside the file explains why a ``feeds:`` gate matches nothing."""
    (tmp_path / "feeds.yaml").write_text("feeds: [unclosed\n")
    named = tmp_path / "r.yaml"
    named.write_text("rules:\n  - id: r\n    query: drone\n")
    story = tmp_path / "story.txt"
    story.write_text("A drone\n")
    result = runner.invoke(app, ["match", str(story), "--rules", str(named)])
    assert result.exit_code == 0
    assert f"note: 1 other file(s) of {tmp_path} not read in full" in result.stderr


def test_match_with_one_file_uses_the_entities_beside_it(tmp_path: Path) -> None:
    (tmp_path / "entities.yaml").write_text("entities:\n  nk: {aliases: [DPRK]}\n")
    (tmp_path / "copy.yaml").write_text("rules:\n  - id: r\n    query: '@nk'\n")
    named = tmp_path / "r.yaml"
    named.write_text("rules:\n  - id: r\n    query: '@nk AND drone'\n")
    story = tmp_path / "story.txt"
    story.write_text("DPRK tests a drone\n")
    result = runner.invoke(app, ["match", str(story), "--rules", str(named)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["rule"] for line in result.output.splitlines()] == ["r"]
