"""Every fixture feed becomes the Articles a reader expects, field by field.

Each fixture in ``fixtures/feeds/`` has a golden file in ``fixtures/expected/`` (``NAME.jsonl``:
the feed's facts, then every Article's full ``model_dump(mode="json")``, or the error), compared
whole. After a deliberate change, ``pytest tests/test_parse.py --regen-golden`` rewrites them;
read every changed line before committing (``git diff --word-diff``): a golden file is only as
right as its review. The tests by name below state the facts each fixture exists for.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.dedupe import identity_keys
from monitor.errors import ParseError
from monitor.parse import (
    ENTITY_EXPANSION_BUDGET,
    MAX_FIELD_CHARS,
    find_dateline,
    html_to_text,
    parse_date,
    parse_feed,
    screen_bytes,
)
from monitor.schema import Article, Media

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
EXPECTED = Path(__file__).parent / "fixtures" / "expected"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir())
FEED_URL = "https://feeds.example.org/feed"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def parse_fixture(name: str, feed_url: str = FEED_URL) -> list[Article]:
    return parse_feed(
        (FIXTURES / name).read_bytes(), feed_url=feed_url, feed_name="Test Feed", now=NOW
    ).articles


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- golden files: every field of every fixture ------------------------------------------------


def golden_records(name: str) -> list[dict[str, Any]]:
    """What a fixture gives, as the lines of its golden file: the feed's facts and then each
    Article in full, or the error for a fixture that is not a usable feed."""
    try:
        parsed = parse_feed(
            (FIXTURES / name).read_bytes(), feed_url=FEED_URL, feed_name="Test Feed", now=NOW
        )
    except ParseError as exc:
        return [{"error": str(exc)}]
    feed = {
        "title": parsed.title,
        "link": parsed.link,
        "language": parsed.language,
        "ttl_seconds": parsed.ttl.total_seconds() if parsed.ttl else None,
        "format": parsed.format,
        "complete": parsed.complete,
        "warnings": parsed.warnings,
    }
    return [{"feed": feed}, *(a.model_dump(mode="json") for a in parsed.articles)]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_gives_its_golden_records(name: str, request: pytest.FixtureRequest) -> None:
    actual = golden_records(name)
    path = EXPECTED / f"{name}.jsonl"
    if request.config.getoption("--regen-golden"):
        lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in actual)
        path.write_text("".join(lines), encoding="utf-8")
    assert path.exists(), f"no {path.name}: run pytest --regen-golden, then review it"
    expected = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(actual) == len(expected)
    for number, (got, want) in enumerate(zip(actual, expected, strict=True), start=1):
        assert got == want, f"{path.name} line {number}"


def test_every_golden_file_belongs_to_a_fixture() -> None:
    assert sorted(p.name.removesuffix(".jsonl") for p in EXPECTED.iterdir()) == FIXTURE_NAMES


# --- the wire-style story ------------------------------------------------------------------


def test_wire_story_every_field() -> None:
    story, second = parse_fixture("rss20_wire.xml", "https://wire.example.org/asia/rss")
    assert story.feed == "Test Feed"
    assert story.feed_url == "https://wire.example.org/asia/rss"
    assert story.guid == "wire-2026-11-24-0042"
    assert story.url == "https://wire.example.org/asia/2026/11/24/nk-drones?ref=home"
    assert story.title == "North Korea tests new kamikaze drones, state media says"
    assert story.summary == (
        "SEOUL, Nov 24 (Harbour Wire) - North Korean leader Kim Jong-un watched a test of new "
        "“suicide” drones, state media said on Tuesday."
    )
    assert story.content.split("\n") == [
        "SEOUL, Nov 24 (Harbour Wire) - North Korean leader Kim Jong-un watched a test of new "
        "“suicide” drones, state media said on Tuesday.",
        "A drone flies during the test.",
        "The drones struck targets on an island off the east coast, KCNA said.",
        "South Korea’s military said it was analysing the launch & its data.",
    ]
    assert "trackReader" not in story.content and "color" not in story.content
    assert story.authors == ["Min-ji Park", "Tom Reed"]
    assert story.categories == ["Asia", "Defence"]
    assert story.published == utc(2026, 11, 24, 3, 15, 7)
    assert story.updated is None
    assert story.fetched_at == NOW
    assert story.language == "en-us"
    assert story.dateline == "SEOUL"
    assert story.media == [
        Media(
            url="https://img.example.org/nk-drone.jpg",
            type="image/jpeg",
            medium="image",
            caption="A drone flies during a test at an undisclosed location in North Korea.",
            credit="KCNA via Harbour Wire",
        ),
        Media(url="https://img.example.org/nk-drone-thumb.jpg", medium="image"),
    ]
    assert len(story.fingerprint) == 32 * 8  # 32 shingle hashes

    assert second.guid is None
    assert second.url == "https://wire.example.org/asia/2026/11/23/barbs"  # relative, no tracking
    assert second.title == "WASHINGTON, Pyongyang trade barbs"
    assert second.content == ""  # the feed gives only a summary
    assert second.authors == ["Asia Desk"]
    assert second.published == utc(2026, 11, 24, 3, 0)  # 22:00 EST
    assert second.dateline == "WASHINGTON"
    assert second.media == [
        Media(url="https://media.example.org/briefing.mp3", type="audio/mpeg", medium="audio")
    ]


def test_media_caption_does_not_replace_the_story_summary_or_title() -> None:
    story = parse_fixture("rss20_wire.xml")[0]
    assert "undisclosed location" not in story.summary
    assert story.title != "Drone test"


# --- one fixture per format ----------------------------------------------------------------


def test_rss_091_with_netscape_doctype() -> None:
    (item,) = parse_fixture("rss091.xml")
    assert item.title == "Sommet à Séoul"
    assert item.summary == "Les dirigeants se réunissent à Séoul."
    assert item.url == "http://old.example.net/sommet.html"
    assert item.language == "fr"
    assert item.guid is None


def test_rss_092_item_without_title_or_link() -> None:
    untitled, second = parse_fixture("rss092.xml")
    assert untitled.title == ""
    assert untitled.url is None
    assert untitled.summary == "An item with only a description & no title."
    assert untitled.media == [
        Media(url="https://dispatch.example.com/clip.mp4", type="video/mp4", medium="video")
    ]
    assert second.title == "Second dispatch"
    assert untitled.id != second.id


def test_rss_10_rdf() -> None:
    (item,) = parse_fixture("rss10_rdf.xml")
    assert item.title == "Raketentest in Nordkorea"
    assert item.url == "https://rdf.example.org/a"
    assert item.authors == ["Anna Schmidt"]
    assert item.categories == ["Politik"]
    assert item.language == "de"
    assert item.updated == utc(2026, 11, 24, 7, 30)
    assert item.published == item.updated  # dc:date is the only date RSS 1.0 gives
    assert item.dateline == "BERLIN"


def test_atom_03() -> None:
    (item,) = parse_fixture("atom03.xml")
    assert item.title == "Legacy atom entry"
    assert item.guid == "tag:atom03.example.org,2026:1"
    assert item.url == "https://atom03.example.org/entry/1"
    assert item.authors == ["Legacy Author"]
    assert item.summary == "A summary in Atom 0.3."
    assert item.published == utc(2026, 11, 24, 9, 0)
    assert item.updated == utc(2026, 11, 24, 9, 30)


def test_atom_10_xml_base_html_title_fractional_seconds() -> None:
    treaty, second = parse_fixture("atom10.xml")
    assert treaty.title == "Treaty talks & drones"
    assert treaty.url == "https://atom.example.org/news/2026/treaty-talks"
    assert treaty.published == datetime(2026, 11, 24, 0, 15, 30, 250000, tzinfo=UTC)
    assert treaty.updated == utc(2026, 11, 24, 9, 45)
    assert treaty.authors == ["Ji-ho Kim", "Sam Lee"]
    assert treaty.categories == ["diplomacy", "defence"]
    assert treaty.summary == "Negotiators met in Moscow."
    assert treaty.content == (
        "Pyongyang (North Korea) - Negotiators met in Moscow to discuss a defence treaty.\n"
        "See the text."
    )
    assert treaty.dateline == "Pyongyang (North Korea)"
    assert treaty.language == "en"
    assert treaty.media == [
        Media(url="https://atom.example.org/img/map.png", type="image/png", medium="image")
    ]
    assert second.url is None
    assert second.content == "XHTML content here."


def test_json_feed_10() -> None:
    first, second = parse_fixture("jsonfeed10.json")
    assert first.guid == "https://json1.example.org/posts/1"
    assert first.url == "https://json1.example.org/posts/1"
    assert first.title == "Missile test over the East Sea"
    assert first.summary == "A missile fell into the sea."
    assert first.content == "TOKYO (Kyodo) - A missile fell into the sea.\nSecond paragraph."
    assert first.published == utc(2026, 11, 23, 21, 0)
    assert first.updated == utc(2026, 11, 23, 22, 0)
    assert first.categories == ["missiles", "japan"]
    assert first.authors == ["Feed Author"]
    assert first.dateline == "TOKYO"
    assert first.media == [Media(url="https://json1.example.org/img/1.jpg", medium="image")]
    assert second.guid == "2"
    assert second.url == "https://json1.example.org/posts/2"
    assert second.content == "Plain text item with two lines."


def test_json_feed_11() -> None:
    item, marked_up = parse_fixture("jsonfeed11.json")
    assert item.title == "김정은, 무인기 시험 참관"
    assert item.content == "평양 - 김정은이 무인기 시험을 참관했다."
    assert item.language == "ko"
    assert item.authors == ["Reporter Kim"]
    assert item.media == [
        Media(
            url="https://json11.example.org/a.mp3",
            type="audio/mpeg",
            medium="audio",
            caption="Audio report",
        )
    ]
    # JSON Feed text is read as RSS text is: entities decoded, markup dropped
    assert marked_up.title == "Kim’s & drones"
    assert marked_up.summary == "SEOUL, Nov 24 (Yonhap) – Kim’s drones & missiles."
    assert marked_up.media[0].caption == "Kim & officials"
    assert marked_up.url == "https://json11.example.org/k/2"  # a link's fragment is dropped
    assert marked_up.published == utc(2026, 11, 24, 9, 30)  # "+01:00" read as an offset


def test_media_rss_thumbnail_with_caption_and_credit_and_media_groups() -> None:
    photo, gallery = parse_fixture("media_rss.xml")
    assert photo.summary == "Trucks queued at the reopened crossing."  # not the caption
    assert photo.media == [
        Media(
            url="https://img.example.org/border-thumb.jpg",
            medium="image",
            caption="Trucks wait at the Dandong crossing on Tuesday.",
            credit="Jane Doe/Harbour Wire",
        )
    ]
    group_caption = "Missile launchers pass Kim Il Sung Square."
    assert gallery.title == "Parade in pictures"  # not the group's media:title
    assert gallery.media == [
        Media(
            url="https://img.example.org/parade-1600.jpg",
            type="image/jpeg",
            medium="image",
            caption=group_caption,
            credit="Harbour Wire pool",
        ),
        Media(  # the group's caption; its own credit
            url="https://img.example.org/parade-400.jpg",
            type="image/jpeg",
            medium="image",
            caption=group_caption,
            credit="KCNA",
        ),
        Media(  # a second group has its own caption
            url="https://video.example.org/parade.mp4",
            type="video/mp4",
            medium="video",
            caption="Video of the parade.",
        ),
        Media(url="https://img.example.org/parade-thumb.jpg", medium="image"),
    ]


def test_live_blog_updates_comments_tables_and_bare_ampersands() -> None:
    pylons, pledge, untitled = parse_fixture("live_blog.xml")
    lead = (
        "KYIV, Ukraine (AP) — Russian drones hit a power station in the capital overnight, "
        "officials said."
    )
    assert pylons.summary == lead  # the words after <!-- ad slot --> are kept
    assert pylons.content.split("\n") == [
        lead,
        "Damage so far:",
        "District Homes without power",
        "Darnytsia 12,000",
        "Obolon 8,500",
    ]
    assert pylons.dateline == "KYIV, Ukraine"
    assert pylons.published == utc(2026, 11, 24, 6, 40)  # GMT+1
    assert pledge.title == "AT&T and R&D firms pledge satellite links"
    assert pledge.summary == (
        "Two US firms, AT&T among them, offered satellite links & ground stations."
    )
    assert pledge.published == utc(2026, 11, 24, 5, 15)  # +01:00
    # one page, two updates: the guids' fragments keep them apart, the link drops it
    assert pylons.url == pledge.url == "https://live.example.org/ukraine/live"
    assert pylons.id != pledge.id
    assert set(identity_keys(pylons)).isdisjoint(identity_keys(pledge))
    assert untitled.guid is None and untitled.url is None


def test_a_guid_that_is_no_url_is_not_made_into_a_link() -> None:
    (item,) = parse_fixture("utf8_bom.xml")  # <guid>enc-1</guid>: a permalink by default
    assert item.guid == "enc-1"
    assert item.url is None


# --- malformed but recoverable, encodings ----------------------------------------------------


def test_unescaped_ampersands_and_stray_markup_still_yield_items() -> None:
    first, second = parse_fixture("malformed_ampersand.xml")
    assert first.title == "Arms & ammunition: talks resume"
    assert first.url == "https://sloppy.example.org/a?x=1&y=2"
    assert first.summary == "Talks on arms & ammunition\nresumed"
    assert second.title == "Second sloppy item"


def test_namespace_oddities_still_yield_items() -> None:
    (item,) = parse_fixture("namespace_oddities.xml")
    assert item.title == "Item with an undeclared prefix"
    assert item.url == "https://odd.example.org/1"


ENCODED_TITLE = "Müller’s café: “Nordkorea” – Gespräche"


@pytest.mark.parametrize("name", ["cp1252_declared_utf8.xml", "utf8_bom.xml", "utf16_bom.xml"])
def test_encodings_come_out_right(name: str) -> None:
    (item,) = parse_fixture(name)
    assert item.title == ENCODED_TITLE
    assert item.summary == "Señor Zoë naïve résumé"


def test_utf8_with_a_few_windows_1252_bytes_keeps_both_right() -> None:
    """Mostly UTF-8 with pasted Windows-1252 bytes: feedparser decoded it all as ISO-8859-2."""
    first, second = parse_fixture("mixed_utf8_cp1252.xml")
    assert first.title == "Séoul – Kim’s “talks” in Pyongyang"
    assert first.summary == (
        "SEOUL, Nov 24 (Harbour Wire) – Müller’s café — naïve “résumé” ✓ 김정은"
    )
    assert second.title == "All UTF-8: Zoë’s “Nordkorea” – Gespräche"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"caf\xc3\xa9 caf\xe9 \x93q\x94", "café café “q”"),
        (b"\xe2\x80 cut", "â€ cut"),  # a cut sequence: each byte on its own
        (b"\x81", "\ufffd"),  # undefined in Windows-1252
    ],
)
def test_screening_reads_each_invalid_utf8_byte_as_windows_1252(raw: bytes, text: str) -> None:
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    doc = head.encode() + b"<a>" + raw + b"</a>"
    assert screen_bytes(doc).decode("utf-8") == f"{head}<a>{text}</a>"


def test_screening_leaves_other_declared_encodings_to_feedparser() -> None:
    doc = '<?xml version="1.0" encoding="iso-8859-1"?><a>café</a>'.encode("latin-1")
    assert screen_bytes(doc) is doc


def test_undeclared_latin1() -> None:
    (item,) = parse_fixture("latin1_undeclared.xml")
    assert item.title == "Müller café à Séoul"


CYRILLIC_RSS = (
    "<rss version='2.0'><channel><title>Новости</title><item><title>Ким Чен Ын и Москва</title>"
    "<link>https://ru.example.org/1</link></item></channel></rss>"
)


@pytest.mark.parametrize("charset", ["windows-1251", "koi8-r", '"cp1251"'])
def test_the_http_charset_reads_a_feed_that_declares_none(charset: str) -> None:
    codec = charset.strip('"').replace("cp1251", "windows-1251")
    data = CYRILLIC_RSS.encode(codec)
    content_type = f"application/rss+xml; charset={charset}"
    parsed = parse_feed(data, feed_url="u", now=NOW, content_type=content_type)
    assert parsed.title == "Новости"
    assert [a.title for a in parsed.articles] == ["Ким Чен Ын и Москва"]


@pytest.mark.parametrize(
    ("declaration", "encoding", "charset"),
    [
        ("", "utf-8", "iso-8859-1"),  # a server's default label on a UTF-8 feed
        ("<?xml version='1.0' encoding='windows-1251'?>", "windows-1251", "iso-8859-1"),
        ("", "utf-8", "no-such-codec"),
    ],
)
def test_a_feed_s_own_encoding_outranks_a_wrong_http_charset(
    declaration: str, encoding: str, charset: str
) -> None:
    data = (declaration + CYRILLIC_RSS).encode(encoding)
    content_type = f"text/xml; charset={charset}"
    parsed = parse_feed(data, feed_url="u", now=NOW, content_type=content_type)
    assert [a.title for a in parsed.articles] == ["Ким Чен Ын и Москва"]


@pytest.mark.parametrize("charset", ["us-ascii", "iso-8859-1", "windows-1252"])
def test_an_ascii_or_latin1_label_reads_as_windows_1252(charset: str) -> None:
    # browsers do the same: such labels are mostly wrong, and U+FFFD would lose the text
    title = "“Quoted” café — €5"
    data = f"<rss version='2.0'><channel><item><title>{title}</title></item></channel></rss>"
    content_type = f"text/xml; charset={charset}"
    parsed = parse_feed(data.encode("cp1252"), feed_url="u", now=NOW, content_type=content_type)
    assert [a.title for a in parsed.articles] == [title]


def test_utf16_without_bom() -> None:
    data = (FIXTURES / "utf16_bom.xml").read_bytes().decode("utf-16").encode("utf-16-le")
    (item,) = parse_feed(data, feed_url="u", now=NOW).articles
    assert item.title == ENCODED_TITLE


# --- not feeds, hostile bytes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("not_a_feed.html", "not a feed: this is an HTML page"),
        ("empty.xml", "empty document"),
        ("garbage.bin", "not a feed"),
        ("entity_bomb.xml", "entity expansion exceeds"),
    ],
)
def test_not_a_feed_is_a_parse_error_naming_the_source(name: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed((FIXTURES / name).read_bytes(), feed_url="u", feed_name=name, now=NOW)
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert reason in message
    assert "\n" not in message


def test_internal_entities_expand_and_external_ones_are_never_resolved() -> None:
    (item,) = parse_fixture("internal_entity.xml")
    assert item.title == "Statement by the Korean Central News Agency"
    assert item.summary == "Text end"  # the SYSTEM entity vanished, /etc/passwd was not read


def test_entity_expansion_is_bounded_before_any_parser_sees_it() -> None:
    entity = "A" * 1000
    refs = "&a;" * (ENTITY_EXPANSION_BUDGET // 1000 + 1)
    doc = f'<!DOCTYPE r [<!ENTITY a "{entity}">]><rss version="2.0">{refs}</rss>'
    with pytest.raises(ParseError, match="entity expansion"):
        screen_bytes(doc.encode())


def test_expanded_entity_markup_stays_text() -> None:
    doc = b'<!DOCTYPE r [<!ENTITY x "<script>alert(1)</script>">]><a>&x;</a>'
    assert screen_bytes(doc) == b"<a>&lt;script>alert(1)&lt;/script></a>"


def test_only_declared_entities_are_expanded_and_others_are_left_to_the_parser() -> None:
    doc = b'<!DOCTYPE r [<!ENTITY x "X"><!ENTITY e SYSTEM "file:///etc/passwd">]><a>&x;&lt;&e;&amp;&y;</a>'
    assert screen_bytes(doc) == b"<a>X&lt;&amp;&y;</a>"


LARGE = 8 * 1024 * 1024


def _one_big_item(description: str, doctype: str = "") -> bytes:
    head = f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>T</title>'
    item = f"<item><guid>big</guid><title>Big</title>{description}</item></channel></rss>"
    return (head + item).encode()


def _repeat(text: str) -> str:
    return text * (LARGE // len(text))


LARGE_ITEMS = {
    # entity-escaped HTML: a string per run of text between references, unless expat buffers
    "escaped html": _one_big_item(
        f"<description>{_repeat('&lt;p&gt;Drone &lt;b&gt;hit&lt;/b&gt;.&lt;/p&gt;')}</description>"
    ),
    # HTML in CDATA: lxml's tree and a string per text run in html_to_text
    "html in cdata": _one_big_item(
        "<content:encoded xmlns:content='http://purl.org/rss/1.0/modules/content/'><![CDATA["
        f"{_repeat('<p>Drone <b>strike</b> near the base.</p>')}]]></content:encoded>"
    ),
    # plain words: a regex substitution keeps two strings per space
    "plain words": _one_big_item(f"<description>{_repeat('drone strike news ')}</description>"),
    # a DOCTYPE and a million references the screen must not expand with re.sub
    "doctype and references": _one_big_item(
        f"<description>{_repeat('a&e;&amp;')}</description>",
        doctype='<!DOCTYPE rss [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    ),
}


@pytest.mark.parametrize("shape", list(LARGE_ITEMS))
def test_a_huge_item_is_cut_and_parsed_in_bounded_memory(shape: str) -> None:
    """An 8 MiB item under the byte limit: its text is cut at MAX_FIELD_CHARS with a warning,
    and parsing it allocates (Python objects) well under 6 times the document; before, these
    shapes took 10 to 30 times (escaped HTML ~90 MB, HTML in CDATA ~300 MB for 10 MiB)."""
    import tracemalloc

    data = LARGE_ITEMS[shape]
    tracemalloc.start()
    try:
        parsed = parse_feed(data, feed_url="https://e.example/f", now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (article,) = parsed.articles
    assert 0 < len(article.summary) + len(article.content) <= 2 * MAX_FIELD_CHARS
    assert any(f"over {MAX_FIELD_CHARS:,} characters" in w for w in parsed.warnings)
    assert peak < 6 * len(data), f"{peak / len(data):.1f} times the document"


def test_references_to_no_character_or_a_control_cost_one_character_not_the_feed() -> None:
    """Past U+10FFFF (feedparser raised on it), a NUL (PostgreSQL refuses it in text)."""
    doc = (
        b'<rss version="2.0"><channel><item><title>A &#1114112; b &#x110000; c &#99999999999;'
        b" d &#0; e &#x1; f &#9;&#8217;</title></item></channel></rss>"
    )
    (article,) = parse_feed(doc, feed_url="u", now=NOW).articles
    assert article.title == "A \ufffd b \ufffd c \ufffd d e f \u2019"


def test_a_reference_to_half_a_surrogate_pair_costs_one_character_not_the_feed() -> None:
    """``&#55296;`` names no character; feedparser failed the whole document on it."""
    doc = (
        b'<rss version="2.0"><channel><item><title>A &#55296; b &#xdc00; c &#57344;</title>'
        b"<link>https://example.org/a</link></item>"
        b"<item><title>Second</title><link>https://example.org/b</link></item></channel></rss>"
    )
    articles = parse_feed(doc, feed_url="u", now=NOW).articles
    assert [a.title for a in articles] == ["A \ufffd b \ufffd c \ue000", "Second"]
    assert all(a.model_dump_json() for a in articles)  # storable and printable as UTF-8


def test_a_json_feed_escaping_half_a_surrogate_pair_still_gives_its_items() -> None:
    doc = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1",'
        b' "url": "https://example.org/a", "title": "ICBM \\ud800 launch \\ud83d\\ude00",'
        b' "tags": ["\\udfff"]}]}'
    )
    (article,) = parse_feed(doc, feed_url="u", now=NOW).articles
    assert article.title == "ICBM \ufffd launch \U0001f600"
    assert article.categories == ["\ufffd"]
    assert article.model_dump_json()


def test_raw_control_bytes_in_a_document_become_spaces() -> None:
    doc = (
        b'<rss version="2.0"><channel><item><title>A \x00 b\x07c\x7f d</title>'
        b"<link>https://example.org/a</link></item></channel></rss>"
    )
    (article,) = parse_feed(doc, feed_url="u", now=NOW).articles
    assert article.title == "A b c d"


def test_control_characters_never_reach_an_article() -> None:
    doc = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1\\u0000",'
        b' "url": "https://example.org/a", "title": "A \\u0000 b\\u0007c",'
        b' "content_text": "x\\u0000y\\nline two", "tags": ["a\\u001f"]}]}'
    )
    (article,) = parse_feed(doc, feed_url="u", now=NOW).articles
    assert (article.title, article.content) == ("A b c", "x y line two")
    assert (article.guid, article.categories) == ("1", ["a"])


def test_json_nested_too_deeply_is_a_parse_error_naming_the_feed() -> None:
    doc = b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 100_000
    with pytest.raises(ParseError, match=r"^Wire: not a feed: JSON nested too deeply"):
        parse_feed(doc, feed_url="u", feed_name="Wire", now=NOW)


def test_truncated_document_drops_the_cut_item() -> None:
    parsed = parse_feed((FIXTURES / "truncated.xml").read_bytes(), feed_url="u", now=NOW)
    assert [a.title for a in parsed.articles] == ["Complete item"]
    assert parsed.complete is False
    assert any("truncated" in w for w in parsed.warnings)


def test_complete_document_is_complete() -> None:
    parsed = parse_feed((FIXTURES / "rss20_wire.xml").read_bytes(), feed_url="u", now=NOW)
    assert parsed.complete is True
    assert parsed.ttl == timedelta(minutes=10)
    assert parsed.title == "Harbour Wire – Asia"


# --- stable ids ------------------------------------------------------------------------------


def test_ids_are_stable_in_any_order_with_or_without_guid() -> None:
    data = (FIXTURES / "rss20_wire.xml").read_bytes()
    first = {a.url: a.id for a in parse_feed(data, feed_url="u", now=NOW).articles}
    items = data.split(b"<item>")
    reordered = items[0] + b"<item>" + items[2].replace(b"</channel>", b"") + b"<item>" + items[1]
    reordered = reordered.replace(b"</rss>", b"</channel></rss>")
    later = NOW + timedelta(hours=3)
    again = {a.url: a.id for a in parse_feed(reordered, feed_url="u", now=later).articles}
    assert again == first
    assert len(set(first.values())) == 2


def test_without_guid_or_link_the_title_and_text_are_the_identity_not_the_date() -> None:
    """A publisher re-stamping an item without guid or link does not make it a new item."""

    def item_id(title: str, text: str, published: str | None) -> str:
        date = f"<pubDate>{published}</pubDate>" if published else ""
        doc = (
            f'<rss version="2.0"><channel><item><title>{title}</title>'
            f"<description>{text}</description>{date}</item></channel></rss>"
        ).encode()
        return parse_feed(doc, feed_url="https://a.example/feed", now=NOW).articles[0].id

    first = item_id("Drone strike", "Officials said.", "Tue, 24 Nov 2026 10:00:00 GMT")
    assert item_id("Drone strike", "Officials said.", "Tue, 24 Nov 2026 11:30:00 GMT") == first
    assert item_id("Drone strike", "Officials said.", None) == first
    assert item_id("Drone strike", "Officials denied it.", None) != first
    assert item_id("Drone strikes", "Officials said.", None) != first


def test_an_item_without_guid_or_link_keeps_its_id_across_polls() -> None:
    item = (
        b"<item><title>Air raid alert lifted</title><description>The all-clear sounded."
        b"</description><pubDate>Tue, 24 Nov 2026 05:50:00 +0200</pubDate></item>"
    )
    other = b"<item><guid>o-1</guid><title>Other</title></item>"

    def poll(items: bytes, now: datetime) -> str:
        doc = b'<rss version="2.0"><channel><title>T</title>' + items + b"</channel></rss>"
        articles = parse_feed(doc, feed_url="https://a.example/feed", now=now).articles
        return next(a.id for a in articles if a.title == "Air raid alert lifted")

    first = poll(item + other, NOW)
    assert poll(other + item, NOW + timedelta(hours=3)) == first
    assert poll(item, NOW + timedelta(days=1)) == first


def test_url_guids_differing_only_by_fragment_are_two_items() -> None:
    doc = (
        b'<rss version="2.0"><channel><title>Live</title>'
        b"<item><guid>https://news.example.org/live#u1</guid><title>One</title></item>"
        b"<item><guid>https://news.example.org/live#u2</guid><title>Two</title></item>"
        b"<item><title>Page</title><link>https://news.example.org/live#top</link></item>"
        b"</channel></rss>"
    )
    one, two, page = parse_feed(doc, feed_url="https://a.example/feed", now=NOW).articles
    assert len({one.id, two.id, page.id}) == 3
    assert one.url == two.url == page.url == "https://news.example.org/live"
    assert set(identity_keys(one)).isdisjoint(identity_keys(two))
    # the same update carried by another feed is still the same item
    again = parse_feed(doc, feed_url="https://b.example/feed", now=NOW).articles[1]
    assert again.id == two.id


def test_same_link_in_two_feeds_is_one_id() -> None:
    doc = (
        b'<rss version="2.0"><channel><item><title>T</title>'
        b"<link>https://news.example.org/story?utm_source=a</link></item></channel></rss>"
    )
    other = doc.replace(b"utm_source=a", b"utm_source=b").replace(b"<title>T", b"<title>T2")
    a = parse_feed(doc, feed_url="https://a.example/feed", now=NOW).articles[0]
    b = parse_feed(other, feed_url="https://b.example/feed", now=NOW).articles[0]
    assert a.id == b.id


def test_opaque_guids_are_scoped_to_their_feed() -> None:
    doc = b'<rss version="2.0"><channel><item><guid>1</guid><title>T</title></item></channel></rss>'
    a = parse_feed(doc, feed_url="https://a.example/feed", now=NOW).articles[0]
    b = parse_feed(doc, feed_url="https://b.example/feed", now=NOW).articles[0]
    assert a.id != b.id


# --- dates ---------------------------------------------------------------------------------


def test_dates_in_many_languages_and_forms() -> None:
    dates = {a.guid: a.published for a in parse_fixture("foreign_dates.xml")}
    expected = utc(2026, 11, 24, 9, 30)
    read = (
        *("it", "it-long", "de", "de-long", "fr", "no-zone", "kst"),
        *("colon-offset", "gmt-offset", "gmt-hours", "fr-dots", "de-uhr"),
    )
    for guid in read:
        assert dates[guid] == expected, guid
    assert dates["iso-frac"] == datetime(2026, 11, 24, 9, 30, 0, 123456, tzinfo=UTC)
    # no day, month or year: nothing is made up from the clock (feedparser's nor dateutil's)
    for guid in ("year-only", "day-only", "month-day", "time-only"):
        assert dates[guid] is None, guid
    for guid in ("zero", "feb30", "far", "junk"):
        assert dates[guid] is None, guid


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tue, 24 Nov 2026 10:00:00 +0100", utc(2026, 11, 24, 9, 0)),
        ("Tue, 24 Nov 2026 10:00:00 GMT", utc(2026, 11, 24, 10, 0)),
        ("Tue, 24 Nov 2026 10:00:00 +01:00", utc(2026, 11, 24, 9, 0)),
        ("Tue, 24 Nov 2026 10:00:00 GMT+0100", utc(2026, 11, 24, 9, 0)),
        ("Tue, 24 Nov 2026 10:00:00 GMT+1", utc(2026, 11, 24, 9, 0)),
        ("Tue, 24 Nov 2026 10:00:00 UTC-05:30", utc(2026, 11, 24, 15, 30)),
        ("mar. 24 nov. 2026 10:00", utc(2026, 11, 24, 10, 0)),
        ("24. Nov. 2026 10:30 Uhr", utc(2026, 11, 24, 10, 30)),
        ("Di., 24. Nov. 2026, 10:30 Uhr MEZ", utc(2026, 11, 24, 9, 30)),
        ("2026", None),
        ("12", None),
        ("Nov 24", None),
        ("10:30", None),
        ("Nov 2026", None),
        ("2026-11-24T10:00:00Z", utc(2026, 11, 24, 10, 0)),
        ("2026-11-24 10:00:00+09:00", utc(2026, 11, 24, 1, 0)),
        ("2026-11-24", utc(2026, 11, 24)),
        ("24 novembre 2026 10:00", utc(2026, 11, 24, 10, 0)),
        ("Martes, 24 de noviembre de 2026 10:00", utc(2026, 11, 24, 10, 0)),
        ("", None),
        ("   ", None),
        ("Tue, 99 Nov 2026 10:00:00 GMT", None),
        ("1970-01-01T00:00:00Z", None),
        ("2027-06-01T00:00:00Z", None),
        ("2026-11-24T09:15:30.250+79:00", None),  # found by atheris: parses, cannot convert
    ],
)
def test_parse_date(raw: str, expected: datetime | None) -> None:
    assert parse_date(raw, NOW) == expected


def test_parse_date_never_raises_on_random_text() -> None:
    rng = random.Random(7)
    alphabet = "0123456789-:+TZ ,./abcdefgNovDecMäz"
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        value = parse_date(raw, NOW)
        assert value is None or value.tzinfo is UTC


# --- HTML to text, datelines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<ul><li>x</li><li>y</li></ul>", "x\ny"),
        ("<p>keep <script>drop()</script>this <style>.x{}</style>text</p>", "keep this text"),
        ("Tom &amp; Jerry &eacute;t&eacute; &#8212; &lt;b&gt;", "Tom & Jerry été — <b>"),
        ("  lots   of\n\n  space\t here ", "lots of space here"),
        ("<!-- a comment --><p>visible</p>", "visible"),
        ("<div><div><p>deep</p></div></div>", "deep"),
        ("plain text", "plain text"),
        ("", ""),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<p>A <!-- ad --> key fact</p>", "A key fact"),
        ("lead <!--more--> rest", "lead rest"),
        ("lead<!--more-->rest", "leadrest"),  # as a browser shows it
        ("<p>x<?php echo 1; ?> tail</p>", "x tail"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>", "a b\nc d"),
        ("AT&T and R&D", "AT&T and R&D"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_survives_deep_nesting() -> None:
    assert html_to_text("<div>" * 5000 + "x" + "</div>" * 5000) == "x"


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Pyongyang (North Korea) - The state agency said", "Pyongyang (North Korea)"),
        ("SEOUL, Nov 24 (Reuters) - South Korea said", "SEOUL"),
        ("WASHINGTON (AP) -- The Pentagon said", "WASHINGTON"),
        ("NEW YORK — Markets fell", "NEW YORK"),
        ("TOKYO, Nov. 24 (Kyodo) -- A missile", "TOKYO"),
        ("BERLIN, 24. November (dpa) - Die", "BERLIN"),
        ("KYIV, Ukraine (AP) — Russian drones", "KYIV, Ukraine"),
        ("SPRINGFIELD, Ill. (AP) — A judge", "SPRINGFIELD, Ill."),
        ("KYIV, Ukraine, Nov 24 (Reuters) - A drone", "KYIV, Ukraine"),
        ("Breaking - a story", None),
        ("The president said - nothing", None),
        ("", None),
    ],
)
def test_dateline(text: str, place: str | None) -> None:
    assert find_dateline(text) == place


def test_a_whole_html_document_inside_a_title_is_text_not_a_crash() -> None:
    # found by fuzz/fuzz_parse.py: lxml's fragment helper asserted on this
    data = (FIXTURES / "fuzz_crash_html_title.xml").read_bytes()
    try:
        articles = parse_feed(data, feed_url="u", now=NOW).articles
    except ParseError:
        return
    assert all("<" not in a.title for a in articles)


def test_a_string_where_feedparser_keeps_authors_is_not_a_crash() -> None:
    # found by fuzz/fuzz_parse.py: feedparser left ``authors`` as the string "name><" here,
    # and iterating it crashed the feed's parse
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>Talks resume</title>'
        b"<author><name>Sam Lee<authors/name></author></entry></feed>"
    )
    (article,) = parse_feed(data, feed_url="https://f.example/atom", now=NOW).articles
    assert article.title == "Talks resume"
    assert article.authors == []
