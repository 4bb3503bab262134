"""The shared models: what an Article accepts and how it keeps it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from monitor.schema import Article

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
