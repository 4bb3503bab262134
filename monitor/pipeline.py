"""The journey of one poll, top-down in one function: ``poll_feed``.

fetch -> stop if unchanged -> parse -> identify -> drop seen -> match -> record matches and
queue alerts (one transaction, with the seen keys) -> record health and the next poll.

Every stage it calls is its own module; this is the only place that wires them together.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any

from monitor.alerts import health_event, health_notice, silence_due
from monitor.dedupe import best_story, fingerprint_hashes, unique_by_identity
from monitor.errors import MonitorError, ParseError
from monitor.fetch import Fetcher, FetchOutcome, FetchRequest, backoff_delay, next_interval
from monitor.parse import ParsedFeed, parse_feed
from monitor.rules import FeedConfig, Rule, RuleSet
from monitor.schema import Article, format_duration
from monitor.store import FeedState, NewItem, PollRecord, QueuedAlert, Store

log = logging.getLogger("monitor.pipeline")

#: Documents at least this large are parsed in ``PollContext.parse_worker``.
WORKER_PARSE_BYTES = 256 * 1024
#: A poll postponed for want of fetch memory budget is retried within this many seconds.
POSTPONE_S = 5.0
#: Share of the interval by which a feed's next poll is brought forward at random, so that feeds
#: added together do not stay in lockstep (never later: the interval is what the desk was promised).
JITTER = 0.1


@dataclass
class PollContext:
    """What every poll needs; built once by the daemon (or a test) and shared."""

    store: Store
    fetcher: Fetcher
    rules: RuleSet
    route: Callable[[Rule], list[str]]
    env: Mapping[str, str] = field(default_factory=dict)
    backoff_ceiling: timedelta = timedelta(hours=6)
    rng: random.Random = field(default_factory=random.Random)
    #: The channels feed-health notices go to (the ``ops`` tag); none: notices are not queued.
    notice_channels: Callable[[], list[str]] = list
    #: Where large documents are parsed, one at a time; None: every one in the event loop.
    parse_worker: ParseWorker | None = None

    @cached_property
    def rules_by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules.rules}


@dataclass
class PollReport:
    """What happened, for logs, metrics and `monitor run --once`."""

    feed: str
    outcome: str  # new | unchanged | not_modified | error | gone | postponed
    status: int | None = None
    items: int = 0
    new_items: int = 0
    matches: int = 0
    alerts: int = 0
    error: str | None = None
    error_kind: str | None = None  # fetch error kinds, "parse", "config"
    next_poll_at: datetime | None = None
    elapsed: float = 0.0
    #: Size of the document parsed (0: none was).
    body_bytes: int = 0


async def poll_feed(feed: FeedConfig, ctx: PollContext, now: datetime) -> PollReport:
    """Poll one feed once and record everything it gave."""
    state = ctx.store.feed(feed.url)
    if state is None:
        raise MonitorError(f"feed {feed.url} is not in the store: sync feeds first")
    poll = _Poll(feed, state, ctx, now)
    try:
        headers = feed.resolved_headers(ctx.env)
    except MonitorError as exc:
        return _record_failure(poll, str(exc), "config", None)
    request = FetchRequest(
        url=state.fetch_url,
        etag=state.etag,
        last_modified=state.last_modified,
        headers=headers,
        configured_url=feed.url,
    )
    # the body counts against the fetch memory budget until its poll is recorded
    async with ctx.fetcher.fetching(request) as fetched:
        if fetched.kind == "error":
            kind = fetched.error.kind if fetched.error else "error"
            if kind == "memory_budget":
                return _record_postponed(poll, str(fetched.error), fetched)
            return _record_failure(poll, str(fetched.error), kind, fetched)
        if fetched.kind == "gone":
            return _record_gone(poll, fetched)
        if fetched.kind == "not_modified" or fetched.content_hash == state.content_hash:
            return _record_unchanged(poll, fetched)
        body_bytes = len(fetched.body)
        large = ctx.parse_worker is not None and body_bytes >= WORKER_PARSE_BYTES
        async with ctx.parse_worker.turn if ctx.parse_worker and large else nullcontext():
            try:
                parsed = await _parse(ctx, feed, fetched, now, in_worker=large)
            except ParseError as exc:
                return _record_failure(poll, str(exc), "parse", fetched)
            outcome = replace(fetched, body=b"")
            del fetched  # parsed: the document itself is no longer needed
            return _record_document(poll, outcome, parsed, body_bytes)


def _record_document(
    poll: _Poll, outcome: FetchOutcome, parsed: ParsedFeed, body_bytes: int
) -> PollReport:
    """A parsed document: identify, drop what was seen, match, record, schedule."""
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    items = unique_by_identity(parsed.articles)
    known = ctx.store.seen_keys(key for _, keys in items for key in keys)
    fresh = [(article, keys) for article, keys in items if known.isdisjoint(keys)]
    may_alert = state.first_poll_done or feed.alert_on_first_poll
    new_items = [_new_item(poll, article, keys, may_alert) for article, keys in fresh]
    recorded = ctx.store.record_items(
        PollRecord(
            feed_id=state.id,
            now=now,
            new_items=new_items,
            present_keys=[key for _, keys in items for key in keys],
            complete=parsed.complete,
            pick_story=best_story,
        ),
        feed_name=feed.name,
    )
    for item in new_items:  # one line per match; the outbox decides what is new per story
        queued = {q.match.rule for q in item.alerts}
        for found in item.matches:
            log.info(
                "matched",
                extra={
                    "feed": feed.name,
                    "rule": found.rule,
                    "article_id": item.article.id,
                    "alerting": found.rule in queued,
                },
            )
    next_poll = _schedule_after_success(poll, outcome, parsed, len(fresh))
    ctx.store.update_feed(
        state.id,
        # a truncated document's validators would hide the rest of it from the next poll
        etag=outcome.etag if parsed.complete else None,
        last_modified=outcome.last_modified if parsed.complete else None,
        content_hash=outcome.content_hash if parsed.complete else None,
        fetch_url=outcome.moved_to or state.fetch_url,
        last_status=outcome.status,
        last_error="; ".join(parsed.warnings) or None,
        last_error_kind=None,
        consecutive_failures=0,
        last_polled_at=now,
        last_success_at=now,
        first_poll_done=True,
        last_item_count=len(parsed.articles),
        **next_poll,
        **_health(poll, ok=True, new_items=len(fresh)),
    )
    return PollReport(
        feed=feed.name,
        outcome="new" if fresh else "unchanged",
        status=outcome.status,
        items=len(parsed.articles),
        new_items=len(fresh),
        matches=sum(len(item.matches) for item in new_items),
        alerts=len(recorded.new_alert_ids),
        next_poll_at=next_poll["next_poll_at"],
        elapsed=outcome.elapsed,
        body_bytes=body_bytes,
    )


async def _parse(
    ctx: PollContext, feed: FeedConfig, outcome: FetchOutcome, now: datetime, *, in_worker: bool
) -> ParsedFeed:
    """Parse a body, a large one in the parse worker's thread so that the event loop keeps
    serving the other fetches meanwhile."""
    parse = partial(
        parse_feed,
        outcome.body,
        feed_url=feed.url,
        feed_name=feed.name,
        now=now,
        content_type=outcome.content_type,
    )
    if ctx.parse_worker is None or not in_worker:
        return parse()
    return await asyncio.get_running_loop().run_in_executor(ctx.parse_worker.executor, parse)


class ParseWorker:
    """Where large documents (``WORKER_PARSE_BYTES`` or more) are parsed: a thread of their
    own, and one large document at a time from its parse to its record (``turn``).

    A parse takes several times the document's size for a moment (up to about 7 times for the
    10 MiB documents measured) and a poll being recorded holds all its articles, so two large
    documents at once would add up; small ones are parsed in the event loop, where that costs
    less than handing them over.
    """

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-parse")
        self.turn = asyncio.Semaphore(1)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _new_item(poll: _Poll, article: Article, keys: list[str], may_alert: bool) -> NewItem:
    """Match a new article and decide which of its matches alert."""
    feed, ctx, now = poll.feed, poll.ctx, poll.now
    found = ctx.rules.matcher.match(article, feed.tags)
    alerting = may_alert and is_recent(article, feed.max_age, now)
    rules = ctx.rules_by_id
    queued = [
        QueuedAlert(match=m, channels=ctx.route(rules[m.rule]))
        for m in found
        if alerting and m.rule in rules
    ]
    return NewItem(
        article=article,
        keys=keys,
        story_hashes=fingerprint_hashes(article.fingerprint),
        matches=found,
        alerts=queued,
    )


def is_recent(article: Article, max_age: timedelta, now: datetime) -> bool:
    """Items older than ``max_age`` never alert; an undated item counts from when it was seen."""
    stamp = article.published or article.fetched_at
    return now - stamp <= max_age


# --------------------------------------------------------------------------------------------
# Recording outcomes and choosing the next poll


@dataclass
class _Poll:
    """One poll in progress: the feed, its stored state, the shared context and the time."""

    feed: FeedConfig
    state: FeedState
    ctx: PollContext
    now: datetime


def _record_unchanged(poll: _Poll, outcome: FetchOutcome) -> PollReport:
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    next_poll = _schedule_after_success(poll, outcome, None, 0)
    ctx.store.update_feed(
        state.id,
        etag=outcome.etag or state.etag,
        last_modified=outcome.last_modified or state.last_modified,
        fetch_url=outcome.moved_to or state.fetch_url,
        last_status=outcome.status,
        last_error=None,
        last_error_kind=None,
        consecutive_failures=0,
        last_polled_at=now,
        last_success_at=now,
        first_poll_done=True,
        **next_poll,
        **_health(poll, ok=True, new_items=0),
    )
    kind = "not_modified" if outcome.kind == "not_modified" else "unchanged"
    return PollReport(
        feed=feed.name,
        outcome=kind,
        status=outcome.status,
        next_poll_at=next_poll["next_poll_at"],
        elapsed=outcome.elapsed,
    )


def _record_postponed(poll: _Poll, message: str, outcome: FetchOutcome) -> PollReport:
    """The fetch memory budget was held by other fetches: not the feed's fault. Nothing is
    recorded against the feed (no failure, no backoff, the last error stays); it is polled
    again within ``POSTPONE_S``."""
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    when = now + timedelta(seconds=POSTPONE_S * ctx.rng.uniform(0.5, 1.0))
    log.info("poll postponed", extra={"feed": feed.name, "reason": message})
    ctx.store.update_feed(state.id, next_poll_at=when)
    return PollReport(
        feed=feed.name,
        outcome="postponed",
        error=message,
        error_kind="memory_budget",
        next_poll_at=when,
        elapsed=outcome.elapsed,
    )


def _record_failure(
    poll: _Poll, message: str, kind: str, outcome: FetchOutcome | None
) -> PollReport:
    """A failed poll: count it, back off, keep the error for status; forget nothing seen."""
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    failures = state.consecutive_failures + 1
    base = timedelta(seconds=state.interval_seconds or feed.interval.total_seconds())
    delay = backoff_delay(
        failures,
        base=base,
        ceiling=ctx.backoff_ceiling,
        rng=ctx.rng,
        retry_after=outcome.retry_after if outcome else None,
    )
    log.warning(
        "poll failed",
        extra={"feed": feed.name, "kind": kind, "failures": failures, "error": message},
    )
    ctx.store.update_feed(
        state.id,
        last_status=outcome.status if outcome else None,
        last_error=message,
        last_error_kind=kind,
        consecutive_failures=failures,
        last_polled_at=now,
        next_poll_at=now + delay,
        **_health(poll, ok=False, failures=failures, error=message),
    )
    return PollReport(
        feed=feed.name,
        outcome="error",
        status=outcome.status if outcome else None,
        error=message,
        error_kind=kind,
        next_poll_at=now + delay,
        elapsed=outcome.elapsed if outcome else 0.0,
    )


def _health(
    poll: _Poll, *, ok: bool, failures: int = 0, new_items: int = 0, error: str = ""
) -> dict[str, Any]:
    """Feed-health notices: after ``failure_alert_after`` failures in a row (once), on the
    recovery after that, and when a feed that used to publish stays silent ``silence_after``.
    Returned as ``update_feed`` arguments, so the notice and the state that prevents a second
    one are written in one transaction."""
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    event = health_event(
        ok=ok,
        failures=failures,
        failure_alert_after=feed.failure_alert_after,
        failure_alerted=state.failure_alerted,
    )
    facts: dict[str, Any] = {"feed": feed.name, "url": feed.url}
    values: dict[str, Any] = {}
    if event == "failure":
        facts.update(failures=failures, error=error)
        values["failure_alerted"] = True
    elif event == "recovery":
        values["failure_alerted"] = False
    elif (
        ok
        and not new_items
        and silence_due(
            last_new_item_at=state.last_new_item_at,
            silence_after=feed.silence_after,
            silence_alerted=state.silence_alerted,
            now=now,
        )
    ):
        assert feed.silence_after is not None and state.last_new_item_at is not None
        event = "silence"
        facts.update(
            silent_for=format_duration(feed.silence_after),
            last_new_item_at=state.last_new_item_at.isoformat(),
        )
        values["silence_alerted"] = True
    if event is None:
        return {}
    log.warning("feed health", extra={"feed": feed.name, "event": event})
    channels = ctx.notice_channels()
    return {**values, "notice": health_notice(event, facts, channels), "now": now}


def _record_gone(poll: _Poll, outcome: FetchOutcome) -> PollReport:
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    message = f"HTTP 410 Gone: the publisher removed this feed; polling stopped ({outcome.url})"
    log.error("feed disabled", extra={"feed": feed.name, "status": 410})
    ctx.store.update_feed(
        state.id,
        disabled_reason="410 Gone",
        last_status=410,
        last_error=message,
        last_error_kind="gone",
        last_polled_at=now,
        next_poll_at=None,
    )
    return PollReport(feed=feed.name, outcome="gone", status=410, error=message, error_kind="gone")


def _schedule_after_success(
    poll: _Poll, outcome: FetchOutcome, parsed: ParsedFeed | None, new_count: int
) -> dict[str, Any]:
    """The next poll: adaptive to how often the feed publishes, hints as a floor, jittered."""
    feed, state, ctx, now = poll.feed, poll.state, poll.ctx, poll.now
    current = timedelta(seconds=state.interval_seconds) if state.interval_seconds else feed.interval
    adaptive = adapt_interval(
        current,
        published=[a.published for a in parsed.articles if a.published] if parsed else [],
        new_count=new_count,
        now=now,
        min_interval=feed.min_interval,
        max_interval=feed.max_interval,
    )
    interval = next_interval(
        adaptive,
        cache_max_age=outcome.cache_max_age,
        ttl=parsed.ttl if parsed else None,
        respect_cache_hints=feed.respect_cache_hints,
        min_interval=feed.min_interval,
        max_interval=feed.max_interval,
    )
    # earlier, never later: the interval is a promise to the desk, jitter only spreads feeds out
    jitter = interval.total_seconds() * JITTER * ctx.rng.uniform(-1, 0)
    return {
        "interval_seconds": adaptive.total_seconds(),
        "next_poll_at": now + interval + timedelta(seconds=jitter),
    }


def adapt_interval(
    current: timedelta,
    *,
    published: Sequence[datetime],
    new_count: int,
    now: datetime,
    min_interval: timedelta,
    max_interval: timedelta,
) -> timedelta:
    """Poll a busy feed often and a quiet one rarely, within [min_interval, max_interval].

    From the publication times in the document: aim for about two polls per item published
    over the last day. Without dates, step: faster after new items, slower after none.
    """
    recent = sorted(p for p in published if now - timedelta(days=1) <= p <= now)
    if len(recent) >= 2:
        span = max((recent[-1] - recent[0]).total_seconds(), 60.0)
        target = timedelta(seconds=span / (len(recent) - 1) / 2)
    elif new_count:
        target = current * 0.75
    else:
        target = current * 1.25
    return max(min_interval, min(max_interval, target))
