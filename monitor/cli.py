"""The `monitor` command: a thin layer over the library (SPEC section 2).

Exit codes: 0 success, 1 a user error (one clear line, no traceback), 2 a usage error.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from monitor import __version__
from monitor.config import Settings, load_settings
from monitor.errors import MonitorError, SourceError
from monitor.fetch import Fetcher, FetchLimits, FetchRequest
from monitor.parse import parse_feed

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
    """Settings as fetch limits; a read may be silent as long as a connect may take."""
    return FetchLimits(
        max_bytes=settings.max_feed_bytes,
        deadline=settings.fetch_timeout.total_seconds(),
        connect_timeout=settings.connect_timeout.total_seconds(),
        user_agent=settings.user_agent,
        read_timeout=settings.connect_timeout.total_seconds(),
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


def make_fetcher(settings: Settings) -> Fetcher:
    """The fetcher the settings describe (fetch.py does not read settings itself)."""
    return Fetcher(
        fetch_limits(settings),
        max_concurrency=settings.max_concurrency,
        per_host_concurrency=settings.per_host_concurrency,
        allowed_private_hosts=settings.allowed_private_host_set,
    )


async def _fetch_once(url: str, settings: Settings) -> tuple[bytes, str | None]:
    async with make_fetcher(settings) as fetcher:
        outcome = await fetcher.fetch(FetchRequest(url))
    if outcome.error is not None:
        raise outcome.error
    if outcome.kind != "ok":
        raise SourceError(f"{url}: HTTP {outcome.status} ({outcome.kind.replace('_', ' ')})")
    return outcome.body, outcome.content_type


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
