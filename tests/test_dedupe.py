"""Identity and story grouping: one article per URL, one story per piece of news."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.dedupe import (
    NEAR_DUPLICATE_THRESHOLD,
    best_story,
    identity_keys,
    is_same_story,
    resemblance,
    unique_by_identity,
)
from monitor.parse import story_fingerprint
from monitor.schema import Article

NOW = datetime(2026, 11, 24, tzinfo=UTC)

# The same wire story as several outlets carry it: (title, lead)
SAME_STORY = [
    (
        (
            "North Korea fires ballistic missile into East Sea, South Korea says",
            "SEOUL, Nov 24 (Reuters) - North Korea fired a ballistic missile into the sea off "
            "its east coast on Tuesday, South Korea's military said, the latest in a series "
            "of weapons tests this year.",
        ),
        (
            "N. Korea fires ballistic missile into East Sea: JCS",
            "North Korea fired a ballistic missile into the East Sea on Tuesday, South Korea's "
            "Joint Chiefs of Staff said, the latest in a series of weapons tests this year.",
        ),
    ),
    (
        (
            "Russia and North Korea sign mutual defence treaty",
            "Russian President Vladimir Putin and North Korean leader Kim Jong-un signed a "
            "mutual defence treaty in Pyongyang on Wednesday, pledging to assist each other "
            "if either is attacked.",
        ),
        (
            "Putin, Kim sign mutual defence treaty in Pyongyang",
            "Russian President Vladimir Putin and North Korea's Kim Jong-un have signed a "
            "mutual defence treaty, pledging to assist each other if either is attacked, "
            "state media said.",
        ),
    ),
    (
        (
            "Kim Jong-un oversees test of new kamikaze drones",
            "North Korean leader Kim Jong-un oversaw a test of new suicide attack drones "
            "and called for mass production, state media KCNA reported on Friday.",
        ),
        (
            "Kim Jong Un calls for mass production of suicide attack drones after test",
            "North Korean leader Kim Jong Un oversaw a test of new suicide attack drones and "
            "called for their mass production, KCNA reported Friday.",
        ),
    ),
]

DIFFERENT_STORIES = [
    (
        (
            "North Korea fires ballistic missile into East Sea, South Korea says",
            "North Korea fired a ballistic missile into the sea off its east coast on "
            "Tuesday, South Korea's military said.",
        ),
        (
            "North Korea fires cruise missiles off west coast",
            "North Korea fired several cruise missiles over the Yellow Sea on Saturday "
            "morning, days after a joint air drill by the United States and South Korea.",
        ),
    ),
    (
        (
            "Russia and North Korea sign mutual defence treaty",
            "Russian President Vladimir Putin and North Korean leader Kim Jong-un signed a "
            "mutual defence treaty in Pyongyang on Wednesday.",
        ),
        (
            "Japan and Philippines sign reciprocal access agreement",
            "Japan and the Philippines signed a defence pact on Monday allowing troops to be "
            "deployed on each other's soil, as both countries face an assertive China.",
        ),
    ),
    (
        (
            "Ukraine downs dozens of Russian drones overnight",
            "Ukraine's air force said it shot down 40 of 55 drones launched by Russia "
            "overnight, as Moscow kept up attacks on energy infrastructure.",
        ),
        (
            "Kim Jong-un oversees test of new kamikaze drones",
            "North Korean leader Kim Jong-un oversaw a test of new suicide attack drones and "
            "called for mass production, state media KCNA reported on Friday.",
        ),
    ),
]


def fp(pair: tuple[str, str]) -> str:
    return story_fingerprint(*pair)


@pytest.mark.parametrize(("a", "b"), SAME_STORY)
def test_rewrites_of_one_wire_story_are_one_story(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert is_same_story(fp(a), fp(b)), resemblance(fp(a), fp(b))


@pytest.mark.parametrize(("a", "b"), DIFFERENT_STORIES)
def test_different_stories_on_one_beat_stay_apart(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert not is_same_story(fp(a), fp(b)), resemblance(fp(a), fp(b))


def test_threshold_separates_with_a_margin() -> None:
    same = min(resemblance(fp(a), fp(b)) for a, b in SAME_STORY)
    different = max(resemblance(fp(a), fp(b)) for a, b in DIFFERENT_STORIES)
    assert different < NEAR_DUPLICATE_THRESHOLD <= same


def test_identical_text_resembles_fully_and_empty_not_at_all() -> None:
    one = fp(SAME_STORY[0][0])
    assert resemblance(one, one) == 1.0
    assert resemblance(one, "") == 0.0


def test_best_story_picks_the_closest_candidate() -> None:
    target = fp(SAME_STORY[1][1])
    candidates = [(1, fp(DIFFERENT_STORIES[1][1])), (2, fp(SAME_STORY[1][0]))]
    assert best_story(target, candidates) == 2
    assert best_story(target, candidates[:1]) is None


def article(**fields: str | None) -> Article:
    values: dict[str, object] = {"id": "x", "feed": "f", "feed_url": "u", "fetched_at": NOW}
    values.update(fields)
    return Article.model_validate(values)


def test_same_url_in_two_feeds_shares_a_key() -> None:
    a = article(id="a1", feed="A", url="https://news.example/story")
    b = article(id="b7", feed="B", url="https://news.example/story")
    assert set(identity_keys(a)) & set(identity_keys(b))


def test_a_link_fragment_is_still_one_url() -> None:
    a = article(id="a1", url="https://news.example/story")
    b = article(id="b7", guid="b-7", url="https://news.example/story")  # was ...story#comments
    assert set(identity_keys(a)) & set(identity_keys(b))


def test_live_blog_updates_named_by_guid_fragments_are_not_one_url() -> None:
    page = "https://news.example/live"
    u1 = article(id="u1", guid=f"{page}#u1", url=page)
    u2 = article(id="u2", guid=f"{page}#u2", url=page)
    assert set(identity_keys(u1)).isdisjoint(identity_keys(u2))
    assert len(unique_by_identity([u1, u2])) == 2


def test_duplicate_guids_within_one_document_count_once() -> None:
    items = [article(id="same", title="first"), article(id="same", title="again")]
    assert [a.title for a, _ in unique_by_identity(items)] == ["first"]
