"""A cheap feed farm for the fetch benchmark, run in its own process: `python -m bench.farm`.

Serves ``/feed/N`` for N < feeds on the same port of ``hosts`` loopback addresses
(127.0.1.1, 127.0.1.2, ...), every response pre-rendered bytes so that the server costs little
of the machine's two cores: a 200 with a ~20 KB RSS body and an ETag, or a 304 when the request
carries that ETag in If-None-Match. Prints the port on stdout once listening and exits when its
stdin closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Callable

from bench.corpus import rss_feed

DISTINCT_BODIES = 16


def host_address(index: int) -> str:
    """The loopback address of farm host ``index`` (all of 127/8 is loopback on Linux)."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def etag(feed: int) -> str:
    return f'"feed-{feed}-v1"'


def render(feeds: int, body_bytes: int) -> tuple[list[bytes], list[bytes]]:
    """(200 responses, 304 responses) per feed, complete with status line and headers."""
    bodies = []
    for seed in range(DISTINCT_BODIES):
        body = rss_feed(seed, items=1, html_chars=1000, media=False)
        for items in range(2, 200):
            if len(body) >= body_bytes:
                break
            body = rss_feed(seed, items=items, html_chars=1000, media=False)
        bodies.append(body)
    full, not_modified = [], []
    for feed in range(feeds):
        body = bodies[feed % DISTINCT_BODIES]
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
            f"ETag: {etag(feed)}\r\nCache-Control: max-age=60\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        full.append(head.encode() + body)
        not_modified.append(f"HTTP/1.1 304 Not Modified\r\nETag: {etag(feed)}\r\n\r\n".encode())
    return full, not_modified


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class FeedGetProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, GET only, no pipelining needed: just enough for a poller.

    Requests for ``/.../N`` are answered by ``answer(N, head)`` (the lower-cased request head);
    the farm and the newsroom differ only there.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            path = head.split(b" ", 2)[1]
            try:
                self.transport.write(self.answer(int(path.rsplit(b"/", 1)[1]), head))
            except (ValueError, IndexError):
                self.transport.write(NOT_FOUND)

    def answer(self, feed: int, head: bytes) -> bytes:
        raise NotImplementedError


class FarmProtocol(FeedGetProtocol):
    def __init__(self, full: list[bytes], not_modified: list[bytes]) -> None:
        super().__init__()
        self.full = full
        self.not_modified = not_modified

    def answer(self, feed: int, head: bytes) -> bytes:
        return (self.not_modified if b"\r\nif-none-match:" in head else self.full)[feed]


async def listen_on_hosts(
    protocol: Callable[[], asyncio.Protocol], hosts: int
) -> tuple[int, list[asyncio.Server]]:
    """The same ephemeral port on ``hosts`` loopback addresses; prints the port for the parent."""
    loop = asyncio.get_running_loop()
    first = await loop.create_server(protocol, host_address(0), 0, backlog=1024)
    port = int(first.sockets[0].getsockname()[1])
    servers = [first]
    for index in range(1, hosts):
        servers.append(await loop.create_server(protocol, host_address(index), port, backlog=1024))
    print(port, flush=True)
    return port, servers


def start_farm(*args: str) -> tuple[subprocess.Popen[str], int]:
    """Start a server module (``bench.farm`` or ``bench.newsroom``) with ``args``; its port."""
    farm = subprocess.Popen(
        [sys.executable, "-m", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert farm.stdout is not None
    line = farm.stdout.readline()
    if not line.strip().isdigit():
        farm.kill()
        raise RuntimeError(f"{args[0]} did not start")
    return farm, int(line)


async def serve(hosts: int, feeds: int, body_bytes: int) -> None:
    full, not_modified = render(feeds, body_bytes)
    _, servers = await listen_on_hosts(lambda: FarmProtocol(full, not_modified), hosts)
    await asyncio.get_running_loop().run_in_executor(
        None, sys.stdin.read
    )  # until the benchmark closes our stdin
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--body-bytes", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(serve(args.hosts, args.feeds, args.body_bytes))


if __name__ == "__main__":
    main()
