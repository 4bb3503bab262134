"""Canonical URLs: the same story is the same URL, whatever tracking tags it carries."""

from __future__ import annotations

import pytest

from monitor.urls import canonical_url, guid_url


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("https://Ex.ORG/a?utm_source=x&id=1#frag", None, "https://ex.org/a?id=1"),
        (
            "/story?fbclid=1&gclid=2&mc_eid=3",
            "https://news.example/feed",
            "https://news.example/story",
        ),
        ("rel/page", "https://news.example/dir/feed.xml", "https://news.example/dir/rel/page"),
        ("http://ex.org:80/a", None, "http://ex.org/a"),
        ("https://ex.org:8443/a", None, "https://ex.org:8443/a"),
        ("http://[::1]:8080/feed", None, "http://[::1]:8080/feed"),
        ("https://ex.org", None, "https://ex.org/"),
        ("javascript:alert(1)", None, None),
        ("mailto:a@b.c", None, None),
        ("", None, None),
        ("http://", None, None),
        ("http://ex.org:99999/", None, None),
        ("http://[::1", None, None),
        ("//[bad/feed", "https://news.example/feed", None),  # atheris: urljoin raised
    ],
)
def test_canonical_url(link: str, base: str | None, expected: str | None) -> None:
    assert canonical_url(link, base) == expected


@pytest.mark.parametrize(
    ("guid", "expected"),
    [
        ("https://News.example/live?utm_source=x#u2", "https://news.example/live#u2"),
        ("https://news.example/story", "https://news.example/story"),
        ("wire-2026-11-24-0042", None),
        ("tag:atom.example.org,2026:1", None),
        ("/relative#u1", None),
    ],
)
def test_guid_url_keeps_the_fragment(guid: str, expected: str | None) -> None:
    assert guid_url(guid) == expected
