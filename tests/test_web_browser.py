"""The status page in a real headless browser (Debian's chromium driven by Playwright over the
DevTools protocol), served by a running `monitor run` that polled a real feed server.

Playwright's own browser download is not used: ``executable_path`` points at the system
chromium. Where chromium is missing and this runs as root, the test installs it with apt-get;
it skips only when the browser cannot be installed.
"""

from __future__ import annotations

import html
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.feedserver import FeedServer, Route
from tests.pg import free_port
from tests.test_daemon import rss, workspace

TOKEN = "browser-test-token-9876"
HOSTILE = '<script>document.title="pwned"</script> Drone <img src=x onerror=alert(1)>'
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and we may (root)."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (not root/no apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"chromium could not be installed: {done.stderr.strip()[-300:]}")
    found = find_chromium()
    if not found:
        pytest.skip("chromium could not be installed: apt-get gave no chromium binary")
    return found


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, FeedServer, subprocess.Popen[str]]]:
    """A running `monitor run` with its status page on loopback, behind a token."""
    with FeedServer() as server:
        server.routes["/wire"] = Route(body=rss("Parliament sits"))
        server.routes["/down"] = Route(status=503, body=b"busy")
        env = workspace(tmp_path, [server.url("/wire"), server.url("/down")])
        port = free_port()
        env.update(
            MONITOR_HTTP_LISTEN=f"127.0.0.1:{port}",
            MONITOR_HTTP_TOKEN=TOKEN,
            MONITOR_STATUS_REFRESH="2s",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            db = tmp_path / "data" / "monitor.db"
            # the first poll (the backlog, no alert) must be recorded before the feed changes
            # and is made due again: else the new item could be part of the backlog, or the
            # daemon's record of the first poll could push the next one minutes ahead
            wait_for(lambda: first_poll_recorded(db), "the first poll to be recorded")
            server.routes["/wire"] = Route(
                body=rss(html.escape(html.escape(HOSTILE)), "Parliament sits")
            )
            # escaped twice: once for XML, once because titles are HTML; the title is the text
            make_due(db)
            wait_for((tmp_path / "data" / "alerts.jsonl").exists, "the alert")
            yield base, server, process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=10)


def first_poll_recorded(db: Path) -> bool:
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(db) as conn:
            query = "SELECT first_poll_done FROM feeds WHERE url LIKE '%/wire'"
            row = conn.execute(query).fetchone()
    except sqlite3.OperationalError:  # the daemon has created the file, not yet its tables
        return False
    return bool(row and row[0])


def make_due(db: Path) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE feeds SET next_poll_at = NULL")


def wait_for(condition: object, what: str, timeout: float = 30) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_status_page_in_a_real_browser(
    chromium: str, daemon: tuple[str, FeedServer, subprocess.Popen[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, _server, _process = daemon
    assert httpx.get(f"{base}/", timeout=10).status_code == 401
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            http_credentials={"username": "ops", "password": TOKEN},
        )
        try:
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            response = page.goto(f"{base}/", wait_until="load")
            assert response is not None and response.status == 200
            assert page.title() == "wire-monitor status"
            # the hostile headline is text: no script ran, no element was injected
            assert page.locator("script").count() == 0
            assert page.locator("table.alerts img").count() == 0
            alerts = page.locator("table.alerts tbody tr")
            assert alerts.count() == 1
            assert "<script>" in alerts.first.inner_text()
            # the hashed stylesheet was allowed by the CSP and applied
            collapse = page.eval_on_selector(
                "table.feeds", "t => getComputedStyle(t).borderCollapse"
            )
            assert collapse == "collapse"
            # the charts drew: a bar for the rule's alert, a mark per poll of each feed
            bars = page.locator("svg.chart rect[fill='#1c7ed6']")
            assert bars.count() == 1
            box = bars.first.bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0
            assert page.locator("svg.strip").count() == 2
            assert page.locator("svg.strip rect[fill='#e03131']").count() >= 1  # /down failed
            assert page.locator("td.backoff").count() == 1
            # the meta refresh reloads the page by itself (no script involved)
            with page.expect_event("load", timeout=10_000):
                pass
            page.screenshot(path=str(tmp_path / "status.png"), full_page=True)
            violations = [line for line in console if "Content Security Policy" in line]
            assert not violations, violations
            assert not [line for line in console if line.startswith(("error", "pageerror"))]
        finally:
            context.close()
