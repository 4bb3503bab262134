"""Alerts: channels, rendering, the outbox, delivery policies, against real receivers.

Receivers are real servers on 127.0.0.1: an SMTP server reached through Apprise's ``mailto://``
and a webhook reached through ``json://`` (``tests/receivers.py``). Policies (throttle, digest,
quiet hours, rate limits) run against a fake clock: every dispatcher round is given ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.header import decode_header, make_header
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from monitor.alerts import (
    ZWSP,
    AlertView,
    AppriseChannel,
    Channel,
    ConsoleChannel,
    Dispatcher,
    Message,
    Policies,
    QuietHours,
    Renderer,
    TagPolicy,
    choose_format,
    coalesce,
    config_warnings,
    escape_markdown,
    health_event,
    highlight_segments,
    load_channels,
    next_digest,
    quiet_until,
    route,
    silence_due,
    throttle_decision,
    view_of,
)
from monitor.cli import app
from monitor.daemon import policies_of
from monitor.dedupe import identity_keys
from monitor.errors import ConfigError, RuleError
from monitor.fetch import Fetcher, FetchLimits
from monitor.parse import story_fingerprint
from monitor.pipeline import PollContext, PollReport, poll_feed
from monitor.rules import FeedConfig, RuleSet, load_rules
from monitor.schema import Article, DigestSchedule, Every, parse_digest
from monitor.store import (
    SCHEMA_VERSION,
    Delivery,
    NewItem,
    Notice,
    PollRecord,
    QueuedAlert,
    RuleWindow,
    Store,
    alerts,
    deliveries,
)
from tests.feedserver import FeedServer, Route
from tests.receivers import SmtpReceiver, Webhook, wait_for
from tests.test_daemon import monitor as run_monitor
from tests.test_daemon import workspace

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FEED = "https://feeds.example.org/wire.xml"

RULES = """
rules:
  - id: drones
    title: Drone strikes
    severity: high
    query: 'drone* OR "loitering munition"'
  - id: treaty
    title: Defence treaty
    severity: medium
    query: '"defence treaty"'
    notify: [desk]
  - id: missiles
    severity: critical
    query: 'missile*'
    notify: [desk]
"""

BORDER_RULE = """
  - id: border
    title: Border reports
    severity: medium
    query: '"military says"'
"""

INJECTION = (
    "<script>alert(1)</script> [click here](javascript:alert(1)) @everyone drone strike "
    "<@123456> javascript:alert(2) www.evil.com"
)


def write_rules(tmp_path: Path, extra: str = "", channels: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "desk.yaml").write_text(RULES + extra)
    (rules / "feeds.yaml").write_text("feeds: []\n")
    if channels:
        (rules / "channels.yaml").write_text(channels)
    return rules


def make_article(n: int, title: str, url: str | None = None, summary: str = "") -> Article:
    summary = summary or f"Lead paragraph {n}: officials said more would follow."
    return Article(
        id=f"a{n}",
        feed="Wire",
        feed_url=FEED,
        url=url if url is not None else f"https://news.example.org/story/{n}",
        title=title,
        summary=summary,
        fetched_at=NOW,
        published=NOW - timedelta(minutes=5),
        fingerprint=story_fingerprint(title, f"{summary} {n * 7919}"),
    )


@dataclass
class Desk:
    """A store, rules and a way to queue matches as the pipeline does."""

    store: Store
    ruleset: RuleSet
    rules_dir: Path
    counter: int = 0

    def queue(
        self, title: str, channels: list[str], now: datetime = NOW, url: str | None = None
    ) -> int:
        """Record one article and queue an alert per matching rule; the number queued."""
        self.counter += 1
        article = make_article(self.counter, title, url)
        found = self.ruleset.matcher.match(article, [])
        self.store.sync_feeds([(FEED, "Wire", True)], now)
        state = self.store.feed(FEED)
        assert state is not None
        item = NewItem(
            article=article,
            keys=identity_keys(article),
            story_hashes=[],  # each article its own story here
            matches=found,
            alerts=[QueuedAlert(match=m, channels=channels) for m in found],
        )
        recorded = self.store.record_items(
            PollRecord(feed_id=state.id, now=now, new_items=[item], present_keys=item.keys),
            feed_name="Wire",
        )
        return len(recorded.new_alert_ids)

    def dispatcher(self, channels: list[object], **kwargs: object) -> Dispatcher:
        return Dispatcher(
            self.store,
            channels,  # type: ignore[arg-type]
            owner="test",
            rng=random.Random(7),
            policies=policies_of(self.ruleset),
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    rules = write_rules(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    yield Desk(store, load_rules(rules), rules)
    store.close()


def desk_with(tmp_path: Path, extra: str = "", channels: str = "") -> Desk:
    rules = write_rules(tmp_path, extra, channels)
    return Desk(Store.open(f"sqlite:///{tmp_path / 'monitor.db'}"), load_rules(rules), rules)


@dataclass
class FakeChannel:
    """An in-memory channel (for policy tests, where the clock is fake)."""

    name: str
    tags: frozenset[str] = frozenset()
    messages: list[Message] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        self.messages.append(message)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


def channels_for(*urls: str) -> list[AppriseChannel]:
    channels = load_channels(" ".join(urls), None, Renderer())
    for channel in channels:  # Apprise paces e-mail at 5.5 s a message; tests need no pacing
        channel.service.request_rate_per_sec = 0
    return channels


# --- content of email and chat messages, against real receivers ------------------------------


async def test_an_alert_arrives_as_html_email_and_markdown_chat(
    desk: Desk, smtp: SmtpReceiver, webhook: Webhook
) -> None:
    mail, hook = channels_for(smtp.url(), webhook.url())
    assert (mail.format, hook.format) == ("html", "markdown")
    assert desk.queue("Kamikaze drones hit a fuel depot", [mail.name, hook.name]) == 1
    dispatcher = desk.dispatcher([mail, hook])
    assert await dispatcher.deliver_due(NOW) == (2, 2)

    assert len(smtp.messages) == 1
    email_message = smtp.messages[0]
    assert email_message["Subject"] == "HIGH: Kamikaze drones hit a fuel depot"
    html = smtp.html_parts()[0]
    assert "HIGH · rule Drone strikes" in html
    assert '<a href="https://news.example.org/story/1">Kamikaze drones hit a fuel depot</a>' in html
    assert "<mark><strong>drones</strong></mark>" in html  # the hit highlighted
    assert "matched: <code>drones</code>" in html
    assert "Wire" in html and "2026-11-24 11:55 UTC" in html  # source, published

    assert len(webhook.bodies) == 1
    posted = json.loads(webhook.bodies[0])
    assert posted["title"] == "HIGH: Kamikaze drones hit a fuel depot"
    body = posted["message"]
    assert "**HIGH** · rule *Drone strikes*" in body
    assert "**[Kamikaze drones hit a fuel depot](https://news.example.org/story/1)**" in body
    assert "**drones**" in body and "matched: drones" in body
    assert posted["type"] == "failure"  # high severity

    assert await dispatcher.deliver_due(NOW + timedelta(minutes=1)) == (0, 0)
    stats = desk.store.channel_stats()
    assert stats[mail.name].sent == stats[hook.name].sent == 1
    assert desk.store.outbox_depth() == 0


def assert_inert(payload: str) -> None:
    """No markup that runs, no live link to a script, no mention that pings."""
    assert "<script" not in payload.lower()
    assert "javascript:" not in payload.lower()
    assert "@everyone" not in payload and "<@" not in payload


async def test_injected_markup_links_and_mentions_arrive_inert(
    desk: Desk, smtp: SmtpReceiver, webhook: Webhook, tmp_path: Path
) -> None:
    mail, hook, plain = channels_for(
        smtp.url(), webhook.url("/chat"), webhook.url("/text") + "?format=text"
    )
    assert (mail.format, hook.format, plain.format) == ("html", "markdown", "text")
    stdout = io.StringIO()
    console = ConsoleChannel(tmp_path / "data" / "alerts.jsonl", stream=stdout)  # the fallback
    targets = [mail, hook, plain, console]
    desk.queue(INJECTION, [c.name for c in targets], url="javascript:alert(3)")
    assert await desk.dispatcher(targets).deliver_due(NOW) == (4, 4)

    html = smtp.html_parts()[0]
    assert_inert(html)
    assert "&lt;script&gt;" in html and "href=" not in html  # no safe link: none
    subject = str(make_header(decode_header(smtp.messages[0]["Subject"])))
    assert_inert(subject)
    assert subject.replace(ZWSP, "").count("<script>") == 1  # shown as text, reads the same

    posted = {p: json.loads(b) for p, b in zip(webhook.paths, webhook.bodies, strict=True)}
    assert set(posted) == {"/chat", "/text"}
    for raw, path in zip(webhook.bodies, webhook.paths, strict=True):
        for payload in (raw.decode(), posted[path]["message"], posted[path]["title"]):
            assert_inert(payload)
    chat = posted["/chat"]["message"]
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", chat), "an unescaped Markdown link"
    assert r"\[click here\]\(javascript" in chat.replace(ZWSP, "")
    assert "www.evil.com" not in chat  # a bare domain is not linked either
    text = posted["/text"]["message"]
    assert "[click here](javascript" in text.replace(ZWSP, "")  # text shows it as written
    assert "drone strike" in text and "link:" not in text

    (line,) = stdout.getvalue().splitlines()
    assert line.startswith("[HIGH] drones: ") and "drone strike" in line
    assert_inert(line)
    assert "<javascript" not in line  # no link shown for an unsafe URL
    (record,) = [
        json.loads(x) for x in (tmp_path / "data" / "alerts.jsonl").read_text().splitlines()
    ]
    assert record["url"] is None and record["rule"] == "drones"
    assert record["title"] == INJECTION  # the data as it came, JSON-encoded
    assert_inert(record["body"])


async def test_markdown_escaping_keeps_the_text_readable() -> None:
    assert escape_markdown("a *b* [c](d) <e>") == r"a \*b\* \[c\]\(d\) &lt;e&gt;"
    assert "\u200b" in escape_markdown("@here") and "@here" not in escape_markdown("@here")
    address = escape_markdown("mail a@b.org")  # not a mention; its domain is not linked
    assert "@\u200b" not in address and address.replace(ZWSP, "") == "mail a@b.org"
    for domain in ("www.evil.com", "login.evil.example"):  # chat services link bare domains
        escaped = escape_markdown(f"see {domain} now")
        assert domain not in escaped and escaped.replace(ZWSP, "") == f"see {domain} now"
    assert escape_markdown("3.5 per cent, e.g. U.S.") == "3.5 per cent, e.g. U.S."


async def test_long_bodies_are_trimmed_to_the_service_limit(desk: Desk) -> None:
    desk.queue("Drone " + "word " * 50, ["x"])
    delivery = desk.store.claim_deliveries("t", NOW, timedelta(minutes=1), limit=1)
    if not delivery:  # not planned yet: plan with no policies
        desk.dispatcher([FakeChannel("x")]).plan(NOW)
        delivery = desk.store.claim_deliveries("t", NOW, timedelta(minutes=1), limit=1)
    many = Message([view_of(delivery[0])] * 60, "digest")
    renderer = Renderer()
    for fmt in ("text", "markdown", "html"):
        body = renderer.body(many, fmt, maxlen=400)
        assert len(body) <= 400, fmt
        full = renderer.body(many, fmt)
        assert len(full) > 400
    assert (
        renderer.title(many, "text", 20).endswith("…")
        and len(renderer.title(many, "text", 20)) <= 20
    )


#: Real Apprise services with body limits (rendering for them needs no network).
DISCORD = "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js"
PUSHOVER = "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi"
TELEGRAM = "tgram://123456789:abcdefg_hijklmnop/12345"  # no title: it joins the body


def story(n: int, title: str, snippet: str = "A drone was seen.") -> AlertView:
    return AlertView(
        kind="match", severity="high", rule="drones", rule_title="Drone strikes", title=title,
        source="Wire", published="2026-11-24 11:55 UTC",
        url=f"https://news.example.org/story/{n}", terms=["drone"],
        snippet=highlight_segments(snippet, ["drone"]), also_reported_by=["Other wire"],
    )  # fmt: skip


def assert_balanced_markdown(body: str) -> None:
    """Every emphasis, link bracket and parenthesis the markup opens is closed."""
    markup = re.sub(r"\\.", "", body)  # escaped characters are text
    assert markup.count("**") % 2 == 0, body
    assert markup.replace("**", "").count("*") % 2 == 0, body
    assert markup.count("[") == markup.count("]"), body
    assert markup.count("(") == markup.count(")"), body


def assert_balanced_html(body: str) -> None:
    """Every element the body opens is closed, in order."""
    open_tags: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in ("br", "hr", "img"):
                open_tags.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert open_tags and open_tags.pop() == tag, body

    Checker().feed(body)
    assert open_tags == [], body


def limits(channel: AppriseChannel) -> tuple[int, int]:
    return channel.service.title_maxlen, channel.service.body_maxlen


@pytest.mark.parametrize("length", [1000, 2000])
def test_a_long_headline_keeps_every_essential_within_the_service_limit(length: int) -> None:
    headline = ("Drone strike on the port " * 100)[:length]
    for channel in load_channels(f"{DISCORD} {PUSHOVER} {TELEGRAM}", None):
        title, body = channel.render(Message([story(1, headline, "drone " * 400)]))
        title_max, body_max = limits(channel)
        assert len(body) + (len(title) + 3 if title_max <= 0 else 0) <= body_max, channel.label
        if channel.service.overflow_amalgamate_title:  # Discord counts both together
            assert len(title) + len(body) <= body_max
        assert "**HIGH** · rule *Drone strikes*" in body
        assert "**[Drone strike on the port Drone strike" in body  # the title, cut
        assert "](https://news.example.org/story/1)**" in body  # the link
        assert "Wire · 2026-11-24 11:55 UTC" in body  # source, published
        assert_balanced_markdown(body)


def test_a_digest_too_long_for_discord_drops_whole_entries_and_says_how_many() -> None:
    (discord,) = load_channels(DISCORD, None)
    digest = Message(
        [story(n, f"Drone report {n} " + "with detail " * 30, "drone " * 50) for n in range(30)],
        "digest",
    )
    title, body = discord.render(digest)
    assert len(title) + len(body) <= limits(discord)[1]
    shown = [int(n) for n in re.findall(r"^(\d+)\\\. \*\*HIGH\*\*", body, re.MULTILINE)]
    assert 3 <= len(shown) < 30 and shown == list(range(1, len(shown) + 1))
    for n in range(len(shown)):  # every entry shown is whole: its link is there
        assert f"](https://news.example.org/story/{n})" in body
    assert body.rstrip().endswith(f"*and {30 - len(shown)} more not shown*")
    assert_balanced_markdown(body)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
@pytest.mark.parametrize("maxlen", [150, 400, 900])
def test_trimmed_bodies_never_cut_markup(fmt: str, maxlen: int) -> None:
    renderer = Renderer()
    hostile = "[x](javascript:a) *b* <i>c</i> & " * 20
    for message in (
        Message([story(1, hostile, hostile)]),
        Message([story(n, hostile, hostile) for n in range(12)], "digest"),
        Message([story(n, hostile, hostile) for n in range(12)], "throttle"),
    ):
        body = renderer.body(message, fmt, maxlen)
        assert len(body) <= maxlen, (fmt, message.mode)
        if fmt == "markdown":
            assert_balanced_markdown(body)
        elif fmt == "html":
            assert_balanced_html(body)
        if len(message.alerts) > 1 and maxlen >= 400:
            assert "more not shown" in body, (fmt, message.mode, body)


def test_template_overrides_come_from_rules_templates(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "alert.txt.j2").write_text("CUSTOM {{ a.title }} / {{ a.severity }}\n")
    renderer = Renderer(overrides)
    view = view_of(
        Delivery(1, 1, "c", 0, "drones", {"article": {"title": "@everyone look"},
                 "match": {"rule": "drones", "severity": "low", "hits": [], "snippet": ""}}, [])
    )  # fmt: skip
    body = renderer.body(Message([view]), "text")
    assert body.startswith("CUSTOM @\u200beveryone look / low")  # overrides are escaped too
    (overrides / "batch.md.j2").write_text("{% if %}")
    assert any("batch.md.j2" in p for p in renderer.check())


def test_service_formats() -> None:
    assert choose_format(("html", "text"), "html") == "html"  # email
    assert choose_format(("text", "html", "markdown"), "text") == "markdown"  # json, chat
    assert choose_format(("text", "markdown"), "text") == "markdown"  # discord
    assert choose_format(("text",), "text") == "text"
    assert choose_format(("text", "html", "markdown"), "html") == "html"  # ?format=html
    assert choose_format(("text", "html", "markdown"), "text", "text") == "text"  # ?format=text
    (plain,) = load_channels("json://127.0.0.1:9/x?format=text", None)
    assert plain.format == "text"


# --- channels: configuration and routing ---------------------------------------------------


def test_each_service_is_a_channel_with_a_stable_secret_free_name(
    tmp_path: Path, webhook: Webhook
) -> None:
    secret = "s3cr3t-token-value"
    urls = f"{webhook.url('/a')}, json://user:{secret}@127.0.0.1:{webhook.port}/b"
    first = load_channels(urls, None)
    again = load_channels(urls, None)
    assert [c.name for c in first] == [c.name for c in again]
    assert len({c.name for c in first}) == 2
    assert all(secret not in c.name and secret not in c.label for c in first)
    assert all(c.name.startswith("json-") for c in first)


def test_a_config_that_yields_no_services_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "apprise.yml"
    bad.write_text("urls: [\n")
    with pytest.raises(ConfigError, match="yields no services"):
        load_channels("", bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_channels("", tmp_path / "missing.yml")
    with pytest.raises(ConfigError, match=r"URL #1 \(nosuch://\.\.\.\)"):
        load_channels("nosuch://secret@host", None)


async def test_rules_route_by_tag_from_an_apprise_config_file(
    desk: Desk, tmp_path: Path, smtp: SmtpReceiver, webhook: Webhook
) -> None:
    config = tmp_path / "apprise.yml"
    config.write_text(
        f"urls:\n  - {smtp.url()}:\n      - tag: desk\n  - {webhook.url()}:\n      - tag: ops\n"
    )
    mail, hook = load_channels("", config)
    assert (mail.tags, hook.tags) == ({"desk"}, {"ops"})
    rules = {r.id: r for r in desk.ruleset.rules}
    assert route(rules["treaty"].notify, [mail, hook]) == [mail.name]
    assert route(rules["drones"].notify, [mail, hook]) == [mail.name, hook.name]

    desk.queue("Defence treaty signed", route(rules["treaty"].notify, [mail, hook]))
    await desk.dispatcher([mail, hook]).deliver_due(NOW)
    assert len(smtp.messages) == 1 and webhook.bodies == []


OPS_RULE = """
  - id: outage
    severity: low
    query: 'blackout'
    notify: [ops]
"""


async def test_an_apprise_text_config_routes_by_tag_and_names_entries_that_yield_nothing(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = desk_with(tmp_path, OPS_RULE)
    config = tmp_path / "apprise.txt"
    config.write_text(
        "# the desk, and the duty officer who also reads the desk\n"
        f"desk={webhook.url('/desk')}\n"
        "nosuch://s3cret-token@host\n"
        f"ops,desk={webhook.url('/ops')}\n"
    )
    desk_hook, ops_hook = load_channels("", config)
    assert (desk_hook.tags, ops_hook.tags) == ({"desk"}, {"ops", "desk"})
    (warning,) = config_warnings(config)
    assert warning.startswith(f"{config}:3: warning: the Apprise entry nosuch://...")
    assert "s3cret" not in warning

    channels = [desk_hook, ops_hook]
    rules = {r.id: r for r in desk.ruleset.rules}
    desk.queue("Defence treaty signed", route(rules["treaty"].notify, channels))
    desk.queue("Blackout in the capital", route(rules["outage"].notify, channels))
    assert await desk.dispatcher(channels).deliver_due(NOW) == (3, 3)
    sent = sorted(
        (p, json.loads(b)["title"]) for p, b in zip(webhook.paths, webhook.bodies, strict=True)
    )
    assert sent == [
        ("/desk", "MEDIUM: Defence treaty signed"),
        ("/ops", "LOW: Blackout in the capital"),
        ("/ops", "MEDIUM: Defence treaty signed"),
    ]
    desk.store.close()

    yaml_config = tmp_path / "apprise.yml"
    yaml_config.write_text(
        f"urls:\n  - {webhook.url('/a')}:\n      - tag: desk\n"
        "  - discord://only-an-id:\n      - tag: ops\n"
    )
    assert len(load_channels("", yaml_config)) == 1
    assert [w.split(" warning: ")[0] for w in config_warnings(yaml_config)] == [f"{yaml_config}:4:"]

    monkeypatch.setenv("MONITOR_APPRISE_CONFIG", str(config))
    result = CliRunner().invoke(app, ["check", str(desk.rules_dir)])
    assert result.exit_code == 0, result.output
    assert f"{config}:3: warning: the Apprise entry nosuch://..." in result.output
    assert "s3cret" not in result.output


def test_check_reports_bad_channel_config_and_warns_of_unrouted_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook: Webhook
) -> None:
    rules = write_rules(tmp_path)
    runner = CliRunner()
    monkeypatch.setenv("MONITOR_APPRISE_URLS", webhook.url())
    result = runner.invoke(app, ["check", str(rules)])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"desk\.yaml:\d+:\d+: warning: rule 'treaty' notifies tag 'desk'", result.output
    )
    assert "ok: " in result.output

    bad = tmp_path / "apprise.yml"
    bad.write_text("not: [a, valid\n")
    monkeypatch.setenv("MONITOR_APPRISE_CONFIG", str(bad))
    result = runner.invoke(app, ["check", str(rules)])
    assert result.exit_code == 1
    assert "yields no services" in result.output


@pytest.mark.slow
def test_start_up_refuses_a_config_without_services_and_warns_of_what_it_cannot_route(
    tmp_path: Path, webhook: Webhook
) -> None:
    env = workspace(tmp_path, [])
    write_rules(tmp_path)  # the treaty rule notifies 'desk'
    config = tmp_path / "apprise.yml"
    config.write_text("urls: [\n")
    env["MONITOR_APPRISE_CONFIG"] = str(config)
    refused = run_monitor("run", "--once", env=env)
    assert refused.returncode == 1
    assert f"error: {config}: the Apprise configuration yields no services" in refused.stderr

    config = tmp_path / "apprise.txt"
    config.write_text(f"ops={webhook.url()}\nnosuch://x\n")
    env["MONITOR_APPRISE_CONFIG"] = str(config)
    started = run_monitor("run", "--once", env=env)
    assert started.returncode == 0, started.stderr
    assert "warning: rule 'treaty' notifies tag 'desk', which no channel carries" in started.stderr
    assert f"{config}:2: warning: the Apprise entry nosuch://..." in started.stderr


def test_notify_test_reports_each_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpReceiver, webhook: Webhook
) -> None:
    write_rules(tmp_path)
    monkeypatch.setenv("MONITOR_RULES_DIR", str(tmp_path / "rules"))
    monkeypatch.setenv("MONITOR_APPRISE_URLS", f"{smtp.url()} {webhook.url()}")
    runner = CliRunner()
    result = runner.invoke(app, ["notify-test"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": accepted") == 2
    assert len(smtp.messages) == 1 and len(webhook.bodies) == 1
    assert "test alert" in json.loads(webhook.bodies[0])["title"]

    webhook.mode = "fail"
    result = runner.invoke(app, ["notify-test"])
    assert result.exit_code == 1
    assert result.output.count(": accepted") == 1 and "REFUSED" in result.output

    config = tmp_path / "apprise.yml"
    config.write_text(f"urls:\n  - {smtp.url()}:\n      - tag: desk\n")
    monkeypatch.setenv("MONITOR_APPRISE_URLS", "")
    monkeypatch.setenv("MONITOR_APPRISE_CONFIG", str(config))
    result = runner.invoke(app, ["notify-test", "--tag", "desk"])
    assert result.exit_code == 0 and "[desk]" in result.output
    assert runner.invoke(app, ["notify-test", "--tag", "nope"]).exit_code == 1


# --- the outbox: one channel down --------------------------------------------------------------


async def test_a_channel_down_retries_alone_and_delivers_exactly_once(
    desk: Desk, smtp: SmtpReceiver, webhook: Webhook
) -> None:
    mail, hook = channels_for(smtp.url(), webhook.url())
    webhook.mode = "fail"
    for n in range(3):
        desk.queue(f"Drone sighting number {n}", [mail.name, hook.name])
    dispatcher = desk.dispatcher([mail, hook])
    now = NOW
    _tried, accepted = await dispatcher.deliver_due(now)
    assert accepted == 3 and len(smtp.messages) == 3  # email unaffected
    assert webhook.requests == 1  # the channel is down: the rest waits, not hammered

    for _ in range(3):  # still down: backoff grows, nothing repeats on email
        now += timedelta(hours=1)
        await dispatcher.deliver_due(now)
    assert len(smtp.messages) == 3 and webhook.bodies == []
    stats = desk.store.channel_stats()[hook.name]
    assert stats.pending == 3 and stats.failed >= 4 and stats.sent == 0

    webhook.mode = "ok"
    for _ in range(5):
        now += timedelta(hours=1)
        await dispatcher.deliver_due(now)
    titles = sorted(json.loads(b)["title"] for b in webhook.bodies)
    assert titles == [f"HIGH: Drone sighting number {n}" for n in range(3)]
    assert len(smtp.messages) == 3
    assert desk.store.outbox_counts() == {"sent": 6}


async def test_a_hanging_channel_does_not_delay_email(
    desk: Desk, smtp: SmtpReceiver, webhook: Webhook
) -> None:
    """The hook takes the request and never answers, and would wait 30 s for it (``rto``;
    Apprise's default gives up after 4 s); its delivery is the first due. The email still
    arrives at once, while the hook's send is in flight: each channel is its own task."""
    mail, hook = channels_for(smtp.url(), webhook.url() + "?rto=30")
    assert hook.service.socket_read_timeout == 30
    webhook.mode = "hang"  # takes the request, never answers (until released)
    desk.queue("Drone strike on the depot", [hook.name, mail.name])
    dispatcher = desk.dispatcher([mail, hook])
    started = asyncio.get_running_loop().time()
    assert dispatcher.start_due(NOW) == 2  # as the daemon does: each channel its own task

    def mail_sent() -> bool:
        return desk.store.channel_stats()[mail.name].sent == 1

    for _ in range(60):  # bounded: 3 s at most
        if mail_sent():
            break
        await asyncio.sleep(0.05)
    assert mail_sent() and len(smtp.messages) == 1
    assert asyncio.get_running_loop().time() - started < 2
    assert webhook.requests == 1 and webhook.bodies == []  # the hook is still hanging
    hook_stats = desk.store.channel_stats()[hook.name]
    assert (hook_stats.pending, hook_stats.failed) == (1, 0)  # in flight, not failed yet
    webhook.release.set()
    await dispatcher.drain(timeout=15)
    assert desk.store.channel_stats()[hook.name].sent == 0  # it never answered: retried later


async def test_dead_letter_after_max_attempts_shows_in_status(
    desk: Desk, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (hook,) = channels_for(webhook.url())
    webhook.mode = "fail"
    desk.queue("Drone crash", [hook.name])
    dispatcher = desk.dispatcher([hook])
    now = NOW
    for _ in range(14):
        await dispatcher.deliver_due(now)
        now += timedelta(hours=2)
    assert desk.store.outbox_counts() == {"dead": 1}
    assert desk.store.channel_stats()[hook.name].dead == 1
    monkeypatch.setenv("MONITOR_DATABASE_URL", str(desk.store.engine.url))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "Dead letters" in result.output and "Drone crash" in result.output


# --- one alert per (rule, story) -----------------------------------------------------------


def rss(*items: tuple[str, str, str, str]) -> bytes:
    """RSS with (guid, title, link, summary) items published five minutes before NOW."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>{link}</link>"
        f"<description>{summary}</description>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=5))}</pubDate></item>"
        for guid, title, link, summary in items
    )
    return f'<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


LEAD = (
    "North Korea launched a swarm of kamikaze drones toward the border on Tuesday, the "
    "South Korean military said, in the largest such incident this year"
)


#: A story, and a rewrite of it by another outlet: a near-duplicate, so the same story.
STORY = ("g1", "Kamikaze drones cross the border", "https://a.example/1", LEAD)
REWRITE = (
    "c1", "Kamikaze drones cross border, military says", "https://c.example/9",
    LEAD.replace("on Tuesday", "early on Tuesday") + " officials added",
)  # fmt: skip


@dataclass
class Wires:
    """Feeds served on 127.0.0.1 and polled through the real pipeline into a store."""

    server: FeedServer
    context: PollContext
    feeds: dict[str, FeedConfig]

    async def carry(
        self, name: str, now: datetime, *items: tuple[str, str, str, str]
    ) -> PollReport:
        """Feed ``name`` now lists these items; poll it at ``now``."""
        self.server.routes[f"/{name}"] = Route(body=rss(*items))
        return await poll_feed(self.feeds[name], self.context, now)


@contextlib.asynccontextmanager
async def wires(
    store: Store, rules: Path, channels: Sequence[Channel], *names: str
) -> AsyncIterator[Wires]:
    """Feeds of these names, alerting on their first poll; ``Wires.carry`` serves and polls one."""
    limits = FetchLimits(max_bytes=1 << 20, deadline=5.0, connect_timeout=2.0, user_agent="t")
    with FeedServer() as server:
        async with Fetcher(limits, max_concurrency=4, per_host_concurrency=4) as fetcher:
            feeds = {
                name: FeedConfig(url=server.url(f"/{name}"), name=name, alert_on_first_poll=True)
                for name in names
            }
            store.sync_feeds([(feed.url, name, True) for name, feed in feeds.items()], NOW)
            context = PollContext(
                store=store,
                fetcher=fetcher,
                rules=load_rules(rules),
                route=lambda rule: route(rule.notify, channels),
            )
            yield Wires(server, context, feeds)


async def test_one_alert_per_story_and_later_sources_are_listed(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    channel = FakeChannel("chat")
    async with wires(store, rules, [channel], "wire-a", "wire-b", "wire-c") as feeds:
        await feeds.carry("wire-a", NOW, STORY)
        await feeds.carry("wire-a", NOW + timedelta(minutes=1), STORY)  # again
        # the same URL carried by another feed, under another guid
        await feeds.carry("wire-b", NOW + timedelta(minutes=2), ("other-guid", *STORY[1:]))
        # a near-duplicate rewrite from another outlet
        report = await feeds.carry("wire-c", NOW + timedelta(minutes=3), REWRITE)
        assert report.new_items == 1 and report.alerts == 0
    assert store.count(alerts) == 1
    dispatcher = Dispatcher(store, [channel], "t")
    await dispatcher.deliver_due(NOW + timedelta(minutes=4))
    (message,) = channel.messages
    assert message.alerts[0].also_reported_by == ["wire-b", "wire-c"]
    assert "also reported by: wire-b, wire-c" in Renderer().body(message, "text")
    store.close()


async def test_a_later_rules_alert_lists_the_outlets_that_came_first(
    tmp_path: Path, webhook: Webhook
) -> None:
    """The first rule's alert went out before the story's next outlet arrived; that outlet's
    rewrite matches a second rule: the second alert lists the first outlet, and the first
    rule does not alert again."""
    rules = write_rules(tmp_path, BORDER_RULE)
    store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    (hook,) = channels_for(webhook.url())
    dispatcher = Dispatcher(store, [hook], "t")
    async with wires(store, rules, [hook], "wire-a", "wire-b") as feeds:
        assert (await feeds.carry("wire-a", NOW, STORY)).alerts == 1
        assert await dispatcher.deliver_due(NOW) == (1, 1)
        report = await feeds.carry("wire-b", NOW + timedelta(minutes=5), REWRITE)
        assert report.new_items == 1 and report.alerts == 1  # the border rule only
        assert await dispatcher.deliver_due(NOW + timedelta(minutes=5)) == (1, 1)
    first, second = [json.loads(body) for body in webhook.bodies]
    assert first["title"] == "HIGH: Kamikaze drones cross the border"
    assert "also reported by" not in first["message"]
    assert second["title"] == "MEDIUM: Kamikaze drones cross border, military says"
    assert "rule *border*" in second["message"]
    assert "also reported by: wire-a" in second["message"]
    assert store.count(alerts) == 2
    store.close()


async def test_a_digest_entry_lists_the_sources_that_arrived_while_it_waited(
    tmp_path: Path, webhook: Webhook
) -> None:
    rules = write_rules(tmp_path)
    (rules / "desk.yaml").write_text(
        RULES.replace("severity: high\n", 'severity: high\n    digest: "daily 08:00"\n', 1)
    )
    store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    (hook,) = channels_for(webhook.url())
    dispatcher = Dispatcher(store, [hook], "t", policies=policies_of(load_rules(rules)))
    other = ("g2", "Drone factory doubles its output", "https://a.example/2", "Officials said.")
    async with wires(store, rules, [hook], "wire-a", "wire-b", "wire-c") as feeds:
        assert (await feeds.carry("wire-a", NOW, STORY, other)).alerts == 2
        assert await dispatcher.deliver_due(NOW) == (0, 0)  # held for the digest
        later = NOW + timedelta(hours=1)
        assert (await feeds.carry("wire-b", later, REWRITE)).alerts == 0
        assert (await feeds.carry("wire-c", later, ("c-guid", *STORY[1:]))).alerts == 0
    assert await dispatcher.deliver_due(datetime(2026, 11, 25, 8, 0, tzinfo=UTC)) == (2, 2)
    (digest,) = [json.loads(body) for body in webhook.bodies]
    assert digest["title"] == "HIGH: digest of 2 alerts for Drone strikes"
    body = digest["message"]
    assert body.count("also reported by") == 1
    assert body.index(STORY[1]) < body.index("also reported by: wire-b, wire-c")
    assert body.index("also reported by") < body.index(other[1])
    store.close()


# --- throttle, digest, quiet hours, rate limits (fake clock) ----------------------------------


def test_throttle_decisions() -> None:
    window = timedelta(minutes=30)
    first = throttle_decision(None, window, NOW)
    assert first.release_at is None and first.window == RuleWindow(NOW + window, False)
    held = throttle_decision(first.window, window, NOW + timedelta(minutes=5))
    assert held.release_at == NOW + window and held.window.held
    # after the folded message went at the window's end, the next window runs from there
    later = throttle_decision(held.window, window, NOW + timedelta(minutes=40))
    assert later.release_at == NOW + 2 * window
    quiet_again = throttle_decision(RuleWindow(NOW, False), window, NOW + timedelta(minutes=1))
    assert quiet_again.release_at is None


async def test_throttle_folds_the_rest_into_one_message(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    (rules / "desk.yaml").write_text(
        RULES.replace("severity: high\n", "severity: high\n    throttle: 30m\n", 1)
    )
    desk = Desk(Store.open(f"sqlite:///{tmp_path / 'monitor.db'}"), load_rules(rules), rules)
    chat = FakeChannel("chat")
    dispatcher = desk.dispatcher([chat])
    desk.queue("Drone one", ["chat"], NOW)
    await dispatcher.deliver_due(NOW)
    for n in range(5):
        at = NOW + timedelta(minutes=1 + n)
        desk.queue(f"Drone more {n}", ["chat"], at)
        await dispatcher.deliver_due(at)
    assert [len(m.alerts) for m in chat.messages] == [1]
    await dispatcher.deliver_due(NOW + timedelta(minutes=29))
    assert len(chat.messages) == 1
    await dispatcher.deliver_due(NOW + timedelta(minutes=30))
    assert len(chat.messages) == 2
    folded = chat.messages[1]
    assert folded.mode == "throttle" and len(folded.alerts) == 5
    assert folded.title() == "HIGH: Drone more 0 (and 4 more)"
    assert "and 4 more" in Renderer().body(folded, "markdown")
    desk.store.close()


def test_next_digest_times() -> None:
    def at(spec: str) -> datetime:
        return next_digest(parse_digest(spec), NOW)

    assert at("daily 08:00") == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert at("hourly") == NOW + timedelta(hours=1)
    assert at("daily 08:00 Asia/Seoul") == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    assert at("weekly mon 09:30").weekday() == 0
    sunday = at("Weekly Sunday 23:59 Europe/Berlin").astimezone(ZoneInfo("Europe/Berlin"))
    assert (sunday.weekday(), sunday.hour, sunday.minute) == (6, 23, 59)


OLD_DAY_SPELLINGS = {
    "Tues": 1,
    "Thurs": 3,
    "thur": 3,
    "mondays": 0,
    "wednes": 2,
    "Weds": 2,
    "Wednesdays": 2,
    "sat": 5,
    "sunday": 6,
}


def test_weekly_digests_with_a_common_day_abbreviation_load_and_go_out_on_that_day(
    tmp_path: Path,
) -> None:
    """Rule files have long written ``weekly Tues 08:00`` or ``weekly mondays 08:00``: a day is
    any start of its name (or plural) at least three letters long."""
    digests = "".join(
        f"  - id: d{n}\n    query: drone\n    digest: weekly {day} 08:00 Asia/Seoul\n"
        for n, day in enumerate(OLD_DAY_SPELLINGS)
    )
    (tmp_path / "d.yaml").write_text("rules:\n" + digests)
    rules = load_rules(tmp_path / "d.yaml").rules
    seoul = ZoneInfo("Asia/Seoul")
    fired = {}
    for rule in rules:
        assert rule.digest is not None
        fire = next_digest(rule.digest, NOW).astimezone(seoul)
        fired[str(rule.digest).split()[1]] = (fire.weekday(), fire.hour)
    assert fired == {day: (weekday, 8) for day, weekday in OLD_DAY_SPELLINGS.items()}


@pytest.mark.parametrize(
    ("day", "hint"),
    [
        ("mnday", "(did you mean 'monday'?)"),
        ("tus", "(did you mean 'tue'?)"),
        ("monxyz", "(did you mean 'monday'?)"),
        ("mo", "(did you mean 'mon'?)"),
        ("fortnight", "(use mon, tue, ... sun)"),
    ],
)
def test_a_weekly_digest_on_a_word_that_is_not_a_day_is_refused(day: str, hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown day '{day}' {hint}")):
        parse_digest(f"weekly {day} 08:00")


@pytest.mark.parametrize(
    ("every", "day"), [("week", None), ("week", "monday"), ("day", "mon"), ("hour", "fri")]
)
def test_a_digest_schedule_with_a_day_it_cannot_use_is_refused(every: Every, day: str) -> None:
    """A weekly schedule without a day made a daily cron trigger; a day elsewhere is ignored."""
    with pytest.raises(ValueError, match="a weekly digest needs a day"):
        DigestSchedule("x", every, time(8, 0), ZoneInfo("UTC"), day)
    weekly = DigestSchedule("x", "week", time(8, 0), ZoneInfo("UTC"), "tue")
    assert next_digest(weekly, NOW).weekday() == 1


def test_a_digest_that_is_not_text_is_refused_like_any_other(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules:\n  - id: r\n    query: x\n    digest: 8\n")
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    assert info.value.problems == [
        f"{tmp_path / 'r.yaml'}:4:13: rule 'r': digest: invalid digest '8': write 'hourly', "
        "'daily 08:00' or 'weekly mon 08:00' (optionally a zone, e.g. 'daily 08:00 Asia/Seoul')"
    ]


DIGEST_TEXTS = st.builds(
    " ".join,
    st.lists(
        st.sampled_from(["hourly", "daily", "weekly", "mon", "Friday", "fri", "mnday", "UTC"])
        | st.sampled_from(["Tues", "thurs", "mondays", "sundayss", "wednes", "mo"])
        | st.sampled_from(["Asia/Seoul", "Europe/Berln", "Europe", "8", "8:00am", "24:00"])
        | st.builds("{}:{:02d}".format, st.integers(0, 99), st.integers(0, 99)),
        max_size=4,
    ),
)


@given(DIGEST_TEXTS)
@settings(max_examples=300, deadline=None)
def test_every_digest_the_rules_accept_can_be_scheduled(text: str) -> None:
    """``monitor check`` and the dispatcher share ``parse_digest``: what it accepts schedules."""
    try:
        schedule = parse_digest(text)
    except ValueError as exc:
        assert str(exc).startswith(f"invalid digest '{text}': ")
        return
    fire = next_digest(schedule, NOW)
    assert NOW < fire <= NOW + timedelta(days=7, hours=1)
    local = fire.astimezone(schedule.zone)
    assert local.minute == schedule.at.minute
    assert schedule.every == "hour" or local.hour == schedule.at.hour
    assert schedule.day is None or local.strftime("%a").lower() == schedule.day


async def test_digest_collects_and_sends_one_summary_at_the_scheduled_time(
    tmp_path: Path,
) -> None:
    rules = write_rules(tmp_path)
    (rules / "desk.yaml").write_text(
        RULES.replace("severity: high\n", 'severity: high\n    digest: "daily 08:00"\n', 1)
    )
    desk = Desk(Store.open(f"sqlite:///{tmp_path / 'monitor.db'}"), load_rules(rules), rules)
    chat = FakeChannel("chat")
    dispatcher = desk.dispatcher([chat])
    for n in range(4):
        at = NOW + timedelta(hours=n)
        desk.queue(f"Drone report {n}", ["chat"], at)
        await dispatcher.deliver_due(at)
    desk.queue("Missile test", ["chat"], NOW)  # another rule: at once
    await dispatcher.deliver_due(NOW + timedelta(hours=19, minutes=59))
    assert [m.alerts[0].rule for m in chat.messages] == ["missiles"]
    await dispatcher.deliver_due(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    digest = chat.messages[-1]
    assert digest.mode == "digest" and len(digest.alerts) == 4
    assert digest.title() == "HIGH: digest of 4 alerts for Drone strikes"
    body = Renderer().body(digest, "text")
    assert all(f"Drone report {n}" in body for n in range(4))
    desk.store.close()


def test_quiet_windows() -> None:
    berlin = QuietHours(time(22, 0), time(7, 0), ZoneInfo("Europe/Berlin"))
    inside = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert quiet_until(berlin, inside) == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    early = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 04:00 in Berlin
    assert quiet_until(berlin, early) == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    assert quiet_until(berlin, NOW) is None
    day = QuietHours(time(9, 0), time(17, 0), ZoneInfo("UTC"))
    assert quiet_until(day, NOW) == NOW.replace(hour=17)


CHANNELS = """
channels:
  desk: {quiet_hours: "22:00-07:00 Europe/Berlin"}
  chat: {rate_limit: 20/min}
"""


async def test_quiet_hours_hold_and_release_as_one_message_unless_critical(
    tmp_path: Path,
) -> None:
    desk = desk_with(tmp_path, channels=CHANNELS)
    quiet_mail = FakeChannel("mail", frozenset({"desk"}))
    loud = FakeChannel("pager")
    dispatcher = desk.dispatcher([quiet_mail, loud])
    night = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    desk.queue("Defence treaty talks resume", ["mail", "pager"], night)
    desk.queue("Defence treaty draft leaked", ["mail", "pager"], night + timedelta(minutes=5))
    desk.queue("Missile launch detected", ["mail", "pager"], night + timedelta(minutes=6))
    await dispatcher.deliver_due(night + timedelta(minutes=10))
    assert len(loud.messages) == 3  # a channel without quiet hours: at once
    assert [m.alerts[0].severity for m in quiet_mail.messages] == ["critical"]  # bypass
    await dispatcher.deliver_due(datetime(2026, 11, 25, 5, 59, tzinfo=UTC))
    assert len(quiet_mail.messages) == 1
    await dispatcher.deliver_due(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    released = quiet_mail.messages[-1]
    assert released.mode == "quiet" and len(released.alerts) == 2
    assert "held during quiet hours" in released.title()
    desk.store.close()


async def test_rule_quiet_hours(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    (rules / "desk.yaml").write_text(
        RULES.replace("severity: high\n", 'severity: high\n    quiet_hours: "11:00-13:00"\n', 1)
    )
    desk = Desk(Store.open(f"sqlite:///{tmp_path / 'monitor.db'}"), load_rules(rules), rules)
    chat = FakeChannel("chat")
    dispatcher = desk.dispatcher([chat])
    desk.queue("Drone seen", ["chat"], NOW)
    await dispatcher.deliver_due(NOW)
    assert chat.messages == []
    await dispatcher.deliver_due(NOW + timedelta(hours=1))
    assert len(chat.messages) == 1
    desk.store.close()


async def test_a_burst_beyond_the_rate_limit_is_coalesced_not_dropped(tmp_path: Path) -> None:
    desk = desk_with(tmp_path, channels=CHANNELS)
    chat = FakeChannel("chat", frozenset({"chat"}))
    dispatcher = desk.dispatcher([chat])
    for n in range(45):
        desk.queue(f"Drone swarm report {n}", ["chat"], NOW)
    await dispatcher.deliver_due(NOW)
    sizes = [len(m.alerts) for m in chat.messages]
    assert len(sizes) == 20 and sizes[:19] == [1] * 19 and sizes[19] == 26
    assert chat.messages[-1].mode == "batch"
    for n in range(3):  # more within the minute: held, then one batch when the window frees
        desk.queue(f"Drone late report {n}", ["chat"], NOW + timedelta(seconds=10))
    await dispatcher.deliver_due(NOW + timedelta(seconds=10))
    assert len(chat.messages) == 20
    await dispatcher.deliver_due(NOW + timedelta(seconds=61))
    assert len(chat.messages) == 21 and len(chat.messages[-1].alerts) == 3
    assert sum(len(m.alerts) for m in chat.messages) == 48
    desk.store.close()


async def test_a_burst_is_coalesced_into_one_message_at_a_real_webhook(
    tmp_path: Path, webhook: Webhook
) -> None:
    desk = desk_with(tmp_path, channels=CHANNELS)  # chat: 20 messages a minute
    (hook,) = channels_for(webhook.url())
    chat = AppriseChannel(hook.service, Renderer(), extra_tags=["chat"])
    for n in range(45):
        desk.queue(f"Drone swarm report {n}", [chat.name], NOW)
    assert await desk.dispatcher([chat]).deliver_due(NOW) == (45, 45)
    posted = [json.loads(body) for body in webhook.bodies]
    assert len(posted) == 20
    assert [p["title"] for p in posted[:19]] == [f"HIGH: Drone swarm report {n}" for n in range(19)]
    assert posted[19]["title"] == r"HIGH: 26 alerts \(Drone strikes\)"  # Markdown
    batch = posted[19]["message"]
    assert all(f"Drone swarm report {n}]" in batch for n in range(19, 45))
    assert "more not shown" not in batch
    assert desk.store.outbox_counts() == {"sent": 45}
    desk.store.close()


def test_coalesce() -> None:
    groups = [[d] for d in range(5)]
    assert coalesce(groups, None) == (groups, [])  # type: ignore[arg-type]
    assert coalesce(groups, 2) == ([[0], [1, 2, 3, 4]], [])  # type: ignore[arg-type]
    assert coalesce(groups, 0) == ([], [0, 1, 2, 3, 4])  # type: ignore[arg-type]


# --- feed health -------------------------------------------------------------------------------


def test_health_decisions() -> None:
    args = {"failure_alert_after": 3, "failure_alerted": False}
    assert [health_event(ok=False, failures=n, **args) for n in (1, 2, 3)] == [
        None,
        None,
        "failure",
    ]
    assert health_event(ok=False, failures=4, failure_alert_after=3, failure_alerted=True) is None
    assert (
        health_event(ok=True, failures=0, failure_alert_after=3, failure_alerted=True) == "recovery"
    )
    day = timedelta(days=1)
    assert silence_due(
        last_new_item_at=NOW - 2 * day, silence_after=day, silence_alerted=False, now=NOW
    )
    assert not silence_due(last_new_item_at=None, silence_after=day, silence_alerted=False, now=NOW)


async def test_failing_feed_alerts_ops_once_and_once_on_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.pipeline")
    rules = write_rules(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    ops = FakeChannel("ops", frozenset({"ops"}))
    limits = FetchLimits(max_bytes=1 << 20, deadline=5.0, connect_timeout=2.0, user_agent="t")
    with FeedServer() as server:
        async with Fetcher(limits, max_concurrency=4, per_host_concurrency=4) as fetcher:
            context = PollContext(
                store=store, fetcher=fetcher, rules=load_rules(rules),
                route=lambda rule: [], notice_channels=lambda: ["ops"],
            )  # fmt: skip
            feed = FeedConfig(url=server.url("/flaky"), name="flaky", failure_alert_after=3)
            store.sync_feeds([(feed.url, feed.name, True)], NOW)
            server.routes["/flaky"] = Route(status=500, body=b"down")
            for n in range(5):
                await poll_feed(feed, context, NOW + timedelta(minutes=n))
            server.routes["/flaky"] = Route(body=rss())
            await poll_feed(feed, context, NOW + timedelta(minutes=6))
            await poll_feed(feed, context, NOW + timedelta(minutes=7))
    dispatcher = Dispatcher(store, [ops], "t")  # type: ignore[list-item]
    await dispatcher.deliver_due(NOW + timedelta(minutes=8))
    kinds = [m.alerts[0].notice["kind"] for m in ops.messages]
    assert kinds == ["failure", "recovery"]
    logged = [(r.feed, r.event) for r in caplog.records if r.getMessage() == "feed health"]
    assert logged == [("flaky", "failure"), ("flaky", "recovery")]  # fields, not message words
    assert ops.messages[0].title() == "HIGH: Feed flaky is failing (3 failures in a row)"
    assert "HTTP 500" in Renderer().body(ops.messages[0], "text")
    for fmt in ("text", "markdown", "html"):  # a recovery has no error to show
        assert "Feed flaky recovered" in Renderer().body(ops.messages[1], fmt)
    store.close()


async def test_a_feed_silent_for_silence_after_alerts_once(
    tmp_path: Path, webhook: Webhook
) -> None:
    rules = write_rules(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'monitor.db'}")
    (ops,) = channels_for(webhook.url())
    limits = FetchLimits(max_bytes=1 << 20, deadline=5.0, connect_timeout=2.0, user_agent="t")
    with FeedServer() as server:
        async with Fetcher(limits, max_concurrency=2, per_host_concurrency=2) as fetcher:
            context = PollContext(
                store=store, fetcher=fetcher, rules=load_rules(rules),
                route=lambda rule: [], notice_channels=lambda: [ops.name],
            )  # fmt: skip
            feed = FeedConfig(url=server.url("/quiet"), name="quiet", silence_after="1d")
            store.sync_feeds([(feed.url, feed.name, True)], NOW)
            server.routes["/quiet"] = Route(body=rss(("g1", "Budget", "https://q.example/1", "x")))
            for hours in (0, 12, 23, 25, 26, 48):  # the same item: nothing new after hour 0
                await poll_feed(feed, context, NOW + timedelta(hours=hours))
    dispatcher = Dispatcher(store, [ops], "t")
    assert await dispatcher.deliver_due(NOW + timedelta(hours=49)) == (1, 1)
    (posted,) = [json.loads(body) for body in webhook.bodies]
    assert posted["title"] == "MEDIUM: Feed quiet has published nothing for 1d"
    assert "quiet" in posted["message"]
    store.close()


# --- schema -------------------------------------------------------------------------------


def test_migration_2_upgrades_a_version_1_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store.open(url)
    with store.engine.begin() as conn:  # make it look like a database of migration 1
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN batch_key")
        conn.exec_driver_sql("ALTER TABLE alerts DROP COLUMN planned_at")
        conn.exec_driver_sql("ALTER TABLE feeds DROP COLUMN silence_alerted")
        conn.exec_driver_sql("DROP TABLE rule_windows")
        conn.exec_driver_sql("DROP TABLE channel_sends")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 1")
    store.close()
    upgraded = Store.open(url)
    assert upgraded.schema_version() == SCHEMA_VERSION >= 2
    upgraded.sync_feeds([(FEED, "Wire", True)], NOW)
    state = upgraded.feed(FEED)
    assert state is not None and state.silence_alerted is False
    assert upgraded.sends_since("x", NOW) == []
    upgraded.close()


# --- kill -9 between match and delivery --------------------------------------------------------


def count_titles(webhook: Webhook, title: str) -> int:
    return sum(1 for body in webhook.bodies if title in json.loads(body)["title"])


def delivery_states(db: Path) -> list[str]:
    store = Store.open(f"sqlite:///{db}")
    try:
        with store.engine.connect() as conn:
            return [
                row[0]
                for row in conn.execute(deliveries.select().with_only_columns(deliveries.c.state))
            ]
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_between_match_and_delivery_loses_nothing_and_repeats_at_most_once(
    tmp_path: Path, webhook: Webhook
) -> None:
    with FeedServer() as server:
        rules = write_rules(tmp_path)
        (rules / "feeds.yaml").write_text(
            "defaults: {interval: 1s, min_interval: 1s, max_interval: 2s, "
            "alert_on_first_poll: true}\n"
            f"feeds:\n  - url: {server.url('/wire')}\n    name: wire\n"
        )
        first = ("a", "Drone strike alpha", "https://n.example/a", "x")
        server.routes["/wire"] = Route(body=rss(first))
        db = tmp_path / "data" / "monitor.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update(
            MONITOR_RULES_DIR=str(rules), MONITOR_DATA_DIR=str(tmp_path / "data"),
            MONITOR_DATABASE_URL=f"sqlite:///{db}", MONITOR_HTTP_LISTEN="",
            MONITOR_APPRISE_URLS=webhook.url(), MONITOR_FETCH_TIMEOUT="5s",
        )  # fmt: skip

        def start() -> subprocess.Popen[bytes]:
            with (tmp_path / f"run{len(processes)}.log").open("w") as log:
                return subprocess.Popen(
                    [sys.executable, "-m", "monitor", "run"], env=env,
                    stdout=subprocess.DEVNULL, stderr=log,
                )  # fmt: skip

        def logs() -> str:
            return "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("run*.log")))

        processes = []
        try:
            # 1. matched and recorded, the send in flight and not accepted: kill -9
            webhook.mode = "hang"
            processes.append(start())
            assert wait_for(lambda: webhook.requests >= 1), logs()
            processes[-1].send_signal(signal.SIGKILL)
            processes[-1].wait(timeout=10)
            assert delivery_states(db) == ["pending"]
            webhook.release.set()

            # 2. restart: delivered once
            webhook.release.clear()
            webhook.mode = "ok"
            processes.append(start())
            assert wait_for(lambda: delivery_states(db) == ["sent"]), logs()
            assert count_titles(webhook, "alpha") == 1

            # 3. the window: the channel accepted, the process died before recording it
            webhook.mode = "accept-hang"
            second = ("b", "Drone strike bravo", "https://n.example/b", "y")
            server.routes["/wire"] = Route(body=rss(second, first))
            assert wait_for(lambda: count_titles(webhook, "bravo") == 1), logs()
            processes[-1].send_signal(signal.SIGKILL)
            processes[-1].wait(timeout=10)
            webhook.release.set()
            webhook.mode = "ok"
            processes.append(start())
            assert wait_for(lambda: delivery_states(db) == ["sent", "sent"]), logs()
            processes[-1].send_signal(signal.SIGTERM)
            processes[-1].wait(timeout=15)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
    assert count_titles(webhook, "alpha") == 1  # exactly once
    assert count_titles(webhook, "bravo") == 2  # accepted once, sent once more: the window


async def test_outbox_policies_on_sqlite_and_postgresql(store: Store, tmp_path: Path) -> None:
    """Planning, claiming, coalescing, notices and per-channel counts on both backends."""
    rules = write_rules(tmp_path, channels=CHANNELS)
    desk = Desk(store, load_rules(rules), rules)
    chat = FakeChannel("chat", frozenset({"chat"}))
    desk.queue("Drone one", ["chat"])
    desk.queue("Drone two", ["chat"])
    state = store.feed(FEED)
    assert state is not None
    store.update_feed(
        state.id, failure_alerted=True, now=NOW,
        notice=Notice("failure", "high", {"feed": "Wire", "failures": 5}, ["chat"]),
    )  # fmt: skip
    one_a_minute = Policies(
        tags={"chat": TagPolicy(rate_count=1, rate_period=timedelta(minutes=1))}
    )
    dispatcher = Dispatcher(store, [chat], "t", policies=one_a_minute)  # type: ignore[list-item]
    assert await dispatcher.deliver_due(NOW) == (3, 3)
    (message,) = chat.messages
    assert message.mode == "batch" and len(message.alerts) == 3
    assert store.channel_stats()["chat"].sent == 3 and store.outbox_depth() == 0
    assert store.sends_since("chat", NOW - timedelta(minutes=1)) == [NOW]
