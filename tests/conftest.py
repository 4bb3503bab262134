"""Shared fixtures: a store on SQLite and on a real PostgreSQL started for the session."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.store import Store
from tests.pg import Cluster, running_cluster

_database_numbers = itertools.count(1)


def _cluster() -> Iterator[Cluster]:
    """A running PostgreSQL cluster, or a skip where it is not installed (in CI a failure)."""
    try:
        with running_cluster() as cluster:
            yield cluster
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not available here: {exc} (CI installs it)")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the whole session; in CI its absence is a failure."""
    yield from _cluster()


@pytest.fixture
def own_pg_cluster() -> Iterator[Cluster]:
    """A cluster of the test's own, which it may stop and start again (outage tests)."""
    yield from _cluster()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh, empty database on the session's cluster."""
    return pg_cluster.create_database(f"test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same tests against both backends."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitor.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = Store.open(url)
    yield opened
    opened.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite tests/fixtures/expected/*.jsonl from what the parser gives now; review "
        "every changed line by eye (mojibake, wrong dates) before committing them",
    )
