"""The store on SQLite and on a real PostgreSQL: state survives, nothing is forgotten early,
a poll's findings are recorded all at once, one alert per rule and story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, update

import monitor.store as store_module
from monitor.dedupe import best_story, fingerprint_hashes, identity_keys
from monitor.parse import story_fingerprint
from monitor.schema import Article, Hit, Match
from monitor.store import (
    SCHEMA_VERSION,
    STORY_CANDIDATES,
    AlertPlan,
    Delivery,
    NewItem,
    PollRecord,
    QueuedAlert,
    Store,
    alerts,
    articles,
    deliveries,
    feeds,
    matches,
    stories,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FEED = "https://feeds.example.org/asia.xml"


def make_article(n: int, title: str | None = None, feed: str = "Asia") -> Article:
    title = title or f"Story number {n} about entirely separate topic {n * 7919}"
    return Article(
        id=f"a{n}",
        feed=feed,
        feed_url=FEED,
        url=f"https://news.example.org/{n}",
        title=title,
        summary=f"Lead paragraph {n} with distinct words {n * 31} {n * 17}.",
        fetched_at=NOW,
        published=NOW - timedelta(hours=1),
        fingerprint=story_fingerprint(title, f"Lead paragraph {n}"),
    )


def make_match(article: Article, rule: str = "nk-drones") -> Match:
    hit = Hit(term="drone", field="title", start=0, end=5, text="Drone")
    return Match(article_id=article.id, rule=rule, severity="high", hits=[hit], snippet="Drone")


def new_item(
    article: Article, rules: tuple[str, ...] = (), channels: tuple[str, ...] = ("console",)
) -> NewItem:
    found = [make_match(article, rule) for rule in rules]
    return NewItem(
        article=article,
        keys=identity_keys(article),
        story_hashes=fingerprint_hashes(article.fingerprint),
        matches=found,
        alerts=[QueuedAlert(match=m, channels=list(channels)) for m in found],
    )


def feed_id(store: Store) -> int:
    store.sync_feeds([(FEED, "Asia", True)], NOW)
    state = store.feed(FEED)
    assert state is not None
    return state.id


def record(
    store: Store, items: list[NewItem], present: list[str] | None = None, now: datetime = NOW
) -> None:
    keys = present if present is not None else [k for i in items for k in i.keys]
    store.record_items(
        PollRecord(
            feed_id=feed_id(store),
            now=now,
            new_items=items,
            present_keys=keys,
            pick_story=best_story,
        ),
        feed_name="Asia",
    )


def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = Store.open(url)
    assert first.schema_version() == SCHEMA_VERSION
    first.close()
    again = Store.open(url)
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'db.sqlite'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_feed_state_round_trips_with_utc_times(store: Store) -> None:
    fid = feed_id(store)
    later = NOW + timedelta(minutes=5)
    store.update_feed(fid, etag='"v1"', last_modified="Tue, 24 Nov 2026 11:00:00 GMT",
                      last_status=200, next_poll_at=later, consecutive_failures=0)  # fmt: skip
    state = store.feed(FEED)
    assert state is not None
    assert state.etag == '"v1"'
    assert state.next_poll_at == later
    assert state.next_poll_at.tzinfo is UTC


def test_removed_feeds_are_disabled_not_deleted(store: Store) -> None:
    feed_id(store)
    store.sync_feeds([], NOW)
    state = store.feed(FEED)
    assert state is not None and (state.enabled, state.removed) == (False, True)


def test_a_poll_is_recorded_whole(store: Store) -> None:
    story = make_article(1, "North Korea tests kamikaze drones")
    plain = make_article(2)
    record(
        store,
        [new_item(story, rules=("nk-drones",), channels=("console", "chat")), new_item(plain)],
    )
    assert store.seen_keys(identity_keys(story) + identity_keys(plain)) == set(
        identity_keys(story) + identity_keys(plain)
    )
    assert store.count(articles) == 2
    assert store.count(matches) == 1
    assert store.count(alerts) == 1
    assert store.count(deliveries) == 2
    assert store.outbox_counts() == {"pending": 2}


def test_same_story_from_another_outlet_does_not_alert_again(store: Store) -> None:
    first = make_article(1, "Kim Jong-un oversees test of new kamikaze drones")
    rewrite = make_article(2, "Kim Jong-un oversees test of new kamikaze drones", feed="Other")
    rewrite = rewrite.model_copy(update={"fingerprint": first.fingerprint})
    record(store, [new_item(first, rules=("nk-drones",))])
    record(store, [new_item(rewrite, rules=("nk-drones",))])
    assert store.count(alerts) == 1
    assert store.count(matches) == 2  # every match is kept for backtests and reports
    (delivery,) = claim_all(store, NOW)
    assert delivery.also_reported_by == ["Other"]


def claim_all(store: Store, now: datetime) -> list[Delivery]:
    """Plan every alert to go now, then claim all their deliveries."""
    store.plan_alerts(now, lambda a: AlertPlan(dict.fromkeys(a.channels, (now, None))))
    return store.claim_deliveries("test", now, timedelta(minutes=1))


def test_every_alert_of_a_story_lists_its_other_sources_as_of_sending(store: Store) -> None:
    """Sources are the story's, read when an alert is claimed: a second rule's alert lists the
    outlet the first rule alerted on, and both list what arrived after they were queued, in
    order of arrival, each once, never the alert's own feed."""
    names = ("Asia", "Other", "Third", "Fourth")
    store.sync_feeds([(f"https://{n}.example.org/feed", n, True) for n in names], NOW)
    ids = {f.name: f.id for f in store.all_feeds()}

    def poll(name: str, at: timedelta, items: list[NewItem], present: list[str]) -> None:
        store.record_items(
            PollRecord(feed_id=ids[name], now=NOW + at, new_items=items, present_keys=present,
                       pick_story=best_story),
            feed_name=name,
        )  # fmt: skip

    title = "Kim Jong-un oversees test of new kamikaze drones"
    first = make_article(1, title)
    rewrites = [
        make_article(n, title, feed=name).model_copy(update={"fingerprint": first.fingerprint})
        for n, name in ((2, "Other"), (3, "Third"))
    ]
    poll("Asia", timedelta(0), [new_item(first, ("nk-drones",))], identity_keys(first))
    poll("Fourth", timedelta(minutes=1), [], identity_keys(first))  # the same link
    poll("Other", timedelta(minutes=2), [new_item(rewrites[0], ("nk-drones", "korea"))],
         identity_keys(rewrites[0]))  # fmt: skip
    for again in (3, 4):  # listed again, by its own feed and by the one with the same link
        poll("Other", timedelta(minutes=again), [], identity_keys(rewrites[0]))
        poll("Fourth", timedelta(minutes=again), [], identity_keys(first))
    poll("Third", timedelta(minutes=5), [new_item(rewrites[1], ("korea",))],
         identity_keys(rewrites[1]))  # fmt: skip
    assert store.count(alerts) == 2
    expected = {"nk-drones": ["Fourth", "Other", "Third"], "korea": ["Asia", "Fourth", "Third"]}
    claimed = claim_all(store, NOW + timedelta(minutes=6))
    assert {d.rule_id: d.also_reported_by for d in claimed} == expected
    assert {a.rule_id: a.also_reported_by for a in store.recent_alerts()} == expected


def test_migration_6_moves_listed_sources_to_the_story(store: Store) -> None:
    """A database whose alerts kept their own "also reported by" list: the story keeps the
    feeds of its articles and the names the lists held, and the column goes."""
    record(store, [new_item(make_article(1), ("nk-drones",))])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE story_sources")
        conn.exec_driver_sql(
            "ALTER TABLE alerts ADD COLUMN also_reported_by TEXT NOT NULL DEFAULT '[]'"
        )
        conn.exec_driver_sql("""UPDATE alerts SET also_reported_by = '["Wire B", "Asia"]'""")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 5")
    upgraded = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        assert upgraded.schema_version() == SCHEMA_VERSION
        (delivery,) = claim_all(upgraded, NOW)
        assert delivery.also_reported_by == ["Wire B"]
        alert_columns = {c["name"] for c in inspect(upgraded.engine).get_columns("alerts")}
        assert "also_reported_by" not in alert_columns
    finally:
        upgraded.close()


def test_a_stock_phrase_shared_by_many_stories_does_not_hide_the_real_one(store: Store) -> None:
    """Hundreds of stories share one fingerprint hash (a stock phrase); the rewrite of one of
    them still joins it, and no more than ``STORY_CANDIDATES`` are compared."""
    target = make_article(0, "Kim Jong-un oversees test of new kamikaze drones")
    stock = fingerprint_hashes(target.fingerprint)[0]
    others = [  # unrelated stories: no word in common
        make_article(n, " ".join(f"w{n}x{i}" for i in range(8))) for n in range(1, 150)
    ]
    record(store, [new_item(target, rules=("nk-drones",))])
    items = [new_item(a) for a in others]
    for item in items:
        item.story_hashes = sorted({stock, *item.story_hashes})
    record(store, items)
    compared: list[int] = []

    def pick(fingerprint: str, candidates: list[tuple[int, str]]) -> int | None:
        compared.append(len(candidates))
        return best_story(fingerprint, candidates)

    rewrite = make_article(9999, "Kim Jong-un oversees test of new kamikaze drones", feed="Other")
    store.record_items(
        PollRecord(feed_id=feed_id(store), now=NOW, new_items=[new_item(rewrite, ("nk-drones",))],
                   present_keys=identity_keys(rewrite), pick_story=pick),
        feed_name="Other",
    )  # fmt: skip
    assert compared == [STORY_CANDIDATES]
    assert store.count(alerts) == 1  # it joined the story: no second alert


def test_another_rule_on_the_same_story_alerts(store: Store) -> None:
    article = make_article(1, "Russia and North Korea sign defence treaty")
    record(store, [new_item(article, rules=("nk-drones", "treaty"))])
    assert store.count(alerts) == 2


def test_tombstones_outlive_the_item_for_the_retention_period(store: Store) -> None:
    article, other = make_article(1), make_article(2)
    keys = identity_keys(article)
    record(store, [new_item(article)])
    # still in the feed a day later: its clock restarts; a day after that it has left
    record(store, [], present=keys, now=NOW + timedelta(days=1))
    record(store, [new_item(other)], now=NOW + timedelta(days=2))
    store.prune(NOW + timedelta(days=30, hours=12), retention=timedelta(days=30))
    assert store.seen_keys(keys) == set(keys)
    store.prune(NOW + timedelta(days=31, hours=1), retention=timedelta(days=30))
    assert store.seen_keys(keys) == set()
    assert store.seen_keys(identity_keys(other)) == set(identity_keys(other))


@pytest.mark.parametrize("then", ["failing", "unchanged", "empty", "truncated"])
def test_an_item_still_in_its_feed_is_never_forgotten(store: Store, then: str) -> None:
    """After the last document that listed it, the feed fails, answers unchanged (nothing is
    recorded), serves an empty document or a truncated one without it, for longer than the
    retention period: the item has not been seen to leave, so its keys stay."""
    article, later = make_article(1), make_article(2)
    keys = identity_keys(article)
    record(store, [new_item(article)])
    when = NOW + timedelta(days=10)
    if then == "failing":
        store.update_feed(
            feed_id(store), last_status=500, last_error="HTTP 500", consecutive_failures=30
        )
    elif then in ("empty", "truncated"):
        item = [new_item(later)] if then == "truncated" else []
        store.record_items(
            PollRecord(feed_id=feed_id(store), now=when, new_items=item,
                       present_keys=[k for i in item for k in i.keys], complete=then == "empty"),
            feed_name="Asia",
        )  # fmt: skip
    store.prune(NOW + timedelta(days=40), retention=timedelta(days=30))
    assert store.seen_keys(keys) == set(keys)


def two_feeds(store: Store) -> tuple[int, int]:
    """Asia and a wire feed that carries some of the same items (the same URLs)."""
    store.sync_feeds(
        [(FEED, "Asia", True), ("https://wire.example.org/all.xml", "Wire", True)], NOW
    )
    ids = {state.url: state.id for state in store.all_feeds()}
    return ids[FEED], ids["https://wire.example.org/all.xml"]


def listed(store: Store, feed: int, keys: list[str], when: datetime, *new: NewItem) -> None:
    """A complete document of ``feed`` at ``when``: known items (their ``keys``) and ``new``."""
    present = keys + [key for item in new for key in item.keys]
    store.record_items(
        PollRecord(feed_id=feed, now=when, new_items=list(new), present_keys=present),
        feed_name=f"feed {feed}",
    )


@pytest.mark.parametrize("frozen", ["first", "other"])
def test_an_item_two_feeds_carry_is_kept_while_either_still_lists_it(
    store: Store, frozen: str
) -> None:
    """One feed stops changing while it still lists the item; the other lists it again later
    and then drops it. Whichever brought it first, its keys stay past the retention period (an
    item forgotten there is new again when the frozen feed changes, and alerts twice); once the
    frozen feed drops it too, they go."""
    first, other = two_feeds(store)
    article, later = make_article(1), make_article(2)
    keys = identity_keys(article)
    listed(store, first, [], NOW, new_item(article))
    listed(store, other, keys, NOW + timedelta(hours=1))
    still, drops = (first, other) if frozen == "first" else (other, first)
    listed(store, drops, keys, NOW + timedelta(days=2))
    listed(store, drops, [], NOW + timedelta(days=3), new_item(later))
    store.prune(NOW + timedelta(days=40), retention=timedelta(days=30))
    assert store.seen_keys(keys) == set(keys)

    listed(store, still, identity_keys(later), NOW + timedelta(days=41))
    store.prune(NOW + timedelta(days=42), retention=timedelta(days=30))
    assert store.seen_keys(keys) == set()


def settle_all(store: Store, now: datetime) -> None:
    """Every pending delivery accepted by its channel."""
    with store.engine.connect() as conn:
        pending = conn.execute(select(deliveries.c.id).where(deliveries.c.state == "pending"))
        ids = list(pending.scalars())
    for delivery_id in ids:
        store.settle_delivery(delivery_id, now, sent=True)


def test_retention_forgets_old_stories_and_finished_alerts(store: Store) -> None:
    """Past the cutoff: a delivered alert goes with its deliveries, and a story goes once no
    kept article or alert refers to it; an alert still waiting for a channel stays, and so does
    its story."""
    drones, budget, floods, vote = (
        make_article(n, title)
        for n, title in enumerate(
            ["Drone strike on depot", "Budget talks stall", "Floods in the south",
             "Parliament vote delayed"],
            start=1,
        )
    )  # fmt: skip
    record(store, [new_item(drones, rules=("nk-drones",)), new_item(budget)])
    settle_all(store, NOW)
    record(store, [new_item(floods, rules=("nk-drones",))])  # its channel is down
    later = NOW + timedelta(days=29)
    record(store, [new_item(vote.model_copy(update={"fetched_at": later}))], now=later)
    assert store.count(stories) == 4

    removed = store.prune(NOW + timedelta(days=31), retention=timedelta(days=30))
    assert (removed["alerts"], removed["stories"]) == (1, 2)
    with store.engine.connect() as conn:
        assert list(conn.execute(select(alerts.c.article_id)).scalars()) == ["a3"]
        assert conn.execute(select(func.count()).select_from(stories)).scalar_one() == 2
    assert store.outbox_counts() == {"pending": 1}
    assert [a.id for a in store.articles_since(NOW - timedelta(days=1))] == ["a4"]


def test_a_story_after_retention_alerts_even_on_a_reused_story_id(store: Store) -> None:
    """SQLite hands out a deleted story's id again: the alert of the old story is gone with
    it, so the new story alerts (one alert per rule and story, not per reused number)."""
    record(store, [new_item(make_article(1), rules=("nk-drones",))])
    settle_all(store, NOW)
    later = NOW + timedelta(days=31)
    store.prune(later, retention=timedelta(days=30))
    assert store.count(alerts) == 0 and store.count(stories) == 0
    record(store, [new_item(make_article(5), rules=("nk-drones",))], now=later)
    with store.engine.connect() as conn:
        assert list(conn.execute(select(alerts.c.article_id)).scalars()) == ["a5"]


def test_migrations_4_and_5_upgrade_a_version_3_database(store: Store) -> None:
    """A database from before ``feeds.last_document_at``: each feed starts from when it last saw
    one of its own keys, so the tombstone of an item that had left it still expires; and from
    before ``feeds.removed``: no feed is removed until the next sync says so."""
    gone, stays = make_article(1), make_article(2)
    record(store, [new_item(gone), new_item(stays)])
    record(store, [], present=identity_keys(stays), now=NOW + timedelta(days=1))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE feeds DROP COLUMN last_document_at")
        conn.exec_driver_sql("ALTER TABLE feeds DROP COLUMN removed")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 3")
    url = store.engine.url.render_as_string(hide_password=False)
    upgraded = Store.open(url)
    try:
        state = upgraded.feed(FEED)
        assert state is not None and state.last_document_at == NOW + timedelta(days=1)
        assert state.removed is False
        upgraded.prune(NOW + timedelta(days=40), retention=timedelta(days=30))
        assert upgraded.seen_keys(identity_keys(gone)) == set()
        assert upgraded.seen_keys(identity_keys(stays)) == set(identity_keys(stays))
    finally:
        upgraded.close()


def test_migration_7_upgrades_a_version_6_database(store: Store) -> None:
    """A database from before ``seen.also_feed_id``: its keys wait for the feed that first
    listed them, as they did; a second feed listing one from then on is waited for too."""
    first, other = two_feeds(store)
    gone, carried = make_article(1), make_article(2)
    listed(store, first, [], NOW, new_item(gone), new_item(carried))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE seen DROP COLUMN also_feed_id")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 6")
    upgraded = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        assert upgraded.schema_version() == SCHEMA_VERSION
        listed(upgraded, other, identity_keys(carried), NOW + timedelta(hours=1))
        listed(upgraded, first, [], NOW + timedelta(days=1), new_item(make_article(3)))
        upgraded.prune(NOW + timedelta(days=40), retention=timedelta(days=30))
        assert upgraded.seen_keys(identity_keys(gone)) == set()
        assert upgraded.seen_keys(identity_keys(carried)) == set(identity_keys(carried))
    finally:
        upgraded.close()


def test_backtest_reads_stored_articles(store: Store) -> None:
    record(store, [new_item(make_article(1)), new_item(make_article(2))])
    assert [a.id for a in store.articles_since(NOW - timedelta(days=1))] == ["a1", "a2"]
    assert list(store.articles_since(NOW + timedelta(seconds=1))) == []
    assert store.count_articles_since(NOW - timedelta(days=1)) == 2


def test_backtest_reads_articles_as_it_goes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # a backtest over a month of articles must not build them all before matching the first
    record(store, [new_item(make_article(n)) for n in range(1, 6)])
    read: list[str] = []
    original = Article.model_validate_json
    monkeypatch.setattr(
        Article, "model_validate_json", lambda data: read.append("x") or original(data)
    )
    articles = store.articles_since(NOW - timedelta(days=1))
    assert next(articles).id == "a1" and len(read) == 1
    assert [a.id for a in articles] == ["a2", "a3", "a4", "a5"] and len(read) == 5


def test_backtest_reads_in_batches_that_lose_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # batches of 2 over 5 articles fetched at the same instant: the (fetched_at, id) order
    # must carry each batch on from the last without skipping or repeating one
    record(store, [new_item(make_article(n)) for n in range(1, 6)])
    monkeypatch.setattr(store_module, "BACKTEST_BATCH", 2)
    ids = [a.id for a in store.articles_since(NOW - timedelta(days=1))]
    assert ids == ["a1", "a2", "a3", "a4", "a5"]


def expire_leases(store: Store) -> None:
    """Every lease and claim ran out a minute before ``NOW`` (and before the database's now)."""
    past = NOW - timedelta(minutes=1)
    with store.engine.begin() as conn:
        conn.execute(update(feeds).where(feeds.c.lease_owner.is_not(None)).values(
            lease_expires_at=past))  # fmt: skip
        conn.execute(update(deliveries).where(deliveries.c.claimed_by.is_not(None)).values(
            claimed_until=past))  # fmt: skip


def test_leases_give_each_due_feed_to_one_process(store: Store) -> None:
    store.sync_feeds([(f"https://f{i}.example/feed", f"f{i}", True) for i in range(5)], NOW)
    first = store.claim_due_feeds("proc-a", NOW, timedelta(minutes=2))
    second = store.claim_due_feeds("proc-b", NOW, timedelta(minutes=2))
    assert len(first) == 5 and second == []
    expire_leases(store)  # proc-a died holding them
    taken_over = store.claim_due_feeds("proc-b", NOW + timedelta(minutes=3), timedelta(minutes=2))
    assert {f.url for f in taken_over} == {f.url for f in first}


def test_leases_run_by_the_database_clock_on_postgresql(pg_url: str) -> None:
    """Processes on machines whose clocks disagree by an hour: the one whose clock runs ahead
    takes neither a feed nor a delivery that the other holds."""
    store = Store.open(pg_url)
    try:
        real = datetime.now(UTC)
        behind, ahead = real - timedelta(hours=1), real + timedelta(hours=1)
        store.sync_feeds([(FEED, "Asia", True)], behind)
        (held,) = store.claim_due_feeds("behind", behind, timedelta(minutes=2))
        assert held.lease_expires_at is not None
        assert abs(held.lease_expires_at - (real + timedelta(minutes=2))) < timedelta(minutes=1)
        assert store.claim_due_feeds("ahead", ahead, timedelta(minutes=2)) == []

        record(store, [new_item(make_article(1), ("nk-drones",))], now=behind)
        store.plan_alerts(behind, lambda a: AlertPlan(dict.fromkeys(a.channels, (behind, None))))
        assert len(store.claim_deliveries("behind", behind, timedelta(minutes=1))) == 1
        assert store.claim_deliveries("ahead", ahead, timedelta(minutes=1)) == []
        expire_leases(store)  # once they run out, by the database's clock, they are free
        assert store.claim_due_feeds("ahead", ahead, timedelta(minutes=2))
        assert store.claim_deliveries("ahead", ahead, timedelta(minutes=1))
    finally:
        store.close()
