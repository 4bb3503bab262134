"""What the files under ``rules/`` hold, once validated: entities, rules, feeds, channel policy.

The input models (``*Spec``, ``FeedConfig``, ``ChannelPolicy``) forbid unknown keys so that a
misspelled key is an error with a position, never a silently ignored setting. Values that need
parsing (severities, durations, rate limits, quiet hours) are validated here, once, at load time,
so the daemon never meets a bad one at three in the morning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError, did_you_mean
from monitor.rules.query import ALL_FIELDS, Node
from monitor.schema import (
    FIELDS,
    DigestSchedule,
    PositiveDuration,
    QuietHours,
    Severity,
    format_duration,
    parse_digest,
    parse_quiet_hours,
)


def parse_severity(value: Any) -> Severity:
    """A severity by name, with a "did you mean" for a near miss."""
    if isinstance(value, Severity):
        return value
    if isinstance(value, str) and value in Severity.__members__:
        return Severity[value]
    names = " | ".join(Severity.__members__)
    hint = did_you_mean(str(value), list(Severity.__members__))
    raise ValueError(f"unknown severity '{value}'{hint}: use one of {names}")


SeverityName = Annotated[
    Severity, BeforeValidator(parse_severity), PlainSerializer(lambda s: s.name, return_type=str)
]


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
_RATE_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


def parse_rate_limit(value: str) -> tuple[int, timedelta]:
    """Read ``20/min``, ``100/hour`` or ``5/10s`` as (count, period)."""
    m = _RATE.match(value)
    unit = m.group(3) if m else ""
    if unit not in _RATE_UNITS:
        unit = unit.removesuffix("s")
    if not m or unit not in _RATE_UNITS:
        raise ValueError(f"invalid rate limit '{value}': write COUNT/PERIOD, e.g. 20/min, 100/hour")
    count, periods = int(m.group(1)), int(m.group(2) or 1)
    if count < 1 or periods < 1:
        raise ValueError(f"invalid rate limit '{value}': count and period must be more than zero")
    return count, timedelta(seconds=periods * _RATE_UNITS[unit])


def _quiet_or_none(value: Any) -> Any:
    if isinstance(value, str):
        parse_quiet_hours(value)
    return value


def _rate_or_none(value: Any) -> Any:
    if isinstance(value, str):
        parse_rate_limit(value)
    return value


QuietHoursText = Annotated[str, BeforeValidator(_quiet_or_none)]
RateLimitText = Annotated[str, BeforeValidator(_rate_or_none)]


def _digest(value: Any) -> DigestSchedule:
    return value if isinstance(value, DigestSchedule) else parse_digest(value)


#: A digest is carried parsed, so that what loads is what the alerts stage can schedule.
DigestSpec = Annotated[
    DigestSchedule, PlainValidator(_digest), PlainSerializer(str, return_type=str)
]


@dataclass(frozen=True)
class Position:
    """Where something was written: ``file`` as given, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Entity:
    """A named thing and its spellings: ``@id`` in a rule means any of ``aliases``."""

    id: str
    aliases: tuple[str, ...]
    name: str | None = None
    position: Position | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rule:
    """One validated rule; ``expr`` is the parsed query whichever form it was written in."""

    id: str
    expr: Node
    title: str = ""
    description: str = ""
    enabled: bool = True
    severity: Severity = Severity.medium
    notify: list[str] = field(default_factory=list)
    feeds: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=lambda: list(FIELDS))
    languages: list[str] = field(default_factory=list)
    throttle: timedelta | None = None
    digest: DigestSchedule | None = None
    quiet_hours: str | None = None
    query: str | None = None
    file: str = ""
    line: int = 0
    col: int = 0

    @property
    def position(self) -> Position:
        return Position(self.file, self.line, self.col)


_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


class RuleSpec(BaseModel):
    """The keys a rule may set (SPEC section 4); input model, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str = ""
    description: str = ""
    enabled: bool = True
    severity: SeverityName = Severity.medium
    query: str | None = None
    any_: list[Any] | None = Field(default=None, alias="any")
    all_: list[Any] | None = Field(default=None, alias="all")
    none_: list[Any] | None = Field(default=None, alias="none")
    notify: list[str] = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=lambda: list(FIELDS), min_length=1)
    languages: list[str] = Field(default_factory=list)
    throttle: PositiveDuration | None = None
    digest: DigestSpec | None = None
    quiet_hours: QuietHoursText | None = None

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in ALL_FIELDS:
                raise ValueError(f"unknown field '{name}'{did_you_mean(name, FIELDS)}")
        return value

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        codes = [v.lower().split("-")[0] for v in value]
        for code, raw in zip(codes, value, strict=True):
            if not _LANGUAGE.match(code):
                raise ValueError(
                    f"invalid language '{raw}': use an ISO 639 code such as en, ko, ja"
                )
        return codes


class EntitySpec(BaseModel):
    """The keys an entity may set."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    aliases: list[str] = Field(min_length=1)


class FeedDefaults(BaseModel):
    """Settings every feed inherits unless it sets its own (the ``defaults:`` of feeds.yaml)."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)
    enabled: bool = True
    interval: PositiveDuration = Field(default=timedelta(minutes=5))
    min_interval: PositiveDuration = Field(default=timedelta(minutes=1))
    max_interval: PositiveDuration = Field(default=timedelta(hours=1), validate_default=True)
    headers: dict[str, str] = Field(default_factory=dict)
    alert_on_first_poll: bool = False
    max_age: PositiveDuration = Field(default=timedelta(days=2))
    respect_cache_hints: bool = True
    failure_alert_after: int = Field(default=5, ge=1)
    silence_after: PositiveDuration | None = None

    @field_validator("max_interval")
    @classmethod
    def _interval_bounds(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        """Checked on ``max_interval`` (validated after ``min_interval``) so that the problem
        is reported at that value."""
        least = info.data.get("min_interval")
        if least is not None and least > value:
            raise ValueError(
                f"min_interval ({format_duration(least)}) is longer than max_interval"
                f" ({format_duration(value)})"
            )
        return value


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FeedConfig(FeedDefaults):
    """One feed of feeds.yaml, defaults applied. ``headers`` keep ``${VAR}`` unexpanded."""

    url: str
    name: str = ""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid feed URL '{value}': an http(s) URL with a host")
        return value.strip()

    @model_validator(mode="after")
    def _default_name(self) -> FeedConfig:
        if not self.name:
            parts = urlsplit(self.url)
            self.name = f"{parts.hostname}{parts.path}".rstrip("/")
        return self

    def env_references(self) -> list[str]:
        """The environment variables the headers refer to."""
        return [m.group(1) for v in self.headers.values() for m in _ENV_REF.finditer(v)]

    def resolved_headers(self, env: Mapping[str, str]) -> dict[str, str]:
        """The headers with ``${VAR}`` replaced from ``env``; a missing variable is an error."""

        def lookup(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise ConfigError(
                    f"feed '{self.name}': header refers to ${{{m.group(1)}}}, which is not set"
                )
            return env[m.group(1)]

        return {k: _ENV_REF.sub(lookup, v) for k, v in self.headers.items()}


class FeedList(BaseModel):
    """feeds.yaml: ``defaults`` and the feeds, each with the defaults applied."""

    model_config = ConfigDict(extra="forbid")

    defaults: FeedDefaults = Field(default_factory=FeedDefaults)
    feeds: list[FeedConfig] = Field(default_factory=list)

    def by_name(self) -> dict[str, FeedConfig]:
        return {f.name: f for f in self.feeds}


class ChannelPolicy(BaseModel):
    """Delivery policy of one Apprise tag (channels.yaml)."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: RateLimitText | None = None
    quiet_hours: QuietHoursText | None = None
    bypass_severity: SeverityName = Severity.critical

    @property
    def rate_count(self) -> int | None:
        """How many messages the channel takes per ``rate_period``; None: unlimited."""
        return parse_rate_limit(self.rate_limit)[0] if self.rate_limit else None

    @property
    def rate_period(self) -> timedelta | None:
        return parse_rate_limit(self.rate_limit)[1] if self.rate_limit else None

    @property
    def quiet(self) -> QuietHours | None:
        """The parsed quiet-hours window."""
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None
