"""Loading rules/: every problem reported as file:line:col: message, all of them at once."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from monitor.errors import ConfigError, RuleError
from monitor.rules import ChannelPolicy, FeedConfig, load_rules
from monitor.rules.scalar import value_positions
from monitor.schema import Severity

REPO_RULES = Path(__file__).parent.parent / "rules"


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def problems(path: Path) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_rules(path)
    return info.value.problems


def test_the_shipped_starter_set_loads() -> None:
    ruleset = load_rules(REPO_RULES)
    ids = {r.id for r in ruleset.rules}
    assert {"kamikaze-drones", "defense-treaty", "korean-peninsula", "russia-nk-alliance"} <= ids
    assert "김정은" in ruleset.entities["kim-jong-un"].aliases
    assert len(ruleset.feeds.feeds) >= 10
    assert ruleset.channels["defense-desk"].rate_count == 20
    assert {p.name for p in ruleset.sources} >= {"feeds.yaml", "channels.yaml", "entities.yaml"}


BAD = """\
entities:
  north-korea:
    aliases: [North Korea, DPRK]
  empty:
    aliases: []
rules:
  - id: one
    query: '@north-koreaa AND drone*'
  - id: one
    query: 'drone AND'
    severity: hgh
  - id: three
    all: [{any: [a, b]}, {anyy: [c]}]
    throttle: 5 minutes
  - id: four
    titel: misspelt key
    query: x
"""


def test_every_problem_is_reported_with_its_position(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "bad.yaml", BAD))
    name = str(tmp_path / "bad.yaml")
    assert f"{name}:5:14: entity 'empty': aliases: must not be empty" in found
    assert (
        f"{name}:8:13: rule 'one': unknown entity '@north-koreaa' (did you mean '@north-korea'?)"
        in found
    )
    assert any(
        p.startswith(
            f"{name}:11:15: rule 'one': severity: unknown severity 'hgh' (did you mean 'high'?)"
        )
        for p in found
    )
    assert (
        f"{name}:14:15: rule 'three': throttle: invalid duration '5 minutes': "
        "write a number and a unit, e.g. 30s, 5m, 2h, 1d" in found
    )
    assert f"{name}:13:27: rule 'three': unknown key 'anyy' (did you mean 'any'?)" in found
    assert f"{name}:16:5: rule 'four': unknown key 'titel' (did you mean 'title'?)" in found
    assert f"{name}:10:22: rule 'one': the query ends where a term was expected" in found
    assert len(found) == 7


def test_query_errors_point_into_the_query(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "q.yaml", "rules:\n  - id: q\n    query: 'drone AND'\n"))
    assert found == [
        f"{tmp_path / 'q.yaml'}:3:22: rule 'q': the query ends where a term was expected"
    ]


def test_duplicate_rule_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules:\n  - id: same\n    query: x\n")
    write(tmp_path, "b.yaml", "rules:\n  - id: same\n    query: y\n")
    (problem,) = problems(tmp_path)
    assert problem.startswith(f"{tmp_path / 'b.yaml'}:2:9: duplicate rule id 'same'")
    assert f"{tmp_path / 'a.yaml'}:2:5" in problem


def test_relative_paths_stay_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "r.yaml", "rules:\n  - id: r\n    query: '(x'\n")
    monkeypatch.chdir(tmp_path.parent)
    (problem,) = problems(Path(tmp_path.name))
    assert problem.startswith(f"{tmp_path.name}/r.yaml:3:13: rule 'r': unclosed parenthesis")


def test_yaml_syntax_errors_and_unknown_top_level_keys(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "rules:\n  - id: x\n   query: [\n")
    write(tmp_path, "keys.yaml", "rulez: []\n")
    found = problems(tmp_path)
    assert any(p.startswith(f"{tmp_path / 'broken.yaml'}:") and "invalid YAML" in p for p in found)
    assert f"{tmp_path / 'keys.yaml'}:1:1: unknown key 'rulez' (did you mean 'rules'?)" in found


def test_structured_rules_and_fields_scope(tmp_path: Path) -> None:
    write(
        tmp_path,
        "s.yaml",
        "rules:\n  - id: s\n    fields: [title]\n    query: 'content:x'\n"
        "  - id: t\n    any: ['!!!']\n  - id: u\n    fields: [titel]\n    query: x\n",
    )
    found = problems(tmp_path)
    assert any("'content:' is outside the rule's fields (title)" in p for p in found)
    assert any(":6:11: rule 't': term '!!!' has no letters or digits" in p for p in found)
    assert any("unknown field 'titel' (did you mean 'title'?)" in p for p in found)


FEEDS = """\
defaults: {interval: 10m, tags: [wires]}
feeds:
  - url: https://example.org/world/rss.xml
    name: Example World
    tags: [asia]
    headers: {Authorization: "Bearer ${TOKEN}"}
  - url: https://example.org/other
  - url: ftp://example.org/x
  - url: https://example.org/world/rss.xml
    interval: soon
    colour: blue
"""


def test_feeds_defaults_names_and_problems(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "feeds.yaml", FEEDS))
    name = str(tmp_path / "feeds.yaml")
    assert any(p.startswith(f"{name}:8:10: ") and "invalid feed URL" in p for p in found)
    assert any(p.startswith(f"{name}:10:15: ") and "invalid duration 'soon'" in p for p in found)
    assert any(p.startswith(f"{name}:11:5: ") and "unknown key 'colour'" in p for p in found)
    good = write(tmp_path, "feeds.yaml", "\n".join(FEEDS.splitlines()[:7]) + "\n")
    feeds = load_rules(good).feeds
    first, second = feeds.feeds
    assert first.interval == timedelta(minutes=10) and first.tags == ["asia"]
    assert second.name == "example.org/other" and second.tags == ["wires"]
    assert second.max_age == timedelta(days=2) and second.failure_alert_after == 5
    assert first.headers == {"Authorization": "Bearer ${TOKEN}"}
    assert first.resolved_headers({"TOKEN": "s3cret"}) == {"Authorization": "Bearer s3cret"}
    with pytest.raises(ConfigError, match="TOKEN"):
        first.resolved_headers({})


def test_rule_feeds_must_name_a_feed_or_tag(tmp_path: Path) -> None:
    write(
        tmp_path,
        "feeds.yaml",
        "feeds:\n  - url: https://e.org/rss\n    name: E\n    tags: [asia]\n",
    )
    write(tmp_path, "r.yaml", "rules:\n  - id: r\n    query: x\n    feeds: [asai, E]\n")
    (problem,) = problems(tmp_path)
    assert problem.endswith("no feed or feed tag 'asai' (did you mean 'asia'?)")


def test_channel_policy_validation(tmp_path: Path) -> None:
    policy = ChannelPolicy.model_validate(
        {
            "rate_limit": "20/min",
            "quiet_hours": "22:00-07:00 Europe/Berlin",
            "bypass_severity": "high",
        }
    )
    assert policy.rate_count == 20 and policy.rate_period == timedelta(minutes=1)
    quiet = policy.quiet
    assert quiet is not None and str(quiet.zone) == "Europe/Berlin" and quiet.start.hour == 22
    assert policy.bypass_severity is Severity.high
    text = "channels:\n  desk: {rate_limit: lots, quiet_hours: '22:00-07:00 Mars/Base'}\n"
    found = problems(write(tmp_path, "channels.yaml", text))
    assert any("invalid rate limit 'lots'" in p for p in found)
    assert any("unknown time zone 'Mars/Base'" in p for p in found)


def test_feed_config_defaults() -> None:
    feed = FeedConfig(url="https://example.org/a/rss/")
    assert feed.name == "example.org/a/rss"
    assert feed.enabled and not feed.alert_on_first_poll and feed.respect_cache_hints
    assert feed.min_interval == timedelta(minutes=1) and feed.max_interval == timedelta(hours=1)
    assert feed.silence_after is None


def test_a_single_file_can_be_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", "rules:\n  - id: r\n    query: drone\n") / "one.yaml"
    ruleset = load_rules(path)
    assert [r.id for r in ruleset.rules] == ["r"] and ruleset.sources == [path]


def test_missing_path(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_times_of_day_zones_and_zero_durations_are_checked_where_written(tmp_path: Path) -> None:
    """What loads, the daemon can run: a digest at 25:00 or a 0s poll interval is refused by
    ``monitor check``, at the value, instead of failing (or spinning) at alert time."""
    write(
        tmp_path,
        "r.yaml",
        "rules:\n"
        "  - id: late\n    query: x\n    digest: 'daily 25:00'\n"
        "  - id: odd\n    query: x\n    digest: daily 08:75\n"
        "  - id: zoned\n    query: x\n    digest: weekly mnday 08:00 Europe/Berlin\n"
        "    quiet_hours: '22:00-07:00 Europe/Berln'\n    throttle: 0s\n"
        "  - id: fine\n    query: x\n    digest: Weekly Friday 17:30 Asia/Seoul\n",
    )
    write(
        tmp_path,
        "feeds.yaml",
        "defaults: {interval: 0s, max_age: 0m}\nfeeds:\n"
        "  - url: https://e.org/a\n    min_interval: 2h\n"
        "  - url: https://e.org/b\n    silence_after: 0h\n",
    )
    write(tmp_path, "channels.yaml", "channels:\n  desk: {rate_limit: 5/0min}\n")
    r, feeds, channels = (str(tmp_path / n) for n in ("r.yaml", "feeds.yaml", "channels.yaml"))
    clock = "is not a time of day: hours 00-23, minutes 00-59"
    assert problems(tmp_path) == [
        f"{channels}:2:22: channel 'desk': rate_limit: invalid rate limit '5/0min': "
        "count and period must be more than zero",
        f"{feeds}:1:22: defaults: interval: invalid duration '0s': must be longer than zero",
        f"{feeds}:1:35: defaults: max_age: invalid duration '0m': must be longer than zero",
        f"{feeds}:3:5: feed 'https://e.org/a': max_interval: "
        "min_interval (2h) is longer than max_interval (1h)",
        f"{feeds}:6:20: feed 'https://e.org/b': silence_after: "
        "invalid duration '0h': must be longer than zero",
        f"{r}:4:13: rule 'late': digest: invalid digest 'daily 25:00': '25:00' {clock}",
        f"{r}:7:13: rule 'odd': digest: invalid digest 'daily 08:75': '08:75' {clock}",
        f"{r}:10:13: rule 'zoned': digest: invalid digest 'weekly mnday 08:00 Europe/Berlin': "
        "unknown day 'mnday' (did you mean 'monday'?)",
        f"{r}:11:18: rule 'zoned': quiet_hours: invalid quiet hours '22:00-07:00 Europe/Berln': "
        "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        f"{r}:12:15: rule 'zoned': throttle: invalid duration '0s': must be longer than zero",
    ]
    write(tmp_path, "r.yaml", "rules:\n  - id: fine\n    query: x\n    digest: weekly fri 17:30\n")
    write(tmp_path, "feeds.yaml", "feeds: []\n")
    write(tmp_path, "channels.yaml", "channels: {}\n")
    (rule,) = load_rules(tmp_path).rules
    assert rule.digest is not None and (rule.digest.day, str(rule.digest)) == (
        "fri",
        "weekly fri 17:30",
    )


def test_one_file_loads_its_own_rules_with_its_directory_as_context() -> None:
    named = REPO_RULES / "defence-asia.yaml"
    own = YAML(typ="safe").load(named.read_text(encoding="utf-8"))["rules"]
    ruleset = load_rules(named, context=True)
    assert [r.id for r in ruleset.rules] == [rule["id"] for rule in own]
    assert {r.file for r in ruleset.rules} == {str(named)}
    assert ruleset.entities.keys() == load_rules(REPO_RULES).entities.keys()
    assert ruleset.feeds == load_rules(REPO_RULES).feeds
    assert ruleset.channels == load_rules(REPO_RULES).channels
    assert ruleset.sources == [named] and ruleset.named_file == named and not ruleset.notes


def test_one_file_alone_reads_nothing_beside_it(tmp_path: Path) -> None:
    """Without ``context`` (the daemon's ``MONITOR_RULES_DIR=file``) a file is all there is."""
    write(tmp_path, "entities.yaml", "entities:\n  nk: {aliases: [DPRK]}\n")
    named = write(tmp_path, "r.yaml", "rules:\n  - id: r\n    query: '@nk'\n") / "r.yaml"
    assert problems(named) == [f"{named}:3:13: rule 'r': unknown entity '@nk'"]
    assert [r.id for r in load_rules(named, context=True).rules] == ["r"]


QUERY_LAYOUTS = """\
entities:
  nk: {aliases: [DPRK]}
rules:
  - id: folded
    query: >-
      @nk AND drone*
      OR @nkf
  - id: literal
    query: |
      @nk AND
        (missile OR @nkl)
  - id: plain
    query: drone AND
      missile OR @nkp
  - id: single
    query: '"don''t" AND @nks'
  - id: double
    query: "\\"a b\\" AND @nkd"
  - id: unclosed
    query: >-
      @nk AND
      (drone OR x
"""


def test_query_problems_are_reported_where_they_are_written(tmp_path: Path) -> None:
    """Block, multi-line and escaped queries: the position is that of the term itself, not
    of the '>' or the quote that starts the value."""
    name = str(tmp_path / "q.yaml")
    hint = "(did you mean '@nk'?)"
    assert problems(write(tmp_path, "q.yaml", QUERY_LAYOUTS)) == [
        f"{name}:7:10: rule 'folded': unknown entity '@nkf' {hint}",
        f"{name}:11:21: rule 'literal': unknown entity '@nkl' {hint}",
        f"{name}:14:18: rule 'plain': unknown entity '@nkp' {hint}",
        f"{name}:16:26: rule 'single': unknown entity '@nks' {hint}",
        f"{name}:18:25: rule 'double': unknown entity '@nkd' {hint}",
        f"{name}:22:7: rule 'unclosed': unclosed parenthesis",
    ]


SCALAR_STYLES = [
    str,
    SingleQuotedScalarString,
    DoubleQuotedScalarString,
    LiteralScalarString,
    FoldedScalarString,
]


@given(
    st.text(st.sampled_from([*"ab@ '\"\\#:-é\n\t(*\xa0😀[]{},&!|>%`"]), min_size=1, max_size=60),
    st.sampled_from(SCALAR_STYLES),
)
@settings(max_examples=300, deadline=None)
def test_each_character_of_a_scalar_maps_to_where_it_is_written(text: str, style: type) -> None:
    """Whatever style and folding ruamel.yaml writes a query in, each of its characters maps
    to its place in the file, in order (an escape maps to its backslash)."""
    yaml = YAML(typ="rt")
    yaml.width = 20  # fold long values over several lines
    out = io.StringIO()
    yaml.dump({"rules": [{"id": "r", "query": style(text)}]}, out)
    source = out.getvalue()
    try:
        node = YAML(typ="rt").load(source)["rules"][0]
    except YAMLError:  # a text ruamel.yaml writes but cannot read back
        assume(False)
    assume(node["query"] == text)
    lines = source.splitlines()
    start = node.lc.value("query")
    positions = value_positions(lines, start, text)
    assert positions is not None, source
    placed = [(pos, ch) for ch, pos in zip(text, positions, strict=True) if ch not in " \n\t"]
    assert [pos for pos, _ in placed] == sorted({pos for pos, _ in placed})
    opening = lines[start[0]][start[1]]  # a quote, a block indicator or the first character
    assert all(written_at(lines[line], col, opening) == ch for (line, col), ch in placed), source


#: How many characters follow the backslash in a YAML escape (``\x41``, ``\u00e9``, ...).
ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}


def written_at(line: str, col: int, opening: str) -> str:
    """The character the source at ``col`` stands for, in a scalar that opens with ``opening``:
    itself, or (in a double-quoted scalar) the escape that starts there, as YAML reads it. A
    quote in a single-quoted scalar is written ``''`` and maps to the first of the two."""
    if line[col] == "'" and opening == "'":
        return "'" if line[col + 1 : col + 2] == "'" else "(the closing quote)"
    if line[col] != "\\" or opening != '"':
        return line[col]
    escape = line[col : col + 2 + ESCAPE_DIGITS.get(line[col + 1 : col + 2], 0)]
    value = YAML(typ="safe").load(f'"{escape}"')
    assert isinstance(value, str)
    return value


def test_a_misspelt_structured_key_hides_no_other_problem(tmp_path: Path) -> None:
    text = (
        "entities:\n  north-korea: {aliases: [DPRK]}\nrules:\n  - id: s\n    all:\n"
        "      - alll: [treaty]\n"
        "      - any: ['@nrth-korea', Russia]\n"
        "      - any: []\n"
        "    none: [opinion, {any: [x], nnone: [y]}]\n"
    )
    name = str(tmp_path / "s.yaml")
    assert problems(write(tmp_path, "s.yaml", text)) == [
        f"{name}:6:9: rule 's': unknown key 'alll' (did you mean 'all'?)",
        f"{name}:7:15: rule 's': unknown entity '@nrth-korea' (did you mean '@north-korea'?)",
        f"{name}:8:14: rule 's': 'any' needs a non-empty list",
        f"{name}:9:32: rule 's': unknown key 'nnone' (did you mean 'none'?)",
    ]


def test_an_unquoted_entity_reference_gets_a_quoting_hint(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules:\n  - id: a\n    query: @nk AND x  # a note\n")
    write(tmp_path, "b.yaml", "rules:\n  - id: b\n    any: [@nk, x]\n")
    reason = "invalid YAML: found character '@' that cannot start any token"
    assert problems(tmp_path) == [
        f"{tmp_path / 'a.yaml'}:3:12: {reason} (a value starting with @ must be quoted: "
        "'@nk AND x')",
        f"{tmp_path / 'b.yaml'}:3:11: {reason} (a value starting with @ must be quoted: '@nk')",
    ]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_a_line_separator_inside_a_line_does_not_move_later_positions(
    tmp_path: Path, separator: str
) -> None:
    """YAML breaks lines at LF and CR only: a U+2028 (LINE SEPARATOR) or U+0085 (NEXT LINE)
    pasted into a description is text, and the problem below it is still at its own line."""
    write(
        tmp_path,
        "r.yaml",
        "entities:\n  nk: {aliases: [DPRK]}\nrules:\n  - id: r\n"
        f"    description: first{separator}second{separator}third\n"
        "    query: 'drone AND @nkk'\n",
    )
    assert problems(tmp_path) == [
        f"{tmp_path / 'r.yaml'}:6:23: rule 'r': unknown entity '@nkk' (did you mean '@nk'?)"
    ]


def test_a_byte_order_mark_does_not_move_positions_on_the_first_line(tmp_path: Path) -> None:
    write(tmp_path, "r.yaml", "\ufeffrules: [{id: r, query: 'drone AND @nkk'}]\n")
    assert problems(tmp_path) == [f"{tmp_path / 'r.yaml'}:1:35: rule 'r': unknown entity '@nkk'"]
