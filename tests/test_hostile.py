"""Hostile feeds: the daemon polls every one of them beside one good feed, for real.

A local server on 127.0.0.1 serves each hostile input on its own path; `monitor run` runs as its
own process with short intervals. Afterwards: the good feed's alert arrived exactly once, every
hostile feed shows a clear error (or was parsed safely), failing feeds backed off, no hostile
markup reached an alert, nothing was read from the local file, the daemon's peak memory (its own
``VmHWM``, tests/procmem.py) stayed under 300 MB, and it exited 0 on SIGTERM.

With ``MONITOR_RELIABILITY_OUT`` set, the observed outcome of every case is written there as
JSON, from which `python -m bench reliability` renders docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import count
from pathlib import Path

import pytest

from tests.feedserver import MIB, FeedServer, Received, Route, deflate_bomb, endless, gzip_bomb
from tests.procmem import PeakMemory
from tests.receivers import Webhook, wait_for

pytestmark = pytest.mark.slow

RUN_SECONDS = 25
#: The target is 300 MB (issue 7), and the daemon's own peak is held to it: 155-160 MB in ten
#: runs here, five of them with both cores kept busy by other processes. (The 231-366 MB seen
#: before were the child's ``ru_maxrss``, which on Linux starts from the pytest process's own
#: peak: see tests/procmem.py.)
PEAK_MB_TARGET = 300
PEAK_MB_LIMIT = PEAK_MB_TARGET
SECRET_MARKER = "LOCAL-FILE-SECRET-7f3a"


def item(guid: str, title: str, link: str, when: datetime | str, extra: str = "") -> str:
    stamp = when if isinstance(when, str) else format_datetime(when)
    return (
        f"<item><guid>{guid}</guid><title>{title}</title><link>{link}</link>"
        f"<pubDate>{stamp}</pubDate>{extra}</item>"
    )


def rss(
    *items: str, head: str = '<?xml version="1.0" encoding="utf-8"?>', doctype: str = ""
) -> bytes:
    return (
        f'{head}{doctype}<rss version="2.0"><channel><title>T</title>'
        f"<link>https://hostile.example.org/</link>{''.join(items)}</channel></rss>"
    ).encode()


NOW = datetime.now(UTC)
PLAIN = item("p1", "Weather report", "https://hostile.example.org/p1", NOW - timedelta(hours=1))


@dataclass
class Case:
    path: str
    what: str
    route: Route | Callable[[Received], Route]
    expect: str  # "error", "parsed", "gone", "moved"
    backs_off: bool = False


def changing_guids() -> Callable[[Received], Route]:
    counter = count()

    def route(_request: Received) -> Route:
        n = next(counter)
        return Route(
            body=rss(
                item(f"g-{n}", "Drone sighting near base", "https://hostile.example.org/same", NOW)
            )
        )

    return route


def changing_big_item() -> Callable[[Received], Route]:
    """A new ~9.5 MB item of escaped HTML on every request: just under the byte limit, so it is
    read, parsed and recorded on every poll; unbuffered, feedparser kept a string per run of
    text between two entities (~90 MB for 10 MiB), and the text is cut at MAX_FIELD_CHARS."""
    counter = count()
    paragraph = "&lt;p&gt;Weather &lt;b&gt;report&lt;/b&gt; for the coast.&lt;/p&gt;"
    text = paragraph * (int(9.5 * MIB) // len(paragraph))

    def route(_request: Received) -> Route:
        n = next(counter)
        extra = f"<description>{text}</description>"
        return Route(
            body=rss(item(f"big-{n}", f"Big {n}", f"https://h.example/big-{n}", NOW, extra))
        )

    return route


def cases(secret_file: Path, server: FeedServer) -> list[Case]:
    laughs = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    big = "A" * 100_000
    injection = item(
        "inj",
        "&lt;script&gt;alert(1)&lt;/script&gt; Drone [click](javascript:alert(1)) @everyone",
        "javascript:alert(document.cookie)",
        NOW,
        extra="<description>&lt;img src=x onerror=alert(1)&gt; drone &lt;a href='javascript:x'&gt;y&lt;/a&gt;</description>",
    )
    return [
        Case("/billion-laughs", "billion laughs (nested entities)", Route(body=rss(PLAIN, doctype=f"<!DOCTYPE rss [{laughs}]>").replace(b"Weather report", b"&lol9;")), "parsed"),
        Case("/quadratic", "quadratic blow-up (one 100 KB entity referenced 2,000 times)", Route(body=rss(item("q", "&big;" * 2000, "https://h.example/q", NOW), doctype=f'<!DOCTYPE rss [<!ENTITY big "{big}">]>')), "error", backs_off=True),
        Case("/xxe", "external entity pointing at a local file", Route(body=rss(item("x", "XXE &xxe; end", "https://h.example/x", NOW), doctype=f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret_file}">]>')), "parsed"),
        Case("/gzip-bomb", "gzip bomb (1 GiB of zeros)", Route(headers={"Content-Encoding": "gzip"}, stream=lambda: gzip_bomb(1024 * MIB)), "error", backs_off=True),
        Case("/deflate-bomb", "deflate bomb (1 GiB of zeros)", Route(headers={"Content-Encoding": "deflate"}, stream=lambda: deflate_bomb(1024 * MIB)), "error", backs_off=True),
        Case("/endless", "endless stream", Route(stream=endless), "error", backs_off=True),
        Case("/drip", "one byte per second", Route(body=rss(PLAIN), drip=1.0), "error", backs_off=True),
        Case("/huge-item", "a 50 MB item", Route(body=rss(item("h", "Huge", "https://h.example/h", NOW, extra=f"<description>{'x' * 50 * MIB}</description>"))), "error", backs_off=True),
        Case("/big-item", "a 9.5 MB item of escaped HTML (under the byte limit), new on every poll", changing_big_item(), "parsed"),
        Case("/loop", "redirect loop", Route.redirect(302, "/loop"), "error", backs_off=True),
        Case("/to-other-loopback", "redirect to another loopback address (127.0.0.2)", Route.redirect(302, server.url("/good", "127.0.0.2")), "error", backs_off=True),
        Case("/429", "429 with Retry-After: 3600", Route(status=429, headers={"Retry-After": "3600"}), "error", backs_off=True),
        Case("/500", "500", Route(status=500, body=b"oops"), "error", backs_off=True),
        Case("/503", "503", Route(status=503, body=b"down"), "error", backs_off=True),
        Case("/410", "410 Gone", Route(status=410), "gone"),
        Case("/301", "301 to a new URL", Route.redirect(301, "/moved-301"), "moved"),
        Case("/308", "308 to a new URL", Route.redirect(308, "/moved-308"), "moved"),
        Case("/charset", "declares utf-8, sends Windows-1252", Route(body=rss(item("c", "Caf\u00e9 \u201cquotes\u201d", "https://h.example/c", NOW)).decode().encode("cp1252")), "parsed"),
        Case("/utf16", "UTF-16 with BOM", Route(body=rss(item("u", "Utf sixteen", "https://h.example/u", NOW), head='<?xml version="1.0" encoding="utf-16"?>').decode().encode("utf-16")), "parsed"),
        Case("/html", "an HTML page", Route(body=b"<!DOCTYPE html><html><body><h1>Not a feed</h1></body></html>"), "error", backs_off=True),
        Case("/empty", "an empty body", Route(body=b""), "error", backs_off=True),
        Case("/truncated", "a truncated document", Route(body=rss(PLAIN, item("t", "Cut", "https://h.example/t", NOW))[:-60]), "parsed"),
        Case("/charref", "a character reference beyond U+10FFFF", Route(body=rss(item("r", "Ref &#1114112; here", "https://h.example/r", NOW))), "parsed"),
        Case("/dup-guids", "duplicate guids", Route(body=rss(PLAIN, PLAIN, item("p1", "Other title", "https://h.example/o", NOW))), "parsed"),
        Case("/changing-guids", "guids that change on every request", changing_guids(), "parsed"),
        Case("/dates", "malformed and impossible dates", Route(body=rss(item("d1", "Zero", "https://h.example/d1", "0000-00-00"), item("d2", "Feb 30", "https://h.example/d2", "2024-02-30T10:00:00Z"), item("d3", "Far", "https://h.example/d3", "10000-01-01"))), "parsed"),
        Case("/injection", "script and markup injection in titles and links", Route(body=rss(injection)), "parsed"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer(hosts=("127.0.0.1", "127.0.0.2")) as running:
        yield running


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


def alert_texts(webhook: Webhook) -> list[str]:
    """Title and body of every alert the chat webhook received, as the chat would show them."""
    texts = []
    for raw in webhook.bodies:
        payload = json.loads(raw)
        texts.append(f"{payload.get('title', '')}\n{payload.get('message', '')}")
    return texts


def test_hostile_feeds_beside_a_good_one(
    server: FeedServer, webhook: Webhook, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_MARKER)
    hostile = cases(secret, server)
    for case in hostile:
        server.routes[case.path] = case.route
    server.routes["/moved-301"] = server.routes["/moved-308"] = Route(body=rss(PLAIN))
    server.routes["/good"] = Route(body=rss(PLAIN))

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "desk.yaml").write_text(
        "rules:\n  - id: drones\n    severity: high\n    query: 'drone*'\n"
    )
    feeds = ["defaults: {interval: 1s, min_interval: 1s, max_interval: 5s}", "feeds:"]
    feeds.append(f"  - url: {server.url('/good')}\n    name: good\n    max_interval: 1s")
    for case in hostile:
        first = (
            "\n    alert_on_first_poll: true"
            if case.path in ("/injection", "/changing-guids")
            else ""
        )
        feeds.append(f'  - url: {server.url(case.path)}\n    name: "{case.path.strip("/")}"{first}')
    (rules / "feeds.yaml").write_text("\n".join(feeds) + "\n")
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(
        MONITOR_RULES_DIR=str(rules),
        MONITOR_DATA_DIR=str(data),
        MONITOR_DATABASE_URL=f"sqlite:///{data / 'monitor.db'}",
        MONITOR_FETCH_TIMEOUT="3s",
        MONITOR_CONNECT_TIMEOUT="2s",
        MONITOR_BACKOFF_CEILING="60s",
        MONITOR_HTTP_LISTEN="",
        MONITOR_APPRISE_URLS=webhook.url(),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    memory = PeakMemory(process.pid).start()
    try:
        deadline = time.monotonic() + 20
        while len(server.received("/good")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(server.received("/good")) >= 2, "the good feed was not polled twice"
        good_item = item(
            "g1", "Kamikaze drones strike depot", "https://good.example.org/1", datetime.now(UTC)
        )
        server.routes["/good"] = Route(body=rss(good_item, PLAIN))
        assert wait_for(
            lambda: any("Kamikaze drones strike depot" in t for t in alert_texts(webhook)), 20
        )
        time.sleep(RUN_SECONDS)
        assert process.poll() is None, "the daemon died"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
        memory.stop()
    peak_mb = memory.peak_mb
    assert process.returncode == 0, stderr[-2000:]
    assert peak_mb < PEAK_MB_LIMIT, f"the daemon peaked at {peak_mb:.0f} MB"

    delivered = alert_texts(webhook)
    assert sum("Kamikaze drones strike depot" in text for text in delivered) == 1
    raw_alerts = "\n".join(delivered)
    assert SECRET_MARKER not in raw_alerts

    db = sqlite3.connect(data / "monitor.db")
    states = {row[0]: row[1:] for row in db.execute(
        "SELECT name, last_status, last_error, last_error_kind, consecutive_failures, "
        "disabled_reason, fetch_url, last_item_count FROM feeds"
    )}  # fmt: skip
    stored = "\n".join(row[0] for row in db.execute("SELECT data FROM articles"))
    assert SECRET_MARKER not in stored
    assert not db.execute(
        "SELECT 1 FROM articles a JOIN feeds f ON a.feed_id = f.id "
        "WHERE f.name = 'truncated' AND a.title = ''"
    ).fetchall()
    charref = "SELECT a.title FROM articles a JOIN feeds f ON a.feed_id = f.id WHERE f.name = ?"
    assert db.execute(charref, ("charref",)).fetchall() == [("Ref \ufffd here",)]
    db.close()

    good_polls = len(server.received("/good"))
    results = []
    for case in hostile:
        name = case.path.strip("/")
        status, error, kind, failures, disabled, fetch_url, items = states[name]
        polls = len(server.received(case.path))
        results.append(
            {"input": case.what, "expected": case.expect, "polls": polls, "good_feed_polls": good_polls,
             "http_status": status, "error_kind": kind, "error": error, "failures": failures,
             "disabled": disabled, "items": items}
        )  # fmt: skip
        if case.expect == "error":
            assert error and kind, f"{name}: no error shown"
        if case.expect == "gone":
            assert disabled == "410 Gone" and polls == 1, name
        if case.expect == "moved":
            assert fetch_url.endswith(f"/moved-{name}"), name
        if case.backs_off:
            assert 1 <= polls < good_polls, f"{name}: polled {polls} times vs good {good_polls}"
        if case.expect == "parsed":
            assert polls >= 2, f"{name}: not polled on schedule ({polls})"
    assert len(server.received("/429")) == 1  # Retry-After holds it for the whole run
    injected = [text for text in delivered if "click" in text]
    assert injected, "\n---\n".join(delivered)
    for text in injected:
        for forbidden in ("<script", "javascript:", "<img", "](javascript", "@everyone"):
            assert forbidden not in text.lower(), (forbidden, text)

    out = os.environ.get("MONITOR_RELIABILITY_OUT")
    if out:
        Path(out).write_text(json.dumps({"hostile": results, "peak_mb": round(peak_mb)}, indent=1))
