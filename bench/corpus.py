"""Deterministic synthetic feeds and articles for the benchmarks (no network, no randomness
between runs: every generator takes a seed)."""

from __future__ import annotations

import random
from html import escape

WORDS = (
    "the of and to in a is that for on said with as was by at from his he it an were are "
    "which this be has have had not but government minister military officials country week "
    "year north south korea korean russia russian china chinese japan japanese ukraine "
    "united states president leader defence defense ministry talks treaty alliance missile "
    "missiles drone drones launch launched test tested nuclear weapons army navy air force "
    "border peninsula sanctions pyongyang seoul moscow beijing tokyo washington kyiv summit "
    "agreement security council analysts satellite images troops exercise exercises warship "
    "coast guard trade economy market election parliament court police protest storm weather "
    "football club season energy prices oil gas pipeline reactor submarine ballistic "
    "hypersonic cruise artillery shells ammunition factory production cooperation visit "
    "delegation spokesperson statement agency reported according sources condition anonymity "
    "monday tuesday wednesday thursday friday saturday sunday morning evening late early new "
    "old first second last major minor record high low"
).split()
ACCENTED = ["Zürich", "São Paulo", "Kyiv’s", "Gyeonggi‑do", "café", "naïve", "Müller", "Łódź"]


def sentence(rng: random.Random, length: int) -> str:
    words = [rng.choice(WORDS) for _ in range(length)]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(ACCENTED))
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def paragraph_text(rng: random.Random, target_chars: int) -> str:
    parts: list[str] = []
    size = 0
    while size < target_chars:
        part = sentence(rng, rng.randint(8, 22))
        parts.append(part)
        size += len(part) + 1
    return " ".join(parts)


def html_body(rng: random.Random, target_chars: int) -> str:
    """Story HTML as news sites publish it: paragraphs, links, emphasis, a figure, entities."""
    blocks: list[str] = []
    size = 0
    while size < target_chars:
        text = escape(paragraph_text(rng, rng.randint(250, 600)))
        words = text.split(" ")
        if len(words) > 6:
            i = rng.randrange(len(words) - 3)
            words[i] = f'<a href="/topic/{rng.randint(1, 999)}?utm_source=rss">{words[i]}</a>'
            words[i + 2] = f"<b>{words[i + 2]}</b>"
        block = "<p>" + " ".join(words) + " &mdash; &#8220;quoted&#8221;</p>"
        if rng.random() < 0.15:
            block += (
                f'<figure><img src="/img/{rng.randint(1, 9999)}.jpg" alt="photo"/>'
                f"<figcaption>{escape(sentence(rng, 8))}</figcaption></figure>"
            )
        blocks.append(block)
        size += len(block)
    return "\n".join(blocks)


def rss_feed(seed: int, items: int, html_chars: int, media: bool = True) -> bytes:
    rng = random.Random(seed)
    entries = []
    for i in range(items):
        body = html_body(rng, html_chars)
        lead = escape(paragraph_text(rng, 200))
        media_xml = (
            f'<media:content url="https://img.example.org/{seed}/{i}.jpg" type="image/jpeg" '
            f'medium="image"><media:description>{escape(sentence(rng, 10))}</media:description>'
            f"<media:credit>Photographer {i}</media:credit></media:content>"
            if media
            else ""
        )
        entries.append(
            f"<item><title>{escape(sentence(rng, 9))}</title>"
            f"<link>https://news{seed}.example.org/story/{i}?utm_source=rss&amp;id={i}</link>"
            f'<guid isPermaLink="false">story-{seed}-{i}</guid>'
            f"<pubDate>Tue, 24 Nov 2026 {i % 24:02d}:{i % 60:02d}:00 +0000</pubDate>"
            f"<dc:creator>Reporter {i % 7}</dc:creator><category>World</category>"
            f"<description>{lead}</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded>{media_xml}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>Bench feed {seed}</title><link>https://news{seed}.example.org/</link>"
        "<language>en</language>" + "".join(entries) + "</channel></rss>"
    ).encode()


def atom_feed(seed: int, items: int) -> bytes:
    rng = random.Random(seed)
    entries = []
    for i in range(items):
        summary = escape(html_body(rng, 400))
        entries.append(
            f"<entry><title>{escape(sentence(rng, 8))}</title>"
            f'<link rel="alternate" href="/a/{i}"/><id>tag:atom{seed}.example.org,2026:{i}</id>'
            f"<updated>2026-11-24T{i % 24:02d}:00:00Z</updated>"
            f"<author><name>Author {i % 5}</name></author>"
            f'<summary type="html">{summary}</summary></entry>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        f'xml:base="https://atom{seed}.example.org/"><title>Atom {seed}</title>'
        f"<id>urn:atom:{seed}</id><updated>2026-11-24T10:00:00Z</updated>"
        + "".join(entries)
        + "</feed>"
    ).encode()


def small_real_world_feeds(count: int = 30) -> list[bytes]:
    """Feeds shaped like the ones a desk follows: 10-40 items, short summaries, some media."""
    rng = random.Random(2026)
    feeds = []
    for n in range(count):
        items = rng.randint(10, 40)
        if n % 3 == 0:
            feeds.append(atom_feed(n, items))
        else:
            feeds.append(
                rss_feed(n, items, html_chars=rng.choice([300, 800, 1500]), media=n % 2 == 0)
            )
    return feeds
