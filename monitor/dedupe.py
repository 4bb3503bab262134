"""PURE: item identity and story grouping.

Identity answers "have we seen this item?": an item is known by its id (the guid scoped to its
feed, or its canonical link; see ``parse.article_id``) and by its canonical URL, so the same URL
carried by two feeds, or re-served with a new guid, is one article (a URL guid's fragment is
kept: see ``_identity_url``).

Story grouping answers "is this the same news?": the same wire story rewritten by several
outlets shares most of the words of its title and lead. ``Article.fingerprint`` is a bottom-k
MinHash sketch of those words and word pairs; ``resemblance`` estimates the Jaccard similarity of
two sketches, and two articles whose resemblance reaches ``NEAR_DUPLICATE_THRESHOLD`` are one
story. The threshold was chosen on the pairs in ``tests/test_dedupe.py``: rewrites of one wire
story score 0.5-0.65, different stories on the same beat (two missile launches on different days,
say) score under 0.25; 0.35 sits between them. Sketches of 32 hashes keep the estimate's error
well under that margin for leads of a few dozen words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from monitor.schema import Article
from monitor.urls import guid_url

NEAR_DUPLICATE_THRESHOLD = 0.35
HASH_HEX = 8


def identity_keys(article: Article) -> list[str]:
    """Every key this article is known by; it is "seen" when any of them is."""
    keys = [f"id:{article.id}"]
    url = _identity_url(article)
    if url:
        digest = hashlib.blake2b(url.encode(), digest_size=10).hexdigest()
        keys.append(f"url:{digest}")
    return keys


def _identity_url(article: Article) -> str | None:
    """The URL an item is known by: its canonical link, fragment dropped, so that the same story
    linked from two feeds (one with ``#comments``, say) is one article. An item whose guid is a
    URL with a fragment is the exception: the fragment is what separates it from its siblings
    (``.../live#u1``, ``.../live#u2``, updates of one live blog, share the page's link), so it is
    known by the guid, fragment and all."""
    if article.guid and "#" in article.guid:
        as_url = guid_url(article.guid)
        if as_url and "#" in as_url:
            return as_url
    return article.url


def fingerprint_hashes(fingerprint: str) -> list[int]:
    """The shingle hashes of a fingerprint, smallest first."""
    return [
        int(fingerprint[i : i + HASH_HEX], 16)
        for i in range(0, len(fingerprint) - HASH_HEX + 1, HASH_HEX)
    ]


def resemblance(a: str, b: str) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two fingerprints (0..1).

    The bottom-k estimator: of the k smallest hashes of the union, the share found in both.
    """
    ha, hb = fingerprint_hashes(a), fingerprint_hashes(b)
    k = min(len(ha), len(hb))
    if k == 0:
        return 0.0
    set_a, set_b = set(ha), set(hb)
    union_bottom = sorted(set_a | set_b)[:k]
    return sum(1 for h in union_bottom if h in set_a and h in set_b) / k


def is_same_story(a: str, b: str, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> bool:
    return resemblance(a, b) >= threshold


def best_story(
    fingerprint: str,
    candidates: Iterable[tuple[int, str]],
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
) -> int | None:
    """The candidate story (id, fingerprint) this fingerprint belongs to, if any."""
    best_id, best_score = None, threshold
    for story_id, other in candidates:
        score = resemblance(fingerprint, other)
        if score >= best_score:
            best_id, best_score = story_id, score
    return best_id


def unique_by_identity(articles: Sequence[Article]) -> list[tuple[Article, list[str]]]:
    """Articles with their keys, dropping repeats within one document (duplicate guids)."""
    taken: set[str] = set()
    result = []
    for article in articles:
        keys = identity_keys(article)
        if taken.isdisjoint(keys):
            taken.update(keys)
            result.append((article, keys))
    return result
