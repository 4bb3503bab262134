"""The `monitor` command: a thin layer over the library (SPEC section 2).

Exit codes: 0 success, 1 a user error (one clear line, no traceback), 2 a usage error.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from monitor import __version__
from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, MonitorError, RuleError, SourceError
from monitor.fetch import FetchLimits, fetch_document, make_client
from monitor.parse import parse_feed
from monitor.rules import json_schema, load_rules
from monitor.schema import Article

app = typer.Typer(
    name="monitor",
    help="wire-monitor: watch news and wire feeds, match rules, alert once per story.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _settings() -> Settings:
    return load_settings()


def fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(
        max_bytes=settings.max_feed_bytes,
        deadline=settings.fetch_timeout.total_seconds(),
        connect_timeout=settings.connect_timeout.total_seconds(),
        user_agent=settings.user_agent,
    )


def read_source(source: str, settings: Settings) -> tuple[bytes, str | None]:
    """The bytes of a file, of stdin (`-`) or of an http(s) URL, and their content type."""
    if source == "-":
        return sys.stdin.buffer.read(), None
    if source.startswith(("http://", "https://")):
        return asyncio.run(_fetch_once(source, settings))
    path = Path(source)
    try:
        return path.read_bytes(), None
    except OSError as exc:
        raise SourceError(f"{source}: cannot read: {exc.strerror}") from None


async def _fetch_once(url: str, settings: Settings) -> tuple[bytes, str | None]:
    limits = fetch_limits(settings)
    async with make_client(limits) as client:
        response = await fetch_document(client, url, limits)
    if response.status != 200:
        raise SourceError(f"{url}: HTTP {response.status}")
    return response.body, response.content_type


@app.command()
def parse(
    source: Annotated[str, typer.Argument(help="a feed file, an http(s) URL, or - for stdin")],
) -> None:
    """Print the normalised Articles of one feed as JSON Lines."""
    settings = _settings()
    data, content_type = read_source(source, settings)
    feed_url = source if "://" in source else f"file:{source}"
    parsed = parse_feed(
        data,
        feed_url=feed_url,
        feed_name=source,
        now=datetime.now(UTC),
        content_type=content_type,
    )
    for warning in parsed.warnings:
        typer.echo(f"{source}: warning: {warning}", err=True)
    out = sys.stdout
    for article in parsed.articles:
        out.write(article.model_dump_json() + "\n")


@app.command("config")
def show_config() -> None:
    """Print the effective settings, secrets masked."""
    for name, value in _settings().masked().items():
        typer.echo(f"{name}={value}")


# --- rules: check, match, schema (issue 3) -------------------------------------------------


def _rules_dir(rules: Path | None) -> Path:
    return rules if rules is not None else _settings().rules_dir


@app.command()
def check(
    path: Annotated[
        Path | None, typer.Argument(help="a rules directory or one file; default: rules_dir")
    ] = None,
) -> None:
    """Validate rules, entities, feeds and channels; print file:line:col: message per problem."""
    target = _rules_dir(path)
    try:
        ruleset = load_rules(target)
    except RuleError as exc:
        for problem in exc.problems:
            typer.echo(problem)
        raise typer.Exit(1) from None
    typer.echo(
        f"ok: {len(ruleset.rules)} rules, {len(ruleset.entities)} entities, "
        f"{len(ruleset.feeds.feeds)} feeds, {len(ruleset.channels)} channels "
        f"in {len(ruleset.sources)} files"
    )


@app.command()
def match(
    sources: Annotated[
        list[str], typer.Argument(help="feed files, Article JSON/JSONL files or plain-text files")
    ],
    rules: Annotated[Path | None, typer.Option(help="rules directory; default: rules_dir")] = None,
    feed: Annotated[
        str | None,
        typer.Option(help="treat the articles as items of this feed (its tags apply to feeds:)"),
    ] = None,
) -> None:
    """Print one JSON line per (article, rule) match, with its explanation."""
    ruleset = load_rules(_rules_dir(rules))
    feeds = ruleset.feeds.by_name()
    now = datetime.now(UTC)
    out = sys.stdout
    for source in sources:
        for read in read_articles(source, now):
            article = read if feed is None else read.model_copy(update={"feed": feed})
            tags = feeds[article.feed].tags if article.feed in feeds else []
            for found in ruleset.matcher.match(article, tags):
                out.write(found.model_dump_json() + "\n")


def read_articles(source: str, now: datetime) -> list[Article]:
    """Articles from a feed file, Article JSON/JSONL, or plain text (title = first line)."""
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{source}: cannot read: {exc.strerror}") from None
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return parse_feed(data, feed_url=f"file:{source}", feed_name=source, now=now).articles
    if head.startswith((b"{", b"[")):
        try:
            return _articles_from_json(data, source, now)
        except (ValueError, ValidationError) as exc:
            raise SourceError(f"{source}: not Article JSON or JSON Lines: {exc}") from None
    text = data.decode("utf-8", errors="replace")
    title, _, rest = text.strip().partition("\n")
    return [
        Article(
            id=f"file:{source}",
            feed=source,
            feed_url=f"file:{source}",
            title=title.strip(),
            content=rest.strip(),
            fetched_at=now,
        )
    ]


def _articles_from_json(data: bytes, source: str, now: datetime) -> list[Article]:
    try:
        document = json.loads(data)
    except json.JSONDecodeError:
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        return [Article.model_validate_json(line) for line in lines]
    if isinstance(document, dict) and "jsonfeed.org" in str(document.get("version", "")):
        return parse_feed(data, feed_url=f"file:{source}", feed_name=source, now=now).articles
    items = document if isinstance(document, list) else [document]
    return [Article.model_validate(item) for item in items]


@app.command()
def schema(
    kind: Annotated[
        str, typer.Option(help="all (any rules/*.yaml), rules, feeds or channels")
    ] = "all",
) -> None:
    """Print the JSON Schema of rule and feed files, for editor validation and completion."""
    if kind not in ("all", "rules", "feeds", "channels"):
        raise ConfigError(f"unknown schema kind '{kind}': use all, rules, feeds or channels")
    typer.echo(json.dumps(json_schema(kind), indent=2, ensure_ascii=False))


# --- end rules -----------------------------------------------------------------------------


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1."""
    try:
        app()
    except MonitorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
