"""Alerts: routing a match to channels, and delivering the outbox, channel by channel.

The outbox lives in the store: one delivery row per (alert, channel), written in the poll's own
transaction. ``Dispatcher`` claims due rows, sends each to its channel, and records the result
per channel: one channel down retries with exponential backoff and finally goes dead-letter,
without delaying or repeating the others.

With no channel configured, alerts go to the console and to ``data/alerts.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO

from monitor.errors import DeliveryError
from monitor.store import Delivery, Store

log = logging.getLogger("monitor.alerts")

CONSOLE = "console"
#: Attempts before a delivery is dead-lettered, and the backoff between them.
MAX_ATTEMPTS = 12
RETRY_BASE = timedelta(seconds=10)
RETRY_CEILING = timedelta(hours=1)
CLAIM_FOR = timedelta(minutes=2)


@dataclass(frozen=True)
class AlertMessage:
    """What a channel sends: a title and a body, and the facts they were made from."""

    title: str
    body: str
    severity: str
    rule: str
    url: str | None
    facts: dict[str, Any]


class Channel(Protocol):
    """Somewhere alerts go. ``send`` raises DeliveryError when the channel did not accept."""

    name: str
    tags: frozenset[str]

    async def send(self, message: AlertMessage) -> None: ...


class ConsoleChannel:
    """The fallback channel: one line on stdout and one JSON line in ``alerts.jsonl``."""

    def __init__(self, jsonl_path: Path, stream: TextIO | None = None) -> None:
        self.name = CONSOLE
        self.tags: frozenset[str] = frozenset()
        self.jsonl_path = jsonl_path
        self.stream = stream or sys.stdout

    async def send(self, message: AlertMessage) -> None:
        line = f"[{message.severity.upper()}] {message.rule}: {message.title}"
        if message.url:
            line += f" <{message.url}>"
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            with self.jsonl_path.open("a", encoding="utf-8") as out:
                out.write(
                    json.dumps({"title": message.title, "body": message.body, **message.facts})
                    + "\n"
                )
        except OSError as exc:
            raise DeliveryError(f"console: {exc}") from None


def route(notify: Sequence[str], channels: Sequence[Channel]) -> list[str]:
    """The channels a rule's alerts go to: those carrying one of its tags; no tags, all."""
    if not notify:
        return [c.name for c in channels]
    wanted = set(notify)
    return [c.name for c in channels if c.tags & wanted or c.name == CONSOLE]


def plain_message(delivery: Delivery) -> AlertMessage:
    """A plain-text alert from an outbox row (richer rendering lives with the templates)."""
    article = delivery.payload["article"]
    match = delivery.payload["match"]
    terms = sorted({hit["text"] for hit in match.get("hits", [])})
    lines = [
        f"{match['severity'].upper()} · rule {match['rule']}",
        f"{article.get('title') or '(untitled)'}",
        f"source: {article.get('feed')}  published: {article.get('published') or 'unknown'}",
    ]
    if article.get("url"):
        lines.append(f"link: {article['url']}")
    if terms:
        lines.append("matched: " + ", ".join(terms))
    if match.get("snippet"):
        lines.append(match["snippet"])
    if delivery.also_reported_by:
        lines.append("also reported by: " + ", ".join(delivery.also_reported_by))
    facts = {
        "rule": match["rule"],
        "severity": match["severity"],
        "article_id": article.get("id"),
        "url": article.get("url"),
        "feed": article.get("feed"),
        "published": article.get("published"),
        "matched": terms,
        "also_reported_by": delivery.also_reported_by,
    }
    return AlertMessage(
        title=article.get("title") or "(untitled)",
        body="\n".join(lines),
        severity=match["severity"],
        rule=match["rule"],
        url=article.get("url"),
        facts=facts,
    )


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Exponential backoff with full jitter in the upper half, capped."""
    ceiling = min(
        RETRY_CEILING.total_seconds(), RETRY_BASE.total_seconds() * 2 ** max(attempts - 1, 0)
    )
    return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


class Dispatcher:
    """Sends what the outbox holds, per channel, and records each outcome in the store."""

    def __init__(
        self,
        store: Store,
        channels: Sequence[Channel],
        owner: str,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.owner = owner
        self.rng = rng or random.Random()

    async def deliver_due(self, now: datetime) -> tuple[int, int]:
        """Try every due delivery once: (how many were tried, how many were accepted)."""
        batch = self.store.claim_deliveries(self.owner, now, CLAIM_FOR)
        if not batch:
            return 0, 0
        results = await asyncio.gather(*(self._deliver(d, now) for d in batch))
        return len(batch), sum(results)

    async def _deliver(self, delivery: Delivery, now: datetime) -> bool:
        channel = self.channels.get(delivery.channel)
        try:
            if channel is None:
                raise DeliveryError(f"channel {delivery.channel!r} is no longer configured")
            await channel.send(plain_message(delivery))
        except DeliveryError as exc:
            attempts = delivery.attempts + 1
            retry_at = None if attempts >= MAX_ATTEMPTS else now + retry_delay(attempts, self.rng)
            log.warning(
                "delivery failed channel=%s alert=%s attempts=%d error=%s%s",
                delivery.channel, delivery.alert_id, attempts, exc,
                "" if retry_at else " (dead-lettered)",
            )  # fmt: skip
            self.store.settle_delivery(
                delivery.id, now, sent=False, error=str(exc), retry_at=retry_at
            )
            return False
        self.store.settle_delivery(delivery.id, now, sent=True)
        return True
