"""atheris harness: any bytes into parse_feed give Articles or ParseError, nothing else.

Run: `python fuzz/fuzz_parse.py -max_total_time=3600 corpus/` (see fuzz/README.md).
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports():
    from monitor.errors import ParseError
    from monitor.parse import parse_feed

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_feed(data, feed_url="https://fuzz.example/feed", feed_name="fuzz", now=NOW)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
