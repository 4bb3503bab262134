"""CI runs every test: where PostgreSQL is missing, `.ci/run` (which sets CI) fails instead of
skipping the store and scale-out tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NoReturn

import pytest

from tests import conftest

CI_RUN = Path(__file__).parent.parent / ".ci" / "run"


def test_ci_run_sets_ci_before_the_tests() -> None:
    text = CI_RUN.read_text()
    exported = re.search(r"^export CI=1$", text, re.MULTILINE)
    tests = re.search(r"^make test$", text, re.MULTILINE)
    assert exported and tests and exported.start() < tests.start()


def no_postgresql() -> NoReturn:
    """``running_cluster`` on a machine without the PostgreSQL server binaries."""
    raise RuntimeError("initdb not found")


def test_missing_postgresql_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "running_cluster", no_postgresql)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL not available"):
        next(conftest._cluster())
    monkeypatch.setenv("CI", "1")
    with pytest.raises(RuntimeError, match="initdb not found"):
        next(conftest._cluster())
