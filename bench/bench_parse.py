"""Parse + normalise against plain `feedparser.parse` with its default options, same bytes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import feedparser

from bench.corpus import rss_feed, small_real_world_feeds
from monitor.parse import parse_feed

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
REPEATS = 5


def best_seconds(work: Callable[[], int], repeats: int = REPEATS) -> tuple[float, int]:
    """The fastest of several runs (the least disturbed by the rest of the machine)."""
    best = float("inf")
    items = 0
    for _ in range(repeats):
        start = time.perf_counter()
        items = work()
        best = min(best, time.perf_counter() - start)
    return best, items


def ours(documents: list[bytes]) -> Callable[[], int]:
    def work() -> int:
        return sum(
            len(parse_feed(d, feed_url="https://bench/", now=NOW).articles) for d in documents
        )

    return work


def feedparser_default(documents: list[bytes]) -> Callable[[], int]:
    def work() -> int:
        return sum(len(feedparser.parse(d).entries) for d in documents)

    return work


def run() -> str:
    cases = {
        "one feed, 200 items of ~3 KB HTML": [rss_feed(1, 200, html_chars=3000)],
        "30 small real-world-shaped feeds (RSS, Atom, media)": small_real_world_feeds(30),
    }
    rows = []
    for name, documents in cases.items():
        size_kb = sum(len(d) for d in documents) / 1024
        our_time, our_items = best_seconds(ours(documents))
        fp_time, fp_items = best_seconds(feedparser_default(documents))
        assert our_items == fp_items, (our_items, fp_items)
        rows.append(
            f"| {name} | {size_kb:,.0f} KB | {our_items} | {our_items / our_time:,.0f} | "
            f"{fp_items / fp_time:,.0f} | {our_time / fp_time:.2f} | "
            f"{'met' if our_time <= fp_time else 'NOT met'} |"
        )
    return "\n".join(
        [
            "<!-- section: bench_parse -->",
            "## Parse and normalise",
            "",
            "Command: `python -m bench parse` (also part of `make bench`). Best of "
            f"{REPEATS} runs each. `monitor.parse.parse_feed` does the whole of parse + "
            "normalise (byte screening, feedparser with its sanitiser and URI rewriting off, "
            "HTML to text, dates, canonical URLs, ids, datelines, fingerprints, pydantic "
            "Articles); the baseline is `feedparser.parse(bytes)` with its default options "
            "on the same bytes in the same run. Target: ratio at most 1.0.",
            "",
            "| input | size | items | ours, items/s | feedparser default, items/s "
            "| ratio (ours / feedparser) | target |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
