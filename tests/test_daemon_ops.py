"""The daemon's operations side: the HTTP listener it starts and refuses, its metrics as scraped,
SIGHUP, the fields of its log lines."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from monitor.alerts import CONSOLE
from monitor.config import load_settings
from monitor.daemon import RELOAD_TICK, Daemon
from monitor.fetch import FetchRequest
from tests.feedserver import FeedServer, Route
from tests.pg import free_port
from tests.receivers import wait_for
from tests.test_daemon import healthy, monitor, rss, workspace
from tests.test_web import metric


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


def replace_keeping_stat(path: Path, text: str) -> None:
    """Give ``path`` new contents of the same size and modification time, at once (a rename):
    the file watcher, which compares sizes and times, sees no change at any moment."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    new = path.with_suffix(".new")
    new.write_text(text)
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(new, path)


def drones_row(page: str) -> re.Match[str] | None:
    """The status page's row of the drones rule: its hits and alerts in the last 48 h."""
    return re.search(r'<td>drones</td>\s*<td class="num">(\d+)</td>\s*<td class="num">(\d+)', page)


@pytest.mark.slow
def test_serves_health_metrics_while_running_and_reloads_on_sighup(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.routes["/a"] = Route(body=rss("Drone sighted over the border", "Parliament sits"))
        env = workspace(tmp_path, [server.url("/a")])
        feeds = tmp_path / "rules" / "feeds.yaml"
        feeds.write_text(feeds.read_text().replace("{interval: 1m}", "{interval: 1m, "
                                                   "alert_on_first_poll: true}"))  # fmt: skip
        port = free_port()
        env["MONITOR_HTTP_LISTEN"] = f"127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_for(lambda: healthy(base), 30), "no /healthz"
            assert httpx.get(f"{base}/readyz", timeout=5).json()["database"] == "ok"

            # the alert went out: the counters of each step moved, as a scrape shows them
            def scrape() -> str:
                return httpx.get(f"{base}/metrics", timeout=5).text

            assert wait_for(lambda: f'monitor_alerts_sent{{channel="{CONSOLE}"}} 1.0' in scrape())
            text = scrape()
            assert metric(text, "monitor_polls_total", outcome="new") == 1
            assert metric(text, "monitor_items_total") == 2
            assert metric(text, "monitor_matches_total") == 1
            assert metric(text, "monitor_alerts_queued_total") == 1
            assert metric(text, "monitor_publish_to_alert_seconds_count", channel=CONSOLE) == 1
            assert metric(text, "monitor_outbox_depth") == 0
            row = drones_row(httpx.get(base, timeout=5).text)
            assert row and row.groups() == ("1", "1"), "hits and alerts of the rule"

            # SIGHUP reloads rules the file watcher cannot see changed: the drones rule is
            # renamed treaty (same length), the file keeps its size and modification time
            rules = tmp_path / "rules" / "desk.yaml"
            replace_keeping_stat(rules, rules.read_text().replace("id: drones", "id: treaty"))
            time.sleep(2 * RELOAD_TICK + 0.5)  # the watcher has looked, and seen nothing
            reloaded = 'monitor_rule_reloads_total{result="ok"} 1.0'
            assert "monitor_rule_reloads_total{" not in scrape()
            process.send_signal(signal.SIGHUP)
            assert wait_for(lambda: reloaded in scrape(), 15), "SIGHUP did not reload"
            assert "<td>treaty</td>" in httpx.get(base, timeout=5).text
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "SIGHUP: reloading rules" in err
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=2)
