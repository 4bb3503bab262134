"""Shared models: the Article every feed item becomes, matches and their explanations.

These are the nouns every stage speaks; they live here so that stages need not import each
other. Durations and byte sizes are shared value types because settings and rule files both
write them the same way (``30s``, ``5m``, ``10MiB``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import IntEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from monitor.errors import did_you_mean

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """Read ``30s``, ``5m``, ``2h``, ``1d``, ``1w`` (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(
            f"invalid duration {value!r}: write a number and a unit, e.g. 30s, 5m, 2h, 1d"
        )
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    return timedelta(seconds=seconds)


def parse_positive_duration(value: Any) -> timedelta:
    """A duration that must be longer than zero: a poll interval, a throttle window or an age
    limit of ``0s`` would poll without pause, throttle nothing or drop every story."""
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError(f"invalid duration {value!r}: must be longer than zero")
    return duration


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of a duration, the inverse of ``parse_duration``."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}


def parse_byte_size(value: Any) -> int:
    """Read ``10MiB``, ``500KB`` or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (m := _BYTES.match(value)):
        return int(float(m.group(1)) * _BYTE_UNITS[(m.group(2) or "b").lower()])
    raise ValueError(f"invalid size {value!r}: write a number and a unit, e.g. 10MiB, 500KB")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_positive_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_clock(text: str) -> time:
    """``HH:MM`` on a 24-hour clock, as digests and quiet hours write a time of day."""
    m = _CLOCK.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a time of day: write HH:MM, e.g. 08:00")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"'{text}' is not a time of day: hours 00-23, minutes 00-59")
    return time(hour, minute)


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone by name, with a "did you mean" for a misspelling (``Europe/Berln``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, e.g. "Europe"
        raise ValueError(f"unknown time zone '{name}'{_zone_hint(name)}") from None


#: Abbreviations people write for a zone that has one obvious IANA name. Most abbreviations
#: are ambiguous (IST: India, Ireland or Israel; CST: China or the US) and get no guess.
_ZONE_ABBREVIATIONS = {
    "kst": "Asia/Seoul",
    "jst": "Asia/Tokyo",
    "hkt": "Asia/Hong_Kong",
    "sgt": "Asia/Singapore",
    "msk": "Europe/Moscow",
    "z": "UTC",
}
_OFFSET_ZONE = re.compile(r"^(?:GMT|UTC)([+-])(\d{1,2})(?::?00)?$", re.IGNORECASE)


def _zone_hint(name: str) -> str:
    """What to write instead of an unknown zone: the same name in its right case (``utc``),
    the IANA name of an unambiguous abbreviation (``KST``), the ``Etc/`` name of an offset
    (``GMT+9``, whose sign POSIX inverts), else the nearest IANA name of a place (a name with
    a '/': ``MST`` is no useful guess for ``KST``)."""
    zones = available_timezones()
    by_case = {zone.lower(): zone for zone in zones}
    if (same := by_case.get(name.lower())) or (same := _ZONE_ABBREVIATIONS.get(name.lower())):
        return f" (did you mean '{same}'?)"
    if (m := _OFFSET_ZONE.match(name)) and (hours := int(m.group(2))) > 0:
        ahead = m.group(1) == "+"
        etc, side = f"Etc/GMT{'-' if ahead else '+'}{hours}", "ahead of" if ahead else "behind"
        if etc not in zones:
            return f" (no time zone is {hours} hours {side} UTC)"
        return f" (for {hours} hours {side} UTC write '{etc}': Etc/GMT names invert the sign)"
    places = [zone for zone in zones if "/" in zone] + ["UTC"]
    return did_you_mean(name, places) or " (use an IANA name like Asia/Seoul)"


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: A weekday as cron writes it, and as a ``DigestSchedule`` carries it.
_CRON_DAYS = tuple(day[:3] for day in _WEEKDAYS)
#: Every spelling of a weekday: its first three letters (how cron writes it, ``mon``) and any
#: longer start of its name or plural (``tues``, ``thurs``, ``wednes``, ``mondays``), as rule
#: files have always been allowed to write it. The value is the cron name.
_WEEKDAY_NAMES = {
    plural[:size]: cron
    for day, cron in zip(_WEEKDAYS, _CRON_DAYS, strict=True)
    for plural in (day + "s",)
    for size in range(3, len(plural) + 1)
} | {"weds": "wed"}  # the one common spelling that is no start of its name

Every = Literal["hour", "day", "week"]
#: Each digest form: how often it goes out, and how many words it has before its optional zone.
_DIGEST_FORMS: dict[str, tuple[Every, int]] = {
    "hourly": ("hour", 1),
    "daily": ("day", 2),
    "weekly": ("week", 3),
}


@dataclass(frozen=True)
class QuietHours:
    """A daily window ``start``-``end`` in ``zone``; it may wrap midnight (22:00-07:00): a rule's
    or a channel's quiet hours, read by the rules stage and kept by the alerts stage."""

    start: time
    end: time
    zone: ZoneInfo


_QUIET = re.compile(r"^\s*(\S+?)\s*-\s*(\S+?)(?:\s+(\S+))?\s*$")


def parse_quiet_hours(value: str) -> QuietHours:
    """Read ``"22:00-07:00 Europe/Berlin"`` (the zone defaults to UTC)."""
    m = _QUIET.match(value)
    if not m:
        raise ValueError(f"invalid quiet hours '{value}': write HH:MM-HH:MM Zone/Name")
    try:
        start, end = parse_clock(m.group(1)), parse_clock(m.group(2))
        zone = parse_zone(m.group(3) or "UTC")
    except ValueError as exc:
        raise ValueError(f"invalid quiet hours '{value}': {exc}") from None
    return QuietHours(start, end, zone)


@dataclass(frozen=True)
class DigestSchedule:
    """When a rule's digest goes out: every hour, every day or every week (on ``day``) at
    ``at`` in ``zone``. Rules are parsed into this once, at load time, so that the alerts
    stage schedules exactly what ``monitor check`` accepted and never parses the text again."""

    text: str
    every: Every
    at: time
    zone: ZoneInfo
    day: str | None = None

    def __post_init__(self) -> None:
        """A weekly schedule without its day would be a daily cron trigger, and a day on any
        other would be ignored: refuse both where the schedule is made."""
        weekly = self.every == "week"
        if weekly != (self.day is not None) or (weekly and self.day not in _CRON_DAYS):
            days = ", ".join(_CRON_DAYS)
            raise ValueError(
                f"digest '{self.text}': a weekly digest needs a day ({days}), no other one has"
                f" one (every={self.every!r}, day={self.day!r})"
            )

    def __str__(self) -> str:
        return self.text


def parse_digest(value: object) -> DigestSchedule:
    """Read ``hourly``, ``daily HH:MM`` or ``weekly DAY HH:MM``, each optionally followed by
    an IANA time zone (UTC when absent). Anything but such a string is refused likewise."""
    words = value.split() if isinstance(value, str) else []
    every, size = _DIGEST_FORMS.get(words[0].lower() if words else "", ("hour", 0))
    zone_name = words[size] if size and len(words) == size + 1 else None
    if not size or len(words) not in (size, size + 1) or ":" in (zone_name or ""):
        raise ValueError(
            f"invalid digest '{value}': write 'hourly', 'daily 08:00' or 'weekly mon 08:00'"
            " (optionally a zone, e.g. 'daily 08:00 Asia/Seoul')"
        )
    try:
        day = _weekday(words[1]) if every == "week" else None
        at = parse_clock(words[size - 1]) if size > 1 else time(0, 0)
        zone = parse_zone(zone_name) if zone_name else ZoneInfo("UTC")
    except ValueError as exc:
        raise ValueError(f"invalid digest '{value}': {exc}") from None
    return DigestSchedule(str(value), every, at, zone, day)


def _weekday(name: str) -> str:
    day = _WEEKDAY_NAMES.get(name.lower())
    if day is None:
        spellings = [*_WEEKDAYS, *_CRON_DAYS]  # suggest the usual two spellings, not 'thurs'
        hint = did_you_mean(name.lower(), spellings) or " (use mon, tue, ... sun)"
        raise ValueError(f"unknown day '{name}'{hint}")
    return day


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A moment, never a wall-clock reading: a naive datetime is refused (whose clock would it be
#: on?), an aware one is kept in UTC, so that every stored and compared time is alike.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Severity(IntEnum):
    """Ordered so that ``severity >= bypass_severity`` reads as it should."""

    info = 10
    low = 20
    medium = 30
    high = 40
    critical = 50

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        try:
            return cls[value]
        except KeyError:
            names = " | ".join(cls.__members__)
            raise ValueError(f"unknown severity {value!r}: use one of {names}") from None


class Media(BaseModel):
    """An image, video or audio file attached to an item."""

    model_config = ConfigDict(frozen=True)

    url: str
    type: str | None = None
    medium: str | None = None
    caption: str | None = None
    credit: str | None = None


class Article(BaseModel):
    """One feed item, whatever its format, normalised (SPEC section 5)."""

    id: str = Field(description="stable across polls and restarts")
    feed: str = Field(description="the feed's name")
    feed_url: str
    guid: str | None = Field(default=None, description="the item's own id as the feed gave it")
    url: str | None = Field(default=None, description="absolute canonical link, no tracking")
    title: str = ""
    summary: str = ""
    content: str = Field(default="", description="empty when the feed gives only a summary")
    authors: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    published: UtcDatetime | None = None
    updated: UtcDatetime | None = None
    fetched_at: UtcDatetime
    language: str | None = None
    dateline: str | None = None
    media: list[Media] = Field(default_factory=list)
    fingerprint: str = Field(default="", description="near-duplicate signature of title + summary")

    def text_fields(self) -> dict[str, str]:
        """The fields rules search, by the names rules use."""
        return {"title": self.title, "summary": self.summary, "content": self.content}


FIELDS = ("title", "summary", "content")


@dataclass(slots=True)
class Hit:
    """One term found in one field: offsets index the field's text as stored in the Article.

    A plain slotted dataclass, not a pydantic model: an explanation makes tens of hits per
    article and building one costs 0.17 µs this way against 0.7 µs for the cheapest pydantic
    construction. ``Match`` still validates and serialises its hits like any pydantic field.
    """

    term: str
    field: str
    start: int
    end: int
    text: str


class Match(BaseModel):
    """A rule that matched an article, with its explanation."""

    article_id: str
    rule: str
    severity: str
    hits: list[Hit]
    snippet: str
