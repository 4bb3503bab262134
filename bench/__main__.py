"""`make bench`: run every benchmark section and write docs/benchmarks.md."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

#: Section modules in the order they appear in docs/benchmarks.md; each has `run() -> str`.
SECTIONS = ["bench_parse", "bench_rules", "bench_fetch", "bench_daemon", "bench_e2e"]
OUTPUT = Path("docs/benchmarks.md")
HEADER = """# Benchmarks

Written by `make bench` (`python -m bench`); every figure below comes from the run recorded in its
section. Machine: {machine}. Run at {when}.
"""


def machine() -> str:
    cpus = os.cpu_count()
    python = platform.python_version()
    return f"{platform.machine()}, {cpus} cores, Python {python}, {platform.system()}"


def main(argv: list[str]) -> None:
    wanted = [f"bench_{name}" for name in argv] or SECTIONS
    existing = _existing_sections()
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", flush=True)
        existing[name] = module.run().strip() + "\n"
        print(existing[name], flush=True)
    header = HEADER.format(machine=machine(), when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    body = "\n".join(existing[n] for n in SECTIONS if n in existing)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(header + "\n" + body)
    print(f"wrote {OUTPUT}")


def _existing_sections() -> dict[str, str]:
    """Keep the sections not re-run this time, so `python -m bench parse` updates one section."""
    if not OUTPUT.exists():
        return {}
    sections: dict[str, str] = {}
    current: str | None = None
    for line in OUTPUT.read_text().splitlines(keepends=True):
        if line.startswith("<!-- section: "):
            current = line.removeprefix("<!-- section: ").split(" ")[0]
            sections[current] = ""
        if current:
            sections[current] += line
    # Without this each run adds a blank line per kept section (they are joined with "\n").
    return {name: text.rstrip("\n") + "\n" for name, text in sections.items()}


if __name__ == "__main__":
    main(sys.argv[1:])
