"""The daemon: APScheduler jobs around ``pipeline.poll_feed``, reload, signals, shutdown.

Jobs (each at most one instance at a time):

- ``poll``: every second, lease the feeds that are due (``Store.claim_due_feeds``; with
  PostgreSQL several processes share the work) and poll each in its own task. When a feed is
  next due is decided by the pipeline after each poll (adaptive interval, hints, backoff).
- ``deliver``: every second, send what the outbox holds.
- ``reload``: every two seconds, reload ``rules/`` when a file changed; an invalid edit keeps
  the last valid rules and logs every ``file:line:col`` problem.
- ``retention``: hourly, forget tombstones and articles past the retention period.
- ``heartbeat``: every second, proves to ``/healthz`` that the scheduler runs jobs.

SIGHUP reloads the rules now (whether or not a file changed). With ``MONITOR_HTTP_LISTEN`` set,
``monitor.web`` (health, metrics, status page) is served from the same event loop.

SIGTERM/SIGINT stop new work; everything after is held to one deadline, ``SHUTDOWN_DEADLINE``
from the signal: in-flight polls and channel sends may finish until ``CLOSE_RESERVE`` before
it, then are cancelled (their leases and claims expire; nothing half-recorded, as each poll
records in one transaction), the listener and clients are closed, and ``run`` returns 0. A
thread still blocked then (a DNS lookup) is abandoned: ``LoopExecutor`` here, and
``cli.exit_past_blocked_threads`` for the interpreter's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import OperationalError

from monitor.alerts import (
    Channel,
    ConsoleChannel,
    Dispatcher,
    Policies,
    Renderer,
    RulePolicy,
    TagPolicy,
    config_warnings,
    load_channels,
    route,
    route_notice,
    unrouted_tags,
)
from monitor.config import Settings
from monitor.errors import RuleError
from monitor.fetch import Fetcher, FetchLimits
from monitor.pipeline import ParseWorker, PollContext, PollReport, poll_feed
from monitor.rules import FeedConfig, Rule, RuleSet, load_rules, parse_quiet_hours
from monitor.store import Store
from monitor.web import Heartbeat, Metrics, WebServer, check_listen, create_app

log = logging.getLogger("monitor.daemon")

#: Seconds from the stop request to the end of ``Daemon.shutdown``: the process exits within
#: the 10 s of SPEC section 8, with time left for the interpreter to wind down.
SHUTDOWN_DEADLINE = 9.0
#: Of the deadline, what in-flight work leaves for abandoning the rest and closing.
CLOSE_RESERVE = 1.5
#: Of the reserve, what is kept for closing the clients and the store at the very end.
CLOSE_MARGIN = 0.5
POLL_TICK = 0.5  # how soon a due feed is picked up, and undelivered alerts retried
RELOAD_TICK = 2.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def fetch_limits(settings: Settings) -> FetchLimits:
    """Settings as fetch limits; a read may be silent as long as a connect may take."""
    return FetchLimits(
        max_bytes=settings.max_feed_bytes,
        deadline=settings.fetch_timeout.total_seconds(),
        connect_timeout=settings.connect_timeout.total_seconds(),
        user_agent=settings.user_agent,
        read_timeout=settings.connect_timeout.total_seconds(),
    )


def make_fetcher(settings: Settings) -> Fetcher:
    """The fetcher the settings describe (fetch.py does not read settings itself)."""
    return Fetcher(
        fetch_limits(settings),
        max_concurrency=settings.max_concurrency,
        per_host_concurrency=settings.per_host_concurrency,
        allowed_private_hosts=settings.allowed_private_host_set,
        memory_budget=settings.fetch_memory_budget,
    )


#: After this many bytes of bodies have come and gone (or one document this large was parsed),
#: the daemon hands the memory the allocator keeps back to the system.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


#: Blocks at least this large get a memory mapping of their own (glibc), see ``tune_allocator``.
MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def _libc_function(name: str) -> Callable[..., int] | None:
    """A function of the C library, or None where it has none (musl, macOS)."""
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


_MALLOC_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")


def tune_allocator() -> None:
    """Give large blocks (bodies, a document's strings) mappings of their own, freed at once.

    glibc maps blocks above a threshold, but raises the threshold to the size of each mapped
    block freed (up to 32 MiB): after the first 10 MiB body, bodies came from the heap, which
    fragmented and kept its free pages (30 large feeds at once: a 120 MB heap, half of it free;
    with the threshold fixed: 44 MB, and a peak 45 MB lower). Setting it turns that off. An
    operator's ``MALLOC_MMAP_THRESHOLD_`` is left alone.
    """
    if _MALLOPT is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_free_memory() -> None:
    """Return the C heap's free memory to the system.

    glibc keeps freed memory for reuse: after a 10 MiB body and its parse (many small pieces
    of text) the process stayed ~150 MB larger than its live data, and fragmentation made the
    next peak start from there. ``malloc_trim(0)`` gives the free pages back (measured: 252 MB
    -> 39 MB after a 10 MiB document). A no-op where the C library has no such call.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def rules_signature(rules_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any rule file is edited, added or removed."""
    if rules_dir.is_file():
        files = [rules_dir]
    else:
        files = sorted(p for p in rules_dir.rglob("*") if p.suffix in (".yaml", ".yml", ".j2"))
    signature = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


# --- channels and delivery policies (issue 5) -------------------------------------------------


def templates_dir(rules_dir: Path) -> Path:
    """Where template overrides live: ``rules/templates/``."""
    return (rules_dir if rules_dir.is_dir() else rules_dir.parent) / "templates"


def build_channels(settings: Settings) -> list[Channel]:
    """The Apprise channels the settings configure; none: the console and alerts.jsonl.

    A configured source that yields no service raises ConfigError (Apprise only logs it).
    """
    renderer = Renderer(templates_dir(settings.rules_dir))
    channels: list[Channel] = list(
        load_channels(settings.apprise_urls.get_secret_value(), settings.apprise_config, renderer)
    )
    return channels or [ConsoleChannel(settings.data_dir / "alerts.jsonl", renderer=renderer)]


def policies_of(ruleset: RuleSet) -> Policies:
    """Rule and channel-tag facts as the plain values the dispatcher decides from."""
    rules = {
        rule.id: RulePolicy(
            title=rule.title,
            throttle=rule.throttle,
            digest=rule.digest,
            quiet=parse_quiet_hours(rule.quiet_hours) if rule.quiet_hours else None,
        )
        for rule in ruleset.rules
    }
    tags = {
        tag: TagPolicy(
            rate_count=policy.rate_count,
            rate_period=policy.rate_period,
            quiet=policy.quiet,
            bypass_severity=policy.bypass_severity,
        )
        for tag, policy in ruleset.channels.items()
    }
    return Policies(rules=rules, tags=tags)


def channel_warnings(
    ruleset: RuleSet, channels: Sequence[Channel], apprise_config: Path | None = None
) -> list[str]:
    """Entries of the Apprise config file that yield no service, and tags no channel
    carries: a rule's ``notify`` tag, the ``ops`` tag of health notices."""
    positions = {rule.id: rule.position for rule in ruleset.rules}
    warnings = config_warnings(apprise_config) if apprise_config is not None else []
    warnings += [
        f"{positions[rule]}: warning: rule '{rule}' notifies tag '{tag}', which no channel "
        "carries (check MONITOR_APPRISE_CONFIG tags)"
        for rule, tag in unrouted_tags({r.id: r.notify for r in ruleset.rules}, channels)
    ]
    if channels and ruleset.feeds.feeds and unrouted_tags({"-": ["ops"]}, channels):
        warnings.append(
            "warning: no channel carries the 'ops' tag: feed-health alerts go to every channel"
        )
    return warnings


# --- end channels --------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An error as one short log line (a database error's text runs over several)."""
    text = str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def guarded(job: Callable[[], object]) -> Callable[[], None]:
    """A scheduler job that logs its errors in one line instead of raising them."""

    def run() -> None:
        try:
            job()
        except Exception as exc:
            name = getattr(job, "__name__", "job")
            log.error("%s failed: %s", name, one_line(exc))

    return run


async def cancel_unfinished(
    tasks: Iterable[asyncio.Task[Any]], timeout: float
) -> set[asyncio.Task[Any]]:
    """Wait up to ``timeout`` for these tasks; cancel those still running and return them."""
    waiting = set(tasks)
    if not waiting:
        return set()
    _, pending = await asyncio.wait(waiting, timeout=timeout)
    for task in pending:
        task.cancel()
    return pending


class LoopExecutor(ThreadPoolExecutor):
    """The event loop's default executor while the daemon runs: where asyncio and httpx (through
    anyio) call the system resolver, and the status page reads the store.

    Why a class of its own: ``asyncio.run`` ends by shutting the default executor down with
    ``wait=True``, which joins every thread however long it is blocked. ``getaddrinfo`` takes no
    timeout and cannot be interrupted: with the system resolver hanging 30 s, the poll waiting
    for it was abandoned at the shutdown deadline, and the process still ran 20 s past it.
    After ``abandon`` no shutdown waits; the call a thread is in is left to end by itself.
    """

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="monitor-io")
        self.abandoned = False

    def abandon(self) -> None:
        """Cancel what has not started and stop waiting for what has, now and at every later
        shutdown (the event loop's)."""
        self.abandoned = True
        self.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait and not self.abandoned, cancel_futures=cancel_futures)


@dataclass
class RunSummary:
    polls: list[PollReport]
    delivered: int


class Daemon:
    """One `monitor run` process. Collaborators are constructor arguments (test seams)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        fetcher: Fetcher | None = None,
        channels: Sequence[Channel] | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        shutdown_deadline: float = SHUTDOWN_DEADLINE,
    ) -> None:
        tune_allocator()
        self.settings = settings
        self.clock = clock
        self.shutdown_deadline = shutdown_deadline
        self._stop_requested_at: float | None = None  # time.monotonic()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.ruleset = self._load_rules()  # invalid rules at start-up: refuse to run
        self._signature = rules_signature(settings.rules_dir)
        self.store = store or Store.open(settings.database_url.get_secret_value())
        self.fetcher = fetcher or make_fetcher(settings)
        self.channels = list(channels) if channels is not None else build_channels(settings)
        for warning in channel_warnings(self.ruleset, self.channels, settings.apprise_config):
            log.warning("%s", warning)
        self.dispatcher = Dispatcher(
            self.store,
            self.channels,
            self.owner,
            policies=policies_of(self.ruleset),
            on_sent=self.observe_sent,
        )
        if self.store.dialect == "sqlite":  # one process per SQLite file: stale claims are ours
            self.store.release_claims()
        self.rng = random.Random()
        self.parse_worker = ParseWorker()  # large documents: one at a time, off the event loop
        self.executor = LoopExecutor()
        self._released_at_trim = 0
        self.in_flight: set[asyncio.Task[PollReport | None]] = set()
        self.stopping = asyncio.Event()
        self._sync_feeds()
        # operations (issue 6): liveness, metrics, the HTTP listener
        self.heartbeat = Heartbeat(settings.health_stale_after.total_seconds())
        self.metrics = Metrics(self.store, self.heartbeat)
        self.metrics.rules.set(len(self.ruleset.rules))
        self.web: WebServer | None = None

    # -- wiring ---------------------------------------------------------------------------

    def context(self) -> PollContext:
        return PollContext(
            store=self.store,
            fetcher=self.fetcher,
            rules=self.ruleset,
            route=self._route,
            env=dict(os.environ),
            backoff_ceiling=self.settings.backoff_ceiling,
            rng=self.rng,
            notice_channels=lambda: route_notice(self.channels),
            parse_worker=self.parse_worker,
        )

    def _load_rules(self) -> RuleSet:
        """The rules, with ``MONITOR_DEFAULT_INTERVAL`` for feeds whose file sets no interval."""
        ruleset = load_rules(self.settings.rules_dir)
        ruleset.feeds.feeds = [
            feed
            if "interval" in feed.model_fields_set
            else feed.model_copy(update={"interval": self.settings.default_interval})
            for feed in ruleset.feeds.feeds
        ]
        return ruleset

    def _route(self, rule: Rule) -> list[str]:
        return route(rule.notify, self.channels)

    def _sync_feeds(self) -> None:
        configured = [(f.url, f.name, f.enabled) for f in self.ruleset.feeds.feeds]
        if not configured:  # every stored feed is now removed: say so, it is rarely meant
            log.warning("no feeds configured in %s: nothing is polled", self.settings.rules_dir)
        self.store.sync_feeds(configured, self.clock())

    def _feeds_by_url(self) -> dict[str, FeedConfig]:
        return {f.url: f for f in self.ruleset.feeds.feeds}

    # -- jobs -----------------------------------------------------------------------------

    async def poll_due(self) -> None:
        """Lease the feeds that are due and poll each in its own task."""
        if self.stopping.is_set():
            return
        now = self.clock()
        lease = self.settings.lease
        # lease no more than can start now: a lease must not run out while its feed waits here
        room = max(self.settings.max_concurrency - len(self.in_flight), 0)
        if room == 0:
            return
        configs = self._feeds_by_url()
        try:
            due = self.store.claim_due_feeds(self.owner, now, lease, limit=room)
        except Exception as exc:  # the database is down: try again next tick, one line a time
            log.error("cannot lease due feeds: %s", one_line(exc))
            return
        for state in due:
            config = configs.get(state.url)
            if config is None:
                self.store.release_feed(state.id, self.owner)
                continue
            task = asyncio.create_task(self._poll_one(config, state.id))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def _poll_one(self, feed: FeedConfig, feed_id: int) -> PollReport | None:
        try:
            report = await poll_feed(feed, self.context(), self.clock())
            self.observe_poll(report, feed_id)
            self.trim_memory(report)
            if report.alerts:  # deliver now rather than at the next delivery tick
                await self.deliver()
            return report
        except OperationalError as exc:  # the database went away mid-poll: nothing of this
            # poll was recorded (one transaction), so its items are new again next time
            log.error("poll not recorded", extra={"feed": feed.name, "error": one_line(exc)})
            return None
        except Exception:  # one feed's bug must not stop the others
            log.exception("poll crashed", extra={"feed": feed.name})
            return None
        finally:
            try:
                self.store.release_feed(feed_id, self.owner)
            except OperationalError as exc:  # raised here it was "Task exception was never
                # retrieved"; the lease expires by itself (MONITOR_LEASE) and the feed is due
                log.error("lease not released", extra={"feed": feed.name, "error": one_line(exc)})

    def trim_memory(self, report: PollReport | None = None) -> None:
        """Give freed memory back to the system after large bodies (see ``release_free_memory``):
        once ``TRIM_AFTER_BYTES`` of bodies have been released since the last time, or after a
        document that large was parsed. Soon rather than now: until the current step of the
        event loop ends, the loop itself still holds the parse's result (its wake-up call)."""
        budget = self.fetcher.budget
        released = budget.released if budget is not None else 0
        large = report is not None and report.body_bytes >= TRIM_AFTER_BYTES
        if large or released - self._released_at_trim >= TRIM_AFTER_BYTES:
            self._released_at_trim = released
            asyncio.get_running_loop().call_soon(release_free_memory)

    async def deliver(self) -> None:
        """Plan new alerts and start each channel's due sends (a slow channel delays only
        itself: its sends run as their own task)."""
        try:
            self.dispatcher.start_due(self.clock())
        except OperationalError as exc:
            # the database is down, restarting or locked: expected, retried next tick, so one
            # line, not a traceback (twice a second that was ~15 KB/s of log during an outage)
            log.error("delivery round failed: %s", one_line(exc))
        except Exception:
            log.exception("delivery round failed")

    def reload_if_changed(self, force: bool = False) -> bool:
        """Swap in edited rules when they validate; keep the last valid set when they do not.

        ``force`` (SIGHUP): reload even when no file seems to have changed.
        """
        signature = rules_signature(self.settings.rules_dir)
        if signature == self._signature and not force:
            return False
        self._signature = signature
        try:
            ruleset = self._load_rules()
        except RuleError as exc:
            for problem in exc.problems:
                log.error("rules not reloaded: %s", problem)
            log.error("keeping the last valid rules (%d rules)", len(self.ruleset.rules))
            self.metrics.reloads.labels("invalid").inc()
            return False
        self.ruleset = ruleset
        self.dispatcher.policies = policies_of(ruleset)
        self._sync_feeds()
        self.metrics.rules.set(len(ruleset.rules))
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "rules reloaded", extra={"rules": len(ruleset.rules), "feeds": len(ruleset.feeds.feeds)}
        )
        return True

    def prune(self) -> None:
        removed = self.store.prune(self.clock(), self.settings.retention)
        log.info("retention %s", " ".join(f"{k}={v}" for k, v in removed.items()))

    # -- running --------------------------------------------------------------------------

    def use_executor(self) -> None:
        """Make ``executor`` the running loop's default, so that ``shutdown`` can abandon it."""
        asyncio.get_running_loop().set_default_executor(self.executor)

    async def run_once(self) -> RunSummary:
        """Poll every enabled feed once, deliver what matched, return."""
        self.use_executor()
        context = self.context()
        now = self.clock()
        feeds = [f for f in self.ruleset.feeds.feeds if f.enabled]
        states = {s.url: s for s in self.store.all_feeds()}
        polls = [f for f in feeds if not (states.get(f.url) and states[f.url].disabled_reason)]
        reports = await asyncio.gather(*(poll_feed(f, context, now) for f in polls))
        # a poll postponed for want of fetch memory budget is not skipped: poll it again
        for _ in range(100):  # bounded; the oldest fetch of a round is never the one given up
            postponed = [i for i, r in enumerate(reports) if r.outcome == "postponed"]
            if not postponed:
                break
            again = await asyncio.gather(*(poll_feed(polls[i], context, now) for i in postponed))
            for i, report in zip(postponed, again, strict=True):
                reports[i] = report
        for feed, report in zip(polls, reports, strict=True):
            self.observe_poll(report, states[feed.url].id if feed.url in states else None)
        self.trim_memory()
        delivered = 0
        for _ in range(1000):  # bounded; a failed delivery is due again only later
            tried, accepted = await self.dispatcher.deliver_due(self.clock())
            delivered += accepted
            if not tried:
                break
        return RunSummary(polls=list(reports), delivered=delivered)

    async def run(self) -> int:
        """The daemon until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        self.use_executor()
        # handlers before the listener: /healthz answers while start_web is still waiting for
        # uvicorn, and a SIGHUP sent then must reload, not kill the process (seen in CI)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.hangup)
        await self.start_web()  # refuses a non-loopback address without a token
        scheduler = AsyncIOScheduler(timezone=UTC)
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
        # every job catches its own errors and logs them in one line. (A raising job does not
        # stall APScheduler 3.11: the stall once blamed on it, the database down in
        # tests/test_outage.py, was the test's unread stderr pipe filling up and blocking the
        # daemon's next log write, and with it the event loop.)
        scheduler.add_job(self.poll_due, "interval", seconds=POLL_TICK, id="poll", **common)
        scheduler.add_job(self.deliver, "interval", seconds=POLL_TICK, id="deliver", **common)
        scheduler.add_job(
            guarded(self.reload_if_changed), "interval", seconds=RELOAD_TICK, id="reload", **common
        )
        scheduler.add_job(guarded(self.prune), "interval", hours=1, id="retention", **common)
        scheduler.add_job(
            self.heartbeat.beat, "interval", seconds=POLL_TICK, id="heartbeat", **common
        )
        scheduler.start()
        log.info(
            "monitor running",
            extra={"owner": self.owner, "feeds": len(self.ruleset.feeds.feeds),
                   "rules": len(self.ruleset.rules), "lease_s": self.settings.lease.seconds},
        )  # fmt: skip
        await self.poll_due()
        await self.stopping.wait()
        scheduler.shutdown(wait=False)
        await self.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        return 0

    def request_stop(self, reason: str = "stop") -> None:
        if not self.stopping.is_set():
            log.info("stopping (%s): no new work, finishing in-flight polls", reason)
            self._stop_requested_at = time.monotonic()
            self.stopping.set()
            self.heartbeat.stopping = True

    async def shutdown(self) -> None:
        """Finish or abandon in-flight work, then close, all within one deadline.

        ``shutdown_deadline`` counts from the stop request, so no step can take time another
        step was promised, as separately timed steps did (8 s of polls, then 1 s, 1 s, up to
        5 s more for the listener): polls and channel sends share all of it but
        ``CLOSE_RESERVE``; what is unfinished then is cancelled and given until
        ``CLOSE_MARGIN`` before the deadline to unwind while the listener stops; the clients
        and the store are closed last, and the threads still blocked (a DNS lookup, a large
        parse) are abandoned: nothing waits for them any more.
        """
        end = (self._stop_requested_at or time.monotonic()) + self.shutdown_deadline

        def left(keep: float = 0.0) -> float:
            return max(end - keep - time.monotonic(), 0.0)

        work = left(CLOSE_RESERVE)
        abandoned, _ = await asyncio.gather(
            cancel_unfinished(self.in_flight, work), self.dispatcher.drain(timeout=work)
        )
        if abandoned:
            log.warning("abandoned %d in-flight polls at shutdown", len(abandoned))
        await asyncio.gather(
            cancel_unfinished(abandoned, left(CLOSE_MARGIN)),
            self.stop_web(timeout=left(CLOSE_MARGIN)),
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left()):
                await self.fetcher.aclose()
        self.parse_worker.shutdown()
        self.executor.abandon()
        self.store.close()

    # -- operations (issue 6): metrics, poll log, HTTP listener, SIGHUP --------------------

    def observe_poll(self, report: PollReport, feed_id: int | None) -> None:
        """One log line, the metrics and the status page's poll strip for one poll."""
        elapsed_ms = round(report.elapsed * 1000)
        log.log(
            logging.WARNING if report.outcome in ("error", "gone") else logging.INFO,
            "polled",
            extra={
                "feed": report.feed, "outcome": report.outcome, "status": report.status,
                "items": report.items, "new": report.new_items, "matches": report.matches,
                "alerts": report.alerts, "elapsed_ms": elapsed_ms,
            },
        )  # fmt: skip
        self.metrics.observe_poll(report)
        if feed_id is None:
            return
        try:
            self.store.record_poll(
                feed_id, self.clock(), report.outcome, status=report.status,
                error_kind=report.error_kind, elapsed_ms=elapsed_ms,
            )  # fmt: skip
        except Exception:  # the poll itself is recorded; its strip mark is not worth a crash
            log.exception("poll log not recorded", extra={"feed": report.feed})

    def observe_sent(self, delivery_ids: list[int]) -> None:
        """Publish-to-alert latency for deliveries a channel has just accepted."""
        accepted_at = self.clock()
        try:
            sent = self.store.sent_times(delivery_ids)
        except Exception:
            log.exception("delivery metrics not read")
            return
        for channel, published, queued in sent:
            self.metrics.observe_sent(channel, published, queued, accepted_at)

    def hangup(self) -> None:
        """SIGHUP: reload the rules now."""
        log.info("SIGHUP: reloading rules")
        self.reload_if_changed(force=True)

    async def start_web(self) -> None:
        bind = check_listen(self.settings)
        if bind is None:
            return
        token = self.settings.http_token
        app = create_app(
            store=self.store,
            metrics=self.metrics,
            heartbeat=self.heartbeat,
            token=token.get_secret_value() if token else None,
            secrets=self.settings.secrets(),
            rule_ids=lambda: [r.id for r in self.ruleset.rules],
            refresh=max(1, round(self.settings.status_refresh.total_seconds())),
            clock=self.clock,
        )
        self.web = WebServer(app, *bind)
        await self.web.start()

    async def stop_web(self, timeout: float = 5.0) -> None:
        if self.web is not None:
            await self.web.stop(timeout)
            self.web = None
