"""`make bench`: run every benchmark section and write docs/benchmarks.md."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

#: Section modules in the order they appear in docs/benchmarks.md; each has `run() -> str`.
SECTIONS = ["bench_parse", "bench_rules", "bench_fetch", "bench_daemon", "bench_e2e"]
OUTPUT = Path("docs/benchmarks.md")
HEADER = """# Benchmarks

Written by `make bench` (`python -m bench`). A section can be re-run on its own (`python -m bench
parse`), so each one says under its heading when, on which machine and at which commit it ran;
every figure in a section comes from that run. A section without that line predates it.
"""
STAMP_PREFIX = "Run: "


def machine() -> str:
    cpus = os.cpu_count()
    python = platform.python_version()
    return f"{platform.machine()}{_cpu_model()}, {cpus} cores, Python {python}, {platform.system()}"


def _cpu_model() -> str:
    """` (model name)` from /proc/cpuinfo where there is one (platform says nothing on Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f" ({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return ""


def commit() -> str:
    """The checkout's commit, and whether tracked files differed from it (then it is not the
    whole truth about the code that ran)."""
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"`{sha}`" + (" with uncommitted changes" if changed else "")


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def stamped(section: str, stamp: str) -> str:
    """The section with the stamp of its run under its heading (its first `## ` line)."""
    lines = section.split("\n")
    heading = next((i for i, line in enumerate(lines) if line.startswith("## ")), 0)
    lines[heading + 1 : heading + 1] = ["", stamp]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    wanted = [f"bench_{name}" for name in argv] or SECTIONS
    existing = _existing_sections()
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", flush=True)
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        stamp = f"{STAMP_PREFIX}{started} on {machine()}, commit {commit()}."
        existing[name] = stamped(module.run().strip(), stamp) + "\n"
        print(existing[name], flush=True)
    body = "\n".join(existing[n] for n in SECTIONS if n in existing)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(HEADER + "\n" + body)
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
