"""Feeds that publish, for the end-to-end benchmark: `python -m bench.newsroom`.

Like `bench.farm`, it serves ``/feed/N`` on ``hosts`` loopback addresses from pre-rendered bytes
(with an ETag, and a 304 when If-None-Match carries it) so that serving 100 polls/s costs little
of a two-core machine. Unlike the farm, a feed's body changes: on ``publish`` the server itself
puts ``--items`` new stories into random feeds at random times over ``--spread`` seconds (from a
seeded schedule), re-rendering only that feed, and notes the wall-clock time (``time.time()``)
at which each story became visible. It must be the server that publishes, so that "visible"
means "the next response carries it", with no inter-process delay in the measurement.

Control is line-based on stdin, answers are one JSON line on stdout (the port comes first):

- ``stats``: ``{"requests": total, "feeds_polled": feeds requested at least once}``
- ``publish``: start the schedule; answers ``{"started": time}``
- ``report``: ``{"requests": ..., "published": [{"title", "feed", "at", "served"}, ...]}``,
  ``served`` being when the story first went out in a response (the poll that saw it)

It exits when its stdin closes, so it never outlives the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from email.utils import formatdate
from xml.sax.saxutils import escape

from bench.farm import FeedGetProtocol, listen_on_hosts

#: The phrase the benchmark's alerting rule looks for; every published story carries it.
PHRASE = "loitering munition"
BACKLOG = 2  # stories each feed already has when the daemon first polls it
KEEP = 5  # stories a feed's body keeps, newest first
CONSONANTS = "jqwxyz"  # letters the generated rules' made-up names never use
VOWELS = "aeiou"


def word(rng: random.Random) -> str:
    """A made-up word that no generated rule can match (see ``CONSONANTS``)."""
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(3))


def story_title(rng: random.Random, number: int) -> str:
    """A distinct story: eight random words around the phrase, so no two titles look alike
    (near-identical titles are merged into one story by the daemon, by design)."""
    words = [word(rng) for _ in range(8)]
    return f"{' '.join(words[:3])} {PHRASE} {' '.join(words[3:])} {number}"


def item_xml(title: str, link: str, guid: str, stamp: float) -> str:
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="false">{escape(guid)}</guid>'
        f"<pubDate>{formatdate(stamp, usegmt=True)}</pubDate></item>"
    )


class Newsroom:
    """Per-feed stories and their pre-rendered 200 and 304 responses."""

    def __init__(self, feeds: int) -> None:
        now = time.time()
        rng = random.Random(1)
        self.items: list[list[str]] = []
        self.version = [0] * feeds
        self.full: list[bytes] = []
        self.not_modified: list[bytes] = []
        self.polled = [0] * feeds
        self.requests = 0
        self.published: list[dict[str, object]] = []
        self.unserved: list[list[dict[str, object]]] = [[] for _ in range(feeds)]
        for feed in range(feeds):
            self.items.append(
                [
                    item_xml(
                        f"{word(rng)} {word(rng)} {word(rng)} backlog {feed}-{n}",
                        f"https://feed{feed}.example.org/backlog/{n}",
                        f"backlog-{feed}-{n}",
                        now - 3600 * (n + 1),
                    )
                    for n in range(BACKLOG)
                ]
            )
            self.full.append(b"")
            self.not_modified.append(b"")
            self.render(feed)

    def render(self, feed: int) -> None:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Feed {feed}</title><link>https://feed{feed}.example.org/</link>"
            + "".join(self.items[feed])
            + "</channel></rss>"
        ).encode()
        tag = f'"feed-{feed}-v{self.version[feed]}"'
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
            f"ETag: {tag}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.full[feed] = head.encode() + body
        self.not_modified[feed] = f"HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\n\r\n".encode()

    def publish(self, feed: int, number: int, rng: random.Random) -> None:
        title = story_title(rng, number)
        stamp = time.time()
        story = item_xml(
            title, f"https://feed{feed}.example.org/story/{number}", f"story-{number}", stamp
        )
        self.items[feed] = [story, *self.items[feed]][:KEEP]
        self.version[feed] += 1
        self.render(feed)
        # Visible from here on: the event loop answers no request between render and now.
        story_record: dict[str, object] = {"title": title, "feed": feed, "at": time.time()}
        self.published.append(story_record)
        self.unserved[feed].append(story_record)

    def served(self, feed: int) -> None:
        """A full body went out: note when each story it carries was first served (polled)."""
        if self.unserved[feed]:
            now = time.time()
            for story in self.unserved[feed]:
                story["served"] = now
            self.unserved[feed].clear()

    async def schedule(self, count: int, spread: float, seed: int) -> None:
        """Publish ``count`` stories at seeded random offsets within ``spread`` seconds."""
        rng = random.Random(seed)
        offsets = sorted(rng.uniform(0, spread) for _ in range(count))
        feeds = [rng.randrange(len(self.items)) for _ in range(count)]
        start = time.monotonic()
        for number, (offset, feed) in enumerate(zip(offsets, feeds, strict=True)):
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            self.publish(feed, number, rng)


class NewsroomProtocol(FeedGetProtocol):
    """The farm's protocol, answering from the newsroom's current feeds."""

    def __init__(self, room: Newsroom) -> None:
        super().__init__()
        self.room = room

    def answer(self, feed: int, head: bytes) -> bytes:
        room = self.room
        tag = f'if-none-match: "feed-{feed}-v{room.version[feed]}"'.encode()
        fresh = tag in head
        response = room.not_modified[feed] if fresh else room.full[feed]
        if not fresh:
            room.served(feed)
        room.requests += 1
        room.polled[feed] += 1
        return response


async def serve(hosts: int, feeds: int, items: int, spread: float, seed: int) -> None:
    room = Newsroom(feeds)
    loop = asyncio.get_running_loop()
    _, servers = await listen_on_hosts(lambda: NewsroomProtocol(room), hosts)
    publishing: asyncio.Task[None] | None = None
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if line == "stats":
            answer: dict[str, object] = {
                "requests": room.requests,
                "feeds_polled": sum(1 for n in room.polled if n),
            }
        elif line == "publish" and publishing is None:
            publishing = asyncio.create_task(room.schedule(items, spread, seed))
            answer = {"started": time.time()}
        else:  # report
            answer = {"requests": room.requests, "published": room.published}
        print(json.dumps(answer), flush=True)
    if publishing is not None:
        publishing.cancel()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--spread", type=float, default=75.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(serve(args.hosts, args.feeds, args.items, args.spread, args.seed))


if __name__ == "__main__":
    main()
