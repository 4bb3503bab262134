"""Alerts: channels, routing, rendering, delivery policies and the outbox dispatcher.

The outbox lives in the store: one delivery row per (alert, channel), written in the poll's own
transaction. ``Dispatcher`` first *plans* new alerts once (throttle, digest, quiet hours decide
when each channel gets them and with which batch key), then claims due deliveries, groups them
per channel into messages (a batch key is one message; a rate limit coalesces a burst into one
batched message), sends each message through its own channel and records the result per
channel: one channel down retries with exponential backoff and finally goes dead-letter,
without delaying or repeating the others.

Channels: each Apprise service (from ``MONITOR_APPRISE_URLS`` or an Apprise config file) is its
own channel with its own ``Apprise`` instance, so one service's result never decides another's.
With no channel configured, alerts go to the console and to ``data/alerts.jsonl``.

Rendering: Jinja2 templates (``monitor/templates/``, overridable from ``rules/templates/``), one
environment per body format. Feed text is untrusted: every value a template prints is escaped for
the format (HTML autoescape; Markdown punctuation and angle brackets; in every format mentions
such as ``@everyone`` and link schemes are broken with a zero-width space), and only http(s)
links are ever linked. A body over its service's limit is rendered compact (each field capped,
a batch's whole entries dropped with "and N more not shown"), never cut inside its markup.

The policy decisions (``throttle_decision``, ``quiet_until``, ``next_digest``, ``plan_alert``,
``coalesce``, ``health_event``, ``silence_due``) are pure functions of their inputs and ``now``.
This module knows rules only as plain values (``RulePolicy``, ``TagPolicy``): it does not import
the rules package.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import random
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import parse_qs, urlsplit

import apprise
from apprise.config.base import ConfigBase
from apprise.utils.parse import parse_urls
from apscheduler.triggers.cron import CronTrigger
from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq
from ruamel.yaml.error import YAMLError

from monitor.errors import ConfigError, DeliveryError
from monitor.schema import DigestSchedule, QuietHours, Severity
from monitor.store import (
    NOTICE_RULE,
    AlertPlan,
    Delivery,
    Notice,
    PlanInput,
    RuleWindow,
    Store,
)

log = logging.getLogger("monitor.alerts")

CONSOLE = "console"
OPS_TAG = "ops"
#: Attempts before a delivery is dead-lettered, and the backoff between them.
MAX_ATTEMPTS = 12
RETRY_BASE = timedelta(seconds=10)
RETRY_CEILING = timedelta(hours=1)
CLAIM_FOR = timedelta(minutes=2)
#: How long one send may take before it counts as failed (well inside CLAIM_FOR).
SEND_TIMEOUT = 30.0
CLAIM_LIMIT = 200

FORMATS = ("text", "markdown", "html")
_EXTENSIONS = {"text": "txt", "markdown": "md", "html": "html"}


# --------------------------------------------------------------------------------------------
# What a message is made of


@dataclass(frozen=True)
class AlertView:
    """One alert as templates see it; the text fields are untrusted feed text."""

    kind: str  # match | notice | test
    severity: str
    rule: str
    rule_title: str
    title: str
    source: str
    published: str  # formatted, or ""
    url: str | None  # http(s) only
    terms: list[str]
    snippet: list[tuple[str, bool]]  # (text, is a hit)
    also_reported_by: list[str]
    notice: dict[str, Any] = field(default_factory=dict)
    article_id: str | None = None

    def facts(self) -> dict[str, Any]:
        """The alert as data (alerts.jsonl, logs)."""
        return {
            "kind": self.kind,
            "rule": self.rule,
            "severity": self.severity,
            "article_id": self.article_id,
            "url": self.url,
            "feed": self.source,
            "published": self.published or None,
            "matched": self.terms,
            "also_reported_by": self.also_reported_by,
            **({"notice": self.notice} if self.notice else {}),
        }


@dataclass(frozen=True)
class Message:
    """What one send carries: one alert, or several as one message.

    ``mode``: single | throttle (the first in full, "and N more") | digest | quiet (released
    after quiet hours) | batch (coalesced by a rate limit) | test.
    """

    alerts: list[AlertView]
    mode: str = "single"

    @property
    def severity(self) -> str:
        worst = max((_severity(a.severity) for a in self.alerts), default=Severity.info)
        return worst.name

    def title(self) -> str:
        """The message's title, plain (unescaped) text."""
        n = len(self.alerts)
        first = self.alerts[0]
        sev = self.severity.upper()
        if self.mode == "test":
            return "wire-monitor: test alert"
        if n == 1 or self.mode == "throttle":
            if first.kind == "notice":
                headline = notice_headline(first.notice)
            else:
                headline = first.title or "(untitled)"
            more = f" (and {n - 1} more)" if n > 1 else ""
            return f"{sev}: {headline}{more}"
        rules = sorted({a.rule_title or a.rule for a in self.alerts})
        scope = rules[0] if len(rules) == 1 else f"{len(rules)} rules"
        if self.mode == "digest":
            return f"{sev}: digest of {n} alerts for {scope}"
        if self.mode == "quiet":
            return f"{sev}: {n} alerts held during quiet hours ({scope})"
        return f"{sev}: {n} alerts ({scope})"


def notice_headline(notice: Mapping[str, Any]) -> str:
    feed = notice.get("feed", "?")
    kind = notice.get("kind")
    if kind == "failure":
        return f"Feed {feed} is failing ({notice.get('failures', '?')} failures in a row)"
    if kind == "recovery":
        return f"Feed {feed} recovered"
    if kind == "silence":
        return f"Feed {feed} has published nothing for {notice.get('silent_for', '?')}"
    return f"Feed {feed}: {kind}"


def _severity(value: str) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError:
        return Severity.medium


def _safe_url(url: Any) -> str | None:
    """The URL when it is an absolute http(s) URL without whitespace or controls; else None."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    if not re.match(r"(?i)^https?://[^\s/?#]+", text) or re.search(r"[\s\x00-\x1f\x7f<>\"]", text):
        return None
    return text


def highlight_segments(snippet: str, hits: Iterable[str]) -> list[tuple[str, bool]]:
    """Split a snippet into (text, is_hit) pieces, hits found case-insensitively."""
    words = sorted({h for h in hits if h and h.strip()}, key=len, reverse=True)
    if not snippet or not words:
        return [(snippet, False)] if snippet else []
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    pieces: list[tuple[str, bool]] = []
    last = 0
    for found in pattern.finditer(snippet):
        if found.start() > last:
            pieces.append((snippet[last : found.start()], False))
        pieces.append((found.group(0), True))
        last = found.end()
    if last < len(snippet):
        pieces.append((snippet[last:], False))
    return pieces


def _published(value: Any) -> str:
    if not value:
        return ""
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def view_of(delivery: Delivery, rule_titles: Mapping[str, str] | None = None) -> AlertView:
    """An outbox row as templates see it."""
    payload = delivery.payload
    if "notice" in payload:
        notice = dict(payload["notice"])
        return AlertView(
            kind="notice",
            severity=delivery.severity,
            rule=NOTICE_RULE,
            rule_title="feed health",
            title=notice_headline(notice),
            source=str(notice.get("feed", "")),
            published="",
            url=_safe_url(notice.get("url")),
            terms=[],
            snippet=[(str(notice.get("error") or ""), False)] if notice.get("error") else [],
            also_reported_by=[],
            notice=notice,
        )
    article = payload.get("article", {})
    match = payload.get("match", {})
    hits = [hit.get("text", "") for hit in match.get("hits", [])]
    rule = str(match.get("rule", delivery.rule_id))
    return AlertView(
        kind="match",
        severity=str(match.get("severity", delivery.severity)),
        rule=rule,
        rule_title=(rule_titles or {}).get(rule, "") or rule,
        title=str(article.get("title") or ""),
        source=str(article.get("feed") or ""),
        published=_published(article.get("published")),
        url=_safe_url(article.get("url")),
        terms=sorted(set(hits)),
        snippet=highlight_segments(str(match.get("snippet") or ""), hits),
        also_reported_by=list(delivery.also_reported_by),
        article_id=article.get("id"),
    )


def test_view(now: datetime) -> AlertView:
    """The alert `monitor notify-test` sends."""
    return AlertView(
        kind="test",
        severity="info",
        rule="notify-test",
        rule_title="notify-test",
        title="wire-monitor test alert",
        source="wire-monitor",
        published=now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        url=None,
        terms=["test"],
        snippet=[("This is a ", False), ("test", True), (" of the alert channels.", False)],
        also_reported_by=[],
    )


# --------------------------------------------------------------------------------------------
# Escaping untrusted text for each body format

_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_AT_MENTION = re.compile(r"(?<![\w.+-])([@\uff20])(?=\w)")
_ANGLE_MENTION = re.compile(r"<([@#!])")
_SCHEME = re.compile(
    r"(?i)\b(https?|ftp|javascript|vbscript|data|file|mailto|tel|sms|intent)(\s*:)"
)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
#: A dot between a name and at least two letters: a domain's (not "3.5", "e.g." or "U.S.").
_DOMAIN_DOT = re.compile(r"(?<=[A-Za-z0-9-])\.(?=[A-Za-z]{2})")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~!])")
ZWSP = "\u200b"


def neutralise(text: str) -> str:
    """Plain text that can mention no one and link nowhere: controls and bidi overrides
    dropped, ``@name`` and ``<@id>`` mentions and ``scheme:`` prefixes broken by a ZWSP."""
    text = _CONTROLS.sub("", text)
    text = _AT_MENTION.sub(lambda m: m.group(1) + ZWSP, text)
    text = _ANGLE_MENTION.sub(lambda m: "<" + ZWSP + m.group(1), text)
    return _SCHEME.sub(lambda m: m.group(1) + ZWSP + m.group(2), text)


def escape_text(value: Any) -> str:
    """Plain text that stays text even where a consumer wrongly renders it as HTML: a ``<``
    that would open a tag (``<script``, ``</b``, ``<!--``) is broken by a ZWSP."""
    return _TAG_START.sub("<" + ZWSP, neutralise(str(value)))


def escape_markdown(value: Any) -> str:
    """Markdown that displays as the given text: punctuation backslash-escaped, angle
    brackets as entities (no raw HTML, no autolinks), mentions and schemes neutralised, and
    the dots of a bare domain (``www.evil.com``, which chat services link) followed by a ZWSP."""
    text = neutralise(str(value))
    text = _DOMAIN_DOT.sub("." + ZWSP, text)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def escape_html(value: Any) -> Markup:
    return escape(neutralise(str(value)))


_ESCAPERS = {"text": escape_text, "markdown": escape_markdown, "html": escape_html}


def _finalizer(fmt: str) -> Any:
    escaper = _ESCAPERS[fmt]

    def finalize(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, Markup):
            return value  # built by our filters, already safe for this format
        if fmt == "html":
            return neutralise(str(value))  # autoescape escapes it next
        return escaper(value)

    return finalize


def _href_filter(fmt: str) -> Any:
    def href(url: Any) -> Markup:
        safe = _safe_url(url)
        if safe is None:
            return Markup("")
        if fmt == "markdown":
            return Markup(re.sub(r"[()<>\[\]\\ `]", lambda m: f"%{ord(m.group(0)):02X}", safe))
        if fmt == "html":
            return escape(safe)
        return Markup(safe)

    return href


def _highlight_filter(fmt: str) -> Any:
    escaper = _ESCAPERS[fmt]

    def highlight(segments: Sequence[tuple[str, bool]]) -> Markup:
        out = []
        for raw, hit in segments:
            # in Markdown a snippet is one paragraph (a blockquote line)
            text = " ".join(raw.splitlines()) if fmt == "markdown" else raw
            piece = str(escaper(text))
            if hit and fmt == "markdown":
                piece = f"**{piece}**"
            elif hit and fmt == "html":
                piece = f"<mark><strong>{piece}</strong></mark>"
            elif hit:
                piece = f"*{piece}*"
            out.append(piece)
        return Markup("".join(out))

    return highlight


def _esc_filter(fmt: str) -> Any:
    escaper = _ESCAPERS[fmt]
    return lambda value: Markup(str(escaper(value)))


class Renderer:
    """Jinja2 templates, one sandboxed environment per format; ``override_dir`` first."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[Any] = []
        if override_dir is not None and override_dir.is_dir():
            loaders.append(FileSystemLoader(str(override_dir)))
        loaders.append(PackageLoader("monitor", "templates"))
        self.override_dir = override_dir
        self.envs: dict[str, ImmutableSandboxedEnvironment] = {}
        for fmt in FORMATS:
            env = ImmutableSandboxedEnvironment(
                loader=ChoiceLoader(loaders),
                autoescape=select_autoescape(["html.j2"], default_for_string=False)
                if fmt == "html"
                else False,
                finalize=_finalizer(fmt),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
            )
            env.filters["href"] = _href_filter(fmt)
            env.filters["highlight"] = _highlight_filter(fmt)
            env.filters["esc"] = _esc_filter(fmt)
            self.envs[fmt] = env

    def check(self) -> list[str]:
        """Problems with the templates (syntax errors in overrides), as ``file:line: message``."""
        problems = []
        for fmt, env in self.envs.items():
            for kind in ("alert", "batch"):
                name = f"{kind}.{_EXTENSIONS[fmt]}.j2"
                try:
                    env.get_template(name)
                except TemplateError as exc:
                    where = getattr(exc, "filename", None) or name
                    line = getattr(exc, "lineno", None)
                    problems.append(f"{where}:{line or 1}: template error: {exc}")
        return problems

    def title(self, message: Message, fmt: str, maxlen: int = 0, *, plain: bool = False) -> str:
        """The title for ``fmt`` (``plain``: the service shows it as text, e.g. a subject),
        escaped and at most ``maxlen`` characters (0: no limit)."""
        escaper = escape_text if plain or fmt == "text" else _ESCAPERS[fmt]
        return fit_escaped(message.title(), escaper, maxlen)

    def body(self, message: Message, fmt: str, maxlen: int = 0) -> str:
        """The body for ``fmt``, at most ``maxlen`` characters (0: no limit).

        Too long in full, it is rendered compact: every field capped (``COMPACT_CAPS``, the
        tighter caps next) so that no one field can push the severity, rule, title, source or
        link out, and of a batch as many whole entries as fit, then "and N more not shown".
        Templates render whole entries only, so markup is never cut; a limit too small for
        even one compact entry gets one escaped line (``_one_line``).
        """
        body = self._render(message, fmt)
        if maxlen <= 0 or len(body) <= maxlen:
            return body
        for caps in COMPACT_CAPS:
            fitted = self._fit_entries(message, fmt, maxlen, caps)
            if fitted is not None:
                return fitted
        return self._one_line(message, fmt, maxlen)

    def _fit_entries(self, message: Message, fmt: str, maxlen: int, caps: Caps) -> str | None:
        """The compact render with the most whole entries (at least one) that fits ``maxlen``;
        None when even one does not. A binary search: a few renders for any batch size."""
        low, high, best = 1, len(message.alerts), None
        while low <= high:
            shown = (low + high) // 2
            body = self._render(message, fmt, caps, shown)
            if len(body) <= maxlen:
                best, low = body, shown + 1
            else:
                high = shown - 1
        return best

    def _one_line(self, message: Message, fmt: str, maxlen: int) -> str:
        """The last resort for a tiny limit: the first alert's severity, rule, source and title
        as one escaped line, the title cut to fit, its link when there is room, and for a batch
        "and N more not shown"."""
        first, escaper = message.alerts[0], _ESCAPERS[fmt]
        facts = [first.severity.upper(), first.rule_title or first.rule, first.source, first.title]
        text = " · ".join(fact for fact in facts if fact)
        more = len(message.alerts) - 1
        tail = str(escaper(f" · and {more} more not shown")) if more else ""
        link = str(self.envs[fmt].filters["href"](first.url)) if first.url else ""
        if link and len(link) + len(tail) + ONE_LINE_MIN_TEXT < maxlen:
            tail = f" {link}{tail}"
        return fit_escaped(text, escaper, maxlen, tail)

    def _render(
        self, message: Message, fmt: str, caps: Caps | None = None, shown: int | None = None
    ) -> str:
        """The template's output: in full, or (``caps``) compact with the first ``shown``
        entries of a batch and the count of those ``omitted``."""
        env = self.envs[fmt]
        kind = "alert" if len(message.alerts) == 1 and message.mode != "digest" else "batch"
        alerts = message.alerts
        title = message.title()
        if caps is not None:
            alerts = [_compact(a, caps) for a in alerts]
            title = _clip(title, caps.title)
        shown = len(alerts) if shown is None else max(shown, 1)
        context = {
            "alerts": alerts[:shown],
            "a": alerts[0],
            "count": len(alerts),
            "more": len(alerts) - 1,
            "omitted": len(alerts) - shown,
            "mode": message.mode,
            "title": title,
            "severity": message.severity,
            "compact": caps is not None,
        }
        return env.get_template(f"{kind}.{_EXTENSIONS[fmt]}.j2").render(context).strip() + "\n"


@dataclass(frozen=True)
class Caps:
    """How much of each untrusted field a compact render keeps (characters, or items), so
    that one long field cannot push the essentials of an alert out of a limited body."""

    title: int
    snippet: int  # characters of snippet text; 0: none
    name: int  # a rule title, source, published time, matched term or other source
    terms: int  # matched terms shown
    sources: int  # "also reported by" names shown


#: The compact forms, tried in turn when a body exceeds its service's limit.
COMPACT_CAPS = (
    Caps(title=200, snippet=160, name=80, terms=10, sources=5),
    Caps(title=100, snippet=0, name=40, terms=3, sources=0),
)
#: The least room `_one_line` leaves the text beside a link (else the link is left out).
ONE_LINE_MIN_TEXT = 40


def _clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…" if limit > 0 else ""


def fit_escaped(raw: str, escaper: Callable[[Any], Any], maxlen: int, tail: str = "") -> str:
    """``raw`` escaped by ``escaper``, then ``tail`` (already safe for the format), in at
    most ``maxlen`` characters (0: no limit). The raw text is cut before it is escaped, so an
    escape sequence or entity is never split; the tail is dropped when it alone is too long."""
    text = str(escaper(raw)) + tail
    if maxlen <= 0 or len(text) <= maxlen:
        return text
    if len(tail) >= maxlen:
        tail, text = "", str(escaper(raw))
    room = len(raw)
    while len(text) > maxlen and room > 0:  # room shrinks every turn: bounded
        escaped = len(text) - len(tail)  # escaping lengthens text: shrink in proportion
        room = min(room - 1, room * (maxlen - len(tail)) // max(escaped, 1))
        text = str(escaper(_clip(raw, max(room, 0)))) + tail
    return text


def _compact(view: AlertView, caps: Caps) -> AlertView:
    """``view`` with every untrusted field within ``caps``, cut before it is escaped."""
    pieces: list[tuple[str, bool]] = []
    used = 0
    for text, hit in view.snippet:
        if used >= caps.snippet:
            break
        piece = _clip(text, caps.name if hit else caps.snippet - used)
        pieces.append((piece, hit))
        used += len(piece)
    notice = dict(view.notice)
    if notice.get("error"):
        notice["error"] = _clip(str(notice["error"]), max(caps.snippet, caps.name))
    return replace(
        view,
        title=_clip(view.title, caps.title),
        rule_title=_clip(view.rule_title, caps.name),
        source=_clip(view.source, caps.name),
        published=_clip(view.published, caps.name),
        terms=[_clip(term, caps.name) for term in view.terms[: caps.terms]],
        snippet=pieces,
        also_reported_by=[_clip(s, caps.name) for s in view.also_reported_by[: caps.sources]],
        notice=notice,
    )


# --------------------------------------------------------------------------------------------
# Channels


class Channel(Protocol):
    """Somewhere alerts go. ``send`` raises DeliveryError when the channel did not accept."""

    name: str
    tags: frozenset[str]

    async def send(self, message: Message) -> None: ...


class ConsoleChannel:
    """The fallback channel: one line per alert on stdout and one JSON line in ``alerts.jsonl``."""

    def __init__(
        self, jsonl_path: Path, stream: TextIO | None = None, renderer: Renderer | None = None
    ) -> None:
        self.name = CONSOLE
        self.label = f"console + {jsonl_path.name}"
        self.tags: frozenset[str] = frozenset()
        self.jsonl_path = jsonl_path
        self.stream = stream or sys.stdout
        self.renderer = renderer or Renderer()

    async def send(self, message: Message) -> None:
        body = self.renderer.body(message, "text")
        try:
            for view in message.alerts:
                line = f"[{view.severity.upper()}] {view.rule}: {escape_text(view.title)}"
                if view.url:
                    line += f" <{view.url}>"
                self.stream.write(line + "\n")
            self.stream.flush()
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            with self.jsonl_path.open("a", encoding="utf-8") as out:
                for view in message.alerts:
                    record = {"title": view.title, "body": body, "mode": message.mode}
                    out.write(json.dumps({**record, **view.facts()}) + "\n")
        except OSError as exc:
            raise DeliveryError(f"console: {exc}") from None


def _formats_of(service: Any) -> tuple[str, ...]:
    declared = service.notify_format
    items = declared if isinstance(declared, list | tuple | set) else [declared]
    return tuple(str(getattr(f, "value", f)).lower() for f in items)


def choose_format(formats: Sequence[str], default: str, explicit: str | None = None) -> str:
    """Markdown for chat, HTML for email, text otherwise, among what the service supports;
    a single-format service, or an explicit ``?format=`` (``explicit``, or ``default``
    differing from the first declared format), keeps its own."""
    if not formats:
        return "text"
    if explicit in formats and explicit in FORMATS:
        return explicit
    if len(formats) == 1 or default != formats[0]:
        return default if default in FORMATS else "text"
    for preferred in ("markdown", "html", "text"):
        if preferred in formats:
            return preferred
    return "text"


def explicit_format(service: Any) -> str | None:
    """The ``?format=`` the service's URL gives, if any: Apprise writes it back into the URL
    only when it was asked for (``resolve_format`` cannot tell ``?format=text`` on a service
    whose first format is text from no choice at all)."""
    query = parse_qs(urlsplit(str(service.url(privacy=True))).query)
    return query.get("format", [None])[0]


def channel_name(service: Any) -> str:
    """A name stable across restarts and free of secrets: the scheme and a short hash of the
    service's full URL (secrets hashed, never shown)."""
    private = str(service.url(privacy=False))
    scheme = private.split("://", 1)[0] or "apprise"
    digest = hashlib.sha256(private.encode()).hexdigest()[:10]
    return f"{scheme}-{digest}"


#: What Apprise adds when it joins a title into the body (a line break, "# " or <b></b><br />).
TITLE_JOIN_SLACK = 24

_NOTIFY_TYPES = {
    "critical": "failure",
    "high": "failure",
    "medium": "warning",
    "low": "info",
    "info": "info",
}


class AppriseChannel:
    """One Apprise service, in an Apprise instance of its own."""

    def __init__(
        self,
        service: Any,
        renderer: Renderer,
        *,
        extra_tags: Iterable[str] = (),
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.service = service
        self.apprise = apprise.Apprise()
        self.apprise.add(service)
        self.renderer = renderer
        self.timeout = timeout
        self.name = channel_name(service)
        self.label = str(service.url(privacy=True)).split("?", 1)[0]
        self.tags = frozenset(str(t) for t in service.tags) | frozenset(extra_tags)
        self.format = choose_format(
            _formats_of(service),
            str(getattr(service.resolve_format(None), "value", "text")),
            explicit_format(service),
        )
        self.is_email = self.label.startswith(("mailto", "mailtos"))

    def render(self, message: Message) -> tuple[str, str]:
        """Title and body within the service's limits as Apprise counts them: a service that
        shows no title gets it joined into the body, and some count title and body together
        (``overflow_amalgamate_title``)."""
        title_max = int(getattr(self.service, "title_maxlen", 0) or 0)
        body_max = int(getattr(self.service, "body_maxlen", 0) or 0)
        joined = title_max <= 0 or bool(getattr(self.service, "overflow_amalgamate_title", 0))
        if title_max <= 0 and body_max > 0:  # joined into the body: the body keeps most room
            title_max = body_max // 3
        title = self.renderer.title(message, self.format, title_max, plain=self.is_email)
        if joined and body_max > 0:
            body_max = max(body_max - len(title) - TITLE_JOIN_SLACK, 1)
        return title, self.renderer.body(message, self.format, body_max)

    async def send(self, message: Message) -> None:
        title, body = self.render(message)
        notify_type = (
            "success"
            if message.alerts[0].notice.get("kind") == "recovery"
            else _NOTIFY_TYPES.get(message.severity, "info")
        )
        try:
            result = await self.apprise.async_notify(
                body=body,
                title=title,
                body_format=self.format,
                notify_type=notify_type,
                timeout=self.timeout,
            )
        except Exception as exc:  # a plugin bug is this channel's failure, nobody else's
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if not result:
            reason = getattr(getattr(result, "status", None), "name", "refused")
            detail = ""
            with contextlib.suppress(Exception):
                messages = [str(entry.message) for entry in result.logs()]
                detail = f": {messages[-1][:200]}" if messages else ""
            raise DeliveryError(f"{self.name} did not accept ({reason}){detail}")


def load_channels(
    urls: str, config_path: Path | None, renderer: Renderer | None = None
) -> list[AppriseChannel]:
    """The Apprise channels of ``MONITOR_APPRISE_URLS`` and ``MONITOR_APPRISE_CONFIG``.

    An URL Apprise cannot use, a missing config file, or a config file that yields no
    services is a ConfigError (Apprise itself only logs those). Messages name the URL's scheme
    and position, never the URL (it may hold a secret).
    """
    renderer = renderer or Renderer()
    services: list[Any] = []
    if urls.strip():
        parsed: list[str] = parse_urls(urls)  # type: ignore[no-untyped-call]
        for index, url in enumerate(parsed, start=1):
            service = apprise.Apprise.instantiate(url)
            if service is None:
                raise ConfigError(
                    f"MONITOR_APPRISE_URLS: URL #{index} ({_scheme_of(url)}://...) is not a "
                    "valid Apprise URL"
                )
            services.append(service)
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(f"MONITOR_APPRISE_CONFIG: {config_path}: no such file")
        config = apprise.AppriseConfig()
        if not config.add(str(config_path.resolve())):
            raise ConfigError(f"{config_path}: not a readable Apprise configuration")
        found = config.services()
        if not found:
            raise ConfigError(
                f"{config_path}: the Apprise configuration yields no services (check its "
                "syntax: YAML 'urls:' in a .yml or .yaml file, else TEXT 'tag=url' lines)"
            )
        services.extend(found)
    channels: dict[str, AppriseChannel] = {}
    for service in services:
        channel = AppriseChannel(service, renderer)
        if channel.name in channels:  # the same URL twice: one channel with both tag sets
            channels[channel.name].tags |= channel.tags
        else:
            channels[channel.name] = channel
    return list(channels.values())


def _scheme_of(url: str) -> str:
    """An URL's scheme, the one part of it safe to show (the rest may hold a secret)."""
    return url.split("://", 1)[0].strip() if "://" in url else "?"


@dataclass(frozen=True)
class _ConfigEntry:
    """One service entry of an Apprise config file, as a configuration of its own."""

    line: int
    scheme: str
    content: str  # the file's settings with this entry alone
    services: int  # how many services it should yield


_TEXT_URL = re.compile(r"(?i)([a-z0-9]+)://")


def _text_entries(content: str) -> list[_ConfigEntry]:
    """TEXT form: every ``[tags=]scheme://...`` line is one entry (a line alone is a
    config; ``group=tags`` lines change tags only, ``include`` lines are other files)."""
    entries = []
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.strip()
        url = _TEXT_URL.search(text)
        if url is not None and not text.startswith(("#", ";", "include")):
            entries.append(_ConfigEntry(number, url.group(1), text, 1))
    return entries


def _yaml_entries(content: str) -> list[_ConfigEntry]:
    """YAML form: every item of ``urls:``, with the file's other settings (tags, asset)."""
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(content)
    except YAMLError:
        return []  # the whole file is unreadable: load_channels reports that
    urls = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(urls, CommentedSeq):
        return []
    shared = {key: value for key, value in data.items() if key not in ("urls", "include")}
    entries = []
    for index, entry in enumerate(urls):
        url = next(iter(entry), "") if isinstance(entry, dict) else str(entry)
        items = entry.get(url) if isinstance(entry, dict) else None
        alone = io.StringIO()
        yaml.dump({**shared, "urls": [entry]}, alone)
        entries.append(
            _ConfigEntry(
                line=urls.lc.item(index)[0] + 1,
                scheme=_scheme_of(str(url)),
                content=alone.getvalue(),
                services=len(items) if isinstance(items, list) and items else 1,
            )
        )
    return entries


@contextlib.contextmanager
def _apprise_logging_off() -> Iterator[None]:
    """Apprise's own log lines off for a while (they may show a whole URL, secret and all)."""
    logger = logging.getLogger("apprise")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def config_warnings(path: Path) -> list[str]:
    """The entries of an Apprise config file that yield no service, which Apprise only logs
    and drops, as ``file:line: warning: ...``. Each entry is parsed alone by Apprise's own
    parser; it is named by line and scheme, never by its URL (which may hold a secret)."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return []  # load_channels reports a file it cannot read
    is_yaml = path.suffix.lower() in (".yml", ".yaml")  # as Apprise decides the format
    parse = ConfigBase.config_parse_yaml if is_yaml else ConfigBase.config_parse_text
    with _apprise_logging_off():  # the whole file's parse has logged these already
        bad = [
            entry
            for entry in (_yaml_entries if is_yaml else _text_entries)(content)
            if len(parse(entry.content)[0]) < entry.services
        ]
    return [
        f"{path}:{entry.line}: warning: the Apprise entry {entry.scheme}://... yields no "
        "service and is ignored (check its URL and arguments)"
        for entry in bad
    ]


def route(notify: Sequence[str], channels: Sequence[Channel]) -> list[str]:
    """The channels a rule's alerts go to: those carrying one of its tags; no tags, all."""
    if not notify:
        return [c.name for c in channels]
    wanted = set(notify)
    return [c.name for c in channels if c.tags & wanted or c.name == CONSOLE]


def route_notice(channels: Sequence[Channel], tag: str = OPS_TAG) -> list[str]:
    """Feed-health notices go to the channels tagged ``ops``; when none is, to all of them."""
    tagged = [c.name for c in channels if tag in c.tags]
    return tagged or [c.name for c in channels]


def unrouted_tags(
    notify: Mapping[str, Sequence[str]], channels: Sequence[Channel]
) -> list[tuple[str, str]]:
    """(rule, tag) pairs where no channel carries the tag (the console takes every tag)."""
    if any(c.name == CONSOLE for c in channels):
        return []
    carried = {t for c in channels for t in c.tags}
    return [(rule, tag) for rule, tags in notify.items() for tag in tags if tag not in carried]


# --------------------------------------------------------------------------------------------
# Delivery policies: pure decisions


@dataclass(frozen=True)
class RulePolicy:
    """What the dispatcher needs of one rule."""

    title: str = ""
    throttle: timedelta | None = None
    digest: DigestSchedule | None = None
    quiet: QuietHours | None = None
    bypass_severity: Severity = Severity.critical


@dataclass(frozen=True)
class TagPolicy:
    """Delivery policy of one Apprise tag (channels.yaml)."""

    rate_count: int | None = None
    rate_period: timedelta | None = None
    quiet: QuietHours | None = None
    bypass_severity: Severity = Severity.critical


@dataclass(frozen=True)
class Policies:
    rules: Mapping[str, RulePolicy] = field(default_factory=dict)
    tags: Mapping[str, TagPolicy] = field(default_factory=dict)

    def rule_titles(self) -> dict[str, str]:
        return {rule: p.title for rule, p in self.rules.items() if p.title}

    def for_channel(self, tags: Iterable[str]) -> list[TagPolicy]:
        return [self.tags[t] for t in sorted(tags) if t in self.tags]

    def rate_limit(self, tags: Iterable[str]) -> tuple[int, timedelta] | None:
        """The strictest rate limit among the channel's tags."""
        limits = [
            (p.rate_count, p.rate_period)
            for p in self.for_channel(tags)
            if p.rate_count and p.rate_period
        ]
        if not limits:
            return None
        return min(limits, key=lambda cp: cp[0] / cp[1].total_seconds())


def quiet_until(window: QuietHours, at: datetime) -> datetime | None:
    """When the quiet window ``at`` falls in ends (UTC); None when ``at`` is outside it."""
    if window.start == window.end:
        return None
    local = at.astimezone(window.zone)
    now_t = local.time().replace(tzinfo=None)
    if window.start < window.end:
        inside = window.start <= now_t < window.end
        end_date = local.date()
    else:
        inside = now_t >= window.start or now_t < window.end
        end_date = local.date() + timedelta(days=1) if now_t >= window.start else local.date()
    if not inside:
        return None
    return datetime.combine(end_date, window.end, tzinfo=window.zone).astimezone(UTC)


def digest_trigger(schedule: DigestSchedule) -> CronTrigger:
    """The cron trigger of a digest schedule, parsed (and so validated) when the rule loaded."""
    at, zone = schedule.at, schedule.zone
    if schedule.every == "hour":
        return CronTrigger(minute=at.minute, timezone=zone)
    if schedule.every == "day":
        return CronTrigger(hour=at.hour, minute=at.minute, timezone=zone)
    return CronTrigger(day_of_week=schedule.day, hour=at.hour, minute=at.minute, timezone=zone)


def next_digest(schedule: DigestSchedule, now: datetime) -> datetime:
    """The next time the digest goes out, strictly after ``now`` (UTC)."""
    fire = digest_trigger(schedule).get_next_fire_time(None, now + timedelta(microseconds=1))
    if fire is None:  # pragma: no cover - a cron of minutes and hours always fires again
        raise ValueError(f"digest '{schedule}' never fires")
    return fire.astimezone(UTC)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ThrottleDecision:
    release_at: datetime | None  # None: send now
    window: RuleWindow


def throttle_decision(
    window: RuleWindow | None, throttle: timedelta, now: datetime
) -> ThrottleDecision:
    """At most one message per ``throttle`` window per rule.

    The first alert opens a window and goes at once; later ones in the window are held to its
    end and folded into one message there, which opens the next window.
    """
    if window is None:
        return ThrottleDecision(None, RuleWindow(now + throttle, held=False))
    end = window.window_until
    if now < end:
        return ThrottleDecision(end, RuleWindow(end, held=True))
    if window.held:  # a folded message goes at ``end``: the next window starts there
        following = end + throttle
        if now < following:
            return ThrottleDecision(following, RuleWindow(following, held=True))
    return ThrottleDecision(None, RuleWindow(now + throttle, held=False))


def plan_alert(
    item: PlanInput,
    now: datetime,
    rule: RulePolicy | None,
    channel_quiet: Mapping[str, Sequence[tuple[QuietHours, Severity]]],
) -> AlertPlan:
    """When each channel gets an alert, and in which batch: digest or throttle first (per
    rule), then quiet hours (the rule's and each channel's) push the release to the end of
    the window, unless the alert's severity reaches the window's ``bypass_severity``."""
    severity = _severity(item.severity)
    release, key, window = now, None, None
    if rule is not None and rule.digest:
        release = next_digest(rule.digest, now)
        key = f"digest:{item.rule_id}:{release.isoformat()}"
    elif rule is not None and rule.throttle:
        decision = throttle_decision(item.window, rule.throttle, now)
        window = decision.window
        if decision.release_at is not None:
            release = decision.release_at
            key = f"throttle:{item.rule_id}:{release.isoformat()}"
    planned: dict[str, tuple[datetime, str | None]] = {}
    for channel in item.channels:
        windows = list(channel_quiet.get(channel, ()))
        if rule is not None and rule.quiet is not None:
            windows.insert(0, (rule.quiet, rule.bypass_severity))
        at, batch = release, key
        for _ in range(4):  # windows may chain (one ends inside another); bounded
            moved = False
            for quiet, bypass in windows:
                if severity >= bypass:
                    continue
                end = quiet_until(quiet, at)
                if end is not None:
                    at, batch, moved = end, f"quiet:{end.isoformat()}", True
            if not moved:
                break
        planned[channel] = (at, batch)
    return AlertPlan(deliveries=planned, window=window)


def coalesce(
    groups: Sequence[list[Delivery]], capacity: int | None
) -> tuple[list[list[Delivery]], list[Delivery]]:
    """Messages to send now and deliveries to hold, under a channel's remaining ``capacity``
    (None: unlimited). Beyond capacity the rest becomes one batched message, never dropped;
    with no capacity at all everything waits for the window to free."""
    if capacity is None or len(groups) <= capacity:
        return list(groups), []
    if capacity <= 0:
        return [], [d for group in groups for d in group]
    head = list(groups[: capacity - 1])
    tail = [d for group in groups[capacity - 1 :] for d in group]
    return [*head, tail], []


def health_event(
    *, ok: bool, failures: int, failure_alert_after: int, failure_alerted: bool
) -> str | None:
    """``failure`` once a feed has failed ``failure_alert_after`` times in a row (once),
    ``recovery`` at the first success after that; otherwise None."""
    if ok:
        return "recovery" if failure_alerted else None
    if failures >= failure_alert_after and not failure_alerted:
        return "failure"
    return None


def silence_due(
    *,
    last_new_item_at: datetime | None,
    silence_after: timedelta | None,
    silence_alerted: bool,
    now: datetime,
) -> bool:
    """A feed that used to publish has published nothing for ``silence_after`` (once)."""
    if silence_after is None or last_new_item_at is None or silence_alerted:
        return False
    return now - last_new_item_at >= silence_after


def health_notice(kind: str, facts: Mapping[str, Any], channels: list[str]) -> Notice:
    severity = {"failure": "high", "recovery": "info", "silence": "medium"}.get(kind, "medium")
    return Notice(kind=kind, severity=severity, facts=dict(facts), channels=channels)


# --------------------------------------------------------------------------------------------
# The dispatcher


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Exponential backoff with full jitter in the upper half, capped."""
    ceiling = min(
        RETRY_CEILING.total_seconds(), RETRY_BASE.total_seconds() * 2 ** max(attempts - 1, 0)
    )
    return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


def _mode_of(group: Sequence[Delivery], coalesced: bool) -> str:
    if coalesced:
        return "batch"
    key = group[0].batch_key or ""
    prefix = key.split(":", 1)[0]
    if prefix in ("throttle", "digest", "quiet"):
        return prefix
    if prefix == "rate":
        return "batch"
    return "single"


def group_messages(batch: Sequence[Delivery]) -> list[list[Delivery]]:
    """One channel's due deliveries as messages: a batch key is one message, others one each."""
    groups: dict[str, list[Delivery]] = {}
    for delivery in sorted(batch, key=lambda d: d.id):
        key = f"key:{delivery.batch_key}" if delivery.batch_key else f"id:{delivery.id}"
        groups.setdefault(key, []).append(delivery)
    return list(groups.values())


class Dispatcher:
    """Plans new alerts, then sends what the outbox holds, per channel, recording each
    outcome in the store."""

    def __init__(
        self,
        store: Store,
        channels: Sequence[Channel],
        owner: str,
        rng: random.Random | None = None,
        policies: Policies | None = None,
        *,
        on_sent: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.owner = owner
        self.rng = rng or random.Random()
        self.policies = policies or Policies()
        #: told the ids of deliveries a channel accepted (metrics); must not raise
        self.on_sent = on_sent
        self._busy: dict[str, asyncio.Task[tuple[int, int]]] = {}

    def plan(self, now: datetime) -> int:
        """Decide the release time and batch of every new alert's deliveries."""
        quiet: dict[str, list[tuple[QuietHours, Severity]]] = {}
        for name, channel in self.channels.items():
            quiet[name] = [
                (p.quiet, p.bypass_severity)
                for p in self.policies.for_channel(channel.tags)
                if p.quiet is not None
            ]

        def decide(item: PlanInput) -> AlertPlan:
            return plan_alert(item, now, self.policies.rules.get(item.rule_id), quiet)

        return self.store.plan_alerts(now, decide)

    def _claim(self, now: datetime) -> dict[str, list[Delivery]]:
        self.plan(now)
        busy = [name for name, task in self._busy.items() if not task.done()]
        batch = self.store.claim_deliveries(
            self.owner, now, CLAIM_FOR, limit=CLAIM_LIMIT, exclude_channels=busy
        )
        by_channel: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_channel.setdefault(delivery.channel, []).append(delivery)
        return by_channel

    async def deliver_due(self, now: datetime) -> tuple[int, int]:
        """Plan, then try every due delivery once: (how many were tried, how many accepted)."""
        by_channel = self._claim(now)
        if not by_channel:
            return 0, 0
        results = await asyncio.gather(
            *(self._deliver_channel(name, batch, now) for name, batch in by_channel.items())
        )
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def start_due(self, now: datetime) -> int:
        """Like ``deliver_due`` without waiting: each channel's sends run as their own task,
        so a slow channel never holds up the others (its next round waits for it alone)."""
        by_channel = self._claim(now)
        for name, batch in by_channel.items():
            task = asyncio.create_task(self._deliver_channel(name, batch, now))
            self._busy[name] = task
        return sum(len(b) for b in by_channel.values())

    async def drain(self, timeout: float) -> None:
        """Wait for in-flight channel tasks (shutdown); unfinished claims simply expire."""
        pending = [t for t in self._busy.values() if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()

    async def _deliver_channel(
        self, name: str, batch: list[Delivery], now: datetime
    ) -> tuple[int, int]:
        """One channel's due deliveries, in order, as messages; (tried, accepted)."""
        channel = self.channels.get(name)
        if channel is None:
            self._failed(batch, now, f"channel {name!r} is no longer configured")
            return len(batch), 0
        groups = group_messages(batch)
        capacity = None
        limit = self.policies.rate_limit(channel.tags)
        sends: list[datetime] = []
        if limit is not None:
            count, period = limit
            sends = self.store.sends_since(name, now - period)
            capacity = count - len(sends)
        to_send, held = coalesce(groups, capacity)
        if held:
            assert limit is not None
            free_at = max(sends[0] + limit[1], now + timedelta(seconds=1))
            self.store.postpone_deliveries(
                [d.id for d in held], free_at, batch_key=f"rate:{name}:{free_at.isoformat()}"
            )
            log.info(
                "rate limit",
                extra={"channel": name, "holding": len(held), "until": free_at.isoformat()},
            )
        accepted = 0
        started = asyncio.get_running_loop().time()
        coalesced_index = (
            len(to_send) - 1 if capacity is not None and len(groups) > max(capacity, 0) else -1
        )
        for index, group in enumerate(to_send):
            elapsed = asyncio.get_running_loop().time() - started
            if elapsed > CLAIM_FOR.total_seconds() / 2:  # Apprise paces some services (email
                # 5.5 s a message): give the rest back before our claim could expire
                rest = [d.id for g in to_send[index:] for d in g]
                self.store.postpone_deliveries(rest, now)
                break
            titles = self.policies.rule_titles()
            message = Message(
                [view_of(d, titles) for d in group], _mode_of(group, index == coalesced_index)
            )
            try:
                await asyncio.wait_for(channel.send(message), SEND_TIMEOUT + 5)
            except (DeliveryError, TimeoutError) as exc:
                error = str(exc) or "timed out"
                retry_at = self._failed(group, now, error)
                rest = [d.id for g in to_send[index + 1 :] for d in g]
                if rest and retry_at is not None:  # the channel is down: the rest waits too
                    self.store.postpone_deliveries(rest, retry_at)
                return len(batch), accepted
            except Exception as exc:  # a bug in a channel must not stop the dispatcher
                log.exception("channel crashed", extra={"channel": name})
                self._failed(group, now, f"{type(exc).__name__}: {exc}")
                continue
            ids = [d.id for d in group]
            self.store.settle_deliveries(ids, now, sent=True, channel=name)
            for delivery in group:
                log.info(
                    "delivered",
                    extra={"channel": name, "rule": delivery.rule_id,
                           "article_id": delivery.payload.get("article", {}).get("id"),
                           "alert_id": delivery.alert_id},
                )  # fmt: skip
            accepted += len(group)
            if self.on_sent is not None:
                self.on_sent(ids)
        return len(batch), accepted

    def _failed(self, group: Sequence[Delivery], now: datetime, error: str) -> datetime | None:
        attempts = max(d.attempts for d in group) + 1
        retry_at = None if attempts >= MAX_ATTEMPTS else now + retry_delay(attempts, self.rng)
        log.warning(
            "delivery failed",
            extra={"channel": group[0].channel, "attempts": attempts, "error": error,
                   "alert_ids": ",".join(str(d.alert_id) for d in group),
                   "dead_lettered": retry_at is None},
        )  # fmt: skip
        self.store.settle_deliveries(
            [d.id for d in group], now, sent=False, channel=group[0].channel, error=error,
            retry_at=retry_at,
        )  # fmt: skip
        return retry_at


async def send_test(channels: Sequence[Channel], now: datetime) -> list[tuple[Channel, str | None]]:
    """Send the test alert to each channel; (channel, None if accepted else the error)."""

    async def one(channel: Channel) -> tuple[Channel, str | None]:
        try:
            await asyncio.wait_for(
                channel.send(Message([test_view(now)], "test")), SEND_TIMEOUT + 5
            )
        except (DeliveryError, TimeoutError) as exc:
            return channel, str(exc) or "timed out"
        return channel, None

    return list(await asyncio.gather(*(one(c) for c in channels)))
