"""The exception tree of wire-monitor.

Every error a user can cause is a ``MonitorError``; the CLI prints its message on one line and
exits 1, the daemon logs it against the feed or file it names and keeps running::

    MonitorError
     +-- ConfigError            settings, environment, monitor.toml
     +-- SourceError            a feed source could not be read (file missing, URL failed)
     |    +-- FetchError        an HTTP fetch failed (status, deadline, size, redirect policy)
     +-- ParseError             bytes that are not a usable feed (HTML, garbage, empty, hostile)
     +-- RuleError              rule, entity, feed or channel files that do not validate
     +-- StoreError             the database refused or is unreachable
     +-- DeliveryError          a channel did not accept an alert
"""

from __future__ import annotations

import difflib
from collections.abc import Collection


class MonitorError(Exception):
    """Base of every error the user can cause or fix."""


class ConfigError(MonitorError):
    """Invalid settings."""


class SourceError(MonitorError):
    """A source (file, URL, stdin) could not be read."""


class FetchError(SourceError):
    """An HTTP fetch failed; ``kind`` is a short stable label for metrics and status."""

    def __init__(self, message: str, kind: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class ParseError(MonitorError):
    """The bytes are not a feed the monitor can use."""


class RuleError(MonitorError):
    """One or more problems in the files under ``rules/``; ``problems`` holds each of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StoreError(MonitorError):
    """The database failed."""


class DeliveryError(MonitorError):
    """A channel did not accept an alert."""


def did_you_mean(name: str, choices: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else an empty string: every "unknown name"
    error (rule keys, fields, severities, settings) words its hint the same way."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
