"""HTTP: one bounded fetch of one feed (SPEC section 7).

httpx alone has no overall deadline and decompresses without a bound (PITFALLS 6, 7), so a
fetch here streams the raw body, decompresses it itself with a hard limit on the output, and runs
under ``asyncio.timeout``. The client is a constructor argument so tests can give it a transport.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Protocol

import brotli  # type: ignore[import-untyped]
import httpx

from monitor.errors import FetchError

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
#: Only encodings we can decompress with a bound (PITFALLS 7).
ACCEPT_ENCODING = "gzip, deflate, br"
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """How long and how much one fetch may take."""

    max_bytes: int
    deadline: float
    connect_timeout: float
    user_agent: str


@dataclass
class Response:
    """A fetched document: its status, decoded body and the headers later stages read."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str | None:
        value: str | None = self.headers.get("content-type")
        return value


class _Decoder(Protocol):
    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class _Identity:
    def decompress(self, data: bytes, max_length: int) -> bytes:
        return data


class _Zlib:
    """gzip or deflate (zlib-wrapped or raw, as servers send both) with a bounded output."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._inner: zlib._Decompress | None = None
        self._pending = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._pending += data
            if len(self._pending) < 2 and not self._gzip:
                return b""
            wbits = 16 + zlib.MAX_WBITS if self._gzip else self._deflate_wbits(self._pending)
            self._inner = zlib.decompressobj(wbits)
            data, self._pending = self._pending, b""
        out = self._inner.decompress(self._inner.unconsumed_tail + data, max_length)
        if self._inner.unconsumed_tail:
            raise _TooLarge
        return out

    @staticmethod
    def _deflate_wbits(head: bytes) -> int:
        zlib_wrapped = (head[0] & 0x0F) == 8 and (head[0] << 8 | head[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


class _Brotli:
    def __init__(self) -> None:
        self._inner = brotli.Decompressor()

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            out: bytes = self._inner.process(data, output_buffer_limit=max_length + 1)
        except TypeError:  # brotli < 1.2 has no output limit: bound the damage per chunk
            out = self._inner.process(data)
        if len(out) > max_length or not self._inner.can_accept_more_data():
            raise _TooLarge
        return out


class _TooLarge(Exception):
    pass


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


async def read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    """The decompressed body, or FetchError as soon as it would exceed ``max_bytes``."""
    decoder = _decoder_for(response.headers.get("content-encoding"))
    chunks: list[bytes] = []
    size = 0
    too_large = FetchError(f"body exceeds {max_bytes} bytes after decompression", kind="too_large")
    try:
        async for raw in response.aiter_raw(READ_CHUNK):
            piece = decoder.decompress(raw, max_bytes - size + 1)
            size += len(piece)
            if size > max_bytes:
                raise too_large
            chunks.append(piece)
    except _TooLarge:
        raise too_large from None
    except (zlib.error, brotli.error) as exc:
        raise FetchError(f"corrupt compressed body: {exc}", kind="encoding") from None
    return b"".join(chunks)


async def fetch_document(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    headers: dict[str, str] | None = None,
) -> Response:
    """GET one URL within the deadline and the byte limit; redirects are the caller's policy."""
    request_headers = {
        "User-Agent": limits.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
        **(headers or {}),
    }
    try:
        async with asyncio.timeout(limits.deadline):
            async with client.stream("GET", url, headers=request_headers) as response:
                body = (
                    b""
                    if response.status_code == 304
                    else await read_bounded(response, limits.max_bytes)
                )
                return Response(str(response.url), response.status_code, response.headers, body)
    except TimeoutError:
        raise FetchError(
            f"no complete answer within {limits.deadline:g}s", kind="deadline"
        ) from None
    except httpx.ConnectTimeout:
        raise FetchError(
            f"connect timed out after {limits.connect_timeout:g}s", kind="connect"
        ) from None
    except httpx.ConnectError as exc:
        raise FetchError(f"cannot connect: {exc}", kind="connect") from None
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out: {exc}", kind="timeout") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}", kind="http") from None


def make_client(limits: FetchLimits, **kwargs: object) -> httpx.AsyncClient:
    """A client with our timeouts; redirects stay off so every hop is checked by the caller."""
    timeout = httpx.Timeout(limits.deadline, connect=limits.connect_timeout)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, **kwargs)  # type: ignore[arg-type]
