"""The daemon's footprint: 10,000 feeds and 1,000 rules configured, one full polling round.

`monitor run --once` runs as its own process against `bench.farm` (2,000 distinct ~20 KB RSS
bodies' worth of feeds spread over 100 loopback hosts), with the real store (SQLite), the real
rules loader and matcher, and the console channel. Peak memory is the child's own high-water
mark (``VmHWM``, sampled by `tests.procmem.PeakMemory`), so it covers everything the process
ever held; its ``ru_maxrss`` would not do, as on Linux it starts from the parent's.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import WORDS
from bench.farm import host_address, start_farm
from tests.procmem import PeakMemory

FEEDS = 10_000
RULES = 1_000
HOSTS = 100
TARGET_MB = 300


def rules_yaml(count: int, seed: int = 7) -> str:
    """Rules an analyst might write: entities, phrases, prefixes and combinations of them.

    Like a real desk's rules they are specific: phrases of the corpus's words, names that the
    articles rarely contain, so an article matches a handful of rules, not hundreds.
    """
    rng = random.Random(seed)
    corpus = [w for w in WORDS if len(w) > 3]
    names = ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
             for _ in range(3000)]  # fmt: skip
    words = corpus + names
    lines = ["entities:"]
    for n in range(50):
        aliases = ", ".join(f'"{rng.choice(words)} {rng.choice(words)}"' for _ in range(3))
        lines.append(f"  ent-{n}:\n    aliases: [{aliases}]")
    lines.append("rules:")

    def term() -> str:
        roll = rng.random()
        if roll < 0.4:
            return f'\\"{rng.choice(corpus)} {rng.choice(corpus)}\\"'
        if roll < 0.6:
            return rng.choice(names)[:5] + "*"
        if roll < 0.8:
            return f"@ent-{rng.randrange(50)}"
        return rng.choice(names)

    for n in range(count):
        query = f"{term()} AND ({term()} OR {term()})"
        lines.append(f'  - id: rule-{n}\n    query: "{query}"')
    return "\n".join(lines) + "\n"


def feeds_yaml(port: int, count: int) -> str:
    lines = ["defaults: {interval: 5m}", "feeds:"]
    for n in range(count):
        lines.append(
            f"  - url: http://{host_address(n % HOSTS)}:{port}/feed/{n}\n    name: feed-{n}"
        )
    return "\n".join(lines) + "\n"


def run() -> str:
    farm, port = start_farm("bench.farm", "--hosts", str(HOSTS), "--feeds", str(FEEDS))
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
            work = Path(tmp)
            (work / "rules").mkdir()
            (work / "rules" / "desk.yaml").write_text(rules_yaml(RULES))
            (work / "rules" / "feeds.yaml").write_text(feeds_yaml(port, FEEDS))
            env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
            env.update(
                MONITOR_RULES_DIR=str(work / "rules"),
                MONITOR_DATA_DIR=str(work / "data"),
                MONITOR_DATABASE_URL=f"sqlite:///{work / 'data' / 'monitor.db'}",
                MONITOR_MAX_CONCURRENCY="100",
                MONITOR_LOG_LEVEL="WARNING",
            )
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--once"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            memory = PeakMemory(child.pid).start()
            try:
                out, err = child.communicate(timeout=1800)
            finally:
                memory.stop()
            wall = time.perf_counter() - started
            peak_mb = memory.peak_mb
            if child.returncode != 0:
                raise RuntimeError(f"monitor run --once failed: {err[-2000:]}")
            polled = sum(
                1 for line in out.splitlines() if ": new (" in line or ": unchanged" in line
            )
            errors = sum(1 for line in out.splitlines() if ": error (" in line)
    finally:
        assert farm.stdin is not None
        farm.stdin.close()
        farm.wait(timeout=10)
    met = "met" if peak_mb < TARGET_MB else "NOT met"
    return "\n".join(
        [
            "<!-- section: bench_daemon -->",
            "## The daemon with 10,000 feeds and 1,000 rules",
            "",
            "Command: `python -m bench daemon` (also part of `make bench`). "
            f"`monitor run --once` in its own process with {FEEDS:,} feeds in `feeds.yaml` (on "
            f"{HOSTS} loopback hosts served by `bench/farm.py`, ~20 KB RSS each) and {RULES:,} "
            "rules (entities, phrases, prefixes, AND/OR): load and compile the rules, sync the "
            "feeds into a fresh SQLite store, poll every feed once with concurrency 100, parse, "
            "match, record every item. Peak memory is the process's own high-water mark "
            "(`VmHWM`, sampled from `/proc`: a child's `ru_maxrss` starts from its parent's).",
            "",
            "| feeds | rules | polled ok | errors | wall time | peak memory | target (< 300 MB) |",
            "|---|---|---|---|---|---|---|",
            f"| {FEEDS:,} | {RULES:,} | {polled:,} | {errors} | {wall:.1f} s | {peak_mb:.0f} MB "
            f"| {met} |",
        ]
    )
