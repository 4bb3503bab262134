"""atheris harness: any rule file gives a RuleSet or RuleError with positioned problems.

Run: `python fuzz/fuzz_rules.py -max_total_time=3600` (see fuzz/README.md).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from monitor.errors import RuleError
    from monitor.rules import load_rules

WORK = Path(tempfile.mkdtemp(prefix="fuzz-rules-")) / "fuzz.yaml"


def test_one_input(data: bytes) -> None:
    WORK.write_bytes(data)
    try:
        load_rules(WORK)
    except RuleError as exc:
        if not exc.problems:
            raise AssertionError("RuleError without problems") from None


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
