"""Crash tests: `kill -9` of a real daemon at random points, 30 times; nothing lost, nothing
doubled beyond the documented window, the database consistent.

Each run publishes one new matching story, starts `monitor run`, and kills it (SIGKILL) at a
random moment: while it fetches (the feed answers slowly), between matching and the outbox, or
while it delivers (the webhook is slow to accept). The next run picks up where the dead one
stopped. At the end a last daemon drains the outbox. The only duplicate allowed is the one the
README documents: the channel accepted an alert but the daemon died before it could record that
(the kill came while the request was in flight, or between the answer and the commit); such a
duplicate must have a kill within a second of its first acceptance.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Route
from tests.receivers import Webhook, wait_for

pytestmark = pytest.mark.slow

RUNS = int(os.environ.get("MONITOR_CRASH_RUNS", "30"))
VOCABULARY = (
    "harbour missile convoy senate budget glacier orchard tunnel verdict election satellite "
    "refinery monsoon embassy frigate pipeline vaccine railway summit drought festival reactor "
    "tariff ferry cathedral brigade wildfire merger stadium border"
).split()
STORY = re.compile(r"Drone report \d+")
DUPLICATE_WINDOW = 1.0  # seconds between a channel's acceptance and the kill that lost its record


def rss(stories: list[tuple[str, datetime]]) -> bytes:
    items = "".join(
        f"<item><guid>{title}</guid><title>{title}</title>"
        f"<link>https://crash.example.org/{title.replace(' ', '-')}</link>"
        f"<pubDate>{format_datetime(when)}</pubDate></item>"
        for title, when in stories
    )
    return f'<rss version="2.0"><channel><title>W</title>{items}</channel></rss>'.encode()


def titles_received(webhook: Webhook) -> list[tuple[str, float]]:
    """(story, when accepted) of every alert the webhook took; the story is "Drone report N"."""
    received = []
    for body, at in zip(webhook.bodies, webhook.times, strict=True):
        found = STORY.search(json.loads(body).get("title", ""))
        if found:
            received.append((found.group(0), at))
    return received


def test_kill_9_at_random_points(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MONITOR_CRASH_SEED", "20261124")))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "desk.yaml").write_text(
        "rules:\n  - id: drones\n    severity: high\n    query: 'drone*'\n"
    )
    data = tmp_path / "data"
    with FeedServer() as server, Webhook() as webhook:
        (rules / "feeds.yaml").write_text(
            "defaults: {interval: 1s, min_interval: 1s, max_interval: 2s}\n"
            f"feeds:\n  - url: {server.url('/wire')}\n    name: wire\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update(
            MONITOR_RULES_DIR=str(rules),
            MONITOR_DATA_DIR=str(data),
            MONITOR_DATABASE_URL=f"sqlite:///{data / 'monitor.db'}",
            MONITOR_APPRISE_URLS=webhook.url(),
            MONITOR_HTTP_LISTEN="",
            MONITOR_FETCH_TIMEOUT="5s",
        )
        stories: list[tuple[str, datetime]] = [
            ("Parliament sits", datetime.now(UTC) - timedelta(hours=1))
        ]
        server.routes["/wire"] = Route(body=rss(stories), delay=0.3)
        warm = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--once"], env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert warm.returncode == 0, warm.stderr
        webhook.delay = 0.3
        kills: list[dict[str, float]] = []
        for run in range(RUNS):
            # distinct stories: near-identical headlines would rightly be one story, one alert
            words = " ".join(rng.sample(VOCABULARY, 6))
            stories.insert(0, (f"Drone report {run} {words}", datetime.now(UTC)))
            server.routes["/wire"] = Route(body=rss(stories), delay=0.3)
            process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            after = rng.uniform(0.8, 4.0)
            time.sleep(after)
            killed_at = time.time()
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills.append({"run": run, "after_s": round(after, 2), "killed_at": killed_at,
                          "received_so_far": len(webhook.bodies)})  # fmt: skip

        webhook.delay = 0.0
        final = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            polled_before = len(server.received("/wire"))
            # up and running (its signal handlers installed) once it has polled
            assert wait_for(lambda: len(server.received("/wire")) > polled_before, timeout=30)
            expected = {f"Drone report {run}" for run in range(RUNS)}
            arrived = wait_for(
                lambda: expected <= {t for t, _ in titles_received(webhook)}, timeout=90, step=0.2
            )
        finally:
            final.send_signal(signal.SIGTERM)
            _, err = final.communicate(timeout=15)
        assert final.returncode == 0, err[-2000:]

    received = titles_received(webhook)
    counts = Counter(title for title, _ in received if title.startswith("Drone report"))
    missing = sorted(expected - set(counts))
    assert arrived and not missing, f"lost alerts: {missing}"
    duplicates = {title: n for title, n in counts.items() if n > 1}
    kill_times = [k["killed_at"] for k in kills]
    for title in duplicates:
        # every acceptance but the last must have been lost to a kill: at most once more per
        # crash than the channel accepted, never a repeat by a daemon that stayed alive
        accepted = sorted(at for t, at in received if t == title)
        for at in accepted[:-1]:
            assert any(abs(killed - at) <= DUPLICATE_WINDOW for killed in kill_times), (
                f"{title} was sent again without a kill right around its acceptance"
            )

    db = sqlite3.connect(data / "monitor.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    states = Counter(state for (state,) in db.execute("SELECT state FROM deliveries"))
    alerts = db.execute("SELECT COUNT(*) FROM alerts WHERE rule_id = 'drones'").fetchone()[0]
    db.close()
    assert alerts == RUNS  # one alert per story, however often the daemon died
    assert states["pending"] == 0 and states["dead"] == 0

    out = os.environ.get("MONITOR_RELIABILITY_OUT")
    if out:
        Path(out).write_text(
            json.dumps(
                {
                    "runs": RUNS,
                    "kills": kills,
                    "alerts": alerts,
                    "lost": len(missing),
                    "duplicates": duplicates,
                    "integrity": "ok",
                },
                indent=1,
            )
        )
