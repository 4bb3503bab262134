"""docs/benchmarks.md: sections are re-run one at a time, so each carries the stamp of its run."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from bench import __main__ as bench_main


def fake_section(monkeypatch: pytest.MonkeyPatch, name: str, figures: str) -> None:
    module = types.ModuleType(f"bench.{name}")
    module.run = lambda: f"<!-- section: {name} -->\n## {name}\n\nCommand: x.\n\n{figures}\n"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"bench.{name}", module)


def test_each_section_keeps_the_stamp_of_its_own_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench_main, "SECTIONS", ["bench_one", "bench_two"])
    fake_section(monkeypatch, "bench_one", "one: 1")
    fake_section(monkeypatch, "bench_two", "two: 2")
    monkeypatch.setattr(bench_main, "commit", lambda: "`aaaa`")
    bench_main.main(["one", "two"])
    monkeypatch.setattr(bench_main, "commit", lambda: "`bbbb`")
    fake_section(monkeypatch, "bench_two", "two: 3")
    bench_main.main(["two"])

    text = (tmp_path / "docs" / "benchmarks.md").read_text()
    one, two = text.split("<!-- section: ")[1:]
    assert "commit `aaaa`" in one and "one: 1" in one
    assert "commit `bbbb`" in two and "two: 3" in two and "two: 2" not in two
    for section in (one, two):
        lines = section.splitlines()
        assert lines[1].startswith("## ")
        assert lines[3].startswith(bench_main.STAMP_PREFIX)
        assert bench_main.machine() in lines[3]
        assert section.count(bench_main.STAMP_PREFIX) == 1
