"""The store's operations side, on SQLite and PostgreSQL: migration 2 (poll log), the queries
behind /metrics and the status page, and the scale-out races (several processes at once)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, select

from monitor.dedupe import best_story
from monitor.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AlertPlan,
    PollRecord,
    Store,
    alerts,
    articles,
    metadata,
    poll_log,
    schema_version,
)
from tests.test_store import FEED, NOW, make_article, new_item


def test_later_migrations_upgrade_a_version_1_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a database as migration 1 left it
        metadata.create_all(conn)
        conn.execute(schema_version.insert().values(version=1))
    engine.dispose()
    assert "poll_log" not in metadata.tables  # migration 1 never creates it
    store = Store.open(url)
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    assert store.count(poll_log) == 0
    store.close()


def test_poll_log_keeps_the_last_polls_of_each_feed(store: Store) -> None:
    store.sync_feeds([(FEED, "Asia", True), ("https://b.example.org/", "B", True)], NOW)
    a, b = store.feed(FEED), store.feed("https://b.example.org/")
    assert a and b
    for n in range(60):
        outcome = "error" if n % 7 == 0 else "new"
        store.record_poll(a.id, NOW + timedelta(minutes=n), outcome, status=200, elapsed_ms=n)
    store.record_poll(b.id, NOW, "gone", status=410, error_kind="gone")
    polls = store.recent_polls()
    assert len(polls[a.id]) == 48
    assert [m.elapsed_ms for m in polls[a.id]] == list(range(12, 60))
    assert polls[b.id][0].outcome == "gone" and polls[b.id][0].error_kind == "gone"


def test_queries_behind_metrics_and_the_page(store: Store) -> None:
    store.sync_feeds([(FEED, "Asia", True)], NOW)
    state = store.feed(FEED)
    assert state
    items = [new_item(make_article(1), ("r1", "r2"), ("console", "chat")), new_item(
        make_article(2), ("r1",), ("console",))]  # fmt: skip
    store.record_items(PollRecord(state.id, NOW, items, [], best_story), feed_name="Asia")
    store.plan_alerts(NOW, lambda a: AlertPlan(dict.fromkeys(a.channels, (NOW, None))))
    claimed = store.claim_deliveries("me", NOW, timedelta(minutes=1))
    by_channel = {(d.channel, d.rule_id, d.payload["article"]["id"]): d.id for d in claimed}
    store.settle_delivery(by_channel["console", "r1", "a1"], NOW, sent=True)
    store.settle_delivery(by_channel["chat", "r1", "a1"], NOW, sent=False, error="x", retry_at=NOW)
    store.settle_delivery(by_channel["chat", "r2", "a1"], NOW, sent=False, error="x")
    counts = {(c.channel, c.state): c for c in store.delivery_counts()}
    assert counts["console", "sent"].count == 1
    assert counts["console", "pending"].count == 1  # a2 is a near-duplicate: one story
    assert counts["chat", "pending"].retried == 1
    assert counts["chat", "dead"].failed_attempts == 1
    sent = store.sent_times(list(by_channel.values()))
    assert [(channel, published) for channel, published, _ in sent] == [
        ("console", make_article(1).published)
    ]
    assert sorted(store.rule_hits(NOW - timedelta(hours=1))) == ["r1", "r2"]
    assert len(store.alert_times(NOW - timedelta(hours=1))) == 2
    recent = store.recent_alerts(10)
    assert {a.rule_id for a in recent} == {"r1", "r2"}
    first = next(a for a in recent if a.rule_id == "r1" and a.title == make_article(1).title)
    assert first.deliveries == {"console": "sent", "chat": "pending"}


def test_two_processes_recording_the_same_item_make_one_article_and_alert(store: Store) -> None:
    """Two feeds carry the same item; two processes poll them at the same moment."""
    other_url = "https://mirror.example.org/asia.xml"
    store.sync_feeds([(FEED, "Asia", True), (other_url, "Mirror", True)], NOW)
    second = Store.open(str(store.engine.url.render_as_string(hide_password=False)))
    try:
        feeds = [store.feed(FEED), store.feed(other_url)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def poll(target: Store, feed_id: int, name: str) -> None:
            try:
                barrier.wait(timeout=10)
                item = new_item(make_article(7), ("nk-drones",))
                target.record_items(PollRecord(feed_id, NOW, [item], [], best_story), name)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=poll, args=(target, feed.id, feed.name))
            for target, feed in zip((store, second), feeds, strict=True)
            if feed is not None
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
    finally:
        second.close()
    assert store.count(articles) == 1
    with store.engine.connect() as conn:
        assert len(conn.execute(select(alerts.c.id)).all()) == 1


def test_concurrent_start_ups_add_the_same_feeds_once(store: Store) -> None:
    url = str(store.engine.url.render_as_string(hide_password=False))
    others = [Store.open(url) for _ in range(3)]
    errors: list[BaseException] = []
    configured = [(f"https://f{n}.example.org/", f"f{n}", True) for n in range(50)]

    def start(target: Store) -> None:
        try:
            target.sync_feeds(configured, NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for other in others:
        other.close()
    assert not errors, errors
    assert len(store.all_feeds()) == 50
