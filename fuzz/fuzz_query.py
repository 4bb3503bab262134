"""atheris harness: any text into the query parser gives a query or QueryError.

Run: `python fuzz/fuzz_query.py -max_total_time=3600` (see fuzz/README.md).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from monitor.rules import QueryError, parse_query


def test_one_input(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(512)
    with contextlib.suppress(QueryError):
        parse_query(text)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
