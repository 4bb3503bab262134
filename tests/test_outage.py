"""Outages: a channel down for minutes, the database locked or unreachable, a feed's DNS failing.
In each the monitor keeps running and catches up, losing nothing.

With ``MONITOR_RELIABILITY_OUT`` set, each test appends what it saw there (JSON lines), for
docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from monitor.fetch import Fetcher, FetchLimits
from monitor.pipeline import PollContext, poll_feed
from monitor.rules import FeedConfig, load_rules
from monitor.store import Store
from tests.feedserver import FeedServer, Route
from tests.pg import Cluster
from tests.receivers import Webhook, wait_for
from tests.test_alerts import NOW, Desk, channels_for, desk_with

VOCABULARY = (
    "harbour convoy senate glacier orchard tunnel verdict satellite refinery monsoon embassy "
    "frigate pipeline railway summit drought festival reactor tariff ferry cathedral brigade"
).split()


def record(case: str, outcome: str, **facts: object) -> None:
    out = os.environ.get("MONITOR_RELIABILITY_OUT")
    if out:
        with Path(out).open("a") as sink:
            sink.write(json.dumps({"case": case, "outcome": outcome, **facts}) + "\n")


def story(rng: random.Random, n: int) -> tuple[str, str]:
    """A distinct matching story (title, link): near-identical titles would be one story."""
    return f"Drone alert {n} {' '.join(rng.sample(VOCABULARY, 5))}", f"https://o.example.org/{n}"


def rss(stories: list[tuple[str, str]]) -> bytes:
    stamp = format_datetime(datetime.now(UTC))
    items = "".join(
        f"<item><guid>{link}</guid><title>{title}</title><link>{link}</link>"
        f"<pubDate>{stamp}</pubDate></item>"
        for title, link in stories
    )
    return f'<rss version="2.0"><channel><title>O</title>{items}</channel></rss>'.encode()


# --- a channel down for several minutes of simulated time --------------------------------------


async def test_channel_down_for_minutes_catches_up_without_repeats(tmp_path: Path) -> None:
    desk: Desk = desk_with(tmp_path)
    with Webhook() as webhook:
        (hook,) = channels_for(webhook.url())
        dispatcher = desk.dispatcher([hook])
        webhook.mode = "fail"
        now = NOW
        queued = 0
        for minute in range(12):  # down for 12 simulated minutes, alerts keep coming
            queued += desk.queue(f"Drone strike report {minute} at the border", [hook.name], now)
            await dispatcher.deliver_due(now)
            now += timedelta(minutes=1)
        assert webhook.bodies == []
        attempts_while_down = webhook.requests
        webhook.mode = "ok"
        for _ in range(30):  # bounded: backoff is at most an hour between attempts
            now += timedelta(minutes=5)
            await dispatcher.deliver_due(now)
            if desk.store.outbox_counts().get("sent", 0) == queued:
                break
        desk.store.close()
    arrived = [json.loads(b)["title"] for b in webhook.bodies]
    assert sum(title.count("Drone strike report") for title in arrived) >= queued
    assert desk.store.outbox_counts() == {"sent": queued}
    assert attempts_while_down < 12 * 3  # backed off: not hammered every round
    record("chat channel down for 12 minutes (simulated clock)", "all alerts delivered once after recovery",
           alerts=queued, attempts_while_down=attempts_while_down)  # fmt: skip


# --- the database briefly locked (SQLite) -------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def environment(tmp_path: Path, feeds: list[str], database_url: str, hook: str) -> dict[str, str]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "desk.yaml").write_text(
        "rules:\n  - id: drones\n    severity: high\n    query: 'drone*'\n"
    )
    listed = "".join(f"  - url: {url}\n    name: feed{n}\n" for n, url in enumerate(feeds))
    (rules / "feeds.yaml").write_text(
        f"defaults: {{interval: 1s, min_interval: 1s, max_interval: 2s}}\nfeeds:\n{listed}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(
        MONITOR_RULES_DIR=str(rules),
        MONITOR_DATA_DIR=str(tmp_path / "data"),
        MONITOR_DATABASE_URL=database_url,
        MONITOR_APPRISE_URLS=hook,
        MONITOR_HTTP_LISTEN="",
        MONITOR_FETCH_TIMEOUT="5s",
    )
    return env


def titles(webhook: Webhook) -> list[str]:
    return [json.loads(b)["title"] for b in webhook.bodies]


class DaemonProcess:
    """``monitor run`` in a child process whose log goes to a file, never to a pipe.

    A pipe that nobody reads while the daemon runs holds 64 KiB; once it is full the daemon's
    next log write blocks, and with it the whole event loop: no poll, no delivery, not even the
    SIGTERM handler, until the test finally reads the pipe. That, not the daemon, is why the
    PostgreSQL outage test once failed in CI ("never caught up, connection refused to the
    end"): the errors logged while the database was down filled the pipe within seconds.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DaemonProcess:
        with self.log_path.open("wb") as sink:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([sys.executable, "-m", "monitor", "run"],
                                            env=self.env, stdout=subprocess.DEVNULL, stderr=sink)  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, size: int = 3000) -> str:
        return self.log()[-size:]

    def stop(self) -> int:
        """SIGTERM, then the exit code (the daemon promises to be gone within 10 s)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.stop()


@pytest.mark.slow
def test_database_locked_for_seconds_the_daemon_waits_and_catches_up(
    server: FeedServer, tmp_path: Path
) -> None:
    rng = random.Random(3)
    stories = [("Parliament sits", "https://o.example.org/p")]
    server.routes["/f"] = Route(body=rss(stories))
    db_path = tmp_path / "data" / "monitor.db"
    with Webhook() as webhook:
        env = environment(tmp_path, [server.url("/f")], f"sqlite:///{db_path}", webhook.url())
        with DaemonProcess(env, tmp_path / "daemon.log") as daemon:
            assert wait_for(lambda: len(server.received("/f")) >= 2, timeout=30)
            first = story(rng, 1)
            stories.insert(0, first)
            server.routes["/f"] = Route(body=rss(stories))
            locker = sqlite3.connect(db_path, timeout=30)
            locker.execute("BEGIN EXCLUSIVE")  # nobody else may read or write for a while
            time.sleep(4.0)
            locker.rollback()
            locker.close()
            second = story(rng, 2)
            stories.insert(0, second)
            server.routes["/f"] = Route(body=rss(stories))
            assert wait_for(
                lambda: sum(s[0] in t for t in titles(webhook) for s in (first, second)) == 2, 40
            ), daemon.tail()
            assert daemon.alive(), f"the daemon died: {daemon.tail()}"
            assert daemon.stop() == 0, daemon.tail()
    assert len([t for t in titles(webhook) if "Drone alert" in t]) == 2
    record(
        "SQLite database locked for 4 s", "daemon waited, kept running, both alerts delivered once"
    )


# --- the database unreachable (PostgreSQL stopped and started again) ---------------------------

PG_DOWN_SECONDS = 6.0
SLOW_POLL_SECONDS = 3.0  # the feed's answer to the poll that the outage cuts off


def outbox(url: str) -> dict[str, int]:
    """Deliveries by state, read beside the daemon (its own store is in another process)."""
    store = Store.open(url, migrate=False)
    try:
        return store.outbox_counts()
    finally:
        store.close()


@pytest.mark.slow
def test_postgresql_down_for_seconds_the_daemon_keeps_running_and_catches_up(
    server: FeedServer, own_pg_cluster: Cluster, tmp_path: Path
) -> None:
    """PostgreSQL stops while a poll is in flight and stays down while a story is published;
    after the restart every story's alert arrives exactly once."""
    rng = random.Random(4)
    stories = [("Parliament sits", "https://o.example.org/p")]  # the backlog: no alert

    def publish(new: tuple[str, str], delay: float = 0.0) -> tuple[str, str]:
        stories.insert(0, new)
        server.routes["/f"] = Route(body=rss(stories), delay=delay)
        return new

    def arrived(wanted: list[tuple[str, str]]) -> bool:
        got = titles(webhook)
        return all(any(title in t for t in got) for title, _ in wanted)

    server.routes["/f"] = Route(body=rss(stories))
    url = own_pg_cluster.create_database("outage")
    with Webhook() as webhook:
        env = environment(tmp_path, [server.url("/f")], url, webhook.url())
        env["MONITOR_LEASE"] = "10s"  # the cut-off poll holds its feed this long
        with DaemonProcess(env, tmp_path / "daemon.log") as daemon:
            assert wait_for(lambda: len(server.received("/f")) >= 2, timeout=30), daemon.tail()
            before = publish(story(rng, 1))
            # delivered and recorded as sent: no send is in flight when the database goes away
            assert wait_for(lambda: outbox(url) == {"sent": 1}, timeout=30), daemon.tail()
            assert arrived([before])
            log_before = len(daemon.log())

            # a poll in flight: the feed answers slowly, and the database stops meanwhile
            cut_off = publish(story(rng, 2), delay=SLOW_POLL_SECONDS)
            polled = len(server.received("/f"))
            assert wait_for(lambda: len(server.received("/f")) > polled, timeout=10)
            own_pg_cluster.stop_server()
            down_at = time.monotonic()
            assert server.active == 1, "the slow poll ended before PostgreSQL stopped"
            time.sleep(PG_DOWN_SECONDS / 2)
            during = publish(story(rng, 3))  # published while no poll can even start
            time.sleep(max(0.0, down_at + PG_DOWN_SECONDS - time.monotonic()))
            assert daemon.alive(), f"the daemon died while the database was down: {daemon.tail()}"
            assert len(webhook.bodies) == 1  # nothing can be recorded, so nothing is sent
            logged_while_down = daemon.log()[log_before:]

            own_pg_cluster.start_again()
            up_at = time.monotonic()
            assert wait_for(lambda: arrived([cut_off, during]), timeout=40), daemon.tail()
            caught_up = time.monotonic() - up_at
            after = publish(story(rng, 4))
            assert wait_for(lambda: arrived([after]), timeout=20), daemon.tail()
            # every delivery settled: nothing left that a later round could send again
            assert wait_for(lambda: outbox(url) == {"sent": 4}, timeout=20), outbox(url)
            assert daemon.alive(), f"the daemon died: {daemon.tail()}"
            assert daemon.stop() == 0, daemon.tail()

    got = titles(webhook)
    for title, _ in [before, cut_off, during, after]:
        assert sum(title in t for t in got) == 1, (title, got)
    assert len(got) == 4, got
    errors = [line for line in logged_while_down.splitlines() if " ERROR " in line]
    assert any("poll not recorded" in line for line in errors), logged_while_down[-3000:]
    assert any("cannot lease due feeds" in line for line in errors), logged_while_down[-3000:]
    # one line per failed round, no traceback (twice a second they once came to ~15 KB/s)
    assert "Traceback" not in logged_while_down, logged_while_down[-3000:]
    record(
        f"PostgreSQL stopped for {PG_DOWN_SECONDS:.0f} s, cutting off a poll in flight, while a "
        "matching story was published",
        f"daemon kept running and logged {len(errors)} one-line errors; caught up "
        f"{caught_up:.1f} s after the restart (the cut-off poll's feed once its lease expired); "
        "4 alerts delivered once each, none lost",
        down_s=PG_DOWN_SECONDS, caught_up_s=round(caught_up, 2), error_lines=len(errors),
        log_bytes_while_down=len(logged_while_down),
    )  # fmt: skip


# --- a feed's DNS failing ---------------------------------------------------------------------


class FailingNames(httpx.AsyncBaseTransport):
    """Resolution of one host fails (as getaddrinfo would) while ``failing`` is set; every other
    request goes to the real network stack (here: the loopback feed server)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.failing = True
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self.host and self.failing:
            raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)
        if request.url.host == self.host:
            request.url = request.url.copy_with(host="127.0.0.1")
        return await self.inner.handle_async_request(request)


async def test_a_feed_whose_dns_fails_backs_off_and_catches_up(
    server: FeedServer, tmp_path: Path
) -> None:
    rng = random.Random(5)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "desk.yaml").write_text("rules:\n  - id: drones\n    query: 'drone*'\n")
    (rules / "feeds.yaml").write_text("feeds: []\n")
    bad_stories = [("Parliament sits", "https://o.example.org/p")]
    good_stories = [("Budget passes", "https://o.example.org/b")]
    server.routes["/bad"] = Route(body=rss(bad_stories))
    server.routes["/good"] = Route(body=rss(good_stories))
    transport = FailingNames("feeds.unresolvable.test")
    limits = FetchLimits(max_bytes=1 << 20, deadline=5, connect_timeout=2, user_agent="t")
    fetcher = Fetcher(limits, max_concurrency=4, per_host_concurrency=2, transport=transport)
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    bad = FeedConfig(url=f"http://feeds.unresolvable.test:{server.port}/bad", name="bad")
    good = FeedConfig(url=server.url("/good"), name="good")
    store.sync_feeds([(bad.url, "bad", True), (good.url, "good", True)], NOW)
    context = PollContext(store=store, fetcher=fetcher, rules=load_rules(rules),
                          route=lambda rule: ["console"], rng=random.Random(1))  # fmt: skip
    now = NOW
    good_reports = []
    for step in range(4):
        good_stories.insert(0, story(rng, 10 + step))
        server.routes["/good"] = Route(body=rss(good_stories))
        report = await poll_feed(bad, context, now)
        assert report.outcome == "error" and "resolve" in (report.error or "")
        good_reports.append(await poll_feed(good, context, now))
        now += timedelta(minutes=10)
    state = store.feed(bad.url)
    assert state is not None and state.last_error_kind == "dns" and state.consecutive_failures == 4
    assert [r.new_items for r in good_reports[1:]] == [1, 1, 1]  # the other feed is unaffected

    bad_stories.insert(0, story(rng, 99))
    server.routes["/bad"] = Route(body=rss(bad_stories))
    transport.failing = False  # the name resolves again
    report = await poll_feed(bad, context, now)
    assert (report.outcome, report.new_items) == ("new", 2)  # its backlog: first good poll
    state = store.feed(bad.url)
    assert state is not None and state.consecutive_failures == 0
    await fetcher.aclose()
    store.close()
    record(
        "a feed's DNS failing for 4 polls",
        "errors of kind dns with backoff; other feeds unaffected; caught up when it resolved",
    )
