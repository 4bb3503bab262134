"""The shared models: what an Article accepts and how it keeps it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from monitor.schema import Article, parse_zone

SEOUL = timezone(timedelta(hours=9))


def test_article_times_are_kept_in_utc() -> None:
    article = Article(
        id="x",
        feed="f",
        feed_url="u",
        fetched_at=datetime(2026, 11, 24, 21, 0, tzinfo=SEOUL),
        published="2026-11-24T10:00:00+01:00",  # type: ignore[arg-type]  # as read from JSON
    )
    assert article.fetched_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert article.fetched_at.tzinfo is UTC
    assert article.published is not None and article.published.tzinfo is UTC
    assert article.model_dump(mode="json")["published"] == "2026-11-24T09:00:00Z"


@pytest.mark.parametrize("field", ["published", "updated", "fetched_at"])
def test_a_naive_time_is_refused(field: str) -> None:
    values = {"id": "x", "feed": "f", "feed_url": "u", "fetched_at": datetime.now(UTC)}
    values[field] = datetime(2026, 11, 24, 12, 0)
    with pytest.raises(ValidationError, match="timezone"):
        Article.model_validate(values)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("utc", "(did you mean 'UTC'?)"),
        ("europe/berlin", "(did you mean 'Europe/Berlin'?)"),
        ("Europe/Berln", "(did you mean 'Europe/Berlin'?)"),
        ("KST", "(did you mean 'Asia/Seoul'?)"),
        ("jst", "(did you mean 'Asia/Tokyo'?)"),
        ("HKT", "(did you mean 'Asia/Hong_Kong'?)"),
        ("SGT", "(did you mean 'Asia/Singapore'?)"),
        ("MSK", "(did you mean 'Europe/Moscow'?)"),
        ("Z", "(did you mean 'UTC'?)"),
        ("GMT+9", "(for 9 hours ahead of UTC write 'Etc/GMT-9': Etc/GMT names invert the sign)"),
        ("UTC-05:00", "(for 5 hours behind UTC write 'Etc/GMT+5': Etc/GMT names invert the sign)"),
        ("GMT-13", "(no time zone is 13 hours behind UTC)"),
        ("IST", "(use an IANA name like Asia/Seoul)"),  # India, Ireland or Israel: no guess
        ("Mars/Base", "(use an IANA name like Asia/Seoul)"),
    ],
)
def test_an_unknown_time_zone_gets_a_hint_that_is_a_right_answer(name: str, hint: str) -> None:
    """Not the nearest spelling (``KST`` is not ``MST``, ``GMT+9`` is not ``GMT+0``) but the
    zone meant, or no guess; each suggestion is a zone that exists."""
    with pytest.raises(ValueError) as info:
        parse_zone(name)
    assert str(info.value) == f"unknown time zone '{name}' {hint}"
    suggested = re.findall(r"'([^']+)'", hint)
    assert all(parse_zone(zone) for zone in suggested)
