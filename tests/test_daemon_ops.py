"""The daemon's operations side: the HTTP listener it starts and refuses, SIGHUP, the poll log."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from monitor.config import load_settings
from monitor.daemon import Daemon
from monitor.fetch import FetchRequest
from tests.feedserver import FeedServer, Route
from tests.pg import free_port
from tests.test_daemon import monitor, rss, workspace


def test_refuses_a_public_listener_without_a_token(tmp_path: Path) -> None:
    env = workspace(tmp_path, [])
    env["MONITOR_HTTP_LISTEN"] = f"0.0.0.0:{free_port()}"
    done = monitor("run", env=env, timeout=30)
    assert done.returncode == 1
    assert "MONITOR_HTTP_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


def test_refuses_a_lease_shorter_than_a_fetch(tmp_path: Path) -> None:
    env = {**workspace(tmp_path, []), "MONITOR_LEASE": "5s", "MONITOR_FETCH_TIMEOUT": "10s"}
    done = monitor("config", env=env, timeout=30)
    assert done.returncode == 1 and "MONITOR_LEASE" in done.stderr


class CrashingFetcher:
    """A fetcher with a bug: every poll raises."""

    budget = None

    def fetching(self, request: FetchRequest) -> NoReturn:
        raise RuntimeError(f"a bug fetching {request.url}")

    async def aclose(self) -> None:
        pass


def database_gone(*_: object) -> NoReturn:
    raise OperationalError("UPDATE feeds", {}, Exception("server closed the connection"))


async def test_a_crashed_poll_logs_its_feed_as_a_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key, value in workspace(tmp_path, ["http://127.0.0.1:9/feed"]).items():
        if key.startswith("MONITOR_"):
            monkeypatch.setenv(key, value)
    daemon = Daemon(load_settings(), fetcher=CrashingFetcher())  # type: ignore[arg-type]
    (state,) = daemon.store.all_feeds()
    monkeypatch.setattr(daemon.store, "release_feed", database_gone)
    with caplog.at_level(logging.INFO, logger="monitor.daemon"):
        assert await daemon._poll_one(daemon.ruleset.feeds.feeds[0], state.id) is None
    daemon.store.close()
    logged = {r.getMessage(): r for r in caplog.records}
    crashed, unreleased = logged["poll crashed"], logged["lease not released"]
    assert crashed.__dict__["feed"] == "feed0" and crashed.exc_info is not None
    assert unreleased.__dict__["feed"] == "feed0"
    assert "server closed the connection" in unreleased.__dict__["error"]


@pytest.mark.slow
def test_serves_health_while_running_and_reloads_on_sighup(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.routes["/a"] = Route(body=rss("Parliament sits"))
        env = workspace(tmp_path, [server.url("/a")])
        port = free_port()
        env["MONITOR_HTTP_LISTEN"] = f"127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            healthy = False
            while time.monotonic() < deadline and not healthy:
                try:
                    healthy = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.2)
            assert healthy, "no /healthz"
            assert httpx.get(f"{base}/readyz", timeout=5).json()["database"] == "ok"
            rules = tmp_path / "rules" / "desk.yaml"
            rules.write_text(rules.read_text() + "  - id: treaty\n    query: 'treaty'\n")
            # same size and mtime as far as the file watcher can tell? SIGHUP reloads anyway
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                text = httpx.get(f"{base}/metrics", timeout=5).text
                if "monitor_rules 2.0" in text:
                    break
                time.sleep(0.2)
            assert "monitor_rules 2.0" in text
            page = httpx.get(base, timeout=5).text
            assert "treaty" in page and "feed0" in page
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "SIGHUP: reloading rules" in err
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=2)
