"""PURE: feed bytes -> Articles (SPEC section 5).

The journey of a document: ``screen_bytes`` makes the bytes safe for an XML parser (UTF-16/32
transcoded, entity declarations expanded within a budget or refused), feedparser reads RSS and
Atom with its own sanitiser and URI rewriting switched off (we turn HTML into text ourselves, and
those two are half of its time), JSON Feed is read here, and every item is normalised into one
``Article``. No clock, no network, no disk: ``now`` and ``feed_url`` come from the caller.
"""

from __future__ import annotations

import codecs
import email.utils
import hashlib
import io
import json
import re
import xml.sax.expatreader
import xml.sax.xmlreader
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from itertools import pairwise
from typing import Any

import feedparser
import feedparser.api
import lxml.etree
import lxml.html
from dateutil import parser as dateutil_parser
from feedparser.namespaces import mediarss

from monitor.errors import ParseError
from monitor.schema import Article, Media
from monitor.urls import canonical_url, guid_url

#: The most bytes entity expansion may add to a document before it is refused as a bomb.
ENTITY_EXPANSION_BUDGET = 256 * 1024
#: The most characters of one text field (title, summary, content, caption...) that are turned
#: into plain text; the rest is cut and the feed gets a warning. No story is this long, and the
#: conversion needs 15-30 times the field's size in memory for a moment (lxml's tree, a string
#: per text run, the pieces of a regex substitution): a 10 MiB field of markup took ~300 MB.
MAX_FIELD_CHARS = 1_000_000
FINGERPRINT_LEAD_WORDS = 40
#: How many shingle hashes a fingerprint keeps (a bottom-k MinHash sketch).
FINGERPRINT_SIZE = 32
_FINGERPRINT_WORD = re.compile(r"\w+")


@dataclass
class ParsedFeed:
    """What one document gave: its items and the feed-level facts later stages need."""

    articles: list[Article]
    title: str = ""
    link: str | None = None
    language: str | None = None
    ttl: timedelta | None = None
    format: str = ""
    #: False when the document was cut short: its last item was dropped, it may be incomplete.
    complete: bool = True
    warnings: list[str] = field(default_factory=list)


def parse_feed(
    data: bytes,
    *,
    feed_url: str,
    now: datetime,
    feed_name: str | None = None,
    content_type: str | None = None,
) -> ParsedFeed:
    """Parse one document into Articles; raise ParseError when it is not a usable feed."""
    name = feed_name or feed_url
    if not data or data.isspace():  # (not data.strip(): that copies a whole document)
        raise ParseError(f"{name}: empty document")
    try:
        data = screen_bytes(data, header_charset(content_type))
    except ParseError as exc:
        raise ParseError(f"{name}: {exc}") from None
    if _looks_like_json(data, content_type):
        return _parse_json_feed(data, feed_url=feed_url, feed_name=name, now=now)
    return _parse_xml_feed(data, feed_url=feed_url, feed_name=name, now=now)


# --------------------------------------------------------------------------------------------
# Screening: bytes a parser may safely see


_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_MARKUP_START = (b"<", b" ", b"\n", b"\r", b"\t")
_XML_DECL_ENCODING = re.compile(rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*)(["'])[\w.:-]+\2""")
_DOCTYPE = re.compile(rb"<!DOCTYPE\s[^\[>]*(\[(?P<subset>.*?)\]\s*)?>", re.DOTALL | re.IGNORECASE)
_ENTITY_DECL = re.compile(
    rb"""<!ENTITY\s+(?P<param>%\s*)?(?P<name>[\w.:-]+)\s+"""
    rb"""(?:(?P<external>SYSTEM|PUBLIC)[^>]*|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\s*>""",
    re.DOTALL,
)


def screen_bytes(data: bytes, charset: str | None = None) -> bytes:
    """Make bytes safe for feedparser: UTF-8 throughout, no DOCTYPE, entities bounded.

    UTF-16/32 becomes UTF-8, and so does a UTF-8 document with stray Windows-1252 bytes or an
    undeclared one in another HTTP ``charset`` (``_as_utf8``). feedparser's fallback parser
    expands internal entities without limit (PITFALLS 1), so the DOCTYPE is removed here and
    its entities are expanded by us, as escaped text, within ``ENTITY_EXPANSION_BUDGET``.
    External entities are never resolved: their references vanish.
    """
    wide = _to_utf8_if_wide(data)
    data = wide if wide is not data else _as_utf8(data, charset)
    head_end = data.find(b"<!DOCTYPE", 0, 65536)
    if head_end < 0:
        head_end = data.find(b"<!doctype", 0, 65536)
    if head_end < 0:
        return data
    match = _DOCTYPE.search(data, head_end)
    if match is None:  # an unterminated DOCTYPE: nothing after it can be trusted
        raise ParseError("malformed DOCTYPE declaration")
    entities = _entity_values(match.group("subset") or b"")
    view = memoryview(data)
    body = b"".join((view[: match.start()], view[match.end() :]))  # one copy, not three
    if not entities:
        return body
    # Only references to the declared entities; written piece by piece into one buffer, as
    # re.sub would keep two objects per reference (a 10 MiB document with a million of them
    # took 300 MB).
    references = re.compile(rb"&(" + b"|".join(re.escape(name) for name in entities) + rb");")
    budget = ENTITY_EXPANSION_BUDGET
    out = io.BytesIO()
    body_view = memoryview(body)
    done = 0
    for ref in references.finditer(body):
        value = entities[ref.group(1)]
        budget -= len(value)
        if budget < 0:
            raise ParseError(
                f"entity expansion exceeds {ENTITY_EXPANSION_BUDGET} bytes (an entity bomb?)"
            )
        out.write(body_view[done : ref.start()])
        out.write(value)
        done = ref.end()
    if not done:
        return body
    out.write(body_view[done:])
    return out.getvalue()


def _entity_values(subset: bytes) -> dict[bytes, bytes]:
    """General entities of an internal subset, as escaped text (no nested expansion)."""
    values: dict[bytes, bytes] = {}
    for decl in _ENTITY_DECL.finditer(subset):
        if decl.group("param"):
            continue
        if decl.group("external"):
            values[decl.group("name")] = b""
            continue
        raw = decl.group("dq") if decl.group("dq") is not None else decl.group("sq") or b""
        values[decl.group("name")] = raw.replace(b"&", b"&amp;").replace(b"<", b"&lt;")
    return values


_DECLARED_ENCODING = re.compile(
    rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*(["'])(?P<name>[\w.:-]+)\1"""
)
_UTF8_NAMES = frozenset({b"utf-8", b"utf8"})
#: The UTF-8 check reads this much at a time, so that a large document is never copied whole.
_UTF8_CHUNK = 1 << 20
_CP1252_FALLBACK = "monitor-cp1252-bytes"


_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*[\"']?(?P<name>[\w.:-]+)", re.IGNORECASE)


def header_charset(content_type: str | None) -> str | None:
    """The codec an HTTP ``Content-Type`` names in its ``charset``, if Python knows it."""
    found = _CHARSET_PARAM.search(content_type or "")
    if found is None:
        return None
    try:
        return codecs.lookup(found.group("name")).name
    except LookupError:
        return None


#: Codec names (``codecs.lookup(...).name``) whose label says nothing ``_as_utf8`` does not
#: already do: UTF-8, and what browsers read as Windows-1252 (ASCII, Latin-1).
_NOTHING_TO_ADD = frozenset({"utf-8", "ascii", "iso8859-1", "cp1252"})


def _as_utf8(data: bytes, charset: str | None) -> bytes:
    """UTF-8 bytes for a document that declares UTF-8 or no encoding at all.

    Feeds declared UTF-8 (or undeclared, which means UTF-8) are often mostly UTF-8 with a few
    bytes pasted from Windows-1252 (``\x92`` for a curly apostrophe), or wholly Windows-1252 or
    Latin-1. feedparser decodes a document with one codec or another: one invalid byte sends it
    on to ``iso-8859-2``, which turns every valid character into mojibake (``SĂŠoul``). Here
    each invalid byte alone is read as Windows-1252 and the valid UTF-8 is kept; Latin-1 reads
    the same way (its printable bytes are Windows-1252's).

    An undeclared document that is not UTF-8 is read in the HTTP ``charset`` instead, when that
    names another codec: an undeclared Windows-1251 or KOI8-R feed then reads right, not as
    Windows-1252 mojibake (``Íîâîñòè``). Only then: servers label every ``text/xml`` ISO-8859-1
    by default, and a document's own declaration, or valid UTF-8, is the better witness. A
    document that declares another encoding is left to feedparser. One scan of the bytes at most.
    """
    if data.isascii():
        return data
    declared = _DECLARED_ENCODING.match(data[:1024])
    if declared and declared.group("name").lower() not in _UTF8_NAMES:
        return data
    if _is_utf8(data):
        return data
    if declared is None and charset is not None and charset not in _NOTHING_TO_ADD:
        return _to_utf8(data, charset, _CP1252_FALLBACK)  # a byte it cannot read: Windows-1252
    return _to_utf8(data, "utf-8", _CP1252_FALLBACK)


def _to_utf8(data: bytes, encoding: str, errors: str) -> bytes:
    """``data`` decoded from ``encoding`` and encoded as UTF-8, a chunk at a time: a whole
    decoded copy of a large document would be 1-4 times its size again."""
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    view = memoryview(data)
    out = io.BytesIO()
    for start in range(0, len(data), _UTF8_CHUNK):
        end = start + _UTF8_CHUNK
        out.write(decoder.decode(view[start:end], final=end >= len(data)).encode("utf-8"))
    return out.getvalue()


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked a chunk at a time (no copy of the whole)."""
    view = memoryview(data)
    start = 0
    try:
        while start < len(data):
            # final=False: a character cut by the chunk's end is read again with the next one
            _, used = codecs.utf_8_decode(view[start : start + _UTF8_CHUNK], "strict", False)
            if not used:  # only an incomplete character is left: the document ends inside it
                return False
            start += used
    except UnicodeDecodeError:
        return False
    return True


def _cp1252_byte(error: UnicodeError) -> tuple[str, int]:
    """The codec error handler of ``_as_utf8``: the first invalid byte as Windows-1252.

    One byte at a time: the bytes after it are tried as UTF-8 again. The five bytes that
    Windows-1252 leaves undefined become U+FFFD.
    """
    if not isinstance(error, UnicodeDecodeError):
        raise error
    byte = error.object[error.start : error.start + 1]
    return byte.decode("cp1252", "replace"), error.start + 1


codecs.register_error(_CP1252_FALLBACK, _cp1252_byte)


def _to_utf8_if_wide(data: bytes) -> bytes:
    """Transcode UTF-16/32 (with or without BOM) to UTF-8 so that screening sees the markup."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding is None and len(data) >= 4:
        if data[0] == 0 and data[1:2] in _MARKUP_START and data[2] == 0:
            encoding = "utf-16-be"
        elif data[0:1] in _MARKUP_START and data[1] == 0 and data[3] == 0:
            encoding = "utf-16-le"
    if encoding is None:
        return data
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(f"invalid {encoding} text: {exc.reason} at byte {exc.start}") from None
    utf8 = text.lstrip("\ufeff").encode("utf-8")
    return _XML_DECL_ENCODING.sub(rb"\1\2utf-8\2", utf8, count=1)


# --------------------------------------------------------------------------------------------
# XML feeds through feedparser


def _install_media_caption_handlers() -> None:
    """Keep Media RSS captions and titles out of the item's own summary and title.

    feedparser maps ``media:description`` onto the item description and ``media:title`` onto the
    item title, so a photo caption can replace a story's summary. These handlers record them on
    the media element they describe instead: a ``media:content``, else the ``media:group`` around
    it (whose caption and credit hold for every content of the group without its own), else the
    item.
    """

    def start_media_content(self: Any, attrs: dict[str, str]) -> None:
        context = self._get_context()
        context.setdefault("media_content", []).append(attrs)
        self.wm_media_target = context["media_content"][-1]

    def end_media_content(self: Any) -> None:
        self.wm_media_target = None

    def start_media_group(self: Any, attrs: dict[str, str]) -> None:
        self.wm_media_group = {}
        self.wm_media_group_start = len(self._get_context().get("media_content", []))

    def end_media_group(self: Any) -> None:
        group = getattr(self, "wm_media_group", None) or {}
        contents = self._get_context().get("media_content", [])
        for content in contents[getattr(self, "wm_media_group_start", 0) :]:
            for key, value in group.items():
                content.setdefault(key, value)
        self.wm_media_group = None

    def start_text(self: Any, attrs: dict[str, str]) -> None:
        self.push("wm_media_text", 1)

    def end_text(key: str) -> Any:
        def handler(self: Any) -> None:
            value = self.pop("wm_media_text")
            if not value or not value.strip():
                return
            target = getattr(self, "wm_media_target", None)
            if target is None:
                target = getattr(self, "wm_media_group", None)
            if target is None:
                target = self._get_context().setdefault("wm_media_item", {})
            target.setdefault(key, value.strip())

        return handler

    ns = mediarss.Namespace
    ns._start_media_content = start_media_content
    ns._end_media_content = end_media_content
    ns._start_media_group = start_media_group
    ns._end_media_group = end_media_group
    ns._start_media_description = start_text
    ns._end_media_description = end_text("caption")
    ns._start_media_title = start_text
    ns._end_media_title = end_text("media_title")
    ns._start_media_credit = start_text
    ns._end_media_credit = end_text("credit")


_install_media_caption_handlers()


class _BufferedExpatReader(xml.sax.expatreader.ExpatParser):
    """feedparser's strict (SAX) parser with expat's text buffering switched on.

    Unbuffered, expat reports text in a separate piece at every entity or character reference
    and feedparser keeps each piece as its own string until the element ends: an item of 10 MiB
    of escaped HTML (``&lt;p&gt;...``) became ~750,000 strings and took ~90 MB to parse, 1.8 s.
    Buffered, runs of text arrive whole (up to ``buffer_size``), with the same result: 33 MB,
    0.3 s. Ordinary feeds parse the same either way.
    """

    def reset(self) -> None:
        super().reset()
        expat = self._parser  # type: ignore[attr-defined]  # made by ExpatParser.reset
        expat.buffer_text = True
        expat.buffer_size = 64 * 1024


def create_parser() -> xml.sax.xmlreader.XMLReader:
    """The xml.sax driver interface: ``xml.sax.make_parser`` calls this for this module's name,
    which is first in feedparser's ``PREFERRED_XML_PARSERS``."""
    return _BufferedExpatReader()


def _install_buffered_sax_driver() -> None:
    preferred: list[str] = feedparser.api.PREFERRED_XML_PARSERS
    if __name__ not in preferred:
        preferred.insert(0, __name__)


_install_buffered_sax_driver()

_CLOSING_TAG_AT_END = re.compile(rb"</[\w:.-]+\s*>\s*$")
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)


def _parse_xml_feed(data: bytes, *, feed_url: str, feed_name: str, now: datetime) -> ParsedFeed:
    data = _escape_bare_ampersands(data)
    if b"&#" in data:
        data = _NUMERIC_REFERENCE.sub(_sound_reference, data)
    if _CONTROL_BYTE.search(data):  # a lenient parser keeps them; never inside a UTF-8 sequence
        data = data.translate(_CONTROL_TO_SPACE)
    try:
        parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # PITFALLS 2: feedparser raises on some inputs instead of bozo
        raise ParseError(f"{feed_name}: unreadable feed: {type(exc).__name__}: {exc}") from None
    if not parsed.get("version") and not parsed.entries:
        raise ParseError(f"{feed_name}: {_why_not_a_feed(data, parsed)}")
    warnings = []
    if parsed.get("bozo"):
        warnings.append(f"malformed feed, read leniently: {parsed.get('bozo_exception')}")
    entries = list(parsed.entries)
    complete = not parsed.get("bozo") or bool(_CLOSING_TAG_AT_END.search(data[-256:]))
    if not complete and entries:
        entries.pop()  # PITFALLS 3: the item the document was cut in may be incomplete
        warnings.append("document is truncated: its last item was left for the next poll")
    warnings.extend(
        _cut_warning(
            [entry.get("title"), entry.get("summary"), _content_value(entry)] for entry in entries
        )
    )
    feed_info = parsed.feed
    feed_link = canonical_url(feed_info.get("link") or "", feed_url) or feed_url
    language = _language(feed_info.get("language"))
    articles = []
    for entry in entries:
        article = _article_from_entry(
            entry,
            feed_url=feed_url,
            feed_name=feed_name,
            base=feed_link,
            feed_language=language,
            now=now,
        )
        if article is not None:
            articles.append(article)
    return ParsedFeed(
        articles=articles,
        title=_plain(feed_info.get("title", "")),
        link=feed_link,
        language=language,
        ttl=_ttl(feed_info.get("ttl")),
        format=parsed.get("version") or "unknown",
        complete=complete,
        warnings=warnings,
    )


_BARE_AMPERSAND = re.compile(rb"&(?!#[0-9]+;|#[xX][0-9a-fA-F]+;|[A-Za-z_:][\w.:-]*;)")
_CDATA_START = b"<![CDATA["
_CDATA_END = b"]]>"


#: a numeric reference that may be to no character or to a control (checked by
#: ``_sound_reference``); the common ones (``&#39;``, ``&#8217;``, ``&#x2019;``) never match
_NUMERIC_REFERENCE = re.compile(
    rb"&#(?:[xX]0*([0-9a-fA-F]|1[0-9a-fA-F]|7[fF]|[dD][89a-fA-F][0-9a-fA-F]{2}|[0-9a-fA-F]{5,16})"
    rb"|0*([0-9]|[12][0-9]|3[01]|127|[0-9]{5,16}));"
)
_NO_CHARACTER = b"&#xFFFD;"
#: Control characters but tab and line breaks: garbage in text, and PostgreSQL refuses a NUL in
#: text, which failed the whole poll. Each becomes a space.
_CONTROLS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_CONTROL_BYTE = re.compile(b"[" + re.escape(_CONTROLS) + b"]")
_CONTROL_TO_SPACE = bytes.maketrans(_CONTROLS, b" " * len(_CONTROLS))


def _sound_reference(found: re.Match[bytes]) -> bytes:
    """A numeric character reference a reader can take: one to no character at all (half of
    a UTF-16 pair, past U+10FFFF: feedparser failed the whole document on one) becomes
    U+FFFD, one to a control character (NUL, which PostgreSQL refuses in text) a space."""
    digits, decimal = found.group(1), found.group(2)
    code = int(digits, 16) if digits else int(decimal)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return _NO_CHARACTER
    if (code < 0x20 and code not in (0x09, 0x0A, 0x0D)) or code == 0x7F:
        return b" "
    return found.group()


def _escape_bare_ampersands(data: bytes) -> bytes:
    """``&`` that starts no reference becomes ``&amp;``, outside CDATA sections.

    ``AT&T`` or ``R&D`` in a title is the commonest way a feed is not well-formed. expat then
    refuses the document and feedparser's loose parser reads ``&T`` as an entity reference it
    does not know, and writes it back as ``&T;``: the title said ``AT&T;``. Escaped, the
    ampersand is text, and the document is often well-formed again. CDATA is left alone: an
    ampersand there is already text (``?a=1&b=2`` in a link).
    """
    if _BARE_AMPERSAND.search(data) is None:
        return data
    out = io.BytesIO()
    done = 0
    while done < len(data):
        start = data.find(_CDATA_START, done)
        if start < 0:
            start = len(data)
        out.write(_BARE_AMPERSAND.sub(b"&amp;", data[done:start]))
        end = data.find(_CDATA_END, start)
        end = len(data) if end < 0 else end + len(_CDATA_END)
        out.write(data[start:end])
        done = end
    return out.getvalue()


def _cut_warning(items: Iterable[Iterable[Any]]) -> list[str]:
    """A warning when items have text fields longer than ``MAX_FIELD_CHARS`` (they are cut)."""
    cut = sum(
        1
        for fields in items
        if any(isinstance(v, str) and len(v) > MAX_FIELD_CHARS for v in fields)
    )
    if not cut:
        return []
    return [f"{cut} item(s) with a text field over {MAX_FIELD_CHARS:,} characters, cut to that"]


def _why_not_a_feed(data: bytes, parsed: Mapping[str, Any]) -> str:
    if _HTML_START.match(data[:4096]):
        return "not a feed: this is an HTML page"
    reason = parsed.get("bozo_exception")
    return f"not a feed: {reason}" if reason else "not a feed: no RSS, Atom or JSON Feed found"


def _article_from_entry(
    entry: Mapping[str, Any],
    *,
    feed_url: str,
    feed_name: str,
    base: str,
    feed_language: str | None,
    now: datetime,
) -> Article | None:
    item_base = _detail(entry, "title_detail").get("base") or base
    link = _entry_link(entry)
    guid = (entry.get("id") or "").strip() or None
    if guid and guid_url(guid) is None and link.strip() == guid:
        # RSS says a guid is a permalink unless isPermaLink="false", so feedparser copies it
        # into a missing link; but "enc-1" or "12345" is no link (it made .../enc-1 up)
        link = ""
    url = canonical_url(link, item_base) if link else None
    if url is None and guid and entry.get("guidislink") and guid_url(guid):
        url = canonical_url(guid)
    title = _text_of(entry.get("title", ""), _detail(entry, "title_detail").get("type"))
    content_html = _content_value(entry)
    summary_html = entry.get("summary", "") or ""
    if content_html and summary_html == content_html:
        summary_html = ""  # feedparser copies content into summary when there is no summary
    summary = _text_of(summary_html, _detail(entry, "summary_detail").get("type"))
    content = html_to_text(content_html) if content_html else ""
    if not (title or summary or content or url):
        return None
    updated = _entry_date(entry, "updated", now)
    published = _entry_date(entry, "published", now) or updated  # RSS 1.0 dc:date, Atom
    language = _language(_detail(entry, "title_detail").get("language")) or feed_language
    return _build_article(
        feed_url=feed_url,
        feed_name=feed_name,
        guid=guid,
        url=url,
        title=title,
        summary=summary,
        content=content,
        authors=_authors(_records(entry, "authors")),
        categories=_unique(t.get("term") or t.get("label") or "" for t in _records(entry, "tags")),
        published=published,
        updated=updated,
        language=language,
        media=_media_from_entry(entry, item_base),
        now=now,
    )


def _records(entry: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """A list-of-dicts field of a feedparser entry (authors, tags, links, content, media), its
    dicts only: malformed markup can leave a string there (fuzzing found ``authors`` set to
    ``"name><"``), and iterating that would crash the whole feed's parse."""
    value = entry.get(key)
    if not isinstance(value, list):
        return []
    return [record for record in value if isinstance(record, Mapping)]


def _detail(entry: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = entry.get(key)
    return value if isinstance(value, Mapping) else {}


def _entry_link(entry: Mapping[str, Any]) -> str:
    for link in _records(entry, "links"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return str(link["href"])
    return str(entry.get("link") or "")


def _content_value(entry: Mapping[str, Any]) -> str:
    """The item's full text: the longest content block that is not a media caption."""
    blocks = [c.get("value") or "" for c in _records(entry, "content")]
    return max(blocks, key=len, default="")


def _media_from_entry(entry: Mapping[str, Any], base: str) -> list[Media]:
    media: dict[str, Media] = {}
    item_level = _detail(entry, "wm_media_item")

    def add(url: str | None, **facts: Any) -> None:
        absolute = canonical_url(url or "", base)
        if absolute is None:
            return
        known = media.get(absolute)
        merged = {k: v for k, v in facts.items() if v} | (
            known.model_dump(exclude_none=True) if known else {}
        )
        merged["url"] = absolute
        media[absolute] = Media(**merged)

    for item in _records(entry, "media_content"):
        add(
            item.get("url"),
            type=item.get("type"),
            medium=item.get("medium") or _medium(item.get("type")),
            caption=_plain(item.get("caption") or item.get("media_title") or ""),
            credit=_plain(item.get("credit") or ""),
        )
    for thumb in _records(entry, "media_thumbnail"):
        add(thumb.get("url"), medium="image")
    for link in _records(entry, "links"):
        if link.get("rel") == "enclosure":
            add(link.get("href"), type=link.get("type"), medium=_medium(link.get("type")))
    result = list(media.values())
    if result and item_level:
        first = result[0]
        caption = _plain(item_level.get("caption") or item_level.get("media_title") or "")
        credit = _plain(item_level.get("credit") or "")
        result[0] = first.model_copy(
            update={
                "caption": first.caption or caption or None,
                "credit": first.credit or credit or None,
            }
        )
    return result


def _medium(mime: str | None) -> str | None:
    if not mime or "/" not in mime:
        return None
    kind = mime.split("/", 1)[0]
    return kind if kind in ("image", "video", "audio") else None


def _authors(authors: Iterable[Mapping[str, Any]]) -> list[str]:
    return _unique(_plain(a.get("name") or a.get("email") or "") for a in authors)


def _entry_date(entry: Mapping[str, Any], key: str, now: datetime) -> datetime | None:
    """Our reading of the raw date, else feedparser's, guarded (PITFALLS 4).

    ``dict.get`` on purpose: feedparser's own lookup answers "updated" with the published date.
    """
    raw = dict.get(entry, key)  # type: ignore[call-overload]
    if not isinstance(raw, str):
        return None
    if _ISO_LIKE.match(raw):  # feedparser rolls 2024-02-30 into March (PITFALLS 4): ours only
        return parse_date(raw, now)
    return parse_date(raw, now) or _struct_date(entry, key, raw, now)


_ISO_LIKE = re.compile(r"^\s*[+-]?\d{4,}-")
_SHORT_NUMBER = re.compile(r"(?<!\d)\d{1,4}(?!\d)")


def _struct_date(entry: Mapping[str, Any], key: str, raw: str, now: datetime) -> datetime | None:
    """feedparser's reading (Korean and Greek forms, say), if the raw text holds its date.

    feedparser too fills in what a string lacks: ``2026`` becomes 1 January, ``10:30`` today
    by the wall clock. Its reading counts only when its year and day are written in the text.
    """
    parsed = dict.get(entry, f"{key}_parsed")  # type: ignore[call-overload]
    if not parsed:
        return None
    try:
        year, month, day, hour, minute, second = parsed[:6]
        value = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (ValueError, TypeError, OverflowError):
        return None
    numbers = {int(n) for n in _SHORT_NUMBER.findall(raw)}
    if year not in numbers or day not in numbers:
        return None
    return _plausible(value, now)


def _ttl(value: Any) -> timedelta | None:
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return timedelta(minutes=minutes) if 0 < minutes <= 7 * 24 * 60 else None


# --------------------------------------------------------------------------------------------
# JSON Feed 1.0 / 1.1 (feedparser does not read it)


#: an escape of half a surrogate pair or of a control character (as ``_CONTROLS``)
_ODD_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|00[01]|007[fF])")
_ODD_CHARACTER = re.compile("[\ud800-\udfff" + re.escape(_CONTROLS.decode("ascii")) + "]")


def load_json(text: str) -> Any:
    """``json.loads``, with each half of a UTF-16 pair escaped alone (``"\\ud800"``) replaced
    by U+FFFD, and each escaped control character (``"\\u0000"``) by a space, in every string.

    ``json.loads`` joins an escaped pair into one character but keeps a lone half, and a string
    holding one can never be written as UTF-8: the article could not be stored, sent or
    printed; PostgreSQL refuses a NUL in text. The value is walked only when the text has such
    an escape at all.
    """
    value = json.loads(text)
    return _without_odd_characters(value) if _ODD_ESCAPE.search(text) else value


def _without_odd_characters(value: Any) -> Any:
    if isinstance(value, str):
        return _ODD_CHARACTER.sub(_replacement, value)
    if isinstance(value, list):
        return [_without_odd_characters(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_odd_characters(item) for key, item in value.items()}
    return value


def _replacement(found: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= found.group() <= "\udfff" else " "


def is_json_feed(document: Any) -> bool:
    """Whether a JSON value is a JSON Feed document: an object with its version URL."""
    version = document.get("version") if isinstance(document, dict) else None
    return isinstance(version, str) and version.startswith("https://jsonfeed.org/version/")


def _looks_like_json(data: bytes, content_type: str | None) -> bool:
    if content_type and "json" in content_type.lower():
        return True
    head = data[:4096]  # lstrip on the whole document would copy it
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _parse_json_feed(data: bytes, *, feed_url: str, feed_name: str, now: datetime) -> ParsedFeed:
    try:
        document = load_json(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(f"{feed_name}: not a feed: invalid JSON: {exc}") from None
    except RecursionError:
        raise ParseError(f"{feed_name}: not a feed: JSON nested too deeply to read") from None
    if not is_json_feed(document):
        raise ParseError(f"{feed_name}: not a feed: JSON without a JSON Feed version")
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError(f"{feed_name}: not a feed: JSON Feed without an items list")
    home = canonical_url(_str(document.get("home_page_url")), feed_url) or feed_url
    language = _language(document.get("language"))
    feed_authors = _json_authors(document)
    articles = []
    for item in items:
        if not isinstance(item, dict):
            continue
        article = _article_from_json_item(
            item,
            feed_url=feed_url,
            feed_name=feed_name,
            base=home,
            feed_language=language,
            feed_authors=feed_authors,
            now=now,
        )
        if article is not None:
            articles.append(article)
    fields = ("title", "summary", "content_html", "content_text")
    return ParsedFeed(
        articles=articles,
        title=_text_of(_str(document.get("title")), None),
        link=home,
        language=language,
        format="json" + document["version"].rsplit("/", 1)[-1].replace(".", ""),
        warnings=_cut_warning(
            [item.get(key) for key in fields] for item in items if isinstance(item, dict)
        ),
    )


def _article_from_json_item(
    item: Mapping[str, Any],
    *,
    feed_url: str,
    feed_name: str,
    base: str,
    feed_language: str | None,
    feed_authors: list[str],
    now: datetime,
) -> Article | None:
    url = canonical_url(_str(item.get("url")) or _str(item.get("external_url")), base)
    guid = _str(item.get("id")).strip() or None
    if _str(item.get("content_html")):
        content = html_to_text(_str(item.get("content_html")))
    else:
        content = _plain(_str(item.get("content_text")))
    # the same reading as RSS titles: feeds write "Kim&#8217;s &amp; <b>drones</b>" in JSON too
    summary = _text_of(_str(item.get("summary")), None)
    title = _text_of(_str(item.get("title")), None)
    if not (title or summary or content or url):
        return None
    media: list[Media] = []
    for key in ("image", "banner_image"):
        if image := canonical_url(_str(item.get(key)), base):
            media.append(Media(url=image, medium="image"))
    for attachment in item.get("attachments") or []:
        if isinstance(attachment, dict) and (
            link := canonical_url(_str(attachment.get("url")), base)
        ):
            mime = _str(attachment.get("mime_type")) or None
            media.append(
                Media(
                    url=link,
                    type=mime,
                    medium=_medium(mime),
                    caption=_text_of(_str(attachment.get("title")), None) or None,
                )
            )
    tags = item.get("tags")
    categories = _unique(_str(t) for t in tags) if isinstance(tags, list) else []
    updated = parse_date(_str(item.get("date_modified")), now)
    return _build_article(
        feed_url=feed_url,
        feed_name=feed_name,
        guid=guid,
        url=url,
        title=title,
        summary=summary,
        content=content,
        authors=_json_authors(item) or feed_authors,
        categories=categories,
        published=parse_date(_str(item.get("date_published")), now) or updated,
        updated=updated,
        language=_language(item.get("language")) or feed_language,
        media=media,
        now=now,
    )


def _json_authors(obj: Mapping[str, Any]) -> list[str]:
    found = obj.get("authors")
    authors = (
        found
        if isinstance(found, list)
        else [obj["author"]]
        if isinstance(obj.get("author"), dict)
        else []
    )
    return _unique(_plain(_str(a.get("name"))) for a in authors if isinstance(a, dict))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, int | float) else ""


# --------------------------------------------------------------------------------------------
# The Article, whatever the format


def _build_article(
    *,
    feed_url: str,
    feed_name: str,
    guid: str | None,
    url: str | None,
    title: str,
    summary: str,
    content: str,
    authors: list[str],
    categories: list[str],
    published: datetime | None,
    updated: datetime | None,
    language: str | None,
    media: list[Media],
    now: datetime,
) -> Article:
    lead = summary or content
    return Article(
        id=article_id(feed_url=feed_url, guid=guid, url=url, title=title, text=lead),
        feed=feed_name,
        feed_url=feed_url,
        guid=guid,
        url=url,
        title=title,
        summary=summary,
        content=content,
        authors=authors,
        categories=categories,
        published=published,
        updated=updated,
        fetched_at=now,
        language=language,
        dateline=find_dateline(content) or find_dateline(summary),
        media=media,
        fingerprint=story_fingerprint(title, lead),
    )


def article_id(
    *,
    feed_url: str,
    guid: str | None,
    url: str | None,
    title: str,
    text: str,
) -> str:
    """A stable id: the guid (scoped to its feed unless it is a URL), else the link, else text.

    Without guid or link, a hash of the title and the text stands for the item (SPEC section
    7), so two untitled items of one feed stay two articles. Not the date: a publisher that
    re-stamps an unchanged item would make it new again, and it would alert twice.

    A guid that is a URL and a plain link are global, so the same story linked from two feeds
    has one id; an opaque guid like "1234" only means something within its own feed. A guid
    keeps its fragment (``.../live#u2`` is one update of a live blog), a link does not.
    """
    if guid:
        as_url = guid_url(guid)
        key = f"url\n{as_url}" if as_url else f"guid\n{feed_url}\n{guid}"
    elif url:
        key = f"url\n{url}"
    else:  # the empty line held the date: kept, so undated items keep the ids they had
        key = f"text\n{feed_url}\n{title}\n\n{text}"
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def story_fingerprint(title: str, lead: str) -> str:
    """A bottom-k MinHash sketch of the title and lead: the smallest shingle hashes, in hex.

    Two tellings of one story share many words and word pairs, so their sketches share many
    values; ``dedupe`` estimates their resemblance from that. CRC32 keeps it cheap and stable
    across processes (Python's own ``hash`` is salted per process).
    """
    # about 10 characters a word: read only the part of the lead that is used. Case-folding is
    # enough here: copies of one story agree on their accents, and full folding costs 3x more.
    lead_words = _FINGERPRINT_WORD.findall(lead[: FINGERPRINT_LEAD_WORDS * 10].casefold())
    tokens = _FINGERPRINT_WORD.findall(title.casefold()) + lead_words[:FINGERPRINT_LEAD_WORDS]
    shingles = {*tokens, *(f"{a} {b}" for a, b in pairwise(tokens))}
    hashes = sorted({zlib.crc32(s.encode()) for s in shingles})[:FINGERPRINT_SIZE]
    return "".join(f"{h:08x}" for h in hashes)


# --------------------------------------------------------------------------------------------
# HTML to text


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_BLOCK_TAGS = _word_set(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table tbody thead tfoot tr ul"
)
_DROPPED_TAGS = _word_set("script style noscript template head title iframe object embed svg math")
#: Table cells sit side by side with no space between them in the markup: ``a`` and ``b`` of
#: ``<td>a</td><td>b</td>`` are two words, not ``ab``.
_CELL_TAGS = _word_set("td th")
_HTML_PARSER = lxml.html.HTMLParser()
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_LINE_BREAKS = re.compile(r"\s*\n\s*")


def html_to_text(html: str) -> str:
    """Plain text from HTML: scripts and styles dropped, blocks as line breaks, entities decoded.

    At most ``MAX_FIELD_CHARS`` of the markup are read.
    """
    html = html[:MAX_FIELD_CHARS]
    if "<" not in html:  # plain text, perhaps with entities: no parser needed
        return _plain(unescape(html)) if "&" in html else _plain(html)
    try:
        # etree + the HTML parser: twice as fast as lxml.html's fragment helpers, and unlike
        # them it accepts a whole document where a fragment was expected
        root = lxml.etree.fromstring(html, _HTML_PARSER)
    except (lxml.etree.ParserError, ValueError):
        return _strip_tags(html)
    if root is None:
        return _strip_tags(html)
    parts: list[str] = []
    # comments and processing instructions are only reported when asked for, and the text
    # after one (``lead<!--more-->rest``) is its tail: without these events it was lost
    walker = lxml.etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walker:
        if event in {"comment", "pi"}:
            if element.tail:
                parts.append(element.tail.replace("\n", " "))
            continue
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            elif tag in _CELL_TAGS:
                parts.append(" ")
            if not tag or tag in _DROPPED_TAGS:
                walker.skip_subtree()
            elif element.text:
                parts.append(element.text.replace("\n", " "))
        else:
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            if element.tail and element is not root:
                parts.append(element.tail.replace("\n", " "))
    text = _collapse("".join(parts))
    # libxml2 gives up on absurdly deep nesting and returns nothing: never lose the words
    return text or _strip_tags(html)


def _strip_tags(html: str) -> str:
    """The crude fallback: tags and dropped elements removed, entities decoded."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
    return _plain(unescape(re.sub(r"<[^>]*>", " ", html)))


def _collapse(text: str) -> str:
    """Spaces collapsed within lines, blank lines removed, no leading or trailing space."""
    text = _SPACES.sub(" ", text.replace("\r\n", "\n"))
    return _LINE_BREAKS.sub("\n", text).strip()


def _plain(text: str) -> str:
    return _collapse(text[:MAX_FIELD_CHARS].replace("\n", " ")) if text else ""


def _text_of(value: str, mime: str | None) -> str:
    """A single-line field (title, summary) as plain text, whatever markup the feed used."""
    if not value:
        return ""
    value = value[:MAX_FIELD_CHARS]
    if mime in ("text/html", "application/xhtml+xml") or "<" in value or "&" in value:
        value = html_to_text(value)
    return _plain(value) if "\n" not in value else _collapse(value)


def _unique(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        cleaned = value.strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def _language(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower().replace("_", "-")


# --------------------------------------------------------------------------------------------
# Dates

_FOREIGN_NAMES = {
    # Italian
    "gennaio": "Jan", "febbraio": "Feb", "marzo": "Mar", "aprile": "Apr", "maggio": "May",
    "giugno": "Jun", "luglio": "Jul", "agosto": "Aug", "settembre": "Sep", "ottobre": "Oct",
    "novembre": "Nov", "dicembre": "Dec", "gen": "Jan", "mag": "May", "giu": "Jun", "lug": "Jul",
    "ago": "Aug", "set": "Sep", "ott": "Oct", "dic": "Dec",
    "lunedì": "", "martedì": "", "mercoledì": "", "giovedì": "", "venerdì": "", "sabato": "",
    "domenica": "", "lun": "", "mer": "", "gio": "", "ven": "", "sab": "", "dom": "",
    # German
    "januar": "Jan", "jänner": "Jan", "februar": "Feb", "märz": "Mar", "mär": "Mar", "mai": "May",
    "juni": "Jun", "juli": "Jul", "oktober": "Oct", "okt": "Oct", "dezember": "Dec", "dez": "Dec",
    "montag": "", "dienstag": "", "mittwoch": "", "donnerstag": "", "freitag": "",
    "samstag": "", "sonntag": "", "mo": "", "di": "", "mi": "", "do": "", "fr": "", "sa": "",
    "so": "",
    # French
    "janvier": "Jan", "janv": "Jan", "février": "Feb", "févr": "Feb", "fevrier": "Feb",
    "mars": "Mar", "avril": "Apr", "avr": "Apr", "juin": "Jun", "juillet": "Jul", "juil": "Jul",
    "août": "Aug", "aout": "Aug", "septembre": "Sep", "octobre": "Oct", "décembre": "Dec",
    "decembre": "Dec", "déc": "Dec",
    "lundi": "", "mardi": "", "mercredi": "", "jeudi": "", "vendredi": "", "samedi": "",
    "dimanche": "",
    # Spanish
    "enero": "Jan", "febrero": "Feb", "abril": "Apr", "mayo": "May", "junio": "Jun",
    "julio": "Jul", "septiembre": "Sep", "octubre": "Oct", "noviembre": "Nov",
    "diciembre": "Dec", "lunes": "", "martes": "", "miércoles": "", "jueves": "", "viernes": "",
    "sábado": "", "domingo": "",
}  # fmt: skip
_WORD_IN_DATE = re.compile(r"[^\W\d_]+\.?")
_ZONE_OFFSETS = {
    "UTC": "+0000", "GMT": "+0000", "Z": "+0000", "KST": "+0900", "JST": "+0900", "HKT": "+0800",
    "SGT": "+0800", "CST": "-0600", "CET": "+0100", "CEST": "+0200", "MEZ": "+0100",
    "MESZ": "+0200", "BST": "+0100", "EET": "+0200", "EEST": "+0300", "MSK": "+0300",
    "IST": "+0530", "AEST": "+1000", "AEDT": "+1100", "WIB": "+0700", "EST": "-0500",
    "EDT": "-0400", "CDT": "-0500", "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700",
}  # fmt: skip
_TRAILING_ZONE = re.compile(r"\b([A-Z]{1,4})\s*$")
#: ``GMT+1``, ``UTC+01:00``, ``GMT+0100``, and ``+01:00`` after a time: offsets that
#: email.utils ignores (the colon) or dateutil reads the POSIX way (``GMT+1`` as UTC-1).
_TRAILING_OFFSET = re.compile(
    r"(?:\s*\b(?:GMT|UTC|UT)\s*(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d\d))?"
    r"|(?<=\d)\s*(?P<sign2>[+-])(?P<hours2>\d\d):(?P<minutes2>\d\d))\s*$"
)
_ENGLISH_MONTH = re.compile(r"(?i)(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*")
_DATE_FILLERS = re.compile(r"(?i)\b(?:um|à|alle|ore|le|de|del|h|uhr)\b")
#: Two defaults for dateutil that differ in year, month and day: a date read from the text
#: itself comes out the same against both.
_PROBE_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))
#: A publication date later than this past ``now`` is a wrong clock or a lie, not a date.
FUTURE_TOLERANCE = timedelta(days=1)
EARLIEST_YEAR = 1990


def parse_date(raw: str | None, now: datetime) -> datetime | None:
    """A timezone-aware UTC datetime from the date strings feeds write, or None.

    RFC 822 and ISO 8601 (fractional seconds kept) first; then month and day names in Italian,
    German, French and Spanish (abbreviated with a dot too), zone abbreviations and numeric
    offsets in any spelling, and other common forms. A string without a day, a month and a year
    (``10:30``, ``Nov 24``, ``2026``) is None: nothing is filled in from the clock. Implausible
    dates (before 1990, more than a day in the future, 0000-00-00) are None, never an exception.
    """
    if not raw or not raw.strip():
        return None
    text = " ".join(raw.split())
    for reader in (_iso_date, _rfc822_date, _lenient_date):
        try:
            value = reader(text)
            if value is not None:  # an offset of 79 hours parses, and fails only here
                return _plausible(value, now)
        except (ValueError, TypeError, OverflowError, IndexError):
            continue
    return None


def _iso_date(text: str) -> datetime | None:
    if not text[:4].isdigit():
        return None
    return datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text[:11] else text)


def _rfc822_date(text: str) -> datetime | None:
    return email.utils.parsedate_to_datetime(_with_numeric_zone(text))


def _lenient_date(text: str) -> datetime | None:
    """dateutil on the text in English, only when the text itself gives day, month and year.

    dateutil takes what the text lacks from its default, the wall clock unless told otherwise
    (``10:30`` became today, ``2026`` today's day and month in 2026): parsed against two
    defaults that differ in every date field, a complete date comes out the same both times.
    """
    english = _in_english(_with_numeric_zone(text))
    first, second = (
        dateutil_parser.parse(english, dayfirst=True, default=default)
        for default in _PROBE_DEFAULTS
    )
    return first if first.date() == second.date() else None


def _in_english(text: str) -> str:
    """Month names in English, weekday names and filler words (``um``, ``Uhr``) dropped.

    Abbreviations may end in a dot (``nov.``, ``Dez.``). When several words read as months, all
    but the last are weekdays: French and Italian ``mar.`` (Tuesday) is English ``Mar``.
    """
    words = list(_WORD_IN_DATE.finditer(text))
    english = [_english_word(w.group(0)) for w in words]
    months = [i for i, word in enumerate(english) if _ENGLISH_MONTH.fullmatch(word)]
    for i in months[:-1]:
        english[i] = ""
    pieces = []
    done = 0
    for word, replacement in zip(words, english, strict=True):
        pieces += [text[done : word.start()], replacement]
        done = word.end()
    pieces.append(text[done:])
    translated = "".join(pieces).replace(",", " ")
    translated = re.sub(r"(\d)\.(?=\s|$)", r"\1", translated)  # German "24. Nov"
    return _DATE_FILLERS.sub(" ", translated)


def _english_word(word: str) -> str:
    bare = word.rstrip(".")
    return _FOREIGN_NAMES.get(bare.lower(), bare)


def _with_numeric_zone(text: str) -> str:
    """A trailing zone as ``±HHMM``, which email.utils and dateutil both read as meant."""
    offset = _TRAILING_OFFSET.search(text)
    if offset:
        sign = offset.group("sign") or offset.group("sign2")
        hours = offset.group("hours") or offset.group("hours2")
        minutes = offset.group("minutes") or offset.group("minutes2") or "00"
        return f"{text[: offset.start()]} {sign}{int(hours):02d}{minutes}"
    match = _TRAILING_ZONE.search(text)
    if match and match.group(1) in _ZONE_OFFSETS:
        return text[: match.start()] + _ZONE_OFFSETS[match.group(1)]
    return text


def _plausible(value: datetime, now: datetime) -> datetime | None:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.year < EARLIEST_YEAR or value > now + FUTURE_TOLERANCE:
        return None
    return value


# --------------------------------------------------------------------------------------------
# Datelines

_AGENCIES = _word_set(
    "ap afp reuters dpa ansa efe yonhap kcna xinhua kyodo tass ria interfax upi bloomberg "
    "anadolu bernama pti ians ani apa sda ats kna cna epa jiji nhk rtrs apn"
)
_PLACE_WORDS = r"[A-Z][^\W\d_]*\.?(?:[ \-'][A-Z][^\W\d_]*\.?){0,3}"
_DATELINE = re.compile(
    rf"^(?P<place>{_PLACE_WORDS})"
    # AP style names the state or country after the city: "KYIV, Ukraine (AP) —"
    rf"(?:,\s*(?P<region>{_PLACE_WORDS})(?![\w.]*\s+\d))?"
    r"(?:,\s*(?P<date>[^\W\d_]{3,9}\.?\s+\d{1,2}|\d{1,2}\.?\s+[^\W\d_]{3,9}\.?))?"
    r"(?:\s*\((?P<paren>[^()\n]{2,40})\))?"
    r"\s*(?:--|[-\u2013\u2014\u2012])\s+"
)


def find_dateline(text: str) -> str | None:
    """The place of a wire-style dateline at the start of the text, if there is one.

    "SEOUL, Nov 24 (Reuters) - ..." -> "SEOUL"; "WASHINGTON (AP) -- ..." -> "WASHINGTON";
    "KYIV, Ukraine (AP) — ..." -> "KYIV, Ukraine"; "Pyongyang (North Korea) - ..." ->
    "Pyongyang (North Korea)". A plain "Breaking - ..." is not a dateline: the place must be in
    capitals, or followed by a date or a parenthesis.
    """
    match = _DATELINE.match(text[:200])
    if match is None:
        return None
    place, date, paren = match.group("place"), match.group("date"), match.group("paren")
    if not (place.isupper() or date or paren):
        return None
    if match.group("region"):
        place = f"{place}, {match.group('region')}"
    if paren and paren.strip().lower() not in _AGENCIES and not date:
        return f"{place} ({paren.strip()})"
    return place
