"""Outages: a channel down for minutes, the database locked, a feed's DNS failing.
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

import httpx
import pytest

from monitor.fetch import Fetcher, FetchLimits
from monitor.pipeline import PollContext, poll_feed
from monitor.rules import FeedConfig, load_rules
from monitor.store import Store
from tests.feedserver import FeedServer, Route
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
        process = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
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
            )
            assert process.poll() is None, "the daemon died"
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err[-2000:]
    assert len([t for t in titles(webhook) if "Drone alert" in t]) == 2
    record(
        "SQLite database locked for 4 s", "daemon waited, kept running, both alerts delivered once"
    )


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
