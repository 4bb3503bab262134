"""Fuzzing: any input to the parsers gives Articles, a clear error, or a validation message;
never an unhandled exception. Bounded here (hypothesis); longer atheris runs: fuzz/README.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError, RuleError
from monitor.parse import parse_feed
from monitor.rules import QueryError, load_rules, parse_query
from monitor.schema import Article

NOW = datetime(2026, 11, 24, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
SEEDS = [p.read_bytes() for p in sorted(FIXTURES.iterdir()) if p.stat().st_size < 20_000]
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FEED_TOKENS = [
    b"<rss version='2.0'>", b"<channel>", b"<item>", b"</item>", b"<title>", b"</title>",
    b"<link>", b"<guid>", b"<pubDate>", b"<description>", b"<![CDATA[", b"]]>", b"&amp;",
    b"&#1114112;", b"&#x0;", b"<!DOCTYPE r [<!ENTITY e 'x'>]>", b"&e;", b"<feed xmlns='http://www.w3.org/2005/Atom'>",
    b"<entry>", b"<content type='html'>", b"&lt;script&gt;", b"\xff\xfe", b"\xef\xbb\xbf", b"\x00",
    b"0000-00-00", b"{\"version\": \"https://jsonfeed.org/version/1.1\", \"items\": [",
    b"{\"title\": 1}", b"]}", b"<media:content url='x'/>", b"javascript:alert(1)", b"\xe9",
]  # fmt: skip


def check_parse(data: bytes) -> None:
    try:
        parsed = parse_feed(data, feed_url="https://fuzz.example/feed", feed_name="fuzz", now=NOW)
    except ParseError as exc:
        assert str(exc).startswith("fuzz: ") and "\n" not in str(exc)
        return
    for article in parsed.articles:
        assert isinstance(article, Article)
        Article.model_validate_json(article.model_dump_json())  # serialisable, round-trips


@BOUNDED
@given(st.binary(max_size=2000))
def test_parse_random_bytes(data: bytes) -> None:
    check_parse(data)


@BOUNDED
@given(st.lists(st.sampled_from(FEED_TOKENS) | st.binary(max_size=20), max_size=60))
def test_parse_feed_shaped_noise(tokens: list[bytes]) -> None:
    check_parse(b"".join(tokens))


@BOUNDED
@given(st.sampled_from(SEEDS), st.integers(0, 20_000), st.binary(max_size=30), st.integers(0, 200))
def test_parse_mutated_fixtures(seed: bytes, at: int, insert: bytes, cut: int) -> None:
    at = at % (len(seed) + 1)
    check_parse(seed[:at] + insert + seed[at + cut :])


QUERY_ALPHABET = st.sampled_from(
    ["drone", "drone*", '"a b"', "@nk", "AND", "OR", "NOT", "NEAR/3", "ONEAR/2", "(", ")",
     "title:", "and", "*", '"', "@", "NEAR/", "김정은", " ", "x:"]
)  # fmt: skip


@BOUNDED
@given(st.lists(QUERY_ALPHABET, max_size=20).map(" ".join) | st.text(max_size=80))
def test_query_parser(text: str) -> None:
    try:
        parse_query(text)
    except QueryError as exc:
        assert str(exc)


YAML_TOKENS = st.sampled_from(
    ["rules:", "entities:", "feeds:", "\n", "  ", "- ", "id: r1", "query: ", "'drone*'", "any:",
     "[", "]", "{", "}", ":", "@x", "severity: high", "severity: loud", "aliases: []", "x:",
     "throttle: 5q", "fields: [title]", "&a", "*a", "!!python/object:os.system", "\t", '"',
     "languages: [en]", "notify: [ops]", "digest: daily 08:00", "quiet_hours: 25:00-07:00 X/Y"]
)  # fmt: skip


@BOUNDED
@given(st.lists(YAML_TOKENS, max_size=40).map("".join) | st.text(max_size=200))
def test_rule_loader(text: str) -> None:
    root = Path(tempfile.gettempdir()) / f"monitor-fuzz-rules-{os.getpid()}"
    root.mkdir(exist_ok=True)
    path = root / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_rules(path)
    except RuleError as exc:
        assert exc.problems
        assert all(p.startswith(str(path)) for p in exc.problems), exc.problems


HARNESSES = sorted((Path(__file__).parent.parent / "fuzz").glob("fuzz_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("harness", HARNESSES, ids=lambda p: p.stem)
def test_atheris_harness_runs_clean_for_a_bounded_time(harness: Path, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris does not install on this machine")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, seed in enumerate(SEEDS):
        (corpus / f"seed{n}").write_bytes(seed)
    result = subprocess.run(
        [sys.executable, str(harness), "-max_total_time=15", "-rss_limit_mb=1024", str(corpus)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr or "DONE" in result.stderr, result.stderr[-1000:]
    shutil.rmtree(corpus)


def test_deep_nesting_is_a_query_error_not_a_crash() -> None:
    with pytest.raises(QueryError, match="nested more than"):
        parse_query("(" * 5000 + "drone" + ")" * 5000)
    with pytest.raises(QueryError, match="nested more than"):
        parse_query("NOT " * 5000 + "drone")
    assert parse_query("(" * 10 + "drone" + ")" * 10)


@pytest.mark.parametrize(("levels", "message"), [(60, "nested more than"), (2000, "too deeply")])
def test_deeply_nested_structured_rule_is_a_validation_message(
    tmp_path: Path, levels: int, message: str
) -> None:
    nested = "drone"
    for _ in range(levels):
        nested = f"{{any: [{nested}]}}"
    path = tmp_path / "deep.yaml"
    path.write_text(f"rules:\n  - id: deep\n    any: [{nested}]\n")
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    assert message in caught.value.problems[0]
