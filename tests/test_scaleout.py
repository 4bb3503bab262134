"""Scale-out on PostgreSQL: three `monitor run` processes share 300 feeds on one database.

Rounds are driven by the test: every feed's interval is pinned to an hour, so a feed is due only
when the test makes it due (``UPDATE feeds SET next_poll_at = now()``); the feed server counts
the requests per path. Each round every feed must be fetched exactly once, whichever process
leased it; alerts found by any process are delivered once (each process writes its console
channel to its own ``alerts.jsonl``). Then one process is killed with SIGKILL while it holds
leases: the others take exactly its feeds over, none before its lease (``MONITOR_LEASE``) ran
out and each on the first poll tick after.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import psycopg
import pytest

from monitor.daemon import POLL_TICK
from tests.feedserver import FeedServer, Route

FEEDS = 300
PROCESSES = 3
LEASE = 10.0  # seconds; a fetch may take at most MONITOR_FETCH_TIMEOUT (8 s)
SLOW = 1.5  # seconds each answer takes in the kill round, so that leases are held at the kill
#: How late after a poll tick a free feed's poll may start (scheduling, the claim's transaction).
TAKEOVER_SLACK = 1.5
#: The wire story of each round, carried by 30 feeds at once (one alert each round).
STORIES = {
    2: "Kamikaze drone strike on fuel depot near the border, officials say",
    3: "Navy unveils drone carrier as defence treaty talks resume in the capital",
}

RULES = """
rules:
  - id: drones
    severity: high
    query: 'drone*'
"""


def words(rng: random.Random, n: int) -> str:
    """Distinct made-up words, so that no two unrelated items look like one story."""
    return " ".join(
        "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        for _ in range(n)
    )


def feed_body(feed: int, rounds: int) -> bytes:
    """Feed ``feed`` after ``rounds`` rounds of news: one item per round, plus (for the first
    30 feeds) the same wire story, carried by each under its own guid and link."""
    now = datetime.now(UTC)
    items = []
    for r in range(1, rounds + 1):
        rng = random.Random(feed * 1000 + r)
        title = f"{words(rng, 3)} drone{words(rng, 1)} {words(rng, 3)}"  # no word in common
        items.append((f"f{feed}-r{r}", title, words(rng, 25)))
        if r > 1 and feed < 30:
            items.append((f"f{feed}-story{r}", STORIES[r], f"{STORIES[r]}. More soon."))
    rendered = "".join(
        f"<item><guid>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://n{feed}.example.org/{guid}</link><description>{escape(text)}"
        f"</description><pubDate>{format_datetime(now - timedelta(minutes=1))}</pubDate></item>"
        for guid, title, text in reversed(items)
    )
    return f'<rss version="2.0"><channel><title>F{feed}</title>{rendered}</channel></rss>'.encode()


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Cluster:
    """The feed server, the database and the `monitor run` processes of the test."""

    def __init__(self, server: FeedServer, pg_url: str, root: Path) -> None:
        self.server, self.root = server, root
        self.dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        self.paths = [f"/f/{i}" for i in range(FEEDS)]
        rules = root / "rules"
        rules.mkdir()
        (rules / "desk.yaml").write_text(RULES)
        listed = "".join(f"  - url: {server.url(p)}\n    name: feed{p[3:]}\n" for p in self.paths)
        (rules / "feeds.yaml").write_text(
            "defaults: {interval: 1h, min_interval: 1h, max_interval: 1h, "
            f"respect_cache_hints: false}}\nfeeds:\n{listed}"
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        self.env.update(
            MONITOR_RULES_DIR=str(rules),
            MONITOR_DATABASE_URL=pg_url,
            MONITOR_FETCH_TIMEOUT="8s",
            MONITOR_CONNECT_TIMEOUT="5s",
            MONITOR_LEASE=f"{LEASE:.0f}s",
            MONITOR_MAX_CONCURRENCY="20",
            MONITOR_PER_HOST_CONCURRENCY="20",
            MONITOR_HTTP_LISTEN="",
        )
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, n: int) -> None:
        for k in range(n):
            env = {**self.env, "MONITOR_DATA_DIR": str(self.root / f"data{k}")}
            log = (self.root / f"monitor{k}.log").open("w")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "monitor", "run"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    text=True,
                )
            )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def sql(self, query: str, *args: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(query, args)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def serve(self, rounds: int, delay: float = 0.0) -> None:
        for i, path in enumerate(self.paths):
            self.server.routes[path] = Route(body=feed_body(i, rounds), delay=delay)

    def feed_times(self, column: str, where: str, *args: object) -> dict[str, datetime]:
        """url -> a time of each feed that ``where`` selects (``column`` is set for each)."""
        rows = self.sql(f"SELECT url, {column} FROM feeds WHERE {where}", *args)
        found = {str(url): at for url, at in rows if isinstance(at, datetime)}
        assert len(found) == len(rows), rows
        return found

    def counts(self) -> Counter[str]:
        return Counter(r.path for r in list(self.server.requests))

    def round(self, what: str) -> None:
        """Make every feed due; wait until each was fetched, and a while longer."""
        self.server.reset_counters()
        self.sql("UPDATE feeds SET next_poll_at = now()")
        wait_for(lambda: len(self.counts()) == FEEDS, f"{what}: every feed polled", 60)
        time.sleep(2.5)  # more than two poll ticks: a second fetch would show now
        counts = self.counts()
        assert set(counts) == set(self.paths)
        twice = {path: n for path, n in counts.items() if n != 1}
        assert not twice, f"{what}: fetched more than once: {twice}"

    def delivered(self) -> list[dict[str, object]]:
        lines = []
        for k in range(len(self.processes)):
            path = self.root / f"data{k}" / "alerts.jsonl"
            if path.exists():
                lines += [json.loads(line) for line in path.read_text().splitlines()]
        return lines

    def settle_outbox(self) -> None:
        wait_for(
            lambda: self.sql("SELECT count(*) FROM deliveries WHERE state <> 'sent'")[0][0] == 0,
            "the outbox to empty",
            60,
        )

    def owner(self, process: subprocess.Popen[str]) -> str:
        return f"{socket.gethostname()}:{process.pid}"

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.root.glob("monitor*.log")))


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    with FeedServer() as server:
        running = Cluster(server, pg_url, tmp_path)
        running.serve(rounds=1)
        try:
            yield running
        finally:
            running.stop()


@pytest.mark.slow
def test_three_processes_share_300_feeds_and_take_over_a_killed_one(cluster: Cluster) -> None:
    cluster.start(PROCESSES)
    # round 1: the processes start together (migrations, feed sync) and poll the backlog
    wait_for(lambda: len(cluster.counts()) == FEEDS, "round 1: every feed polled", 90)
    time.sleep(2.5)
    assert all(n == 1 for n in cluster.counts().values()), "round 1: a feed fetched twice"
    assert all(p.poll() is None for p in cluster.processes), cluster.logs()

    # rounds 2 and 3: one new item per feed, and one wire story carried by 30 feeds at once
    for rounds in (2, 3):
        cluster.serve(rounds)
        cluster.round(f"round {rounds}")
        cluster.settle_outbox()
    delivered = cluster.delivered()
    keys = Counter((line["rule"], line["article_id"]) for line in delivered)
    assert not [key for key, n in keys.items() if n > 1], "an alert was delivered twice"
    stories = Counter(str(line["title"]) for line in delivered if line["title"] in STORIES.values())
    assert stories == dict.fromkeys(STORIES.values(), 1), stories
    alerts = cluster.sql("SELECT count(*) FROM alerts")[0][0]
    assert len(delivered) == alerts == 2 * (FEEDS + 1)
    writers = [k for k in range(PROCESSES) if (cluster.root / f"data{k}" / "alerts.jsonl").exists()]
    assert len(writers) >= 2, "deliveries were not shared"

    for k in range(PROCESSES):  # each process did a share of the polling
        assert "monitor.daemon: polled " in (cluster.root / f"monitor{k}.log").read_text(), k

    # round 4: a fifth of the feeds, answering slowly so that leases are held; kill -9 a process
    # that holds some. (A fifth: the others have their own share done by the time the killed
    # process's leases run out, and take those feeds over at once.)
    due = [cluster.server.url(path) for path in cluster.paths[::5]]
    cluster.serve(3, delay=SLOW)
    cluster.server.reset_counters()
    victim = cluster.processes[0]
    owner = cluster.owner(victim)
    round_start = datetime.now(UTC) - timedelta(seconds=1)
    cluster.sql("UPDATE feeds SET next_poll_at = now() WHERE url = ANY(%s)", due)

    def victim_holds_leases() -> bool:
        rows = cluster.sql("SELECT count(*) FROM feeds WHERE lease_owner = %s", owner)
        return bool(rows[0][0])

    wait_for(victim_holds_leases, "the victim to lease feeds", 30)
    held = cluster.feed_times("lease_expires_at", "lease_owner = %s", owner)  # until when
    victim.kill()
    victim.wait(timeout=10)
    assert held

    def all_polled_since_round() -> bool:
        rows = cluster.sql(
            "SELECT count(*) FROM feeds WHERE url = ANY(%s) "
            "AND (lease_owner IS NOT NULL OR last_polled_at < %s)",
            due,
            round_start,
        )
        return rows[0][0] == 0

    wait_for(all_polled_since_round, "round 4: the survivors to poll every due feed", 60)
    polled = cluster.feed_times("last_polled_at", "url = ANY(%s)", due)
    # polled once a lease had run out: exactly the killed process's feeds, none of the others
    taken_over = {url for url, at in polled.items() if at >= min(held.values())}
    assert taken_over == set(held)
    for url, expires in held.items():
        # not before its lease ran out (no two holders), and on the first poll tick after it
        bound = expires + timedelta(seconds=POLL_TICK + TAKEOVER_SLACK)
        assert expires <= polled[url] <= bound, (url, expires, polled[url])
    time.sleep(2.5)
    counts = cluster.counts()
    origin = cluster.server.url("")
    assert set(counts) == {url.removeprefix(origin) for url in due}
    twice = {path for path, n in counts.items() if n > 1}
    assert twice <= {url.removeprefix(origin) for url in held}, "a feed not held was polled twice"
    assert all(n <= 2 for n in counts.values())
    assert all(p.poll() is None for p in cluster.processes[1:]), cluster.logs()
    assert "Traceback" not in cluster.logs()
