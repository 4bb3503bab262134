"""HTTP: one bounded, policy-checked fetch of one feed, and the timing decisions around it.

SPEC section 7. httpx alone has no overall deadline, decompresses without a bound, follows
redirects anywhere and is slow with one big connection pool (PITFALLS 6-9), so this module
wraps it rather than trusting its defaults.

Public surface::

    FetchLimits(max_bytes, deadline, connect_timeout, user_agent, read_timeout=None)
    FetchRequest(url, etag=None, last_modified=None, headers={}, configured_url=None)
    FetchOutcome(kind, url, status, body, content_type, etag, last_modified, moved_to,
                 retry_after, cache_max_age, error, elapsed, content_hash)
    Fetcher(limits, *, max_concurrency, per_host_concurrency, allowed_private_hosts=frozenset(),
            transport=None, resolver=None, layout="per_host", shards=DEFAULT_SHARDS,
            memory_budget=None)
        async with Fetcher(...) as fetcher: outcome = await fetcher.fetch(request)
        async with fetcher.fetching(request) as outcome: ...   # body counted until the end
    ByteBudget(capacity), BudgetLease                       bytes of bodies in flight, together
    backoff_delay(consecutive_failures, *, base, ceiling, rng, retry_after=None) -> timedelta
    next_interval(base, *, cache_max_age, ttl, respect_cache_hints, min_interval,
                  max_interval) -> timedelta
    ttl_interval(ttl) -> timedelta | None                  RSS <ttl> (minutes)
    parse_retry_after(value, now) -> timedelta | None      seconds or HTTP-date
    parse_max_age(cache_control, age=None) -> timedelta | None
    is_public_address(address) -> bool
    content_hash(body) -> str                              blake2b, 128 bits, hex
    system_resolver(host) -> list[str]                     the default resolver

``Fetcher.fetch`` never raises for a feed-level problem: a dead host, a slow drip, a bomb, a
refused redirect all come back as ``FetchOutcome(kind="error", error=FetchError(..., kind=...))``
with a stable ``kind`` label for metrics and ``monitor status``: ``url`` (not fetchable),
``dns``, ``connect``, ``timeout`` (a read went silent), ``deadline`` (the whole fetch took too
long), ``too_large``, ``encoding``, ``protocol``, ``http`` (other transport errors),
``http_status`` (an answer other than 200/304/410), ``redirect_refused``, ``redirect_loop``,
``redirect_limit``, ``memory_budget`` (not the feed's fault: the bodies of other fetches hold
the whole memory budget; poll it again shortly). Only bugs and cancellation propagate.
Settings are not imported here (layering, SPEC section 9): the CLI and the daemon build
``FetchLimits`` and the budget from them.

What a fetch does, in order:

1. waits for a global slot, then for a slot on the URL's host (politeness), and only then starts
   the overall deadline, so time spent queueing behind other feeds never counts against a feed;
2. sends a conditional GET (If-None-Match / If-Modified-Since) with our User-Agent, advertising
   only the encodings it can decompress with a bound;
3. follows redirects itself, hop by hop (at most ``MAX_REDIRECTS``, loops detected), checking
   every hop against the private-address policy (see ``Fetcher._check_hop``), the first one too
   when it is not on the host the operator configured (a stored permanent move);
4. streams the body and decompresses it itself with a hard output limit, reserving every piece
   in the memory budget shared by all fetches (``ByteBudget``; ``MONITOR_FETCH_MEMORY_BUDGET``)
   before keeping it, so that many large feeds at once cannot add up to more than the budget.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import io
import ipaddress
import math
import random
import re
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Literal, Protocol

import brotli  # type: ignore[import-untyped]
import certifi
import httpx

from monitor.errors import FetchError

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
#: Only encodings we can decompress with a bound (PITFALLS 7).
ACCEPT_ENCODING = "gzip, deflate, br"
READ_CHUNK = 64 * 1024
MAX_REDIRECTS = 5
#: Bodies of 304s, redirects and errors up to this size are read only to keep the connection.
DRAIN_LIMIT = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: Headers that carry credentials: never forwarded when a redirect leaves the origin.
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
#: Clients of the "sharded" layout.
DEFAULT_SHARDS = 8
#: Idle keep-alive connections are cheap to keep for the rest of a polling round.
KEEPALIVE_EXPIRY = 15.0

OutcomeKind = Literal["ok", "not_modified", "gone", "error"]
_KIND_OF_STATUS: dict[int, OutcomeKind] = {200: "ok", 304: "not_modified", 410: "gone"}
ClientLayout = Literal["single", "per_host", "sharded"]
Resolver = Callable[[str], Awaitable[list[str]]]
#: The layout measured fastest by `python -m bench fetch` (docs/benchmarks.md, "Fetching").
DEFAULT_LAYOUT: ClientLayout = "per_host"


@dataclass(frozen=True)
class FetchLimits:
    """How long and how much one fetch may take.

    ``deadline`` bounds the whole fetch (every redirect hop, headers and body);
    ``connect_timeout`` one TCP/TLS connect; ``read_timeout`` the silence between two reads
    (None: only the deadline bounds it).
    """

    max_bytes: int
    deadline: float
    connect_timeout: float
    user_agent: str
    read_timeout: float | None = None


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch: the URL, the validators stored from the last 200, and the URL the
    operator configured when ``url`` is another (a permanent move stored earlier; None: ``url``
    is the configured one). Only the configured URL's host was the operator's choice: any
    other host, the first one included, is held to the private-address policy, and the
    feed's headers go to the configured origin only."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    configured_url: str | None = None


@dataclass(frozen=True)
class FetchOutcome:
    """The result of one fetch; ``kind`` says what the caller should do.

    - ``ok``: a 200 with ``body`` (decompressed); ``content_hash`` lets the caller skip parsing a
      body it has seen before.
    - ``not_modified``: a 304; ``etag``/``last_modified`` are the ones to keep sending.
    - ``gone``: a 410; the caller disables the feed and says so.
    - ``error``: see ``error.kind``; ``retry_after`` is set when a 429/503 asked for a pause.

    ``url`` is the final URL after redirects; ``moved_to`` is set only when every hop was
    permanent (301/308) and the move led to an ok or not_modified answer, so a broken redirect
    never overwrites a good stored URL. ``elapsed`` counts from the start of the deadline.
    """

    kind: OutcomeKind
    url: str
    status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    retry_after: timedelta | None = None
    cache_max_age: timedelta | None = None
    error: FetchError | None = None
    elapsed: float = 0.0
    content_hash: str = ""


# --- pure timing decisions ------------------------------------------------------------------


def backoff_delay(
    consecutive_failures: int,
    *,
    base: timedelta,
    ceiling: timedelta,
    rng: random.Random,
    retry_after: timedelta | None = None,
) -> timedelta:
    """How long to wait before polling a failing feed again; never "give up".

    Exponential (``base * 2**(n-1)``) with "equal jitter": a uniform draw in the upper half of
    the step, so feeds that failed together (one host down) spread out instead of returning in
    a herd, yet the delay still grows. Capped at ``ceiling``, so a feed that comes back is
    noticed within the ceiling. A server's ``Retry-After`` wins when it is longer, but it is
    capped at the ceiling too: a hostile or buggy header must not silence a feed for a year.
    """
    ceiling_s = ceiling.total_seconds()
    delay = 0.0
    if consecutive_failures > 0:
        # The exponent is bounded so that thousands of failures cannot overflow a float.
        step = min(ceiling_s, base.total_seconds() * 2.0 ** min(consecutive_failures - 1, 64))
        delay = step / 2 + rng.uniform(0, step / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after.total_seconds(), ceiling_s))
    return timedelta(seconds=delay)


def next_interval(
    base: timedelta,
    *,
    cache_max_age: timedelta | None,
    ttl: timedelta | None,
    respect_cache_hints: bool,
    min_interval: timedelta,
    max_interval: timedelta,
) -> timedelta:
    """The interval until the next poll of a healthy feed.

    The publisher's hints (RSS ``<ttl>``, ``Cache-Control: max-age``) are a lower bound: polling
    sooner would only fetch the same document. A desk that needs speed sets
    ``respect_cache_hints: false`` and the hints are ignored. The feed's own
    ``[min_interval, max_interval]`` wins over any hint, so a ttl of a day cannot stop a feed
    the operator wants every hour.
    """
    interval = base
    if respect_cache_hints:
        interval = max([interval, *(h for h in (cache_max_age, ttl) if h is not None)])
    return max(min_interval, min(interval, max_interval))


def ttl_interval(ttl: str | int | None) -> timedelta | None:
    """RSS ``<ttl>`` (minutes) as a timedelta; None when absent, malformed or not positive."""
    if ttl is None:
        return None
    try:
        minutes = int(str(ttl).strip())
    except ValueError:
        return None
    return timedelta(minutes=minutes) if minutes > 0 else None


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay from ``now``: delta-seconds or an HTTP-date (RFC 9110 10.2.3).

    A date in the past means "now" (zero); anything unreadable is None (no hint).
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


_MAX_AGE = re.compile(r"(?:^|[,\s])(s-maxage|max-age)\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(no-store|no-cache)(?:$|[,\s=])", re.IGNORECASE)


def parse_max_age(cache_control: str | None, age: str | None = None) -> timedelta | None:
    """The freshness left by ``Cache-Control: max-age`` minus ``Age``; None without a hint.

    ``no-store``/``no-cache`` mean "no hint" (they forbid caching, not polling). A shared-cache
    ``s-maxage`` is read too, since a poller sits where a shared cache would.
    """
    if not cache_control or _NO_CACHE.search(cache_control):
        return None
    ages = [int(m.group(2)) for m in _MAX_AGE.finditer(cache_control)]
    if not ages:
        return None
    spent = int(age) if age and age.strip().isdigit() else 0
    return timedelta(seconds=max(0, max(ages) - spent))


def content_hash(body: bytes) -> str:
    """A short digest of a body: equal bodies need no second parse."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


# --- the private-address policy -------------------------------------------------------------


def is_public_address(address: str) -> bool:
    """Whether an IP address may be reached by a redirect from elsewhere (SPEC section 7).

    Refused: private, loopback, link-local, unique-local, multicast, reserved, unspecified,
    shared (100.64/10) and anything else that is not globally routable; IPv4-mapped IPv6
    addresses are judged by the IPv4 address inside them.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


_RESOLUTION_FAILURES = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated with hostname",
    "name does not resolve",
)


def _is_name_resolution_failure(exc: BaseException) -> bool:
    """httpx reports a failed DNS lookup as a ConnectError; the operator wants to know it was
    the name, not the host, that failed (a gaierror underneath, or its message)."""
    seen: BaseException | None = exc
    for _ in range(5):  # the cause chain, bounded
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return any(text in str(exc).lower() for text in _RESOLUTION_FAILURES)


async def system_resolver(host: str) -> list[str]:
    """Every address the system resolver gives for ``host``, through the loop's executor."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}", kind="dns") from None
    return sorted({str(info[4][0]) for info in infos})


# --- bounded decompression ------------------------------------------------------------------


class _Decoder(Protocol):
    def decompress(self, data: bytes, max_length: int) -> bytes:
        """Up to ``max_length`` bytes of output for ``data``; ``data=b""`` asks for more output
        left over from earlier input (see ``more``)."""
        ...

    def more(self) -> bool:
        """Whether output is pending without new input."""
        ...


class _Identity:
    def decompress(self, data: bytes, max_length: int) -> bytes:
        return data

    def more(self) -> bool:
        return False


class _Zlib:
    """gzip or deflate (zlib-wrapped or raw, as servers send both) in bounded steps."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._inner: zlib._Decompress | None = None
        self._pending = b""
        self._full = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._pending += data
            if len(self._pending) < 2 and not self._gzip:
                return b""
            wbits = 16 + zlib.MAX_WBITS if self._gzip else self._deflate_wbits(self._pending)
            self._inner = zlib.decompressobj(wbits)
            data, self._pending = self._pending, b""
        tail = self._inner.unconsumed_tail
        out = self._inner.decompress(tail + data if tail else data, max_length)
        # a full output buffer may leave output inside zlib even when all input was consumed
        self._full = len(out) >= max_length
        return out

    def more(self) -> bool:
        return self._inner is not None and (self._full or bool(self._inner.unconsumed_tail))

    @staticmethod
    def _deflate_wbits(head: bytes) -> int:
        zlib_wrapped = (head[0] & 0x0F) == 8 and (head[0] << 8 | head[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


class _Brotli:
    def __init__(self) -> None:
        self._inner = brotli.Decompressor()
        self._bounded = True
        self._full = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._bounded:
            try:
                out: bytes = self._inner.process(data, output_buffer_limit=max_length)
            except TypeError:  # brotli < 1.2 has no output limit: bound the damage per chunk
                self._bounded = False
            else:
                # a full buffer (it may overshoot the limit a little) means more may be pending;
                # brotli 1.2.1 still says it can accept more data then
                self._full = len(out) >= max_length
                return out
        return bytes(self._inner.process(data))

    def more(self) -> bool:
        return self._bounded and (self._full or not self._inner.can_accept_more_data())


def _decoder_for(encoding: str | None) -> _Decoder:
    name = (encoding or "identity").strip().lower()
    if name in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if name == "deflate":
        return _Zlib(gzip=False)
    if name == "br":
        return _Brotli()
    if name in ("identity", ""):
        return _Identity()
    raise FetchError(f"unsupported content encoding {encoding!r}", kind="encoding")


#: Reserves bytes of the memory budget for a body as it grows (waits while the budget is full).
Reserve = Callable[[int], Awaitable[None]]


async def read_bounded(
    response: httpx.Response, max_bytes: int, reserve: Reserve | None = None
) -> bytes:
    """The decompressed body, or FetchError as soon as it would exceed ``max_bytes``.

    Decompression is ours (``aiter_raw`` + ``max_length``), in steps of at most ``READ_CHUNK``
    bytes of output, so memory stays near one chunk plus the limit whatever the compression
    ratio; a declared oversize identity body fails at once. ``reserve`` is called with the size
    of every piece before it is kept (the fetcher's memory budget), or once with the whole size
    when the server declared it (an identity body with Content-Length: h11 holds the server to
    it), so such a body never holds part of the budget while it waits for the rest. The body
    is assembled in one buffer, so it is never held twice, and that buffer is freed at once
    when the read fails rather than when the garbage collector gets to the traceback.
    """
    if response.is_stream_consumed:
        # Built in memory (httpx.MockTransport, respx): httpx has read and decoded it already.
        if len(response.content) > max_bytes:
            raise _too_large(max_bytes)
        if reserve is not None:
            await reserve(len(response.content))
        return response.content
    encoding = response.headers.get("content-encoding")
    declared = response.headers.get("content-length", "")
    exact = not encoding and declared.isdigit()
    if exact and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    decoder = _decoder_for(encoding)
    if exact and reserve is not None:
        await reserve(int(declared))
        reserve = None
    body = io.BytesIO()
    size = 0
    try:
        async for raw in response.aiter_raw(READ_CHUNK):
            data = raw
            while True:
                piece = decoder.decompress(data, min(READ_CHUNK, max_bytes - size + 1))
                data = b""
                size += len(piece)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                if piece:
                    if reserve is not None:
                        await reserve(len(piece))
                    body.write(piece)
                if not decoder.more():
                    break
        return body.getvalue()
    except (zlib.error, brotli.error) as exc:
        body.close()
        raise FetchError(f"corrupt compressed body: {exc}", kind="encoding", status=200) from None
    except BaseException:
        body.close()
        raise


def _too_large(max_bytes: int) -> FetchError:
    return FetchError(
        f"body exceeds {max_bytes} bytes after decompression", kind="too_large", status=200
    )


# --- the memory budget ----------------------------------------------------------------------


class ByteBudget:
    """The bytes that the bodies of all fetches in flight may hold together.

    Each fetch takes a ``BudgetLease`` and reserves every piece of its body as it arrives; the
    bytes come back when the lease is released, which the caller of ``Fetcher.fetching`` does
    once it has parsed the body. A reservation that does not fit waits until other leases
    release theirs, the oldest lease first (so the oldest fetch always finishes); the wait does
    not count against the fetch's deadline. Only when every lease holding bytes is itself
    waiting (nobody could ever release), the newest of them gives up with
    ``FetchError(kind="memory_budget")``: its bytes let the older ones finish, and the caller
    polls that feed again shortly. A reservation larger than the whole budget fails at once with
    the same error.

    ``used`` never exceeds ``capacity``; ``peak`` is the most ever used, ``released`` the bytes
    given back so far (the daemon returns freed memory to the system after large amounts).
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a memory budget must be positive")
        self.capacity = capacity
        self.used = 0
        self.peak = 0
        self.released = 0
        self._serial = 0
        self._holders: set[BudgetLease] = set()
        #: Waiting reservations, oldest lease first.
        self._queue: list[tuple[BudgetLease, int, asyncio.Future[None]]] = []

    def lease(self) -> BudgetLease:
        self._serial += 1
        return BudgetLease(self, self._serial)

    @property
    def waiting(self) -> int:
        """How many reservations are waiting for room."""
        return len(self._queue)

    def _grant(self, lease: BudgetLease, amount: int) -> None:
        self.used += amount
        self.peak = max(self.peak, self.used)
        lease.held += amount
        self._holders.add(lease)

    def _try(self, lease: BudgetLease, amount: int) -> bool:
        if self._queue or self.used + amount > self.capacity:
            return False
        self._grant(lease, amount)
        return True

    async def _wait(self, lease: BudgetLease, amount: int) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (lease, amount, future)
        bisect.insort(self._queue, entry, key=lambda waiting: waiting[0].serial)
        lease.waiting = True
        self._settle()
        try:
            await future
        except BaseException:
            if entry in self._queue:  # cancelled while waiting
                self._queue.remove(entry)
                lease.waiting = False
                self._settle()
            raise
        finally:
            del future, entry  # the traceback of a failure would otherwise keep them (a cycle)

    def _release(self, lease: BudgetLease) -> None:
        self.used -= lease.held
        self.released += lease.held
        lease.held = 0
        self._holders.discard(lease)
        self._settle()

    def _settle(self) -> None:
        """Grant waiting reservations in order while they fit; break a deadlock if there is one."""
        while self._queue:
            lease, amount, future = self._queue[0]
            if future.done():  # cancelled, about to leave the queue
                return
            if self.used + amount <= self.capacity:
                del self._queue[0]
                lease.waiting = False
                self._grant(lease, amount)
                future.set_result(None)
                continue
            # ``waiting`` is true exactly while a lease has an entry in the queue
            if any(h.giving_up or not h.waiting for h in self._holders):
                return  # a lease that is not waiting will release (or grow): wait for it
            victim = max(self._holders, key=lambda h: h.serial)
            index = next(i for i, entry in enumerate(self._queue) if entry[0] is victim)
            _, _, victim_future = self._queue.pop(index)
            victim.waiting = False
            victim.giving_up = True
            victim_future.set_exception(victim.exhausted())
            return


class BudgetLease:
    """One fetch's share of a ``ByteBudget``; ``release`` gives every byte back at once."""

    def __init__(self, budget: ByteBudget, serial: int) -> None:
        self.budget = budget
        self.serial = serial
        self.held = 0
        self.waiting = False
        self.giving_up = False

    def try_reserve(self, amount: int) -> bool:
        """Reserve now if there is room and nobody is queued; never waits."""
        return self.budget._try(self, amount)

    async def reserve(self, amount: int) -> None:
        """Reserve ``amount`` more bytes, waiting for room; FetchError(kind="memory_budget")
        when the wait could never end."""
        if self.held + amount > self.budget.capacity:
            raise self.exhausted()
        if not self.budget._try(self, amount):
            await self.budget._wait(self, amount)

    def release(self) -> None:
        self.budget._release(self)

    def exhausted(self) -> FetchError:
        return FetchError(
            f"memory budget of {self.budget.capacity} bytes for bodies in flight is held by "
            "other fetches; polled again shortly",
            kind="memory_budget",
        )


# --- the fetcher ----------------------------------------------------------------------------


@dataclass
class _Hop:
    """One answered request of a redirect chain."""

    url: httpx.URL
    status: int
    headers: httpx.Headers
    body: bytes = b""
    location: httpx.URL | None = None


class _Clients:
    """The httpx clients of a fetcher, laid out so that no connection pool grows large.

    httpcore scans its whole pool under a lock on every request, so one client holding
    hundreds of keep-alive connections costs milliseconds of CPU per request (PITFALLS 9).
    ``per_host`` (the default, fastest in the benchmark) gives each host its own client with a
    pool of ``per_host_concurrency``: a pool never holds more connections than one host may use.
    ``sharded`` spreads hosts over a few clients by a stable hash; ``single`` is the naive
    layout, kept for the benchmark. Clients are created on first use and live until ``aclose``;
    an idle one holds no connection after ``KEEPALIVE_EXPIRY``.
    """

    def __init__(
        self,
        limits: FetchLimits,
        *,
        layout: ClientLayout,
        shards: int,
        max_concurrency: int,
        per_host_concurrency: int,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._limits = limits
        self._layout: ClientLayout = "single" if transport is not None else layout
        self._shards = max(1, shards)
        self._transport = transport
        self._pool_size = {
            "single": max_concurrency,
            "per_host": per_host_concurrency,
            "sharded": math.ceil(max_concurrency / self._shards),
        }[self._layout]
        self._clients: dict[object, httpx.AsyncClient] = {}
        self._ssl: ssl.SSLContext | None = None

    def for_host(self, host: str) -> httpx.AsyncClient:
        key: object = {
            "single": 0,
            "per_host": host,
            "sharded": zlib.crc32(host.encode()) % self._shards,
        }[self._layout]
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._make()
        return client

    def _make(self) -> httpx.AsyncClient:
        if self._ssl is None:
            # One TLS context for all clients: loading the CA bundle costs ~10 ms each time.
            self._ssl = ssl.create_default_context()
            self._ssl.load_verify_locations(certifi.where())
        limits = self._limits
        return httpx.AsyncClient(
            timeout=httpx.Timeout(
                limits.deadline,
                connect=limits.connect_timeout,
                read=limits.read_timeout if limits.read_timeout is not None else limits.deadline,
            ),
            limits=httpx.Limits(
                max_connections=None,  # the fetcher's semaphores bound concurrency
                max_keepalive_connections=self._pool_size,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            ),
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc credentials picked up from the environment
            verify=self._ssl,
            transport=self._transport,
        )

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class Fetcher:
    """Fetches feeds within limits; owns the httpx clients and the concurrency semaphores.

    Use as an async context manager (or call ``aclose``) so the clients are closed. Test seams
    are ``transport`` (e.g. ``httpx.MockTransport``) and ``resolver`` (host -> addresses).

    Redirect policy and its limits: a hop may reach a non-public address only when it stays on
    the host of the configured URL (the operator chose that host) or its host is listed in
    ``allowed_private_hosts``; a stored permanent move is such a hop on every poll
    (``FetchRequest.configured_url``). The check resolves the hop's host before the request
    and, on a real socket, also checks the address actually connected to before the body is
    read or a further hop is followed. That second check narrows, but cannot close, the
    DNS-rebinding gap between resolving and connecting: the request itself has been sent by
    then. Closing it fully would need connecting to the checked address ourselves (a custom
    httpcore network backend).
    """

    def __init__(
        self,
        limits: FetchLimits,
        *,
        max_concurrency: int,
        per_host_concurrency: int,
        allowed_private_hosts: frozenset[str] = frozenset(),
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        layout: ClientLayout = DEFAULT_LAYOUT,
        shards: int = DEFAULT_SHARDS,
        memory_budget: int | None = None,
    ) -> None:
        self.limits = limits
        if memory_budget is not None and memory_budget < limits.max_bytes:
            raise ValueError(
                f"memory budget {memory_budget} is smaller than the byte limit of one feed "
                f"({limits.max_bytes}): a feed of the largest allowed size could never be read"
            )
        #: Shared by every fetch of this fetcher; None: bodies in flight are not bounded together.
        self.budget = ByteBudget(memory_budget) if memory_budget is not None else None
        self._global = asyncio.Semaphore(max_concurrency)
        self._per_host_concurrency = per_host_concurrency
        # One semaphore per host ever fetched: bounded by the number of feed hosts.
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._allowed_private = frozenset(h.lower() for h in allowed_private_hosts)
        self._resolve = resolver or system_resolver
        self._clients = _Clients(
            limits,
            layout=layout,
            shards=shards,
            max_concurrency=max_concurrency,
            per_host_concurrency=per_host_concurrency,
            transport=transport,
        )
        self._base_headers = {
            "User-Agent": limits.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every client (and so every pooled connection)."""
        await self._clients.aclose()

    async def fetch(self, request: FetchRequest) -> FetchOutcome:
        """Fetch one feed; every feed-level problem is an ``error`` outcome, never an exception.

        The body's share of the memory budget is given back when this returns; a caller that
        keeps the body for a while (to parse it) uses ``fetching`` instead.
        """
        async with self.fetching(request) as outcome:
            return outcome

    @asynccontextmanager
    async def fetching(self, request: FetchRequest) -> AsyncIterator[FetchOutcome]:
        """``fetch``, with the body counted against the memory budget until the block ends."""
        lease = self.budget.lease() if self.budget is not None else None
        try:
            yield await self._fetch(request, lease)
        finally:
            if lease is not None:
                lease.release()

    async def _fetch(self, request: FetchRequest, lease: BudgetLease | None) -> FetchOutcome:
        attempt = _Attempt(request, lease)
        try:
            url = _checked_url(httpx.URL(request.url))
        except httpx.InvalidURL as exc:
            return attempt.failed(FetchError(f"invalid URL: {exc}", kind="url"))
        except FetchError as exc:
            return attempt.failed(exc)
        async with self._global:
            try:
                async with asyncio.timeout(None) as deadline:
                    await self._follow(url, attempt, deadline)
            except TimeoutError:
                return attempt.failed(
                    FetchError(
                        f"no complete answer within {self.limits.deadline:g}s", kind="deadline"
                    )
                )
            except FetchError as exc:
                return attempt.failed(exc)
        return attempt.answered()

    async def _follow(self, url: httpx.URL, attempt: _Attempt, deadline: asyncio.Timeout) -> None:
        """Request ``url`` and follow redirects hop by hop, recording each answer in ``attempt``.

        The deadline starts once the first host slot is held: queueing is not the feed's fault.
        Every hop off the configured host is checked, the first one too: after a 301 the
        moved-to host is fetched directly, and its name may resolve inside the network later.
        """
        request = attempt.request
        configured = httpx.URL(request.configured_url) if request.configured_url else url
        origin = (configured.scheme, configured.host.lower())
        headers = {**self._base_headers, **request.headers}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        seen = {str(url)}
        while True:
            host = url.host.lower()
            must_be_public = await self._check_hop(url, origin[1])
            if (url.scheme, host) != origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
            async with self._host_slot(host):
                if attempt.started is None:
                    attempt.started = time.monotonic()
                    deadline.reschedule(asyncio.get_running_loop().time() + self.limits.deadline)
                hop = await self._request(
                    url,
                    headers,
                    peer_must_be_public=must_be_public,
                    reserve=self._reserver(attempt.lease, deadline),
                )
            attempt.hops.append(hop)
            if hop.location is None:
                return
            if len(attempt.hops) > MAX_REDIRECTS:
                raise FetchError(
                    f"more than {MAX_REDIRECTS} redirects", kind="redirect_limit", status=hop.status
                )
            url = hop.location
            if str(url) in seen:
                raise FetchError(f"redirect loop at {url}", kind="redirect_loop", status=hop.status)
            seen.add(str(url))

    def _reserver(self, lease: BudgetLease | None, deadline: asyncio.Timeout) -> Reserve | None:
        """Budget reservations for one body. Time spent waiting for room is not the feed's
        fault, so the deadline stops while a reservation waits; a wait longer than the deadline
        itself gives up with ``memory_budget`` (the caller polls again shortly) rather than
        keeping a server's connection open indefinitely."""
        if lease is None:
            return None
        wait_limit = self.limits.deadline

        async def reserve(amount: int) -> None:
            if lease.try_reserve(amount):
                return
            loop = asyncio.get_running_loop()
            when = deadline.when()
            deadline.reschedule(None)
            started = loop.time()
            try:
                # waiting longer than a whole fetch may take: give the connection up, poll later
                async with asyncio.timeout(wait_limit):
                    await lease.reserve(amount)
            except TimeoutError:
                raise lease.exhausted() from None
            finally:
                if when is not None:
                    deadline.reschedule(when + (loop.time() - started))

        return reserve

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self._per_host_concurrency)
        return slot

    async def _check_hop(self, url: httpx.URL, origin_host: str) -> bool:
        """Refuse a hop off the configured host into a non-public address (SPEC section 7).

        Returns whether the hop was checked, i.e. whether the connected peer must be public too.
        """
        host = url.host.lower()
        if host == origin_host or host in self._allowed_private:
            return False
        literal = _ip_literal(host)
        addresses = [literal] if literal else await self._resolve(host)
        if not addresses:
            raise FetchError(f"cannot resolve {host}: no address", kind="dns")
        private = [a for a in addresses if not is_public_address(a)]
        if private:
            raise FetchError(
                f"redirect to {url} refused: {host} resolves to non-public {private[0]}",
                kind="redirect_refused",
            )
        return True

    async def _request(
        self,
        url: httpx.URL,
        headers: Mapping[str, str],
        *,
        peer_must_be_public: bool,
        reserve: Reserve | None = None,
    ) -> _Hop:
        """One GET; reads the body of a 200 only, within the byte limit."""
        client = self._clients.for_host(url.host.lower())
        try:
            async with client.stream("GET", url, headers=headers) as response:
                if peer_must_be_public:
                    _check_peer(response, url)
                hop = _Hop(url, response.status_code, response.headers)
                if hop.status in REDIRECT_STATUSES:
                    hop.location = _location(response)
                if hop.status == 200:
                    hop.body = await read_bounded(response, self.limits.max_bytes, reserve)
                else:
                    await _drain(response)
                return hop
        except httpx.ConnectTimeout:
            raise FetchError(
                f"connect timed out after {self.limits.connect_timeout:g}s", kind="connect"
            ) from None
        except httpx.ConnectError as exc:
            if _is_name_resolution_failure(exc):
                raise FetchError(f"cannot resolve {url.host}: {exc}", kind="dns") from None
            raise FetchError(f"cannot connect: {exc}", kind="connect") from None
        except httpx.TimeoutException as exc:
            raise FetchError(f"timed out: {type(exc).__name__}", kind="timeout") from None
        except httpx.RemoteProtocolError as exc:
            raise FetchError(f"protocol error: {exc}", kind="protocol") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}", kind="http") from None


async def _drain(response: httpx.Response, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop a small body (304, redirect, error page) so the connection can be reused.

    httpcore closes a connection whose response was not read to the end; for a 304 that is an
    empty read, but skipping it cost a new TCP connection on every conditional poll. A body
    beyond ``limit`` is not worth reading: the connection is closed instead.
    """
    if response.is_stream_consumed:  # built in memory: nothing on the wire to drain
        return
    size = 0
    async for raw in response.aiter_raw(READ_CHUNK):
        size += len(raw)
        if size > limit:
            return


def _checked_url(url: httpx.URL) -> httpx.URL:
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchError(f"{url}: only http(s) URLs with a host can be fetched", kind="url")
    return url


def _location(response: httpx.Response) -> httpx.URL:
    """The absolute target of a redirect; only http(s) targets are followed."""
    location = response.headers.get("location")
    if not location:
        raise FetchError(
            f"HTTP {response.status_code} without Location",
            kind="http_status",
            status=response.status_code,
        )
    try:
        target = response.url.join(location)
    except httpx.InvalidURL as exc:
        raise FetchError(f"bad redirect Location {location!r}: {exc}", kind="url") from None
    try:
        return _checked_url(target)
    except FetchError as exc:
        raise FetchError(f"redirect refused: {exc}", kind="redirect_refused") from None


def _check_peer(response: httpx.Response, url: httpx.URL) -> None:
    """The address actually connected to must be public as well (narrows DNS rebinding)."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not is_public_address(str(peer[0])):
        raise FetchError(
            f"redirect to {url} refused: connected to non-public {peer[0]}",
            kind="redirect_refused",
        )


def _retry_after(hop: _Hop) -> timedelta | None:
    if hop.status not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(hop.headers.get("retry-after"), datetime.now(UTC))


@dataclass
class _Attempt:
    """One fetch in progress: the request, when its deadline started and the answers so far."""

    request: FetchRequest
    lease: BudgetLease | None = None
    started: float | None = None
    hops: list[_Hop] = field(default_factory=list)

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    def failed(self, error: FetchError) -> FetchOutcome:
        """An error outcome; the message names the configured URL so a log line stands alone."""
        error.args = (f"{self.request.url}: {error.args[0]}",)
        return FetchOutcome(
            "error",
            url=str(self.hops[-1].url) if self.hops else self.request.url,
            status=error.status,
            error=error,
            elapsed=self.elapsed(),
        )

    def answered(self) -> FetchOutcome:
        """The outcome of the final answer of the chain."""
        final = self.hops[-1]
        headers = final.headers
        status = final.status
        if status not in (200, 304, 410):
            error = FetchError(f"HTTP {status}", kind="http_status", status=status)
            return replace(self.failed(error), retry_after=_retry_after(final))
        kind = _KIND_OF_STATUS[status]
        permanent = all(h.status in PERMANENT_REDIRECTS for h in self.hops[:-1])
        moved = len(self.hops) > 1 and permanent and kind != "gone"
        keep_validators = kind == "not_modified"  # a 304 need not repeat them
        return FetchOutcome(
            kind,
            url=str(final.url),
            status=status,
            body=final.body,
            content_type=headers.get("content-type"),
            etag=headers.get("etag") or (self.request.etag if keep_validators else None),
            last_modified=headers.get("last-modified")
            or (self.request.last_modified if keep_validators else None),
            moved_to=str(final.url) if moved else None,
            cache_max_age=parse_max_age(headers.get("cache-control"), headers.get("age")),
            elapsed=self.elapsed(),
            content_hash=content_hash(final.body) if kind == "ok" else "",
        )
