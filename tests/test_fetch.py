"""The fetch stage against a real HTTP server on loopback (tests/feedserver.py).

Pure timing decisions (backoff, intervals, header parsing) are tested directly; everything that
touches HTTP goes over a real socket, because the pitfalls it guards against (no total deadline,
unbounded decompression, redirects into the operator's network) only show on one.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial

import httpx
import pytest

from monitor.errors import FetchError
from monitor.fetch import (
    ByteBudget,
    Fetcher,
    FetchLimits,
    FetchRequest,
    backoff_delay,
    is_public_address,
    next_interval,
    parse_max_age,
    parse_retry_after,
    ttl_interval,
)
from tests.feedserver import MIB, FeedServer, Route, brotli_bomb, deflate_bomb, endless, gzip_bomb

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
UA = "wire-monitor/test (+https://example.org/wire-monitor)"
LIMITS = FetchLimits(max_bytes=MIB, deadline=5.0, connect_timeout=2.0, user_agent=UA)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer(hosts=("127.0.0.1", "127.0.0.2")) as running:
        yield running


def make_fetcher(limits: FetchLimits = LIMITS, **kwargs: object) -> Fetcher:
    options: dict[str, object] = {"max_concurrency": 10, "per_host_concurrency": 4} | kwargs
    return Fetcher(limits, **options)  # type: ignore[arg-type]


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with make_fetcher() as running:
        yield running


# --- conditional GET, validators, content hash -----------------------------------------------


async def test_200_with_validators_then_304_on_the_conditional_request(
    server: FeedServer, fetcher: Fetcher
) -> None:
    lm = "Tue, 24 Nov 2026 10:00:00 GMT"
    server.routes["/feed"] = Route(
        body=FEED, etag='"v1"', last_modified=lm, headers={"Content-Type": "application/rss+xml"}
    )
    first = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert first.kind == "ok" and first.status == 200 and first.body == FEED
    assert (first.etag, first.last_modified) == ('"v1"', lm)
    assert first.content_type == "application/rss+xml"
    assert first.error is None and first.elapsed > 0 and first.content_hash

    second = await fetcher.fetch(
        FetchRequest(server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    )
    assert second.kind == "not_modified" and second.status == 304 and second.body == b""
    assert second.etag == '"v1"' and second.last_modified == lm
    sent = server.received("/feed")[-1].headers
    assert sent["if-none-match"] == '"v1"' and sent["if-modified-since"] == lm


async def test_first_request_is_unconditional_and_sends_user_agent_and_encodings(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/feed"] = Route(body=FEED)
    await fetcher.fetch(FetchRequest(server.url("/feed"), headers={"X-Extra": "1"}))
    sent = server.received("/feed")[0].headers
    assert sent["user-agent"] == UA
    assert sent["accept-encoding"] == "gzip, deflate, br"
    assert sent["x-extra"] == "1"
    assert "if-none-match" not in sent and "if-modified-since" not in sent


async def test_connections_are_kept_alive_across_200_304_and_redirects(
    server: FeedServer, fetcher: Fetcher
) -> None:
    """A 304 or redirect body left unread would cost a new connection on every poll."""
    server.routes["/feed"] = Route(body=FEED, etag='"v1"')
    server.routes["/old"] = Route.redirect(301, "/feed")
    server.routes["/missing"] = Route(status=404, body=b"no such feed")
    await fetcher.fetch(FetchRequest(server.url("/feed")))
    for path in ("/feed", "/old", "/missing", "/feed"):
        await fetcher.fetch(FetchRequest(server.url(path), etag='"v1"'))
    assert len(server.requests) == 6 and server.connections == 1


async def test_unchanged_body_gives_the_same_content_hash(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/feed"] = Route(body=FEED)
    first = await fetcher.fetch(FetchRequest(server.url("/feed")))
    server.routes["/feed"] = Route(body=gzip.compress(FEED), headers={"Content-Encoding": "gzip"})
    same = await fetcher.fetch(FetchRequest(server.url("/feed")))
    server.routes["/feed"] = Route(body=FEED + b" ")
    changed = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert same.body == FEED
    assert first.content_hash == same.content_hash != changed.content_hash


# --- status handling --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds(server: FeedServer, fetcher: Fetcher, status: int) -> None:
    server.routes["/feed"] = Route(status=status, headers={"Retry-After": "120"})
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "error" and outcome.status == status
    assert outcome.retry_after == timedelta(seconds=120)
    assert outcome.error is not None and outcome.error.kind == "http_status"
    assert outcome.error.status == status and f"HTTP {status}" in str(outcome.error)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_as_http_date(server: FeedServer, fetcher: Fetcher, status: int) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    server.routes["/feed"] = Route(
        status=status, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.retry_after is not None
    assert timedelta(minutes=59) <= outcome.retry_after <= timedelta(hours=1)


async def test_other_errors_carry_no_retry_after(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Route(status=500, headers={"Retry-After": "120"})
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "error" and outcome.status == 500 and outcome.retry_after is None


async def test_cache_control_max_age_is_reported(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Route(
        body=FEED, headers={"Cache-Control": "public, max-age=900", "Age": "100"}
    )
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.cache_max_age == timedelta(seconds=800)


async def test_410_is_gone(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = Route(status=410, body=b"gone for good")
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "gone" and outcome.status == 410 and outcome.error is None


async def test_connection_refused_is_a_connect_error(fetcher: Fetcher) -> None:
    with FeedServer() as stopped:
        url = stopped.url("/feed")
    outcome = await fetcher.fetch(FetchRequest(url))
    assert outcome.kind == "error" and outcome.error is not None
    assert outcome.error.kind == "connect" and url in str(outcome.error)


async def test_bad_urls_are_errors_not_exceptions(fetcher: Fetcher) -> None:
    for url in ("ftp://127.0.0.1/feed", "not a url", "http:///nohost"):
        outcome = await fetcher.fetch(FetchRequest(url))
        assert outcome.kind == "error" and outcome.error is not None
        assert outcome.error.kind == "url"


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
async def test_permanent_redirect_reports_the_move(
    server: FeedServer, fetcher: Fetcher, status: int
) -> None:
    server.routes["/old"] = Route.redirect(status, "/new")
    server.routes["/new"] = Route(body=FEED)
    outcome = await fetcher.fetch(FetchRequest(server.url("/old")))
    assert outcome.kind == "ok" and outcome.body == FEED
    assert outcome.url == outcome.moved_to == server.url("/new")


@pytest.mark.parametrize("status", [302, 303, 307])
async def test_temporary_redirect_is_followed_without_a_move(
    server: FeedServer, fetcher: Fetcher, status: int
) -> None:
    server.routes["/old"] = Route.redirect(status, server.url("/new"))
    server.routes["/new"] = Route(body=FEED)
    outcome = await fetcher.fetch(FetchRequest(server.url("/old")))
    assert outcome.kind == "ok" and outcome.url == server.url("/new")
    assert outcome.moved_to is None


async def test_a_chain_is_a_move_only_when_every_hop_is_permanent(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/a"] = Route.redirect(301, "/b")
    server.routes["/b"] = Route.redirect(302, "/c")
    server.routes["/c"] = Route(body=FEED)
    outcome = await fetcher.fetch(FetchRequest(server.url("/a")))
    assert outcome.kind == "ok" and outcome.moved_to is None
    server.routes["/b"] = Route.redirect(308, "/c")
    outcome = await fetcher.fetch(FetchRequest(server.url("/a")))
    assert outcome.moved_to == server.url("/c")


async def test_a_permanent_move_to_a_broken_url_is_not_reported(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/old"] = Route.redirect(301, "/missing")
    outcome = await fetcher.fetch(FetchRequest(server.url("/old")))
    assert outcome.kind == "error" and outcome.status == 404 and outcome.moved_to is None


async def test_redirect_loop_is_detected(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/a"] = Route.redirect(302, "/b")
    server.routes["/b"] = Route.redirect(302, "/a")
    outcome = await fetcher.fetch(FetchRequest(server.url("/a")))
    assert outcome.kind == "error" and outcome.error is not None
    assert outcome.error.kind == "redirect_loop"
    assert len(server.requests) == 2


async def test_at_most_five_redirects(server: FeedServer, fetcher: Fetcher) -> None:
    for i in range(7):
        server.routes[f"/{i}"] = Route.redirect(302, f"/{i + 1}")
    server.routes["/7"] = Route(body=FEED)
    outcome = await fetcher.fetch(FetchRequest(server.url("/0")))
    assert outcome.error is not None and outcome.error.kind == "redirect_limit"
    assert len(server.requests) == 6
    outcome = await fetcher.fetch(FetchRequest(server.url("/2")))
    assert outcome.kind == "ok"


async def test_redirect_to_another_private_host_is_refused(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/feed"] = Route.redirect(302, server.url("/internal", host="127.0.0.2"))
    server.routes["/internal"] = Route(body=b"secret")
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "error" and outcome.error is not None
    assert outcome.error.kind == "redirect_refused"
    assert "127.0.0.2" in str(outcome.error)
    assert server.received("/internal") == []


async def test_redirect_on_the_configured_host_is_allowed(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/feed"] = Route.redirect(302, server.url("/other"))
    server.routes["/other"] = Route(body=FEED)
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "ok"


async def test_allowed_private_hosts_let_the_redirect_through(server: FeedServer) -> None:
    server.routes["/feed"] = Route.redirect(302, server.url("/internal", host="127.0.0.2"))
    server.routes["/internal"] = Route(body=FEED)
    async with make_fetcher(allowed_private_hosts=frozenset({"127.0.0.2"})) as fetcher:
        outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "ok" and outcome.url == server.url("/internal", host="127.0.0.2")


async def test_a_public_name_resolving_privately_is_refused(server: FeedServer) -> None:
    """A public-looking host that resolves into the operator's network is refused too."""

    async def resolver(host: str) -> list[str]:
        return {"feeds.example.com": ["93.184.216.34", "10.0.0.5"]}[host]

    server.routes["/feed"] = Route.redirect(302, "http://feeds.example.com/feed")
    async with make_fetcher(resolver=resolver) as fetcher:
        outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.error is not None and outcome.error.kind == "redirect_refused"
    assert "10.0.0.5" in str(outcome.error)


async def test_a_public_feed_redirecting_into_a_private_address_is_refused() -> None:
    """Over a mock transport, since a public server cannot be reached from the tests."""
    hits: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        if request.url.host == "feeds.example.com":
            return httpx.Response(301, headers={"Location": "http://192.168.1.1/admin"})
        return httpx.Response(200, content=b"router admin")

    async def resolver(host: str) -> list[str]:
        raise AssertionError("IP literals are not resolved")

    transport = httpx.MockTransport(answer)
    async with make_fetcher(transport=transport, resolver=resolver) as fetcher:
        outcome = await fetcher.fetch(FetchRequest("https://feeds.example.com/rss"))
    assert outcome.error is not None and outcome.error.kind == "redirect_refused"
    assert hits == ["https://feeds.example.com/rss"]


async def test_credentials_are_not_forwarded_to_another_host(server: FeedServer) -> None:
    server.routes["/feed"] = Route.redirect(302, server.url("/next", host="127.0.0.2"))
    server.routes["/next"] = Route(body=FEED)
    async with make_fetcher(allowed_private_hosts=frozenset({"127.0.0.2"})) as fetcher:
        headers = {"Authorization": "Bearer t", "X-Keep": "1"}
        await fetcher.fetch(FetchRequest(server.url("/feed"), headers=headers))
    first, second = server.received("/feed")[0], server.received("/next")[0]
    assert first.headers["authorization"] == "Bearer t"
    assert "authorization" not in second.headers and second.headers["x-keep"] == "1"


async def test_a_stored_move_off_the_configured_host_is_checked_on_the_first_hop(
    server: FeedServer,
) -> None:
    """After a 301 the moved-to URL is fetched directly; it is not the operator's choice, so
    its first hop gets the redirect policy, and the feed's credentials stay home."""
    server.routes["/moved"] = Route(body=FEED)
    request = FetchRequest(
        server.url("/moved", host="127.0.0.2"),
        configured_url=server.url("/feed"),
        headers={"Authorization": "Bearer t"},
    )
    async with make_fetcher() as fetcher:
        refused = await fetcher.fetch(request)
    assert refused.error is not None and refused.error.kind == "redirect_refused"
    assert server.received("/moved") == []

    async with make_fetcher(allowed_private_hosts=frozenset({"127.0.0.2"})) as fetcher:
        allowed = await fetcher.fetch(request)
    assert allowed.kind == "ok"
    assert "authorization" not in server.received("/moved")[0].headers


async def test_a_mock_transport_is_a_seam_too() -> None:
    """Bodies built in memory (MockTransport, respx) are taken as they are, still size-checked."""

    def answer(request: httpx.Request) -> httpx.Response:
        size = 10 if request.url.path == "/small" else MIB + 1
        return httpx.Response(200, content=b"x" * size)

    async with make_fetcher(transport=httpx.MockTransport(answer)) as fetcher:
        small = await fetcher.fetch(FetchRequest("https://feeds.example.com/small"))
        big = await fetcher.fetch(FetchRequest("https://feeds.example.com/big"))
    assert small.kind == "ok" and small.body == b"x" * 10
    assert big.error is not None and big.error.kind == "too_large"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.2", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("ff02::1", False),
        ("not an address", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


# --- deadline and byte limits ----------------------------------------------------------------


async def test_deadline_cuts_off_a_one_byte_per_second_server(server: FeedServer) -> None:
    server.routes["/drip"] = Route(body=FEED, drip=1.0)
    limits = FetchLimits(max_bytes=MIB, deadline=1.5, connect_timeout=1.0, user_agent=UA)
    async with make_fetcher(limits) as fetcher:
        start = time.monotonic()
        outcome = await fetcher.fetch(FetchRequest(server.url("/drip")))
        took = time.monotonic() - start
    assert outcome.error is not None and outcome.error.kind == "deadline"
    assert "1.5s" in str(outcome.error)
    assert 1.4 <= took < 1.5 + 0.5
    assert 1.4 <= outcome.elapsed < 2.0


async def test_deadline_covers_every_redirect_hop(server: FeedServer) -> None:
    for i in range(4):
        server.routes[f"/{i}"] = Route(status=302, headers={"Location": f"/{i + 1}"}, delay=0.4)
    server.routes["/4"] = Route(body=FEED)
    limits = FetchLimits(max_bytes=MIB, deadline=1.0, connect_timeout=1.0, user_agent=UA)
    async with make_fetcher(limits) as fetcher:
        start = time.monotonic()
        outcome = await fetcher.fetch(FetchRequest(server.url("/0")))
    assert outcome.error is not None and outcome.error.kind == "deadline"
    assert time.monotonic() - start < 1.5


async def test_read_timeout_is_its_own_kind(server: FeedServer) -> None:
    server.routes["/slow"] = Route(body=FEED, delay=2.0)
    limits = FetchLimits(
        max_bytes=MIB, deadline=5.0, connect_timeout=1.0, user_agent=UA, read_timeout=0.3
    )
    async with make_fetcher(limits) as fetcher:
        outcome = await fetcher.fetch(FetchRequest(server.url("/slow")))
    assert outcome.error is not None and outcome.error.kind == "timeout"


async def test_byte_limit_on_a_plain_body(server: FeedServer) -> None:
    server.routes["/big"] = Route(body=b"x" * (MIB + 1))
    server.routes["/exact"] = Route(body=b"x" * MIB)
    server.routes["/endless"] = Route(stream=endless)
    async with make_fetcher() as fetcher:
        big = await fetcher.fetch(FetchRequest(server.url("/big")))
        exact = await fetcher.fetch(FetchRequest(server.url("/exact")))
        stream = await fetcher.fetch(FetchRequest(server.url("/endless")))
    assert big.error is not None and big.error.kind == "too_large"
    assert exact.kind == "ok" and len(exact.body) == MIB
    assert stream.error is not None and stream.error.kind == "too_large"
    assert server.bytes_sent["/endless"] < 8 * MIB


@pytest.mark.parametrize(
    ("encoding", "bomb"), [("gzip", gzip_bomb), ("deflate", deflate_bomb), ("br", brotli_bomb)]
)
async def test_decompression_bombs_abort_near_the_limit(
    server: FeedServer, encoding: str, bomb: object
) -> None:
    """1 GiB of zeros, compressed ~1000:1, against a 1 MiB limit: abort early, memory bounded."""
    server.routes["/bomb"] = Route(stream=bomb, headers={"Content-Encoding": encoding})  # type: ignore[arg-type]
    async with make_fetcher() as fetcher:
        tracemalloc.start()
        try:
            outcome = await fetcher.fetch(FetchRequest(server.url("/bomb")))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert outcome.error is not None and outcome.error.kind == "too_large"
    assert "after decompression" in str(outcome.error)
    assert peak < 16 * MIB
    # the server got no further than a few MiB of zeros into the 1 GiB
    assert server.bytes_sent["/bomb"] < 64 * 1024 * 1024 // 1000 + 512 * 1024


async def test_corrupt_compressed_body_is_an_encoding_error(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.routes["/bad"] = Route(body=b"this is not gzip", headers={"Content-Encoding": "gzip"})
    server.routes["/zstd"] = Route(body=b"whatever", headers={"Content-Encoding": "zstd"})
    for path in ("/bad", "/zstd"):
        outcome = await fetcher.fetch(FetchRequest(server.url(path)))
        assert outcome.error is not None and outcome.error.kind == "encoding"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_bodies_within_the_limit_are_decoded(
    server: FeedServer, fetcher: Fetcher, encoding: str
) -> None:
    import zlib

    import brotli

    body = FEED * 1000
    encoded = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[encoding]
    server.routes["/feed"] = Route(body=encoded(body), headers={"Content-Encoding": encoding})
    outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    assert outcome.kind == "ok" and outcome.body == body


# --- concurrency ------------------------------------------------------------------------------


async def test_per_host_and_global_concurrency_limits(server: FeedServer) -> None:
    server.routes["/slow"] = Route(body=FEED, delay=0.15)
    urls = [server.url("/slow", host=h) for h in ("127.0.0.1", "127.0.0.2") for _ in range(8)]
    async with make_fetcher(max_concurrency=3, per_host_concurrency=2) as fetcher:
        outcomes = await asyncio.gather(*(fetcher.fetch(FetchRequest(u)) for u in urls))
    assert all(o.kind == "ok" for o in outcomes)
    assert server.max_active == 3
    assert max(server.max_active_by_host.values()) == 2
    # queueing for a slot does not count against a feed's deadline
    assert max(o.elapsed for o in outcomes) < 1.0


@pytest.mark.parametrize("layout", ["single", "per_host", "sharded"])
async def test_every_client_layout_fetches(server: FeedServer, layout: str) -> None:
    server.routes["/feed"] = Route(body=FEED)
    urls = [server.url("/feed", host=h) for h in ("127.0.0.1", "127.0.0.2") for _ in range(5)]
    async with make_fetcher(layout=layout, shards=2) as fetcher:
        outcomes = await asyncio.gather(*(fetcher.fetch(FetchRequest(u)) for u in urls))
    assert [o.kind for o in outcomes] == ["ok"] * 10


async def test_clients_are_closed_on_exit(server: FeedServer) -> None:
    server.routes["/feed"] = Route(body=FEED)
    fetcher = make_fetcher()
    async with fetcher:
        await fetcher.fetch(FetchRequest(server.url("/feed")))
        clients = list(fetcher._clients._clients.values())
    assert clients and all(c.is_closed for c in clients)


# --- pure timing decisions ----------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_up_to_the_ceiling() -> None:
    rng = random.Random(7)
    base, ceiling = timedelta(minutes=1), timedelta(hours=6)
    delays = [
        backoff_delay(n, base=base, ceiling=ceiling, rng=rng) for n in range(1, 12) for _ in "ab"
    ]
    for n in range(1, 9):  # below the ceiling: within [step/2, step], step = base * 2**(n-1)
        step = base * 2 ** (n - 1)
        assert step / 2 <= delays[2 * (n - 1)] <= step
    assert all(ceiling / 2 <= d <= ceiling for d in delays[-4:])
    assert len(set(delays)) == len(delays)  # jitter: no two alike
    huge = backoff_delay(10_000, base=base, ceiling=ceiling, rng=rng)
    assert huge is not None and ceiling / 2 <= huge <= ceiling
    assert backoff_delay(0, base=base, ceiling=ceiling, rng=rng) == timedelta(0)


def test_retry_after_wins_when_longer_but_not_beyond_the_ceiling() -> None:
    rng = random.Random(1)
    kwargs = {"base": timedelta(minutes=1), "ceiling": timedelta(hours=6), "rng": rng}
    longer = backoff_delay(1, retry_after=timedelta(hours=1), **kwargs)  # type: ignore[arg-type]
    assert longer == timedelta(hours=1)
    shorter = backoff_delay(8, retry_after=timedelta(seconds=5), **kwargs)  # type: ignore[arg-type]
    assert shorter >= timedelta(minutes=64)
    absurd = backoff_delay(1, retry_after=timedelta(days=365), **kwargs)  # type: ignore[arg-type]
    assert absurd == timedelta(hours=6)


def test_next_interval_respects_hints_as_a_lower_bound_within_bounds() -> None:
    def interval(**kwargs: object) -> timedelta:
        options: dict[str, object] = {
            "cache_max_age": None,
            "ttl": None,
            "respect_cache_hints": True,
            "min_interval": timedelta(minutes=1),
            "max_interval": timedelta(hours=1),
        } | kwargs
        return next_interval(timedelta(minutes=5), **options)  # type: ignore[arg-type]

    assert interval() == timedelta(minutes=5)
    assert interval(ttl=timedelta(minutes=30)) == timedelta(minutes=30)
    assert interval(cache_max_age=timedelta(minutes=10)) == timedelta(minutes=10)
    assert interval(cache_max_age=timedelta(minutes=1)) == timedelta(minutes=5)
    both = interval(ttl=timedelta(minutes=20), cache_max_age=timedelta(minutes=40))
    assert both == timedelta(minutes=40)
    assert interval(ttl=timedelta(days=1)) == timedelta(hours=1)
    assert interval(ttl=timedelta(days=1), respect_cache_hints=False) == timedelta(minutes=5)
    assert interval(min_interval=timedelta(minutes=10)) == timedelta(minutes=10)


def test_ttl_interval_reads_minutes() -> None:
    assert ttl_interval("60") == timedelta(hours=1)
    assert ttl_interval(15) == timedelta(minutes=15)
    for bad in (None, "", "soon", "0", "-5"):
        assert ttl_interval(bad) is None


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert parse_retry_after("30", now) == timedelta(seconds=30)
    assert parse_retry_after("Tue, 24 Nov 2026 12:05:00 GMT", now) == timedelta(minutes=5)
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == timedelta(0)
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad, now) is None


def test_parse_max_age() -> None:
    assert parse_max_age("max-age=300") == timedelta(minutes=5)
    assert parse_max_age("public, s-maxage=600, max-age=60") == timedelta(minutes=10)
    assert parse_max_age("max-age=300", age="400") == timedelta(0)
    for bad in (None, "", "public", "no-store, max-age=300", "no-cache", "max-age=abc"):
        assert parse_max_age(bad) is None


# --- the memory budget shared by all fetches ---------------------------------------------------


async def test_a_reservation_waits_for_room_oldest_lease_first() -> None:
    budget = ByteBudget(100)
    old, young, holder = budget.lease(), budget.lease(), budget.lease()
    assert holder.try_reserve(90)
    young_waits = asyncio.create_task(young.reserve(20))
    await asyncio.sleep(0)
    old_waits = asyncio.create_task(old.reserve(20))
    await asyncio.sleep(0)
    assert budget.waiting == 2 and budget.used == 90
    holder.release()
    await asyncio.sleep(0)
    # room for both now; the older lease was served first although it asked later
    assert old_waits.done() and young_waits.done()
    assert (old.held, young.held, budget.used, budget.peak) == (20, 20, 40, 90)
    old.release()
    young.release()
    assert budget.used == 0 and budget.released == 130


async def test_when_every_holder_waits_the_newest_gives_up_and_the_oldest_finishes() -> None:
    budget = ByteBudget(100)
    first, second, third = budget.lease(), budget.lease(), budget.lease()
    for lease in (first, second, third):
        assert lease.try_reserve(30)
    waits = [asyncio.create_task(lease.reserve(30)) for lease in (first, second, third)]
    await asyncio.sleep(0)
    # 90 held, all three need 30 more: nobody could ever release, so the newest gives up
    assert waits[2].done() and isinstance(waits[2].exception(), FetchError)
    error = waits[2].exception()
    assert isinstance(error, FetchError) and error.kind == "memory_budget"
    assert not waits[0].done() and not waits[1].done()
    third.release()  # what the failed fetch does on its way out
    await asyncio.sleep(0)
    assert waits[0].done() and waits[0].exception() is None
    # the second still waits (130 would exceed 100) but is not given up: the first is reading
    assert not waits[1].done()
    first.release()
    await asyncio.sleep(0)
    assert waits[1].done() and waits[1].exception() is None and budget.used == 60
    second.release()
    assert budget.used == 0


async def test_a_cancelled_wait_leaves_the_queue_and_more_than_the_budget_fails_at_once() -> None:
    budget = ByteBudget(100)
    holder, waiter = budget.lease(), budget.lease()
    assert holder.try_reserve(80)
    task = asyncio.create_task(waiter.reserve(50))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.waiting == 0 and not waiter.waiting and waiter.held == 0
    with pytest.raises(FetchError, match="memory budget"):
        await holder.reserve(21)  # 80 + 21 can never fit
    assert holder.held == 80


def test_the_budget_must_hold_one_feed_of_the_largest_size() -> None:
    with pytest.raises(ValueError, match="smaller than the byte limit"):
        Fetcher(LIMITS, max_concurrency=2, per_host_concurrency=2, memory_budget=MIB - 1)


GZIP = {"Content-Encoding": "gzip"}


def chunks(body: bytes, size: int = 50_000) -> Iterator[bytes]:
    """A body sent chunked: no length declared."""
    return (body[i : i + size] for i in range(0, len(body), size))


async def test_many_large_feeds_at_once_stay_within_the_budget_and_all_arrive(
    server: FeedServer,
) -> None:
    """Twelve feeds of ~0.9 MiB on six hosts, fetched at once against a 1.5 MiB budget: plain
    (declared length), gzip and chunked bodies. While each body is held (as for its parse), the
    bodies held together never exceed the budget, and every feed arrives, some of them on a
    second try (a fetch that gave up is postponed, not lost)."""
    hosts = [f"127.0.0.{n}" for n in range(1, 7)]
    bodies: dict[str, bytes] = {}
    with FeedServer(hosts=tuple(hosts)) as farm:
        for n in range(12):
            body = FEED.replace(b"<title>t</title>", f"<title>{n}</title>".encode()) * (
                int(0.9 * MIB) // len(FEED)
            )
            path = f"/big{n}"
            bodies[path] = body
            if n % 4 == 0:
                farm.routes[path] = Route(body=body)
            elif n % 4 == 1:
                farm.routes[path] = Route(body=gzip.compress(body), headers=GZIP)
            else:
                farm.routes[path] = Route(stream=partial(chunks, body))
        budget = int(1.5 * MIB)
        held = 0
        most_held = 0
        arrived: dict[str, bytes] = {}

        async def poll(fetcher: Fetcher, path: str, host: str) -> bool:
            nonlocal held, most_held
            async with fetcher.fetching(FetchRequest(farm.url(path, host))) as outcome:
                if outcome.kind != "ok":
                    assert outcome.error is not None and outcome.error.kind == "memory_budget"
                    return False
                held += len(outcome.body)
                most_held = max(most_held, held)
                await asyncio.sleep(0.05)  # a parse holds the body for a while
                held -= len(outcome.body)
                arrived[path] = outcome.body
                return True

        async with make_fetcher(max_concurrency=12, memory_budget=budget) as fetcher:
            pending = {path: hosts[n % len(hosts)] for n, path in enumerate(bodies)}
            rounds = 0
            while pending:
                rounds += 1
                assert rounds <= 12, f"not every feed arrived: {sorted(pending)}"
                done = await asyncio.gather(*(poll(fetcher, p, h) for p, h in pending.items()))
                pending = {p: h for (p, h), ok in zip(pending.items(), done, strict=True) if not ok}
            assert fetcher.budget is not None
            assert fetcher.budget.peak <= budget and fetcher.budget.used == 0
        assert most_held <= budget
        assert arrived == bodies


async def test_waiting_for_the_budget_does_not_count_against_the_deadline(
    server: FeedServer,
) -> None:
    server.routes["/feed"] = Route(body=FEED * 100, delay=0.3)
    limits = FetchLimits(max_bytes=MIB, deadline=0.5, connect_timeout=2.0, user_agent=UA)
    async with make_fetcher(limits, memory_budget=MIB) as fetcher:
        assert fetcher.budget is not None
        hog = fetcher.budget.lease()
        assert hog.try_reserve(MIB)  # the whole budget, until 0.7 s: 0.3 s answering + 0.4 s
        asyncio.get_running_loop().call_later(0.7, hog.release)
        outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
    # longer than the 0.5 s deadline, yet in time: the 0.4 s spent waiting for room do not count
    assert outcome.kind == "ok" and outcome.body == FEED * 100
    assert outcome.elapsed >= 0.7

    # but a wait longer than a whole fetch may take gives the connection up: polled later
    async with make_fetcher(limits, memory_budget=MIB) as fetcher:
        assert fetcher.budget is not None
        hog = fetcher.budget.lease()
        assert hog.try_reserve(MIB)
        outcome = await fetcher.fetch(FetchRequest(server.url("/feed")))
        hog.release()
    assert outcome.error is not None and outcome.error.kind == "memory_budget"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_highly_compressed_bodies_are_decoded_in_bounded_steps(
    server: FeedServer, encoding: str
) -> None:
    """A few KiB that decompress to ~900 KiB: output comes in steps of at most READ_CHUNK (each
    reserved in the budget) and nothing is lost between the steps."""
    import zlib

    import brotli

    body = FEED * (int(0.9 * MIB) // len(FEED))
    encoded = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[encoding]
    server.routes["/feed"] = Route(body=encoded(body), headers={"Content-Encoding": encoding})
    async with make_fetcher(memory_budget=MIB) as fetcher:
        assert fetcher.budget is not None
        async with fetcher.fetching(FetchRequest(server.url("/feed"))) as outcome:
            assert fetcher.budget.used == len(body)
        assert fetcher.budget.used == 0
    assert outcome.kind == "ok" and outcome.body == body
