"""The database: SQLite (WAL) by default, PostgreSQL by URL, one code path (SQLAlchemy Core).

What it keeps, and why:

- ``feeds``: per-feed state that must survive restarts: validators, last status and error,
  consecutive failures, next poll, the adaptive interval, a lease for scale-out. Leases (and
  delivery claims) run by the database's clock on PostgreSQL (see ``Store.lease_clock``).
- ``seen``: every identity key of every item, with the last time a feed listed it, the feed
  that first did and the last other feed that did (the same URL in two feeds). A key is
  forgotten only ``retention`` after the item left those feeds (a tombstone), so an old item
  that reappears is never new again; an item still in the feed is never forgotten, however long
  the feed answers "unchanged" or fails (see ``Store.prune``). A failed or empty fetch touches
  nothing here.
- ``articles``: what was read, kept for ``retention`` for backtests; ``stories`` and
  ``story_hashes`` group near-duplicate articles into one story, and ``story_sources`` lists
  the feeds that carried each story (the feed of each of its articles, and a feed that
  carried one of them under the same link), in order of arrival. Past ``retention`` a story
  goes with the last article and alert that refer to it, an alert once it is done.
- ``matches``, ``alerts`` (one per rule and story) and ``deliveries`` (one per alert and
  channel): the durable outbox. A match, its alert and its deliveries are written in the same
  transaction as the articles and seen keys of the poll that found them. An alert's "also
  reported by" is not stored with it: it is read from ``story_sources`` each time the alert is
  claimed for sending (``Store.claim_deliveries``). Feed-health notices
  are alerts too (``rule_id`` ``@feed-health``, ``story_id`` the negated alert id, so the
  one-alert-per-story constraint never merges two of them), written in the transaction that
  records the feed's state.
- ``rule_windows`` (throttle state per rule) and ``channel_sends`` (messages sent per channel,
  for rate limits): the state the delivery policies decide from. An alert is *planned* once
  (``alerts.planned_at``): its deliveries get their release time and ``batch_key``, and the
  deliveries of one channel that share a batch key are sent as one message.

Schema changes are numbered migrations recorded in ``schema_version``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import DateTime, TypeDecorator

from monitor.errors import StoreError
from monitor.schema import Article, Match

#: How far back a new article looks for a story it belongs to.
STORY_WINDOW = timedelta(days=3)
#: Stories compared with a new article at most: those sharing the most fingerprint hashes with
#: it. A hash of a stock phrase ("said on tuesday") is shared by many stories; a near-duplicate
#: shares a third or more of all its hashes, so it is among the first few, and comparing the
#: hundreds that share one stock hash would only slow every poll.
STORY_CANDIDATES = 50
#: Stored articles a backtest reads from the database at a time.
BACKTEST_BATCH = 500


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False, unique=True),  # as configured in feeds.yaml
    Column("fetch_url", Text, nullable=False),  # after permanent redirects (301/308)
    Column("name", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text),  # set by the monitor itself, e.g. on 410 Gone
    Column("etag", Text),
    Column("last_modified", Text),
    Column("content_hash", Text),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("last_error_kind", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_polled_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("next_poll_at", UTCDateTime),
    Column("interval_seconds", Float),
    Column("first_poll_done", Boolean, nullable=False, default=False),
    Column("last_item_count", Integer),
    Column("new_items_total", Integer, nullable=False, default=0),
    Column("last_new_item_at", UTCDateTime),
    Column("failure_alerted", Boolean, nullable=False, default=False),
    Column("silence_alerted", Boolean, nullable=False, default=False),  # migration 2
    # migration 4: when the feed last recorded a complete document that listed items
    Column("last_document_at", UTCDateTime),
    # migration 5: no longer in feeds.yaml (``enabled`` is false then too)
    Column("removed", Boolean, nullable=False, default=False),
    Column("lease_owner", Text),
    Column("lease_expires_at", UTCDateTime),
)

seen = Table(
    "seen",
    metadata,
    Column("key", Text, primary_key=True),
    Column("article_id", Text, nullable=False),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE")),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    # migration 7: the last feed other than ``feed_id`` that listed the key (feeds are never
    # deleted, and a column added later carries no constraint, so none here either)
    Column("also_feed_id", Integer),
    Index("ix_seen_last_seen_at", "last_seen_at"),
)

stories = Table(
    "stories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("first_article_id", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_stories_created_at", "created_at"),
)

story_hashes = Table(
    "story_hashes",
    metadata,
    Column("hash", BigInteger, primary_key=True),
    Column("story_id", Integer, ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Text, primary_key=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="SET NULL")),
    Column("story_id", Integer, ForeignKey("stories.id", ondelete="SET NULL")),
    Column("url", Text),
    Column("title", Text, nullable=False),
    Column("published_at", UTCDateTime),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("data", Text, nullable=False),  # the Article as JSON
    Index("ix_articles_fetched_at", "fetched_at"),
)

matches = Table(
    "matches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("story_id", Integer),
    Column("severity", Text, nullable=False),
    Column("data", Text, nullable=False),  # the Match (hits, snippet) as JSON
    Column("matched_at", UTCDateTime, nullable=False),
    UniqueConstraint("rule_id", "article_id", name="uq_matches_rule_article"),
    Index("ix_matches_matched_at", "matched_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Text, nullable=False),
    Column("story_id", Integer, nullable=False),
    Column("article_id", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("state", Text, nullable=False, default="queued"),  # queued | held | done
    Column("release_at", UTCDateTime),  # quiet hours, digests, throttle windows
    Column("data", Text, nullable=False),  # what rendering needs: article + match, JSON
    Column("planned_at", UTCDateTime),  # migration 2: when the delivery policies decided
    UniqueConstraint("rule_id", "story_id", name="uq_alerts_rule_story"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("state", Text, nullable=False, default="pending"),  # pending | sent | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime),
    Column("claimed_by", Text),
    Column("claimed_until", UTCDateTime),
    Column("batch_key", Text),  # migration 2: same channel and key -> one message
    UniqueConstraint("alert_id", "channel", name="uq_deliveries_alert_channel"),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
)


rule_windows = Table(
    "rule_windows",
    metadata,
    Column("rule_id", Text, primary_key=True),
    Column("window_until", UTCDateTime, nullable=False),
    Column("held", Boolean, nullable=False, default=False),  # a folded message goes at the end
)

channel_sends = Table(
    "channel_sends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("alerts", Integer, nullable=False, default=1),  # deliveries the message carried
    Index("ix_channel_sends_channel_sent_at", "channel", "sent_at"),
)

NOTICE_RULE = "@feed-health"


def _migration_1(conn: Connection) -> None:
    metadata.create_all(conn)


def _migration_2(conn: Connection) -> None:
    """Delivery policies: planning, batch keys, throttle windows, per-channel sends, silence.

    Migration 1 creates whatever ``metadata`` holds, so on a new database these already exist;
    on an older one they are added.
    """
    metadata.create_all(conn)  # the new tables (checkfirst)
    _add_columns(conn, [feeds.c.silence_alerted, alerts.c.planned_at, deliveries.c.batch_key])


def _column_names(conn: Connection, table: str) -> set[str]:
    return {column["name"] for column in sa_inspect(conn).get_columns(table)}


def _add_columns(conn: Connection, columns: Sequence[Column[Any]]) -> None:
    """Add the columns their table lacks (an older database); booleans default to false.

    Migration 1 creates whatever ``metadata`` holds, so on a new database they already exist.
    """
    for column in columns:
        table = column.table.name
        if column.name in _column_names(conn, table):
            continue
        kind = column.type.compile(dialect=conn.dialect)
        extra = " NOT NULL DEFAULT false" if isinstance(column.type, Boolean) else ""
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column.name} {kind}{extra}")


#: Tables added after migration 1 live in their own MetaData, so that migration 1 (which
#: creates everything in ``metadata``) keeps creating exactly the tables it always did.
metadata_2 = MetaData()

#: The last few poll outcomes of each feed, for the status page's strips (migration 3).
poll_log = Table(
    "poll_log",
    metadata_2,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed_id", Integer, ForeignKey(feeds.c.id, ondelete="CASCADE"), nullable=False),
    Column("polled_at", UTCDateTime, nullable=False),
    Column("outcome", Text, nullable=False),  # new | unchanged | not_modified | error | gone
    Column("status", Integer),
    Column("error_kind", Text),
    Column("elapsed_ms", Integer, nullable=False, default=0),
    Index("ix_poll_log_feed", "feed_id", "id"),
)

#: How many poll outcomes are kept per feed.
POLL_LOG_KEEP = 48


def _migration_3(conn: Connection) -> None:
    """The poll log of the status page."""
    poll_log.create(conn, checkfirst=True)


def _migration_4(conn: Connection) -> None:
    """When each feed last listed items (``feeds.last_document_at``), which tombstones wait for
    (``Store.prune``). An existing feed starts from the newest ``last_seen_at`` of its own keys:
    it recorded a document then, perhaps later, never earlier, so no key goes too soon."""
    _add_columns(conn, [feeds.c.last_document_at])
    newest = select(func.max(seen.c.last_seen_at)).where(seen.c.feed_id == feeds.c.id)
    conn.execute(
        update(feeds)
        .where(feeds.c.last_document_at.is_(None))
        .values(last_document_at=newest.scalar_subquery())
    )


def _migration_5(conn: Connection) -> None:
    """``feeds.removed`` tells a feed gone from feeds.yaml from one it disables
    (``enabled: false``); both were only "not enabled". Rows start as not removed, and the
    daemon's feed sync at start-up marks the removed ones."""
    _add_columns(conn, [feeds.c.removed])


#: The feeds that carried each story, each once, and when they first did (migration 6): the
#: feed of each of its articles, and a feed that carried one of them under the same link (which
#: makes no article of its own). The name is the one alerts show as their source.
story_sources = Table(
    "story_sources",
    metadata_2,
    Column("story_id", Integer, ForeignKey(stories.c.id, ondelete="CASCADE"), primary_key=True),
    Column("feed", Text, primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
)


def _migration_6(conn: Connection) -> None:
    """An alert's "also reported by" is read from ``story_sources`` when it is sent, instead
    of a list kept on the alert (``alerts.also_reported_by``): that list only ever reached
    the alert of the rule that matched the story first, and nothing sent it once that alert
    had gone out. The table starts from the feeds of each story's articles (by their current
    name), then the names the alerts had listed (as first seen when the alert was made, the
    closest time known); then the column goes. Every process sharing the database must run
    this version: an older one still writes the column."""
    story_sources.create(conn, checkfirst=True)
    conn.execute(  # idempotent: a database wound back to an older version (tests) runs it again
        _upsert(conn, story_sources)
        .from_select(
            ["story_id", "feed", "first_seen_at"],
            select(articles.c.story_id, feeds.c.name, func.min(articles.c.fetched_at))
            .join(feeds, feeds.c.id == articles.c.feed_id)
            .where(articles.c.story_id.is_not(None))
            .group_by(articles.c.story_id, feeds.c.name),
        )
        .on_conflict_do_nothing()
    )
    if "also_reported_by" not in _column_names(conn, "alerts"):
        return  # created by this version's migration 1
    listed = conn.execute(
        text(
            "SELECT story_id, also_reported_by, created_at FROM alerts"
            " WHERE story_id IN (SELECT id FROM stories)"
        ).columns(created_at=UTCDateTime)
    )
    rows = [{"story_id": story_id, "feed": feed, "first_seen_at": created_at}
            for story_id, names, created_at in listed for feed in json.loads(names)]  # fmt: skip
    if rows:
        conn.execute(_upsert(conn, story_sources).on_conflict_do_nothing(), rows)
    conn.exec_driver_sql("ALTER TABLE alerts DROP COLUMN also_reported_by")


def _migration_7(conn: Connection) -> None:
    """``seen.also_feed_id``, the second feed a tombstone waits for (``Store.prune``). Existing
    keys start without one: as before, they wait for the feed that first listed them."""
    _add_columns(conn, [seen.c.also_feed_id])


#: Numbered schema migrations; each runs once, in order, in its own transaction.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6,
    _migration_7,
]  # fmt: skip
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------------------------
# Values the store hands out and takes in


@dataclass
class FeedState:
    """One row of ``feeds``, as the pipeline and `monitor status` read it."""

    id: int
    url: str
    fetch_url: str
    name: str
    enabled: bool
    disabled_reason: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    last_status: int | None
    last_error: str | None
    last_error_kind: str | None
    consecutive_failures: int
    last_polled_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None
    interval_seconds: float | None
    first_poll_done: bool
    last_item_count: int | None
    new_items_total: int
    last_new_item_at: datetime | None
    failure_alerted: bool
    silence_alerted: bool = False
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_document_at: datetime | None = None
    removed: bool = False


@dataclass
class QueuedAlert:
    """An alert the pipeline wants queued: the match that caused it and where it goes."""

    match: Match
    channels: list[str]
    release_at: datetime | None = None


@dataclass
class NewItem:
    """An article not seen before, with its keys, matches and the alerts to queue for it."""

    article: Article
    keys: list[str]
    story_hashes: list[int] = field(default_factory=list)  # from the article's fingerprint
    matches: list[Match] = field(default_factory=list)
    alerts: list[QueuedAlert] = field(default_factory=list)


@dataclass
class PollRecord:
    """What one poll found, recorded in one transaction by ``Store.record_items``."""

    feed_id: int
    now: datetime
    new_items: list[NewItem]
    present_keys: list[str]  # keys of every item in the document, new or not (tombstone clock)
    #: Chooses the story of a new article among candidates (id, fingerprint); None: a new one.
    pick_story: Callable[[str, list[tuple[int, str]]], int | None] = lambda _fp, _c: None
    #: False for a truncated document: what it lacks may still be in the feed, so it does not
    #: count as the feed's latest listing (``feeds.last_document_at``).
    complete: bool = True


@dataclass
class Delivery:
    """One alert to send to one channel, with what rendering needs."""

    id: int
    alert_id: int
    channel: str
    attempts: int
    rule_id: str
    payload: dict[str, Any]  # {"article": ..., "match": ...} or {"notice": ...}
    also_reported_by: list[str]  # the story's other sources as of the claim
    batch_key: str | None = None
    severity: str = "medium"
    created_at: datetime | None = None


@dataclass
class RuleWindow:
    """Throttle state of one rule: no alert before ``window_until``; ``held``: a folded
    message is due at ``window_until`` (so the next window starts there)."""

    window_until: datetime
    held: bool = False


@dataclass
class PlanInput:
    """What the delivery policies decide an alert's plan from (see ``Store.plan_alerts``)."""

    alert_id: int
    rule_id: str
    severity: str
    channels: list[str]
    window: RuleWindow | None


@dataclass
class AlertPlan:
    """When each channel gets an alert and with which batch; the rule's new throttle state."""

    deliveries: dict[str, tuple[datetime, str | None]]  # channel -> (release at, batch key)
    window: RuleWindow | None = None


@dataclass
class Notice:
    """An operational alert (feed health) to queue: severity, facts, channels."""

    kind: str  # failure | recovery | silence
    severity: str
    facts: dict[str, Any]
    channels: list[str]


@dataclass
class ChannelStats:
    """Per channel, for /metrics and `monitor status`."""

    sent: int = 0  # deliveries accepted
    failed: int = 0  # failed attempts of deliveries still pending or dead
    dead: int = 0  # deliveries given up
    pending: int = 0  # deliveries waiting (the outbox depth of the channel)
    retrying: int = 0  # pending deliveries that failed at least once


@dataclass(frozen=True)
class PollMark:
    """One kept poll outcome (``poll_log``)."""

    polled_at: datetime
    outcome: str
    status: int | None
    error_kind: str | None
    elapsed_ms: int


@dataclass(frozen=True)
class DeliveryCount:
    """Deliveries of one channel in one state; ``failed_attempts`` among their attempts."""

    channel: str
    state: str
    count: int
    failed_attempts: int
    retried: int  # deliveries with at least one attempt


@dataclass
class AlertRow:
    """An alert as the status page shows it."""

    id: int
    rule_id: str
    severity: str
    created_at: datetime
    title: str
    feed: str
    url: str | None
    also_reported_by: list[str]
    deliveries: dict[str, str]


@dataclass
class RecordedPoll:
    new_alert_ids: list[int]


# --------------------------------------------------------------------------------------------


class Store:
    """All database access. Methods are short transactions; none holds a lock across I/O."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect (creating a SQLite file's folder) and bring the schema up to date."""
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise StoreError(f"invalid database URL: {exc}") from None
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # bounded waits: a database that is down or restarting must not stall the loop
            kwargs.update(
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                pool_timeout=10,
                connect_args={"connect_timeout": 5},
            )
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def lease_clock(self, now: datetime) -> ColumnElement[datetime] | datetime:
        """What leases and delivery claims are set from and expire by.

        On PostgreSQL the database's own clock (``now()``): the processes sharing it run on
        several machines, and by their own clocks a process whose clock runs ahead would take
        over a lease another still holds, and both would poll the feed (or send the alert).
        SQLite has one process, whose clock (``now``, which tests may set) is the only one.
        """
        return func.now() if self.dialect == "postgresql" else now

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations this database has not had; return the schema version."""
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":  # one migrator at a time across processes,
                    # taken before the first CREATE: concurrent CREATE TABLEs collide otherwise
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(46001)")
                schema_version.create(conn, checkfirst=True)
                current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
                for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
                    migration(conn)
                    conn.execute(insert(schema_version).values(version=number))
                return max(current, SCHEMA_VERSION)
        except SQLAlchemyError as exc:
            raise StoreError(f"database migration failed: {_short(exc)}") from None

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # -- feeds -----------------------------------------------------------------------------

    def sync_feeds(self, configured: Sequence[tuple[str, str, bool]], now: datetime) -> None:
        """Make ``feeds`` match feeds.yaml: (url, name, enabled) rows, new ones due now.

        Feeds removed from the file stay in the table disabled and ``removed``, with their seen
        items, so adding them back later does not re-alert their backlog.
        """
        with self.engine.begin() as conn:
            existing = {row.url: row for row in conn.execute(select(feeds))}
            for url, name, enabled in configured:
                if url in existing:
                    conn.execute(
                        update(feeds)
                        .where(feeds.c.url == url)
                        .values(name=name, enabled=enabled, removed=False)
                    )
                else:  # several processes may add the same new feed at once
                    conn.execute(
                        _upsert(conn, feeds)
                        .values(
                            url=url, fetch_url=url, name=name, enabled=enabled, next_poll_at=now
                        )
                        .on_conflict_do_nothing(index_elements=["url"])
                    )
            wanted = {url for url, _, _ in configured}
            gone = [url for url in existing if url not in wanted]
            if gone:
                conn.execute(
                    update(feeds).where(feeds.c.url.in_(gone)).values(enabled=False, removed=True)
                )

    def feed(self, url: str) -> FeedState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(feeds).where(feeds.c.url == url)).first()
        return FeedState(**row._asdict()) if row else None

    def all_feeds(self) -> list[FeedState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feeds).order_by(feeds.c.name)).all()
        return [FeedState(**row._asdict()) for row in rows]

    def update_feed(
        self,
        feed_id: int,
        *,
        notice: Notice | None = None,
        now: datetime | None = None,
        **values: Any,
    ) -> None:
        """Record the outcome of a poll on the feed row (validators, status, schedule...);
        with ``notice``, queue that feed-health alert in the same transaction."""
        unknown = set(values) - set(feeds.c.keys())
        if unknown:
            raise ValueError(f"not feed columns: {sorted(unknown)}")
        with self.engine.begin() as conn:
            conn.execute(update(feeds).where(feeds.c.id == feed_id).values(**values))
            if notice is not None:
                self._queue_notice(conn, notice, now or datetime.now(UTC))

    def _queue_notice(self, conn: Connection, notice: Notice, now: datetime) -> int:
        data = json.dumps({"notice": {"kind": notice.kind, **notice.facts}})
        alert_id = int(
            conn.execute(
                insert(alerts)
                .values(
                    rule_id=NOTICE_RULE, story_id=0, article_id="", severity=notice.severity,
                    created_at=now, state="queued", data=data,
                )
                .returning(alerts.c.id)
            ).scalar_one()
        )  # fmt: skip
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(story_id=-alert_id))
        if notice.channels:
            conn.execute(
                insert(deliveries),
                [
                    {"alert_id": alert_id, "channel": channel, "state": "pending", "attempts": 0,
                     "next_attempt_at": now}
                    for channel in notice.channels
                ],
            )  # fmt: skip
        else:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(state="done"))
        return alert_id

    def claim_due_feeds(
        self, owner: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[FeedState]:
        """Lease the enabled feeds that are due to this process (``FOR UPDATE SKIP LOCKED``).

        A lease expires on its own (by ``lease_clock``), so a crashed process's feeds are taken
        over by the others.
        """
        clock = self.lease_clock(now)
        due = and_(
            feeds.c.enabled.is_(True),
            feeds.c.disabled_reason.is_(None),
            or_(feeds.c.next_poll_at.is_(None), feeds.c.next_poll_at <= now),
            or_(feeds.c.lease_expires_at.is_(None), feeds.c.lease_expires_at <= clock),
        )
        query = select(feeds.c.id).where(due).order_by(feeds.c.next_poll_at).limit(limit)
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                update(feeds)
                .where(feeds.c.id.in_(ids))
                .values(lease_owner=owner, lease_expires_at=clock + lease)
            )
            rows = conn.execute(select(feeds).where(feeds.c.id.in_(ids))).all()
        return [FeedState(**row._asdict()) for row in rows]

    def release_feed(self, feed_id: int, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(feeds)
                .where(and_(feeds.c.id == feed_id, feeds.c.lease_owner == owner))
                .values(lease_owner=None, lease_expires_at=None)
            )

    # -- items -----------------------------------------------------------------------------

    def seen_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these identity keys are already known."""
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 500):
                found.update(
                    conn.execute(select(seen.c.key).where(seen.c.key.in_(chunk))).scalars()
                )
        return found

    def record_items(self, record: PollRecord, feed_name: str) -> RecordedPoll:
        """Everything one poll found, in one transaction: articles, stories, matches, alerts,
        deliveries and seen keys. Either all of it is recorded or none of it is, so a crash
        can neither lose an alert for a seen item nor mark an item seen without its alert."""
        now = record.now
        result = RecordedPoll(new_alert_ids=[])
        with self.engine.begin() as conn:
            new_items = record.new_items
            if new_items:
                new_items = self._still_new(conn, new_items, record.feed_id)
            for item in new_items:
                story_id = self._story_for(conn, item, record.pick_story, now)
                conn.execute(
                    insert(articles).values(
                        id=item.article.id,
                        feed_id=record.feed_id,
                        story_id=story_id,
                        url=item.article.url,
                        title=item.article.title,
                        published_at=item.article.published,
                        fetched_at=item.article.fetched_at,
                        data=item.article.model_dump_json(),
                    )
                )
                self._touch_seen(conn, item.keys, item.article.id, record.feed_id, now)
                self._add_sources(conn, [story_id], item.article.feed, now)
                for match in item.matches:
                    self._insert_match(conn, match, story_id, now)
                for queued in item.alerts:  # None: this rule already alerted the story
                    alert_id = self._queue_alert(conn, queued, item.article, story_id, now)
                    if alert_id is not None:
                        result.new_alert_ids.append(alert_id)
            new_keys = {key for item in new_items for key in item.keys}
            present = [key for key in record.present_keys if key not in new_keys]
            # the feed itself when another feed listed the key first (Store.prune waits for both)
            also = case(
                (seen.c.feed_id == record.feed_id, seen.c.also_feed_id), else_=record.feed_id
            )
            for chunk in _chunks(present, 500):
                conn.execute(
                    update(seen)
                    .where(seen.c.key.in_(chunk))
                    .values(last_seen_at=now, also_feed_id=also)
                )
                self._note_carried_elsewhere(conn, chunk, record.feed_id, feed_name, now)
            listing: dict[str, Any] = {}
            if record.present_keys and record.complete:  # an empty document forgets nothing
                listing["last_document_at"] = now
            if new_items:
                listing.update(
                    new_items_total=feeds.c.new_items_total + len(new_items),
                    last_new_item_at=now,
                    silence_alerted=False,
                )
            if listing:
                conn.execute(update(feeds).where(feeds.c.id == record.feed_id).values(**listing))
        return result

    def _still_new(self, conn: Connection, items: list[NewItem], feed_id: int) -> list[NewItem]:
        """The items no other process recorded since the caller looked (scale-out).

        On PostgreSQL, transaction advisory locks on the items' story hashes and identity keys
        serialise the recording of items that could collide across processes: the same item
        carried by two feeds, or two near-duplicates of one story (they share a hash), polled
        at the same moment by two processes, then make one article, one story and one alert,
        not a primary-key clash or a second story. Unrelated items take different locks and do
        not wait for each other; locks are taken in ascending order (no deadlock) and held only
        for this short transaction. SQLite has one writer at a time: a first write takes the
        write lock before anything is read, so what follows reads the latest commit.
        """
        if self.dialect == "sqlite":
            conn.execute(
                update(feeds)
                .where(feeds.c.id == feed_id)
                .values(new_items_total=feeds.c.new_items_total)
            )
        if self.dialect == "postgresql":
            locks = sorted(
                {h for item in items for h in item.story_hashes}
                | {_lock_id(key) for item in items for key in item.keys}
            )
            conn.execute(
                text(
                    "SELECT pg_advisory_xact_lock(h) FROM "
                    "(SELECT DISTINCT unnest(CAST(:locks AS bigint[])) AS h ORDER BY h) AS ordered"
                ),
                {"locks": [_signed64(h) for h in locks]},
            )
        keys = [key for item in items for key in item.keys]
        known: set[str] = set()
        for chunk in _chunks(keys, 500):
            known.update(conn.execute(select(seen.c.key).where(seen.c.key.in_(chunk))).scalars())
        ids = [item.article.id for item in items]
        for chunk in _chunks(ids, 500):
            known.update(
                conn.execute(select(articles.c.id).where(articles.c.id.in_(chunk))).scalars()
            )
        return [
            item for item in items if known.isdisjoint(item.keys) and item.article.id not in known
        ]

    def _touch_seen(
        self, conn: Connection, keys: list[str], article_id: str, feed_id: int, now: datetime
    ) -> None:
        rows = [
            {"key": k, "article_id": article_id, "feed_id": feed_id, "first_seen_at": now,
             "last_seen_at": now}
            for k in keys
        ]  # fmt: skip
        conn.execute(
            _upsert(conn, seen).on_conflict_do_update(
                index_elements=["key"], set_={"last_seen_at": now}
            ),
            rows,
        )

    def _story_for(
        self,
        conn: Connection,
        item: NewItem,
        pick_story: Callable[[str, list[tuple[int, str]]], int | None],
        now: datetime,
    ) -> int:
        """The story this article belongs to: a near-duplicate's, else a new one.

        Candidates are recent and share fingerprint hashes, the ``STORY_CANDIDATES`` sharing
        the most; the choice among them is the caller's (``dedupe``), made inside this
        transaction.
        """
        article, hashes = item.article, item.story_hashes
        if hashes:
            candidates = conn.execute(
                select(stories.c.id, stories.c.fingerprint)
                .join(story_hashes, story_hashes.c.story_id == stories.c.id)
                .where(story_hashes.c.hash.in_(hashes), stories.c.created_at >= now - STORY_WINDOW)
                .group_by(stories.c.id, stories.c.fingerprint)
                .order_by(func.count().desc(), stories.c.id.desc())
                .limit(STORY_CANDIDATES)
            ).all()
            found = pick_story(
                article.fingerprint, [(row.id, row.fingerprint) for row in candidates]
            )
            if found is not None:
                return found
        story_id = int(
            conn.execute(
                insert(stories)
                .values(
                    fingerprint=article.fingerprint,
                    title=article.title,
                    first_article_id=article.id,
                    created_at=now,
                )
                .returning(stories.c.id)
            ).scalar_one()
        )
        if hashes:
            conn.execute(
                insert(story_hashes), [{"hash": h, "story_id": story_id} for h in set(hashes)]
            )
        return story_id

    def _insert_match(self, conn: Connection, match: Match, story_id: int, now: datetime) -> None:
        conn.execute(
            _upsert(conn, matches).on_conflict_do_nothing(),
            {
                "article_id": match.article_id,
                "rule_id": match.rule,
                "story_id": story_id,
                "severity": match.severity,
                "data": match.model_dump_json(),
                "matched_at": now,
            },
        )

    def _queue_alert(
        self, conn: Connection, queued: QueuedAlert, article: Article, story_id: int, now: datetime
    ) -> int | None:
        """Insert the alert and its deliveries; None when this rule already alerted the story."""
        data = json.dumps(
            {
                "article": article.model_dump(mode="json"),
                "match": queued.match.model_dump(mode="json"),
            }
        )
        alert_id = conn.execute(
            _upsert(conn, alerts)
            .values(
                rule_id=queued.match.rule,
                story_id=story_id,
                article_id=article.id,
                severity=queued.match.severity,
                created_at=now,
                state="queued" if queued.release_at is None else "held",
                release_at=queued.release_at,
                data=data,
            )
            .on_conflict_do_nothing()
            .returning(alerts.c.id)
        ).scalar()
        if alert_id is None:
            return None
        if queued.channels:
            conn.execute(
                insert(deliveries),
                [
                    {"alert_id": alert_id, "channel": channel, "state": "pending", "attempts": 0,
                     "next_attempt_at": queued.release_at or now}
                    for channel in queued.channels
                ],
            )  # fmt: skip
        return int(alert_id)

    def _note_carried_elsewhere(
        self, conn: Connection, keys: list[str], feed_id: int, feed_name: str, now: datetime
    ) -> None:
        """Items this feed carries that another feed brought first (the same link, so this
        feed has no article of its own for them): this feed is a source of their stories too."""
        carried = (
            select(articles.c.story_id)
            .distinct()
            .join(seen, seen.c.article_id == articles.c.id)
            .where(seen.c.key.in_(keys), or_(seen.c.feed_id != feed_id, seen.c.feed_id.is_(None)))
            .where(articles.c.feed_id != feed_id, articles.c.story_id.is_not(None))
        )
        self._add_sources(conn, list(conn.execute(carried).scalars()), feed_name, now)

    def _add_sources(
        self, conn: Connection, story_ids: Sequence[int], feed: str, now: datetime
    ) -> None:
        """Note ``feed`` as a source of these stories from ``now``, unless it already is."""
        if story_ids:
            conn.execute(
                _upsert(conn, story_sources).on_conflict_do_nothing(),
                [{"story_id": story_id, "feed": feed, "first_seen_at": now}
                 for story_id in story_ids],
            )  # fmt: skip

    # -- the outbox ------------------------------------------------------------------------

    def claim_deliveries(
        self,
        owner: str,
        now: datetime,
        claim_for: timedelta,
        limit: int = 50,
        exclude_channels: Sequence[str] = (),
    ) -> list[Delivery]:
        """Take due deliveries of planned alerts for this process for ``claim_for``; others
        skip them meanwhile (``exclude_channels``: those this process is still sending to).

        A claim that is never settled (the process died) expires, and the delivery is tried
        again: a channel may then get an alert once more than it accepted, never less.
        """
        clock = self.lease_clock(now)
        due = and_(
            deliveries.c.state == "pending",
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until <= clock),
            alerts.c.planned_at.is_not(None),
        )
        if exclude_channels:
            due = and_(due, deliveries.c.channel.not_in(list(exclude_channels)))
        query = (
            select(deliveries.c.id)
            .join(alerts, alerts.c.id == deliveries.c.alert_id)
            .where(due)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=deliveries)
        with self.engine.begin() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(claimed_by=owner, claimed_until=clock + claim_for)
            )
            rows = conn.execute(
                select(
                    deliveries,
                    alerts.c.data,
                    alerts.c.story_id,
                    alerts.c.rule_id,
                    alerts.c.severity,
                    alerts.c.created_at,
                )
                .join(alerts, alerts.c.id == deliveries.c.alert_id)
                .where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.id)
            ).all()
            sources = _story_sources(conn, [row.story_id for row in rows])
        payloads = [json.loads(row.data) for row in rows]
        return [
            Delivery(
                id=row.id,
                alert_id=row.alert_id,
                channel=row.channel,
                attempts=row.attempts,
                rule_id=row.rule_id,
                payload=payload,
                also_reported_by=_other_sources(sources.get(row.story_id, []), payload),
                batch_key=row.batch_key,
                severity=row.severity,
                created_at=row.created_at,
            )
            for row, payload in zip(rows, payloads, strict=True)
        ]

    def release_claims(self) -> int:
        """Forget every delivery claim and feed lease (a single-process SQLite daemon starting:
        whoever held them is dead, and its work is to be done now, not when they expire)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(feeds)
                .where(feeds.c.lease_owner.is_not(None))
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.claimed_until.is_not(None))
                    .values(claimed_by=None, claimed_until=None)
                ).rowcount
            )

    def plan_alerts(
        self, now: datetime, decide: Callable[[PlanInput], AlertPlan], limit: int = 500
    ) -> int:
        """Decide, once, when and how the deliveries of new alerts go (throttle, digest, quiet
        hours), in one transaction with the throttle state they read and write."""
        query = (
            select(alerts.c.id, alerts.c.rule_id, alerts.c.severity)
            .where(alerts.c.planned_at.is_(None), alerts.c.state != "done")
            .order_by(alerts.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
            for row in rows:
                channels = list(
                    conn.execute(
                        select(deliveries.c.channel).where(
                            deliveries.c.alert_id == row.id, deliveries.c.state == "pending"
                        )
                    ).scalars()
                )
                found = conn.execute(
                    select(rule_windows).where(rule_windows.c.rule_id == row.rule_id)
                ).first()
                window = RuleWindow(found.window_until, found.held) if found else None
                plan = decide(PlanInput(row.id, row.rule_id, row.severity, channels, window))
                for channel, (release_at, batch_key) in plan.deliveries.items():
                    conn.execute(
                        update(deliveries)
                        .where(deliveries.c.alert_id == row.id, deliveries.c.channel == channel)
                        .values(next_attempt_at=release_at, batch_key=batch_key)
                    )
                if plan.window is not None:
                    values = {"window_until": plan.window.window_until, "held": plan.window.held}
                    conn.execute(
                        _upsert(conn, rule_windows)
                        .values(rule_id=row.rule_id, **values)
                        .on_conflict_do_update(index_elements=["rule_id"], set_=values)
                    )
                release = max((r for r, _ in plan.deliveries.values()), default=now)
                held = release > now
                conn.execute(
                    update(alerts)
                    .where(alerts.c.id == row.id)
                    .values(
                        planned_at=now,
                        state="held" if held else "queued",
                        release_at=release if held else None,
                    )
                )
        return len(rows)

    def sends_since(self, channel: str, since: datetime) -> list[datetime]:
        """When this channel was sent a message since ``since`` (for rate limits), oldest first."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(channel_sends.c.sent_at)
                    .where(channel_sends.c.channel == channel, channel_sends.c.sent_at >= since)
                    .order_by(channel_sends.c.sent_at)
                ).scalars()
            )

    def postpone_deliveries(
        self, delivery_ids: Sequence[int], until: datetime, batch_key: str | None = None
    ) -> None:
        """Give claimed deliveries back, due again at ``until`` (not a failed attempt)."""
        values: dict[str, Any] = {
            "next_attempt_at": until, "claimed_by": None, "claimed_until": None,
        }  # fmt: skip
        if batch_key is not None:
            values["batch_key"] = batch_key
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries).where(deliveries.c.id.in_(list(delivery_ids))).values(**values)
            )

    def settle_deliveries(
        self,
        delivery_ids: Sequence[int],
        now: datetime,
        *,
        sent: bool,
        channel: str,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record one message that carried these deliveries (one transaction), and, when the
        channel accepted it, count it against the channel's rate limit."""
        with self.engine.begin() as conn:
            for delivery_id in delivery_ids:
                self._settle(conn, delivery_id, now, sent=sent, error=error, retry_at=retry_at)
            if sent:
                conn.execute(
                    insert(channel_sends).values(
                        channel=channel, sent_at=now, alerts=len(delivery_ids)
                    )
                )

    def channel_stats(self) -> dict[str, ChannelStats]:
        """Deliveries per channel: sent, failed attempts, dead-lettered, pending (for /metrics)."""
        stats: dict[str, ChannelStats] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.channel,
                    deliveries.c.state,
                    func.count(),
                    func.sum(deliveries.c.attempts),
                    func.sum(case((deliveries.c.attempts > 0, 1), else_=0)),
                ).group_by(deliveries.c.channel, deliveries.c.state)
            ).all()
        for channel, state, count, attempts, tried in rows:
            entry = stats.setdefault(channel, ChannelStats())
            if state == "sent":
                entry.sent += int(count)
                entry.failed += int(attempts or 0) - int(count)
            elif state == "dead":
                entry.dead += int(count)
                entry.failed += int(attempts or 0)
            else:
                entry.pending += int(count)
                entry.retrying += int(tried or 0)
                entry.failed += int(attempts or 0)
        return stats

    def outbox_depth(self) -> int:
        """Deliveries not yet sent nor given up (held ones included)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.state == "pending")
                ).scalar_one()
            )

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent dead-lettered deliveries: channel, rule, title, attempts, error."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    deliveries.c.id, deliveries.c.channel, deliveries.c.attempts,
                    deliveries.c.last_error, alerts.c.rule_id, alerts.c.data, alerts.c.created_at,
                )
                .join(alerts, alerts.c.id == deliveries.c.alert_id)
                .where(deliveries.c.state == "dead")
                .order_by(deliveries.c.id.desc())
                .limit(limit)
            ).all()  # fmt: skip
        result = []
        for row in rows:
            data = json.loads(row.data)
            title = (data.get("article") or {}).get("title") or (data.get("notice") or {}).get(
                "feed", ""
            )
            result.append(
                {"id": row.id, "channel": row.channel, "rule": row.rule_id, "title": title,
                 "attempts": row.attempts, "error": row.last_error, "created_at": row.created_at}
            )  # fmt: skip
        return result

    def settle_delivery(
        self,
        delivery_id: int,
        now: datetime,
        *,
        sent: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record a send: sent, to be retried at ``retry_at``, or dead (no ``retry_at``)."""
        with self.engine.begin() as conn:
            self._settle(conn, delivery_id, now, sent=sent, error=error, retry_at=retry_at)

    def _settle(
        self,
        conn: Connection,
        delivery_id: int,
        now: datetime,
        *,
        sent: bool,
        error: str | None,
        retry_at: datetime | None,
    ) -> None:
        values: dict[str, Any] = {
            "attempts": deliveries.c.attempts + 1,
            "claimed_by": None,
            "claimed_until": None,
        }
        if sent:
            values.update(state="sent", sent_at=now, last_error=None)
        elif retry_at is not None:
            values.update(state="pending", next_attempt_at=retry_at, last_error=error)
        else:
            values.update(state="dead", last_error=error)
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))
        alert_id = select(deliveries.c.alert_id).where(deliveries.c.id == delivery_id)
        open_left = (
            select(func.count())
            .select_from(deliveries)
            .where(deliveries.c.alert_id.in_(alert_id), deliveries.c.state == "pending")
            .scalar_subquery()
        )
        conn.execute(
            update(alerts).where(alerts.c.id.in_(alert_id), open_left == 0).values(state="done")
        )

    # -- reading back ----------------------------------------------------------------------

    def count_articles_since(self, since: datetime) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(articles).where(articles.c.fetched_at >= since)
            return int(conn.execute(query).scalar_one())

    def articles_since(self, since: datetime) -> Iterator[Article]:
        """Stored articles fetched since ``since``, oldest first, ``BACKTEST_BATCH`` at a time.

        A backtest over the whole retention period must not hold every article (30 days of a
        busy desk is gigabytes) in memory at once, nor one read transaction open while it
        matches them all: on SQLite that would keep the daemon's write-ahead log from being
        checkpointed for as long. So each batch is its own short read, continuing after the
        last (fetched_at, id) of the one before.
        """
        after: tuple[datetime, str] | None = None
        while True:
            query = select(articles.c.fetched_at, articles.c.id, articles.c.data).where(
                articles.c.fetched_at >= since
            )
            if after is not None:
                query = query.where(tuple_(articles.c.fetched_at, articles.c.id) > after)
            query = query.order_by(articles.c.fetched_at, articles.c.id).limit(BACKTEST_BATCH)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for _, _, data in rows:
                yield Article.model_validate_json(data)
            if len(rows) < BACKTEST_BATCH:
                return
            after = (rows[-1].fetched_at, rows[-1].id)

    def count(self, table: Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def outbox_counts(self) -> dict[str, int]:
        """Deliveries by state, for `monitor status` and /metrics."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            ).all()
        return {state: int(n) for state, n in rows}

    # -- operations: poll log, metrics and the status page ----------------------------------

    def record_poll(
        self,
        feed_id: int,
        now: datetime,
        outcome: str,
        *,
        status: int | None = None,
        error_kind: str | None = None,
        elapsed_ms: int = 0,
        keep: int = POLL_LOG_KEEP,
    ) -> None:
        """Note one poll's outcome for the status page, keeping the last ``keep`` per feed."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(poll_log).values(
                    feed_id=feed_id, polled_at=now, outcome=outcome, status=status,
                    error_kind=error_kind, elapsed_ms=elapsed_ms,
                )
            )  # fmt: skip
            cutoff = (
                select(poll_log.c.id)
                .where(poll_log.c.feed_id == feed_id)
                .order_by(poll_log.c.id.desc())
                .offset(keep)
                .limit(1)
                .scalar_subquery()
            )
            conn.execute(
                delete(poll_log).where(poll_log.c.feed_id == feed_id, poll_log.c.id <= cutoff)
            )

    def recent_polls(self) -> dict[int, list[PollMark]]:
        """Each feed's kept poll outcomes, oldest first."""
        found: dict[int, list[PollMark]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(poll_log).order_by(poll_log.c.feed_id, poll_log.c.id))
            for row in rows:
                found.setdefault(row.feed_id, []).append(
                    PollMark(row.polled_at, row.outcome, row.status, row.error_kind, row.elapsed_ms)
                )
        return found

    def delivery_counts(self) -> list[DeliveryCount]:
        """Deliveries per channel and state, with the failed attempts among them (/metrics)."""
        failed = func.sum(
            case(
                (deliveries.c.state == "sent", deliveries.c.attempts - 1),
                else_=deliveries.c.attempts,
            )
        )
        query = select(
            deliveries.c.channel,
            deliveries.c.state,
            func.count(),
            failed,
            func.sum(case((deliveries.c.attempts > 0, 1), else_=0)),
        ).group_by(deliveries.c.channel, deliveries.c.state)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            DeliveryCount(channel, state, int(n), int(attempts or 0), int(retried or 0))
            for channel, state, n, attempts, retried in rows
        ]

    def sent_times(
        self, delivery_ids: Sequence[int]
    ) -> list[tuple[str, datetime | None, datetime]]:
        """(channel, published, queued) of these sent deliveries (publish-to-alert latency)."""
        query = (
            select(deliveries.c.channel, articles.c.published_at, alerts.c.created_at)
            .join(alerts, alerts.c.id == deliveries.c.alert_id)
            .join(articles, articles.c.id == alerts.c.article_id, isouter=True)
            .where(deliveries.c.state == "sent", deliveries.c.id.in_(list(delivery_ids)))
        )
        with self.engine.connect() as conn:
            return [(row[0], row[1], row[2]) for row in conn.execute(query)]

    def alert_times(self, since: datetime) -> list[tuple[str, datetime]]:
        """(rule, created) of every alert since ``since`` (the alerts-per-hour chart)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(alerts.c.rule_id, alerts.c.created_at)
                .where(alerts.c.created_at >= since)
                .order_by(alerts.c.created_at)
                .limit(100_000)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def rule_hits(self, since: datetime) -> dict[str, int]:
        """Matches per rule since ``since`` (alerting or not)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(matches.c.rule_id, func.count())
                .where(matches.c.matched_at >= since)
                .group_by(matches.c.rule_id)
            ).all()
        return {rule: int(n) for rule, n in rows}

    def recent_alerts(self, limit: int = 30) -> list[AlertRow]:
        """The latest alerts, newest first, with their delivery states per channel."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(alerts).order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(limit)
            ).all()
            sources = _story_sources(conn, [row.story_id for row in rows])
            states: dict[int, dict[str, str]] = {}
            ids = [row.id for row in rows]
            if ids:
                for alert_id, channel, state in conn.execute(
                    select(deliveries.c.alert_id, deliveries.c.channel, deliveries.c.state).where(
                        deliveries.c.alert_id.in_(ids)
                    )
                ):
                    states.setdefault(alert_id, {})[channel] = state
        found = []
        for row in rows:
            data = json.loads(row.data)
            article = data.get("article", {})
            found.append(
                AlertRow(
                    id=row.id,
                    rule_id=row.rule_id,
                    severity=row.severity,
                    created_at=row.created_at,
                    title=str(article.get("title") or ""),
                    feed=str(article.get("feed") or ""),
                    url=article.get("url"),
                    also_reported_by=_other_sources(sources.get(row.story_id, []), data),
                    deliveries=states.get(row.id, {}),
                )
            )
        return found

    # -- retention -------------------------------------------------------------------------

    def prune(self, now: datetime, retention: timedelta) -> dict[str, int]:
        """Forget tombstones and articles older than the retention period.

        A seen key goes only when it is older than the cutoff *and* its feed has since recorded
        a complete document without it (``feeds.last_document_at`` is later than the key's
        ``last_seen_at``). A feed that answers 304 or an unchanged body, fails, or serves an
        empty document for longer than the retention period records no document, so the keys
        of the items it still carries stay, and they never come back as new.

        The same holds for the last other feed that listed the key (``seen.also_feed_id``): an
        item two feeds carry stays while either still lists it. With the first feed alone, an
        item it dropped while the other, unchanged past the retention period, still served it
        was forgotten, and new there once that feed changed; handing the key to the latest
        feed to list it instead fails the same way round the other way. ``last_seen_at`` is
        shared: a feed is judged by the latest listing of either, which keeps a key longer,
        never shorter.

        Why here and not by refreshing ``last_seen_at`` on every unchanged poll: the 304 is the
        most frequent poll (10,000 feeds every few minutes) and should cost one row update;
        refreshing would rewrite every key of the feed each time, need an index on
        ``seen.feed_id``, and keep the tombstones of items long gone alive for as long as the
        feed is unchanged. This check costs one or two primary-key lookups per expired key,
        once an hour, and one column written per parsed document.

        Limit: two feeds per key. With a third, a feed that stopped changing while it listed
        the item, and was not the last other feed to list it, is not waited for.

        Alerts past the cutoff that are done (every delivery sent or dead) go with their
        deliveries; then stories past the cutoff that no kept article or alert refers to. That
        keeps one alert per rule and story: a story is joined only within ``STORY_WINDOW``
        (days) of its creation and only through its hashes, gone at the cutoff, so no new
        article can reach a story this old; an item seen again is stopped by its seen keys,
        not by an alert. A story id SQLite hands out again (it reuses the highest rowid once
        deleted) is free of every article and alert by then, so it cannot inherit an alert.
        """
        cutoff = now - retention
        also_dropped = or_(seen.c.also_feed_id.is_(None), _dropped_since_seen(seen.c.also_feed_id))
        with self.engine.begin() as conn:
            removed = {
                "seen": conn.execute(
                    delete(seen).where(
                        seen.c.last_seen_at < cutoff,
                        _dropped_since_seen(seen.c.feed_id),
                        also_dropped,
                    )
                ).rowcount,
                "articles": conn.execute(
                    delete(articles).where(articles.c.fetched_at < cutoff)
                ).rowcount,
                "matches": conn.execute(
                    delete(matches).where(matches.c.matched_at < cutoff)
                ).rowcount,
            }
            old_stories = select(stories.c.id).where(stories.c.created_at < cutoff)
            conn.execute(delete(story_hashes).where(story_hashes.c.story_id.in_(old_stories)))
            done = and_(alerts.c.created_at < cutoff, alerts.c.state == "done")
            conn.execute(
                delete(deliveries).where(deliveries.c.alert_id.in_(select(alerts.c.id).where(done)))
            )
            removed["alerts"] = conn.execute(delete(alerts).where(done)).rowcount
            removed["stories"] = conn.execute(
                delete(stories).where(
                    stories.c.created_at < cutoff,
                    stories.c.id.not_in(
                        select(articles.c.story_id).where(articles.c.story_id.is_not(None))
                    ),
                    stories.c.id.not_in(select(alerts.c.story_id)),
                )
            ).rowcount
            conn.execute(delete(channel_sends).where(channel_sends.c.sent_at < cutoff))
            conn.execute(delete(poll_log).where(poll_log.c.polled_at < cutoff))
        return removed


def _dropped_since_seen(feed_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether that feed has recorded a complete document since a feed last listed the key
    (``Store.prune``); not when it never recorded one."""
    document = select(feeds.c.last_document_at).where(feeds.c.id == feed_id).scalar_subquery()
    return seen.c.last_seen_at < document


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _upsert(conn: Connection, table: Table) -> Any:
    """INSERT ... ON CONFLICT for the connection's dialect (SQLite and PostgreSQL agree)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _story_sources(conn: Connection, story_ids: Iterable[int]) -> dict[int, list[str]]:
    """The feeds that carried each of these stories, in order of arrival.

    Read when an alert is claimed for sending (not kept with the alert), so an alert lists the
    sources that arrived after it was queued (a digest's entry, a retried send), and every
    alert of a story, whichever rule raised it and whenever, lists the same outlets.
    """
    wanted = sorted(set(story_ids))
    found: dict[int, list[str]] = {}
    if wanted:
        rows = conn.execute(
            select(story_sources.c.story_id, story_sources.c.feed)
            .where(story_sources.c.story_id.in_(wanted))
            .order_by(story_sources.c.first_seen_at, story_sources.c.feed)
        )
        for story_id, feed in rows:
            found.setdefault(story_id, []).append(feed)
    return found


def _other_sources(sources: Sequence[str], payload: dict[str, Any]) -> list[str]:
    """A story's sources but the one the alert names as its own (its article's feed)."""
    own = (payload.get("article") or {}).get("feed")
    return [feed for feed in sources if feed != own]


def _signed64(value: int) -> int:
    """A 64-bit hash as PostgreSQL's signed bigint."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]
