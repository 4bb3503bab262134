"""Health, metrics and the status page, served inside the daemon (SPEC section 8).

- ``/healthz``: the event loop answers and the scheduler's heartbeat is fresh (else 503).
- ``/readyz``: the database answers (else 503).
- ``/metrics``: Prometheus text from a per-daemon ``CollectorRegistry``: what this process
  observed (polls, fetch errors, latencies, items, matches, alert latency) and what the shared
  database holds, read at scrape time (deliveries per channel and state, outbox depth, feeds in
  backoff).
- ``/``: a read-only status page that reloads itself: feeds and their health, each feed's last
  polls as a strip, alerts per rule per hour over 48 h, hits per rule, recent alerts. Server
  rendered (Jinja2, autoescaped) with inline SVG, no script at all, and a Content-Security-Policy
  that allows only the page's own stylesheet (by hash).

Starlette and uvicorn run in the daemon's own event loop (``WebServer.start``/``stop``); store
queries run in worker threads so a slow database does not stall the loop. With
``MONITOR_HTTP_TOKEN`` set, every path but the two probes needs it (``Authorization: Bearer
TOKEN``, or basic auth with the token as password); bound to anything but loopback, the token is
mandatory (``check_listen``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import uvicorn
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.config import Masker, Settings
from monitor.errors import ConfigError
from monitor.store import FeedState, PollMark, Store

log = logging.getLogger("monitor.web")
T = TypeVar("T")

#: Paths a load balancer or orchestrator probes without credentials.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
CHART_HOURS = 48
STORE_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------------
# Where to listen, and whether that is allowed


def parse_listen(value: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:8600``, ``:8600`` for every interface); empty: disabled."""
    value = value.strip()
    if not value:
        return None
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"MONITOR_HTTP_LISTEN={value!r}: expected host:port, e.g. 127.0.0.1:8600")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_listen(settings: Settings) -> tuple[str, int] | None:
    """Where the daemon listens, or None; refuses a non-loopback address without a token."""
    bind = parse_listen(settings.http_listen)
    token = settings.http_token.get_secret_value() if settings.http_token else ""
    if bind is not None and not is_loopback(bind[0]) and not token:
        raise ConfigError(
            f"MONITOR_HTTP_LISTEN={settings.http_listen} is not a loopback address: set "
            "MONITOR_HTTP_TOKEN (the status page and /metrics then need it), or listen on "
            "127.0.0.1"
        )
    return bind


# --------------------------------------------------------------------------------------------
# Liveness


class Heartbeat:
    """Beaten by a scheduler job; stale when the scheduler (or the loop) stopped running jobs."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self.clock = clock
        self.last = clock()
        self.stopping = False

    def beat(self) -> None:
        self.last = self.clock()

    def age(self) -> float:
        return self.clock() - self.last

    def healthy(self) -> bool:
        return not self.stopping and self.age() <= self.stale_after


# --------------------------------------------------------------------------------------------
# Metrics


class PollFacts(Protocol):
    """What a poll report tells the metrics (``pipeline.PollReport`` has these)."""

    @property
    def outcome(self) -> str: ...
    @property
    def error_kind(self) -> str | None: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def items(self) -> int: ...
    @property
    def new_items(self) -> int: ...
    @property
    def matches(self) -> int: ...
    @property
    def alerts(self) -> int: ...


LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ALERT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 48 * 3600)


class Metrics:
    """The daemon's Prometheus metrics, in a registry of its own (not the global one)."""

    def __init__(self, store: Store | None = None, heartbeat: Heartbeat | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("monitor_polls", "Polls by outcome", ["outcome"], registry=r)
        self.fetch_errors = Counter(
            "monitor_fetch_errors", "Failed polls by error kind", ["kind"], registry=r
        )
        self.fetch_seconds = Histogram(
            "monitor_fetch_seconds", "Fetch latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.items = Counter("monitor_items", "Items in fetched documents", registry=r)
        self.new_items = Counter("monitor_new_items", "Items not seen before", registry=r)
        self.matches = Counter("monitor_matches", "Rule matches of new items", registry=r)
        self.alerts_queued = Counter(
            "monitor_alerts_queued", "Alerts queued in the outbox by this process", registry=r
        )
        self.publish_to_alert = Histogram(
            "monitor_publish_to_alert_seconds",
            "From an item's published time (else its queue time) to its delivery, per channel",
            ["channel"],
            buckets=ALERT_BUCKETS,
            registry=r,
        )
        self.queue_to_send = Histogram(
            "monitor_queue_to_send_seconds",
            "From queueing an alert in the outbox to its delivery, per channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rules = Gauge("monitor_rules", "Rules loaded", registry=r)
        self.reloads = Counter(
            "monitor_rule_reloads", "Rule reloads by result", ["result"], registry=r
        )
        if store is not None:
            r.register(StoreCollector(store, heartbeat))

    def observe_poll(self, report: PollFacts) -> None:
        self.polls.labels(report.outcome).inc()
        if report.outcome == "error":
            self.fetch_errors.labels(report.error_kind or "error").inc()
        if report.elapsed:
            self.fetch_seconds.observe(report.elapsed)
        self.items.inc(report.items)
        self.new_items.inc(report.new_items)
        self.matches.inc(report.matches)
        self.alerts_queued.inc(report.alerts)

    def observe_sent(
        self, channel: str, published: datetime | None, queued: datetime, sent: datetime
    ) -> None:
        start = published if published is not None and published <= sent else queued
        self.publish_to_alert.labels(channel).observe(max((sent - start).total_seconds(), 0.0))
        self.queue_to_send.labels(channel).observe(max((sent - queued).total_seconds(), 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """What the shared database holds, read at scrape time."""

    def __init__(self, store: Store, heartbeat: Heartbeat | None) -> None:
        self.store = store
        self.heartbeat = heartbeat

    def describe(self) -> list[Metric]:
        return []  # values vary with the data; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        if self.heartbeat is not None:
            yield GaugeMetricFamily(
                "monitor_heartbeat_age_seconds",
                "Seconds since the scheduler's last heartbeat",
                value=self.heartbeat.age(),
            )
        up = GaugeMetricFamily("monitor_store_up", "1 when the database answered this scrape")
        try:
            counts = self.store.delivery_counts()
            feeds = self.store.all_feeds()
        except Exception as exc:  # a scrape never fails for a database that is down
            log.warning("metrics: database unavailable", extra={"error": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _delivery_metrics(counts)
        yield from _feed_metrics(feeds)


def _delivery_metrics(counts: Sequence[Any]) -> Iterator[Metric]:
    by_state = GaugeMetricFamily(
        "monitor_deliveries", "Outbox deliveries by channel and state", labels=["channel", "state"]
    )
    sent = GaugeMetricFamily("monitor_alerts_sent", "Alerts sent, per channel", labels=["channel"])
    failed = GaugeMetricFamily(
        "monitor_alerts_failed",
        "Alerts whose delivery failed and is being retried, per channel",
        labels=["channel"],
    )
    dead = GaugeMetricFamily(
        "monitor_alerts_dead", "Alerts given up (dead-lettered), per channel", labels=["channel"]
    )
    attempts = GaugeMetricFamily(
        "monitor_delivery_failed_attempts",
        "Failed delivery attempts, per channel",
        labels=["channel"],
    )
    channels = sorted({c.channel for c in counts})
    totals = {(c.channel, c.state): c for c in counts}
    pending_total = 0
    for channel in channels:
        pending = totals.get((channel, "pending"))
        sent.add_metric([channel], _count(totals.get((channel, "sent"))))
        dead.add_metric([channel], _count(totals.get((channel, "dead"))))
        failed.add_metric([channel], pending.retried if pending else 0)
        attempts.add_metric(
            [channel], sum(c.failed_attempts for c in counts if c.channel == channel)
        )
        pending_total += _count(pending)
    for count in counts:
        by_state.add_metric([count.channel, count.state], count.count)
    depth = GaugeMetricFamily(
        "monitor_outbox_depth", "Deliveries waiting to be sent", value=pending_total
    )
    yield from (by_state, sent, failed, dead, attempts, depth)


def _count(row: Any) -> int:
    return int(row.count) if row is not None else 0


def _feed_metrics(feeds: Sequence[FeedState]) -> Iterator[Metric]:
    states = GaugeMetricFamily("monitor_feeds", "Feeds by state", labels=["state"])
    tally: dict[str, int] = dict.fromkeys(("ok", "new", "backoff", "disabled", "removed"), 0)
    failing = GaugeMetricFamily(
        "monitor_feed_consecutive_failures",
        "Consecutive failures of each failing feed, with its last error kind",
        labels=["feed", "kind"],
    )
    for feed in feeds:
        state = feed_state(feed)[0]
        tally[state] = tally.get(state, 0) + 1
        if state == "backoff":
            failing.add_metric([feed.name, feed.last_error_kind or ""], feed.consecutive_failures)
    for state, n in tally.items():
        states.add_metric([state], n)
    backoff = GaugeMetricFamily(
        "monitor_feeds_in_backoff", "Feeds backing off after failures", value=tally["backoff"]
    )
    yield from (states, backoff, failing)


def feed_state(feed: FeedState) -> tuple[str, str]:
    """(state, label): ok, new, backoff, disabled (by the monitor, or ``enabled: false`` in
    feeds.yaml), removed (from feeds.yaml)."""
    if feed.disabled_reason:
        return "disabled", f"disabled: {feed.disabled_reason}"
    if feed.removed:
        return "removed", "not in feeds.yaml"
    if not feed.enabled:
        return "disabled", "disabled in feeds.yaml"
    if feed.consecutive_failures:
        return "backoff", f"backing off ({feed.consecutive_failures} failures)"
    if feed.last_polled_at is None:
        return "new", "new"
    return "ok", "ok"


# --------------------------------------------------------------------------------------------
# The status page


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212529;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .6em;
border-bottom:1px solid #dee2e6;vertical-align:middle}th{background:#f1f3f5;font-weight:600}
.muted{color:#868e96}.ok{color:#2b8a3e}.new{color:#1c7ed6}.backoff{color:#e67700}
.disabled,.removed,.dead{color:#c92a2a}.num{text-align:right;font-variant-numeric:tabular-nums}
.err{color:#c92a2a;font-size:.9em;word-break:break-word}svg{display:block}
.legend span{margin-right:1em;white-space:nowrap}
.legend svg{display:inline-block;vertical-align:middle}
.sev-critical,.sev-high{font-weight:600;color:#c92a2a}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{STYLE_HASH}'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OUTCOME_COLOURS = {
    "new": "#2b8a3e",
    "unchanged": "#8ce99a",
    "not_modified": "#8ce99a",
    "error": "#e03131",
    "gone": "#495057",
}


@dataclass
class Bar:
    x: int
    y: int
    height: int
    title: str


@dataclass
class RuleRow:
    rule: str
    hits: int
    alerts_48h: int
    bars: list[Bar] = field(default_factory=list)


@dataclass
class FeedRow:
    name: str
    host: str
    state: str
    label: str
    status: str
    last_poll: str
    next_poll: str
    items: str
    error: str
    strip: list[tuple[int, str, str]]  # (x, colour, title)


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    seconds = int((when - now).total_seconds())
    future, seconds = seconds > 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or unit == "s":
            amount = f"{seconds // size}{unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return ""  # pragma: no cover


def safe_link(url: str | None) -> str | None:
    """Only http(s) links are linked (never ``javascript:`` or ``data:``)."""
    if not url:
        return None
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


class StatusPage:
    """Gathers what the page shows (in a worker thread) and renders it."""

    def __init__(
        self,
        store: Store,
        rule_ids: Callable[[], list[str]],
        masker: Masker,
        *,
        refresh: int,
        clock: Callable[[], datetime],
        title: str = "wire-monitor",
    ) -> None:
        self.store = store
        self.rule_ids = rule_ids
        self.mask = masker
        self.refresh = refresh
        self.clock = clock
        self.title = title
        env = Environment(loader=PackageLoader("monitor", "templates"), autoescape=True)
        env.filters["mask"] = masker
        self.template = env.get_template("status.html")

    def render(self) -> str:
        now = self.clock()
        since = now - timedelta(hours=CHART_HOURS)
        feeds = self.store.all_feeds()
        polls = self.store.recent_polls()
        alert_times = self.store.alert_times(since)
        hits = self.store.rule_hits(since)
        recent = self.store.recent_alerts(30)
        outbox = self.store.outbox_counts()
        rules = self._rule_rows(now, alert_times, hits)
        return self.template.render(
            title=self.title,
            refresh=self.refresh,
            style=Markup(STYLE),  # a constant of ours, allowed by the CSP hash
            now=now.strftime("%Y-%m-%d %H:%M:%SZ"),
            feeds=[self._feed_row(f, polls.get(f.id, []), now) for f in feeds],
            rules=rules,
            chart_width=CHART_HOURS * 5,
            alerts=[
                {
                    "when": a.created_at.strftime("%Y-%m-%d %H:%M"),
                    "ago": ago(a.created_at, now),
                    "rule": a.rule_id,
                    "severity": a.severity,
                    "title": a.title or "(untitled)",
                    "feed": a.feed,
                    "link": safe_link(a.url),
                    "also": ", ".join(a.also_reported_by),
                    "deliveries": sorted(a.deliveries.items()),
                }
                for a in recent
            ],
            outbox=sorted(outbox.items()),
            feed_count=len(feeds),
            failing=sum(1 for f in feeds if feed_state(f)[0] == "backoff"),
            legend=OUTCOME_COLOURS,
        )

    def _rule_rows(
        self, now: datetime, alert_times: list[tuple[str, datetime]], hits: dict[str, int]
    ) -> list[RuleRow]:
        per_hour: dict[str, list[int]] = {}
        for rule, created in alert_times:
            slot = CHART_HOURS - 1 - int((now - created).total_seconds() // 3600)
            if 0 <= slot < CHART_HOURS:
                per_hour.setdefault(rule, [0] * CHART_HOURS)[slot] += 1
        names = list(dict.fromkeys([*self.rule_ids(), *sorted(per_hour), *sorted(hits)]))
        peak = max((n for counts in per_hour.values() for n in counts), default=0) or 1
        rows = []
        for rule in names:
            counts = per_hour.get(rule, [0] * CHART_HOURS)
            row = RuleRow(rule=rule, hits=hits.get(rule, 0), alerts_48h=sum(counts))
            for slot, n in enumerate(counts):
                if n:
                    height = max(2, round(22 * n / peak))
                    hour = (now - timedelta(hours=CHART_HOURS - 1 - slot)).strftime("%d %H:00")
                    row.bars.append(Bar(slot * 5, 24 - height, height, f"{hour}: {n} alert(s)"))
            rows.append(row)
        return rows

    def _feed_row(self, feed: FeedState, marks: list[PollMark], now: datetime) -> FeedRow:
        state, label = feed_state(feed)
        strip = [
            (
                i * 5,
                OUTCOME_COLOURS.get(m.outcome, "#adb5bd"),
                f"{m.polled_at:%Y-%m-%d %H:%M:%S} {m.outcome} "
                f"{m.status or ''} {m.error_kind or ''} {m.elapsed_ms} ms",
            )
            for i, m in enumerate(marks[-CHART_HOURS:])
        ]
        return FeedRow(
            name=feed.name,
            host=urlsplit(feed.fetch_url).hostname or "",
            state=state,
            label=label,
            status=str(feed.last_status or ""),
            last_poll=ago(feed.last_polled_at, now),
            next_poll=ago(feed.next_poll_at, now) if state in ("ok", "new", "backoff") else "",
            items="" if feed.last_item_count is None else str(feed.last_item_count),
            error=feed.last_error or "",
            strip=strip,
        )


# --------------------------------------------------------------------------------------------
# The application


class GuardMiddleware:
    """Security headers on every response; the token on every path but the probes."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if self.token is not None and scope["path"] not in OPEN_PATHS:
            headers = dict(scope.get("headers", []))
            if not self.authorised(headers.get(b"authorization", b"")):
                response = Response(
                    "authentication required\n",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": 'Basic realm="wire-monitor", charset="UTF-8"'},
                )
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)

    def authorised(self, header: bytes) -> bool:
        assert self.token is not None
        scheme, _, value = header.partition(b" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == b"bearer":
            return hmac.compare_digest(value, self.token)
        if scheme == b"basic":
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            _, _, password = decoded.partition(b":")
            return hmac.compare_digest(password, self.token)
        return False


async def _in_thread(call: Callable[[], T]) -> T:
    return await asyncio.wait_for(asyncio.to_thread(call), timeout=STORE_TIMEOUT)


def create_app(
    *,
    store: Store,
    metrics: Metrics,
    heartbeat: Heartbeat,
    token: str | None = None,
    secrets: Sequence[str] = (),
    rule_ids: Callable[[], list[str]] = list,
    refresh: int = 30,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """The ASGI application (a test seam: Starlette's TestClient can drive it directly)."""
    masker = Masker([*secrets, *([token] if token else [])])
    page = StatusPage(store, rule_ids, masker, refresh=refresh, clock=clock)

    async def healthz(_: Request) -> Response:
        body = {"status": "ok", "heartbeat_age": round(heartbeat.age(), 3)}
        if heartbeat.stopping:
            body["status"] = "stopping"
        elif not heartbeat.healthy():
            body["status"] = "stale"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    async def readyz(_: Request) -> Response:
        try:
            await _in_thread(store.ping)
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "database": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    async def metrics_endpoint(_: Request) -> Response:
        body = await _in_thread(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def status(_: Request) -> Response:
        try:
            html = await _in_thread(page.render)
        except Exception as exc:
            log.warning("status page failed", extra={"error": masker(exc)})
            return HTMLResponse("<h1>status unavailable</h1>", status_code=503)
        return HTMLResponse(html)

    app = Starlette(
        routes=[
            Route("/", status),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )
    app.add_middleware(GuardMiddleware, token=token)
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT/SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """Serves an ASGI app in the running event loop until ``stop``."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(200):  # bounded: 10 s
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.05)
        if not self._server.started:
            await self.stop()
            raise ConfigError(f"cannot serve HTTP on {self.host}:{self.port}")
        log.info("http listening", extra={"listen": f"{self.host}:{self.port}"})

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"MONITOR_HTTP_LISTEN={self.host}:{self.port}: cannot listen: {exc.strerror}"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; after ``timeout`` seconds the server is cancelled mid-shutdown."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        except SystemExit:  # uvicorn exits on a start-up failure; the daemon reports it
            pass
        self._server = None
