"""`poll_feed` against a real HTTP server on 127.0.0.1 whose feeds change over time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from monitor.alerts import ConsoleChannel, Dispatcher, route
from monitor.fetch import Fetcher, FetchLimits
from monitor.pipeline import (
    JITTER,
    POSTPONE_S,
    WORKER_PARSE_BYTES,
    ParseWorker,
    PollContext,
    adapt_interval,
    is_recent,
    poll_feed,
)
from monitor.rules import FeedConfig, load_rules
from monitor.schema import Article
from monitor.store import Store, alerts, deliveries
from tests.feedserver import FeedServer, Route, gzip_bomb

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

RULES = """
rules:
  - id: drones
    severity: high
    query: 'drone* OR "loitering munition"'
"""


def rss(*items: tuple[str, str, datetime], ttl: int | None = None) -> bytes:
    """An RSS 2.0 document with items (guid, title, published)."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://news.example.org/{guid}</link>"
        f"<pubDate>{format_datetime(published)}</pubDate></item>"
        for guid, title, published in items
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test</title>'
        f"<link>https://news.example.org/</link>{ttl_tag}{body}</channel></rss>"
    ).encode()


OLD = ("old-1", "Parliament debates budget", NOW - timedelta(hours=3))
OLD_DRONE = ("old-2", "Drone maker expands factory", NOW - timedelta(hours=2))
NEW_DRONE = ("new-1", "Kamikaze drones hit depot", NOW - timedelta(minutes=5))
NEW_PLAIN = ("new-2", "Football club wins cup", NOW - timedelta(minutes=4))


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer(hosts=("127.0.0.1", "127.0.0.2")) as running:
        yield running


@dataclass
class Harness:
    """A store, a fetcher and rules wired as the daemon wires them."""

    server: FeedServer
    store: Store
    fetcher: Fetcher
    rules_dir: Path
    jsonl: Path
    db_url: str
    limits: FetchLimits

    def feed(self, path: str, **options: object) -> FeedConfig:
        config = FeedConfig(url=self.server.url(path), name=path.strip("/"), **options)  # type: ignore[arg-type]
        self.store.sync_feeds([(config.url, config.name, True)], NOW)
        return config

    def context(self) -> PollContext:
        ruleset = load_rules(self.rules_dir)
        channel = ConsoleChannel(self.jsonl, stream=open(self.jsonl.with_suffix(".log"), "a"))  # noqa: SIM115
        return PollContext(
            store=self.store,
            fetcher=self.fetcher,
            rules=ruleset,
            route=lambda rule: route(rule.notify, [channel]),
            rng=random.Random(1),
        )

    def restart(self) -> None:
        """What a daemon restart does to state: a new connection to the same database."""
        self.store.close()
        self.store = Store.open(self.db_url)

    def alert_count(self) -> int:
        return self.store.count(alerts)


@pytest.fixture
async def harness(server: FeedServer, tmp_path: Path) -> AsyncIterator[Harness]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "desk.yaml").write_text(RULES)
    (rules_dir / "feeds.yaml").write_text("feeds: []\n")
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    limits = FetchLimits(
        max_bytes=1024 * 1024, deadline=2.0, connect_timeout=2.0, user_agent="test"
    )
    fetcher = Fetcher(limits, max_concurrency=10, per_host_concurrency=4)
    harness = Harness(
        server, Store.open(db_url), fetcher, rules_dir, tmp_path / "alerts.jsonl", db_url, limits
    )
    yield harness
    await fetcher.aclose()
    harness.store.close()


async def test_first_poll_records_the_backlog_and_new_items_alert_once(harness: Harness) -> None:
    harness.server.routes["/desk"] = Route(body=rss(OLD, OLD_DRONE))
    feed = harness.feed("/desk")
    first = await poll_feed(feed, harness.context(), NOW)
    assert (first.outcome, first.new_items, first.matches, first.alerts) == ("new", 2, 1, 0)

    harness.server.routes["/desk"] = Route(body=rss(NEW_DRONE, NEW_PLAIN, OLD, OLD_DRONE))
    second = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert (second.new_items, second.matches, second.alerts) == (2, 1, 1)

    third = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=10))
    assert third.new_items == 0
    assert harness.alert_count() == 1


async def test_alert_on_first_poll_when_the_feed_asks_for_it(harness: Harness) -> None:
    harness.server.routes["/eager"] = Route(body=rss(NEW_DRONE))
    report = await poll_feed(
        harness.feed("/eager", alert_on_first_poll=True), harness.context(), NOW
    )
    assert report.alerts == 1


async def test_items_older_than_max_age_never_alert(harness: Harness) -> None:
    harness.server.routes["/age"] = Route(body=rss(OLD))
    feed = harness.feed("/age", max_age="1h")
    await poll_feed(feed, harness.context(), NOW)
    stale = ("stale", "Drone story from last week", NOW - timedelta(days=7))
    harness.server.routes["/age"] = Route(body=rss(stale, NEW_DRONE, OLD))
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=1))
    assert (report.new_items, report.matches, report.alerts) == (2, 2, 1)


async def test_restart_keeps_state_nothing_realerted_nothing_missed(harness: Harness) -> None:
    harness.server.routes["/restart"] = Route(body=rss(OLD))
    feed = harness.feed("/restart")
    await poll_feed(feed, harness.context(), NOW)
    harness.server.routes["/restart"] = Route(body=rss(NEW_DRONE, OLD))
    await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert harness.alert_count() == 1

    harness.restart()
    later = ("new-3", "Loitering munition shown at parade", NOW + timedelta(minutes=8))
    harness.server.routes["/restart"] = Route(body=rss(later, NEW_DRONE, OLD))
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=10))
    assert (report.new_items, report.alerts) == (1, 1)
    assert harness.alert_count() == 2


async def test_304_and_unchanged_bodies_skip_parsing(harness: Harness) -> None:
    harness.server.routes["/etag"] = Route(body=rss(OLD), etag='"v1"')
    feed = harness.feed("/etag")
    await poll_feed(feed, harness.context(), NOW)
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert (report.outcome, report.status, report.items) == ("not_modified", 304, 0)
    assert harness.server.received("/etag")[-1].headers["if-none-match"] == '"v1"'

    harness.server.routes["/same"] = Route(body=rss(OLD))  # no validators: the hash decides
    feed = harness.feed("/same")
    await poll_feed(feed, harness.context(), NOW)
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert (report.outcome, report.items) == ("unchanged", 0)


async def test_reordered_or_reserved_old_items_are_not_new(harness: Harness) -> None:
    harness.server.routes["/order"] = Route(body=rss(OLD, OLD_DRONE, NEW_PLAIN))
    feed = harness.feed("/order")
    await poll_feed(feed, harness.context(), NOW)
    harness.server.routes["/order"] = Route(body=rss(NEW_PLAIN, OLD_DRONE, OLD))
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert report.new_items == 0
    # an item that left the feed and comes back (a re-served old item) is not new either
    harness.server.routes["/order"] = Route(body=rss(OLD))
    await poll_feed(feed, harness.context(), NOW + timedelta(minutes=10))
    harness.server.routes["/order"] = Route(body=rss(OLD_DRONE, OLD))
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=15))
    assert (report.new_items, report.alerts) == (0, 0)


async def test_failures_back_off_and_keep_what_was_seen(harness: Harness) -> None:
    harness.server.routes["/flaky"] = Route(body=rss(OLD, OLD_DRONE))
    feed = harness.feed("/flaky", interval="1m")
    await poll_feed(feed, harness.context(), NOW)
    harness.server.routes["/flaky"] = Route(status=500, body=b"oops")
    delays = []
    for n in range(4):
        now = NOW + timedelta(hours=n)
        report = await poll_feed(feed, harness.context(), now)
        assert report.outcome == "error" and report.next_poll_at is not None
        delays.append(report.next_poll_at - now)
    state = harness.store.feed(feed.url)
    assert state is not None and state.consecutive_failures == 4
    assert "500" in (state.last_error or "")
    assert delays[-1] > delays[0]
    assert all(d <= timedelta(hours=6) for d in delays)

    # back with a changed document: the old items and one new one; only that one is new
    harness.server.routes["/flaky"] = Route(body=rss(NEW_DRONE, OLD, OLD_DRONE))
    report = await poll_feed(feed, harness.context(), NOW + timedelta(hours=5))
    assert (report.outcome, report.new_items, report.alerts) == ("new", 1, 1)
    state = harness.store.feed(feed.url)
    assert state is not None and state.consecutive_failures == 0


def undated(*items: tuple[str, str]) -> bytes:
    """An RSS document of undated items (guid, title): they count as recent whenever seen."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://news.example.org/{guid}</link></item>"
        for guid, title in items
    )
    return f'<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


@pytest.mark.parametrize("meanwhile", ["not_modified", "unchanged", "error"])
async def test_items_still_in_the_feed_outlive_the_retention_period(
    harness: Harness, meanwhile: str
) -> None:
    """The feed answers 304, the same body, or fails for longer than the retention period while
    its items stay in it; retention runs. When the feed changes, only the new item is new: the
    undated drone story that alerted once does not alert again."""
    path = f"/still-{meanwhile}"
    etag = '"v2"' if meanwhile == "not_modified" else None
    parliament, drone = ("g1", "Parliament sits"), ("g2", "Drone factory opens")
    harness.server.routes[path] = Route(body=undated(parliament))
    feed = harness.feed(path)
    await poll_feed(feed, harness.context(), NOW)
    harness.server.routes[path] = Route(body=undated(drone, parliament), etag=etag)
    report = await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert (report.new_items, report.alerts) == (1, 1)

    if meanwhile == "error":
        harness.server.routes[path] = Route(status=500)
    later = NOW + timedelta(days=31)
    for day in range(0, 31, 10):  # polled now and then, never changed, retention hourly
        report = await poll_feed(feed, harness.context(), NOW + timedelta(days=day, hours=1))
        assert report.outcome == meanwhile
        harness.store.prune(NOW + timedelta(days=day, hours=1), timedelta(days=30))
    harness.store.prune(later, timedelta(days=30))

    budget = ("g3", "Budget passes")
    harness.server.routes[path] = Route(body=undated(budget, drone, parliament), etag='"v3"')
    report = await poll_feed(feed, harness.context(), later + timedelta(minutes=5))
    assert (report.outcome, report.new_items, report.alerts) == ("new", 1, 0)
    assert harness.alert_count() == 1


async def test_retry_after_is_honoured(harness: Harness) -> None:
    harness.server.routes["/busy"] = Route(status=429, headers={"Retry-After": "1800"})
    report = await poll_feed(harness.feed("/busy"), harness.context(), NOW)
    assert report.next_poll_at is not None
    assert report.next_poll_at - NOW >= timedelta(minutes=30)


async def test_ttl_is_a_lower_bound_unless_the_desk_opts_out(harness: Harness) -> None:
    harness.server.routes["/ttl"] = Route(body=rss(OLD, ttl=30))
    report = await poll_feed(harness.feed("/ttl", interval="1m"), harness.context(), NOW)
    assert report.next_poll_at is not None and report.next_poll_at - NOW >= timedelta(minutes=27)
    harness.server.routes["/fast"] = Route(body=rss(OLD, ttl=30))
    feed = harness.feed("/fast", interval="1m", respect_cache_hints=False)
    report = await poll_feed(feed, harness.context(), NOW)
    assert report.next_poll_at is not None and report.next_poll_at - NOW < timedelta(minutes=5)


async def test_the_next_poll_is_brought_forward_at_random_never_delayed(
    harness: Harness,
) -> None:
    """Jitter spreads feeds added together: up to ``JITTER`` of the interval earlier, never
    later than the interval (pinned here by min_interval = max_interval)."""
    harness.server.routes["/jitter"] = Route(body=rss(OLD))
    feed = harness.feed("/jitter", interval="10m", min_interval="10m", max_interval="10m")
    interval = timedelta(minutes=10)
    offsets = []
    for n in range(8):
        context = harness.context()
        context.rng = random.Random(n)
        now = NOW + n * 2 * interval
        report = await poll_feed(feed, context, now)
        assert report.next_poll_at is not None
        offsets.append(report.next_poll_at - now)
    assert all(interval * (1 - JITTER) <= offset <= interval for offset in offsets)
    assert len(set(offsets)) == len(offsets)
    assert min(offsets) < interval * (1 - JITTER / 2) < max(offsets)


async def test_permanent_redirect_updates_the_stored_url(harness: Harness) -> None:
    harness.server.routes["/moved"] = Route.redirect(301, harness.server.url("/new-home"))
    harness.server.routes["/new-home"] = Route(body=rss(OLD))
    feed = harness.feed("/moved")
    await poll_feed(feed, harness.context(), NOW)
    state = harness.store.feed(feed.url)
    assert state is not None and state.fetch_url == harness.server.url("/new-home")
    before = len(harness.server.received("/moved"))
    await poll_feed(feed, harness.context(), NOW + timedelta(minutes=5))
    assert len(harness.server.received("/moved")) == before


async def test_a_moved_feed_stays_under_the_redirect_policy(harness: Harness) -> None:
    """A public feed moved (301) to a host whose name later resolves inside the operator's
    network: the stored URL is not the operator's choice, so the next poll is refused before
    any request reaches it."""
    addresses = {"moved.example": ["93.184.216.34"]}
    hits: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        if request.url.host == "feeds.example.com":
            return httpx.Response(301, headers={"Location": "http://moved.example/rss"})
        return httpx.Response(200, content=rss(OLD))

    async def resolver(host: str) -> list[str]:
        return addresses[host]

    feed = FeedConfig(url="https://feeds.example.com/rss", name="moved")
    harness.store.sync_feeds([(feed.url, feed.name, True)], NOW)
    context = harness.context()
    async with Fetcher(
        harness.limits,
        max_concurrency=2,
        per_host_concurrency=2,
        transport=httpx.MockTransport(answer),
        resolver=resolver,
    ) as context.fetcher:
        assert (await poll_feed(feed, context, NOW)).outcome == "new"
        state = harness.store.feed(feed.url)
        assert state is not None and state.fetch_url == "http://moved.example/rss"

        addresses["moved.example"] = ["10.0.0.5"]
        hits.clear()
        report = await poll_feed(feed, context, NOW + timedelta(minutes=5))
    assert (report.outcome, report.error_kind) == ("error", "redirect_refused")
    assert hits == []


async def test_410_disables_the_feed_and_says_so(harness: Harness) -> None:
    harness.server.routes["/gone"] = Route(status=410)
    feed = harness.feed("/gone")
    report = await poll_feed(feed, harness.context(), NOW)
    assert report.outcome == "gone"
    state = harness.store.feed(feed.url)
    assert state is not None and state.disabled_reason == "410 Gone"
    assert "410" in (state.last_error or "")
    assert harness.store.claim_due_feeds("me", NOW + timedelta(days=1), timedelta(minutes=1)) == []


async def test_redirect_to_another_loopback_address_is_refused(harness: Harness) -> None:
    harness.server.routes["/hop"] = Route.redirect(302, harness.server.url("/inside", "127.0.0.2"))
    harness.server.routes["/inside"] = Route(body=rss(NEW_DRONE))
    report = await poll_feed(harness.feed("/hop"), harness.context(), NOW)
    assert report.outcome == "error"
    assert harness.server.received("/inside") == []


@pytest.mark.slow
async def test_slow_server_is_cut_off_at_the_deadline(harness: Harness) -> None:
    harness.server.routes["/drip"] = Route(body=rss(OLD) * 10, drip=1.0)
    report = await poll_feed(harness.feed("/drip"), harness.context(), NOW)
    assert report.outcome == "error" and "within" in (report.error or "")
    assert report.elapsed < harness.limits.deadline + 1.0


async def test_byte_limit_after_decompression(harness: Harness) -> None:
    harness.server.routes["/bomb"] = Route(
        headers={"Content-Encoding": "gzip"}, stream=lambda: gzip_bomb(64 * 1024 * 1024)
    )
    report = await poll_feed(harness.feed("/bomb"), harness.context(), NOW)
    assert report.outcome == "error" and "exceeds" in (report.error or "")


async def test_a_parse_error_is_an_error_on_that_feed(harness: Harness) -> None:
    harness.server.routes["/html"] = Route(body=b"<!DOCTYPE html><html><body>hi</body></html>")
    report = await poll_feed(harness.feed("/html"), harness.context(), NOW)
    assert report.outcome == "error" and "HTML page" in (report.error or "")


async def test_queued_alerts_are_delivered_to_the_console_channel(harness: Harness) -> None:
    harness.server.routes["/deliver"] = Route(body=rss(OLD))
    feed = harness.feed("/deliver")
    context = harness.context()
    await poll_feed(feed, context, NOW)
    harness.server.routes["/deliver"] = Route(body=rss(NEW_DRONE, OLD))
    await poll_feed(feed, context, NOW + timedelta(minutes=1))
    channel = ConsoleChannel(harness.jsonl, stream=open(harness.jsonl.with_suffix(".out"), "w"))  # noqa: SIM115
    dispatcher = Dispatcher(harness.store, [channel], owner="test")
    assert await dispatcher.deliver_due(NOW + timedelta(minutes=1)) == (1, 1)
    assert await dispatcher.deliver_due(NOW + timedelta(minutes=2)) == (0, 0)
    lines = harness.jsonl.read_text().splitlines()
    assert len(lines) == 1 and "Kamikaze drones hit depot" in lines[0]
    assert harness.store.outbox_counts() == {"sent": 1}
    assert harness.store.count(deliveries) == 1


# --- pure scheduling decisions ---------------------------------------------------------------


async def test_a_poll_without_memory_budget_is_postponed_not_failed(harness: Harness) -> None:
    """Other fetches hold the whole fetch memory budget for longer than a fetch may take: the
    poll is put off for a few seconds, and nothing counts against the feed."""
    harness.server.routes["/later"] = Route(body=rss(OLD, OLD_DRONE))
    feed = harness.feed("/later")
    limits = FetchLimits(max_bytes=1024 * 1024, deadline=0.3, connect_timeout=2.0, user_agent="t")
    async with Fetcher(
        limits, max_concurrency=4, per_host_concurrency=4, memory_budget=1024 * 1024
    ) as fetcher:
        assert fetcher.budget is not None
        hog = fetcher.budget.lease()
        assert hog.try_reserve(1024 * 1024)
        context = harness.context()
        context.fetcher = fetcher
        report = await poll_feed(feed, context, NOW)
        assert report.outcome == "postponed" and report.error_kind == "memory_budget"
        assert report.next_poll_at is not None
        assert timedelta(0) < report.next_poll_at - NOW <= timedelta(seconds=POSTPONE_S)
        state = harness.store.feed(feed.url)
        assert state is not None
        assert (state.consecutive_failures, state.last_error, state.first_poll_done) == (
            0,
            None,
            False,
        )

        hog.release()
        report = await poll_feed(feed, context, NOW + timedelta(seconds=5))
        assert (report.outcome, report.new_items) == ("new", 2)
        assert fetcher.budget.used == 0


async def test_large_documents_at_once_stay_within_the_budget_and_are_all_recorded(
    tmp_path: Path,
) -> None:
    """Eight feeds of ~0.6 MiB on four hosts polled at once, against a 1.5 MiB fetch memory
    budget, with the parse worker: the bodies never hold more than the budget together, large
    documents are parsed one at a time, and every feed is recorded in the end (a postponed poll
    is polled again, as the daemon does)."""
    hosts = tuple(f"127.0.0.{n}" for n in range(1, 5))
    # distinct words: near-duplicate stories would make this a test of story grouping
    words = [" ".join(f"w{n}x{k}" for k in range(300)) for n in range(250)]
    items = [(f"g{n}", f"Story {n} {words[n]}", NOW - timedelta(minutes=n)) for n in range(250)]
    with FeedServer(hosts=hosts) as farm:
        store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "desk.yaml").write_text(RULES)
        (tmp_path / "rules" / "feeds.yaml").write_text("feeds: []\n")
        feeds = []
        for n in range(8):
            farm.routes[f"/big{n}"] = Route(body=rss(*[(f"{n}-{g}", t, p) for g, t, p in items]))
            feeds.append(FeedConfig(url=farm.url(f"/big{n}", hosts[n % 4]), name=f"big{n}"))
        assert all(len(route.body) > WORKER_PARSE_BYTES for route in farm.routes.values())  # type: ignore[union-attr]
        store.sync_feeds([(f.url, f.name, True) for f in feeds], NOW)
        limits = FetchLimits(
            max_bytes=1024 * 1024, deadline=5.0, connect_timeout=2.0, user_agent="t"
        )
        budget = 1536 * 1024
        worker = ParseWorker()
        async with Fetcher(
            limits, max_concurrency=8, per_host_concurrency=2, memory_budget=budget
        ) as fetcher:
            context = PollContext(
                store=store,
                fetcher=fetcher,
                rules=load_rules(tmp_path / "rules"),
                route=lambda rule: [],
                rng=random.Random(1),
                parse_worker=worker,
            )
            pending = feeds
            for _ in range(10):
                reports = await asyncio.gather(*(poll_feed(f, context, NOW) for f in pending))
                assert {r.outcome for r in reports} <= {"new", "postponed"}, reports
                pending = [
                    f for f, r in zip(pending, reports, strict=True) if r.outcome == "postponed"
                ]
                if not pending:
                    break
            assert not pending, "postponed polls never went through"
            assert fetcher.budget is not None
            assert 0 < fetcher.budget.peak <= budget and fetcher.budget.used == 0
        worker.shutdown()
        states = store.all_feeds()
        assert [s.last_item_count for s in states] == [250] * 8
        assert all(s.consecutive_failures == 0 for s in states)
        store.close()


def test_busy_feeds_are_polled_more_often_within_bounds() -> None:
    busy = [NOW - timedelta(minutes=10 * n) for n in range(12)]
    quiet = [NOW - timedelta(hours=10), NOW - timedelta(hours=20)]
    bounds = {"min_interval": timedelta(minutes=1), "max_interval": timedelta(hours=1)}
    fast = adapt_interval(timedelta(minutes=5), published=busy, new_count=1, now=NOW, **bounds)
    slow = adapt_interval(timedelta(minutes=5), published=quiet, new_count=0, now=NOW, **bounds)
    assert fast == timedelta(minutes=5)  # one item every 10 minutes: two polls per item
    assert slow == timedelta(hours=1)  # clamped to max_interval
    undated = adapt_interval(timedelta(minutes=8), published=[], new_count=0, now=NOW, **bounds)
    assert undated == timedelta(minutes=10)


def test_is_recent() -> None:
    base = {"id": "x", "feed": "f", "feed_url": "u", "fetched_at": NOW}
    fresh = Article.model_validate({**base, "published": NOW - timedelta(hours=1)})
    stale = Article.model_validate({**base, "published": NOW - timedelta(days=3)})
    undated = Article.model_validate(base)
    assert is_recent(fresh, timedelta(days=2), NOW)
    assert not is_recent(stale, timedelta(days=2), NOW)
    assert is_recent(undated, timedelta(days=2), NOW)
