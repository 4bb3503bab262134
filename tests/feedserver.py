"""A real, scriptable HTTP/1.1 server on loopback for tests: `FeedServer`.

Tests of the fetch stage must see what a real socket does (slow drips, bombs, resets, keep-alive),
which a mocked transport cannot show. The server runs its own asyncio loop in a daemon thread, so
sync and async tests use it alike, and routes may be changed while it runs (a feed that changes
over time is ``server.routes["/feed"] = Route(body=new_bytes, etag='"v2"')``).

Each route is a `Route` (status, body, headers, delay before answering, a slow drip, a streamed
body, validators that turn a matching conditional request into a 304) or a callable that builds
one from the `Received` request. The server logs every request with its headers and counts
connections and concurrent requests overall and per Host, so tests can assert what the client
sent, how many requests it had in flight and whether it kept connections alive. It binds the
same ephemeral port on every loopback address given (on Linux all of 127/8 is loopback), so a
redirect from 127.0.0.1 to 127.0.0.2 stays on it.

Every loop here is bounded: streamed bodies have a maximum size, drips a maximum length,
connections a maximum number of requests and an idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

import brotli

MIB = 1024 * 1024
_ZEROS = bytes(MIB)
IDLE_TIMEOUT = 10.0
MAX_REQUESTS_PER_CONNECTION = 1000
MAX_HEAD = 64 * 1024
REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    404: "Not Found",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Received:
    """One request as the server saw it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    local_host: str

    @property
    def host(self) -> str:
        """The host the client asked for (Host header without port)."""
        return self.headers.get("host", "").rsplit(":", 1)[0]


@dataclass
class Route:
    """What the server answers on one path.

    ``delay``: seconds before the status line. ``drip``: seconds between body bytes, one byte at
    a time. ``stream``: a factory of body chunks sent with chunked encoding (bombs, endless
    bodies), used instead of ``body``. ``etag`` / ``last_modified`` are sent and make a matching
    conditional request a 304.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float | None = None
    stream: Callable[[], Iterable[bytes]] | None = None
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def redirect(cls, status: int, location: str) -> Route:
        return cls(status=status, headers={"Location": location})

    def answers_not_modified(self, request: Received) -> bool:
        if self.etag and self.etag in request.headers.get("if-none-match", ""):
            return True
        return bool(
            self.last_modified
            and request.headers.get("if-modified-since") == self.last_modified
            and "if-none-match" not in request.headers
        )


Handler = Route | Callable[[Received], Route]


def gzip_bomb(total: int = 1024 * MIB) -> Iterator[bytes]:
    """``total`` zero bytes gzip-compressed on the fly (about 1000:1), chunk by chunk."""
    return _compressed_zeros(zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), total)


def deflate_bomb(total: int = 1024 * MIB) -> Iterator[bytes]:
    """``total`` zero bytes as zlib-wrapped deflate (what ``Content-Encoding: deflate`` means)."""
    return _compressed_zeros(zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS), total)


def brotli_bomb(total: int = 1024 * MIB) -> Iterator[bytes]:
    """``total`` zero bytes brotli-compressed on the fly."""
    compressor = brotli.Compressor(quality=1)
    for _ in range(total // MIB):
        if chunk := compressor.process(_ZEROS):
            yield chunk
    yield compressor.finish()


def _compressed_zeros(compressor: zlib._Compress, total: int) -> Iterator[bytes]:
    for _ in range(total // MIB):
        if chunk := compressor.compress(_ZEROS):
            yield chunk
    yield compressor.flush()


def endless(chunk: bytes = b"<item>x</item>" * 64, limit: int = 1 << 20) -> Iterator[bytes]:
    """A body that does not end for any sane client (``limit`` chunks, to stay bounded)."""
    for _ in range(limit):
        yield chunk


class FeedServer:
    """The server; use as a context manager or call ``start``/``stop``."""

    def __init__(self, hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.hosts = hosts
        self.port = 0
        self.routes: dict[str, Handler] = {}
        self.requests: list[Received] = []
        self.active = 0
        self.max_active = 0
        self.active_by_host: Counter[str] = Counter()
        self.max_active_by_host: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.hosts[0]}:{self.port}{path}"

    def received(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def reset_counters(self) -> None:
        self.requests.clear()
        self.max_active = 0
        self.max_active_by_host.clear()
        self.bytes_sent.clear()
        self.connections = 0

    def start(self) -> FeedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._bind(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _bind(self) -> None:
        """The same port on every host; retried a few times if another process holds it."""
        for _attempt in range(20):
            first = await asyncio.start_server(self._serve, self.hosts[0], self.port)
            self.port = first.sockets[0].getsockname()[1]
            servers = [first]
            try:
                for host in self.hosts[1:]:
                    servers.append(await asyncio.start_server(self._serve, host, self.port))
            except OSError:
                for server in servers:
                    server.close()
                self.port = 0
                continue
            self._servers = servers
            return
        raise OSError("could not bind one port on every host")

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        local_host = writer.get_extra_info("sockname")[0]
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                request = await self._read_request(reader, local_host)
                if request is None or not await self._answer(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader, local_host: str) -> Received | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError):
            return None
        lines = head[:MAX_HEAD].decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return Received(method, path, headers, local_host)

    async def _answer(self, request: Received, writer: asyncio.StreamWriter) -> bool:
        """Send one response; False when the connection must close afterwards."""
        self.requests.append(request)
        self.active += 1
        self.active_by_host[request.host] += 1
        self.max_active = max(self.max_active, self.active)
        self.max_active_by_host[request.host] = max(
            self.max_active_by_host[request.host], self.active_by_host[request.host]
        )
        try:
            handler = self.routes.get(request.path, Route(status=404, body=b"not found"))
            route = handler(request) if callable(handler) else handler
            if route.delay:
                await asyncio.sleep(route.delay)
            async for piece in self._render(route, request):
                writer.write(piece)
                self.bytes_sent[request.path] += len(piece)
                await writer.drain()
        finally:
            self.active -= 1
            self.active_by_host[request.host] -= 1
        return request.headers.get("connection", "").lower() != "close"

    async def _render(self, route: Route, request: Received) -> AsyncIterator[bytes]:
        status, body = route.status, route.body
        if route.answers_not_modified(request):
            status, body = 304, b""
        headers = {"Server": "feedserver", **route.headers}
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        chunked = route.stream is not None and status != 304
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        elif status != 304:
            headers["Content-Length"] = str(len(body))
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        yield head.encode("latin-1") + b"\r\n"
        if status == 304 or request.method == "HEAD":
            return
        if chunked:
            assert route.stream is not None
            for chunk in route.stream():
                if chunk:
                    yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
            yield b"0\r\n\r\n"
        elif route.drip is not None:
            for i in range(len(body)):
                yield body[i : i + 1]
                await asyncio.sleep(route.drip)
        else:
            yield body
