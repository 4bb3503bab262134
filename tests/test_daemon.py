"""`monitor run` as an operator runs it: real processes, a real feed server, real signals."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from monitor import __version__
from monitor.alerts import Message
from monitor.config import load_settings
from monitor.daemon import Daemon, make_fetcher
from monitor.fetch import FetchRequest
from tests.feedserver import FeedServer, Route
from tests.pg import free_port

RULES = """
rules:
  - id: drones
    severity: high
    query: 'drone*'
"""


def rss(*titles: str) -> bytes:
    now = datetime.now(UTC)
    items = "".join(
        f"<item><guid>{t}</guid><title>{t}</title><link>https://n.example.org/{abs(hash(t))}</link>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=n))}</pubDate></item>"
        for n, t in enumerate(titles)
    )
    return f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def workspace(tmp_path: Path, feeds: list[str]) -> dict[str, str]:
    """A rules dir and data dir; the environment a `monitor` process runs with."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "desk.yaml").write_text(RULES)
    listed = "".join(f"  - url: {url}\n    name: feed{n}\n" for n, url in enumerate(feeds))
    (rules / "feeds.yaml").write_text(f"defaults: {{interval: 1m}}\nfeeds:\n{listed}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(
        MONITOR_RULES_DIR=str(rules),
        MONITOR_DATA_DIR=str(tmp_path / "data"),
        MONITOR_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'monitor.db'}",
        MONITOR_FETCH_TIMEOUT="5s",
        MONITOR_CONNECT_TIMEOUT="2s",
        MONITOR_HTTP_LISTEN="",
    )
    return env


def healthy(base: str) -> bool:
    """Whether the daemon at ``base`` (its HTTP listener) answers /healthz with 200 now."""
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def use_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in-process with the workspace's settings (and no MONITOR_ setting from outside)."""
    for key in [k for k in os.environ if k.startswith("MONITOR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("MONITOR_"):
            monkeypatch.setenv(key, value)


def monitor(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_run_once_polls_every_feed_and_delivers(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/a"] = Route(body=rss("Parliament sits"))
    server.routes["/b"] = Route(body=rss("Weather"))
    env = workspace(tmp_path, [server.url("/a"), server.url("/b")])
    first = monitor("run", "--once", env=env)
    assert first.returncode == 0, first.stderr
    assert "feed0: new (1 new, 0 alerts)" in first.stdout
    assert "feed1: new (1 new, 0 alerts)" in first.stdout

    server.routes["/a"] = Route(body=rss("Drone strike reported", "Parliament sits"))
    second = monitor("run", "--once", env=env)
    assert second.returncode == 0, second.stderr
    assert "feed0: new (1 new, 1 alerts)" in second.stdout
    assert "delivered 1 alert(s)" in second.stdout
    lines = (tmp_path / "data" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["title"] for line in lines] == ["Drone strike reported"]

    third = monitor("run", "--once", env=env)
    assert "delivered 0 alert(s)" in third.stdout


@pytest.mark.slow
def test_sigterm_stops_within_ten_seconds_with_exit_0(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/slow"] = Route(body=rss("x") * 50, drip=0.5)  # an in-flight poll at stop
    env = workspace(tmp_path, [server.url("/slow")])
    env["MONITOR_FETCH_TIMEOUT"] = "60s"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not server.received("/slow") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.received("/slow"), "the daemon never polled"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert time.monotonic() - started < 10
        assert "stopping (SIGTERM)" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


#: `monitor run` with a system resolver that hangs for one host name, as a resolver whose
#: servers stopped answering does: getaddrinfo() takes no timeout and cannot be interrupted.
STUCK_RESOLVER = """
import socket, sys, time
from pathlib import Path

resolving = Path(sys.argv[1])
system_getaddrinfo = socket.getaddrinfo

def getaddrinfo(host, *args, **kwargs):
    if (host.decode() if isinstance(host, bytes) else str(host)) == "stuck.invalid":
        resolving.touch()
        time.sleep(60)
    return system_getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = getaddrinfo
sys.argv = ["monitor", "run"]
from monitor.cli import main
main()
"""


@pytest.mark.slow
def test_sigterm_stops_within_ten_seconds_while_a_dns_lookup_hangs(tmp_path: Path) -> None:
    """The abandoned poll's lookup goes on in a thread; neither asyncio.run nor the
    interpreter's exit may wait for it (they did: the process ended 29 s after SIGTERM)."""
    env = workspace(tmp_path, ["http://stuck.invalid/feed"])
    env.update(MONITOR_FETCH_TIMEOUT="60s", MONITOR_CONNECT_TIMEOUT="60s", MONITOR_LEASE="90s")
    resolving = tmp_path / "resolving"
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK_RESOLVER, str(resolving)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not resolving.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert resolving.exists(), "the daemon never polled"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 20 s after SIGTERM")
        elapsed = time.monotonic() - started
        assert process.returncode == 0, err
        assert elapsed < 10, f"exited {elapsed:.1f} s after SIGTERM"
        assert "abandoned 1 in-flight polls" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.slow
def test_offline_feeds_fail_back_off_and_the_daemon_keeps_running(tmp_path: Path) -> None:
    env = workspace(tmp_path, ["http://127.0.0.1:9/feed"])  # nothing listens on port 9
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(4)
        assert process.poll() is None, "the daemon died"
        status = monitor("status", env={**env, "COLUMNS": "250"})
        assert status.returncode == 0, status.stderr
        assert "backing off" in status.stdout
        assert "cannot connect" in status.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert process.returncode == 0


class StuckChannel:
    """A channel whose sends never finish (a chat service that stopped answering)."""

    name = "stuck"
    tags: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.sending = asyncio.Event()

    async def send(self, message: Message) -> None:
        self.sending.set()
        await asyncio.sleep(60)


async def test_shutdown_holds_one_deadline_whatever_is_stuck(
    server: FeedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A poll waiting on a silent server, a channel that never answers, the HTTP listener: all
    finished or abandoned, and closed, within the one deadline counted from the stop."""
    server.routes["/silent"] = Route(body=rss("Weather"), delay=8)
    server.routes["/news"] = Route(body=rss("Drone strike reported"))
    env = workspace(tmp_path, [])
    (tmp_path / "rules" / "feeds.yaml").write_text(
        f"feeds:\n  - url: {server.url('/silent')}\n"
        f"  - url: {server.url('/news')}\n    alert_on_first_poll: true\n"
    )
    env.update(MONITOR_FETCH_TIMEOUT="30s", MONITOR_HTTP_LISTEN=f"127.0.0.1:{free_port()}")
    use_env(env, monkeypatch)
    channel = StuckChannel()
    daemon = Daemon(load_settings(), channels=[channel], shutdown_deadline=3.0)
    running = asyncio.create_task(daemon.run())
    async with asyncio.timeout(20):
        await channel.sending.wait()
        while not server.received("/silent"):
            await asyncio.sleep(0.05)
    assert daemon.in_flight and daemon.web is not None

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="monitor.daemon"):
        daemon.request_stop("test")
        assert await asyncio.wait_for(running, timeout=15) == 0
    assert time.monotonic() - started < 3.3
    assert "abandoned 1 in-flight polls" in caplog.text


def test_invalid_rule_edit_keeps_the_last_valid_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = workspace(tmp_path, [])
    use_env(env, monkeypatch)
    daemon = Daemon(load_settings())
    assert [r.id for r in daemon.ruleset.rules] == ["drones"]
    rules_file = tmp_path / "rules" / "desk.yaml"

    rules_file.write_text(RULES + "  - id: broken\n    query: 'drone AND ('\n")
    with caplog.at_level(logging.ERROR, logger="monitor.daemon"):
        assert daemon.reload_if_changed() is False
    assert [r.id for r in daemon.ruleset.rules] == ["drones"]
    assert logged_at(caplog, rules_file, line=7)

    rules_file.write_text(RULES + "  - id: treaty\n    query: '\"defence treaty\"'\n")
    os.utime(rules_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert daemon.reload_if_changed() is True
    assert [r.id for r in daemon.ruleset.rules] == ["drones", "treaty"]
    daemon.store.close()


def test_rules_dir_as_one_file_loads_that_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``MONITOR_RULES_DIR=rules/desk.yaml`` runs that file: a backup copy beside it repeats
    no rule id, the feeds.yaml beside it adds no feed, other YAML there is not read; that it
    polls nothing is logged."""
    env = workspace(tmp_path, ["http://127.0.0.1:9/one"])
    rules = tmp_path / "rules"
    (rules / "desk.bak.yaml").write_text(RULES)
    (rules / "docker-compose.yml").write_text("services: [unclosed\n")
    env["MONITOR_RULES_DIR"] = str(rules / "desk.yaml")
    use_env(env, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="monitor.daemon"):
        daemon = Daemon(load_settings())
    assert [(r.id, r.file) for r in daemon.ruleset.rules] == [("drones", str(rules / "desk.yaml"))]
    assert daemon.ruleset.feeds.feeds == [] and daemon.store.all_feeds() == []
    assert f"no feeds configured in {rules / 'desk.yaml'}: nothing is polled" in caplog.text
    daemon.store.close()


def logged_at(caplog: pytest.LogCaptureFixture, path: Path, line: int) -> bool:
    """Whether an error was logged as ``path:line:col: message``."""
    where = re.compile(rf"{re.escape(str(path))}:{line}:\d+: \S")
    return any(where.search(rec.getMessage()) for rec in caplog.records)


def test_invalid_feeds_yaml_edit_keeps_the_last_valid_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_env(workspace(tmp_path, ["http://127.0.0.1:9/one"]), monkeypatch)
    daemon = Daemon(load_settings())
    feeds_file = tmp_path / "rules" / "feeds.yaml"
    feeds_file.write_text(
        feeds_file.read_text() + "  - url: http://127.0.0.1:9/two\n    interval: 5x\n"
    )
    os.utime(feeds_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    with caplog.at_level(logging.ERROR, logger="monitor.daemon"):
        assert daemon.reload_if_changed() is False
    assert logged_at(caplog, feeds_file, line=6)
    assert [f.url for f in daemon.ruleset.feeds.feeds] == ["http://127.0.0.1:9/one"]
    assert [f.url for f in daemon.store.all_feeds() if f.enabled] == ["http://127.0.0.1:9/one"]
    daemon.store.close()


def test_feeds_yaml_edits_reach_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = workspace(tmp_path, ["http://127.0.0.1:9/one"])
    use_env(env, monkeypatch)
    daemon = Daemon(load_settings())
    feeds_file = tmp_path / "rules" / "feeds.yaml"
    feeds_file.write_text(
        feeds_file.read_text() + "  - url: http://127.0.0.1:9/two\n    name: two\n"
    )
    os.utime(feeds_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert daemon.reload_if_changed() is True
    assert {f.url for f in daemon.store.all_feeds() if f.enabled} == {
        "http://127.0.0.1:9/one",
        "http://127.0.0.1:9/two",
    }
    daemon.store.close()


async def test_the_default_user_agent_names_the_project_its_version_and_a_url(
    server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC section 3: what a publisher sees in its logs when MONITOR_USER_AGENT is not set."""
    use_env(workspace(tmp_path, []), monkeypatch)
    monkeypatch.chdir(tmp_path)  # no .env or monitor.toml of the checkout's
    server.routes["/ua"] = Route(body=rss("Parliament sits"))
    async with make_fetcher(load_settings()) as fetcher:
        outcome = await fetcher.fetch(FetchRequest(server.url("/ua")))
    assert outcome.kind == "ok"
    agent = server.received("/ua")[-1].headers["user-agent"]
    found = re.fullmatch(r"wire-monitor/(\S+) \(\+(https://\S+)\)", agent)
    assert found is not None, agent
    assert found.group(1) == __version__


def test_default_interval_applies_where_feeds_yaml_sets_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = workspace(tmp_path, [])
    (tmp_path / "rules" / "feeds.yaml").write_text(
        "feeds:\n  - url: http://127.0.0.1:9/a\n  - url: http://127.0.0.1:9/b\n    interval: 7m\n"
    )
    use_env(env, monkeypatch)
    monkeypatch.setenv("MONITOR_DEFAULT_INTERVAL", "2m")
    daemon = Daemon(load_settings())
    intervals = [f.interval for f in daemon.ruleset.feeds.feeds]
    assert intervals == [timedelta(minutes=2), timedelta(minutes=7)]
    daemon.store.close()


def test_run_once_polls_again_what_the_memory_budget_postponed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six feeds of ~0.9 MiB with no declared length, a budget of one such feed: fetches give
    up for want of room, and `run --once` polls those again until every feed is recorded."""
    hosts = tuple(f"127.0.0.{n}" for n in range(1, 7))
    item = "<item><guid>{n}-{i}</guid><title>Story</title><description>{text}</description></item>"
    with FeedServer(hosts=hosts) as farm:
        urls = []
        for n in range(6):
            items = "".join(  # distinct words: near-duplicate stories would test story grouping
                item.format(n=n, i=i, text=" ".join(f"w{n}x{i}x{k}" for k in range(300)))
                for i in range(250)
            )
            body = (
                f'<rss version="2.0"><channel><title>T{n}</title>{items}</channel></rss>'.encode()
            )
            farm.routes[f"/f{n}"] = Route(
                stream=lambda b=body: (b[i : i + 50_000] for i in range(0, len(b), 50_000))  # type: ignore[misc]
            )
            urls.append(farm.url(f"/f{n}", hosts[n]))
        env = workspace(tmp_path, urls)
        env.update(MONITOR_MAX_FEED_BYTES="1MiB", MONITOR_FETCH_MEMORY_BUDGET="1MiB")
        use_env(env, monkeypatch)
        daemon = Daemon(load_settings())
        summary = asyncio.run(daemon.run_once())
        assert [(r.outcome, r.items) for r in summary.polls] == [("new", 250)] * 6
        assert daemon.fetcher.budget is not None
        assert daemon.fetcher.budget.peak <= 1024 * 1024
        daemon.parse_worker.shutdown()
        daemon.store.close()
