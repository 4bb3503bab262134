"""Text folding shared by every stage that compares words (a leaf: imports nothing of ours).

Rules, story fingerprints and identities must agree on what "the same word" is, so the one
folding function lives here: Unicode NFKC, case folding, accents dropped, every dash and quote
variant unified.

Folding is the largest cost of rule matching (PITFALLS item 14), so it is built for speed:

* ASCII text (most wire copy) is folded by ``str.lower`` alone, and offsets are the identity;
* other text is split into ASCII and non-ASCII runs; each non-ASCII character is folded once
  through a growing per-character ``str.translate`` table, so a curly quote in an English story
  costs one table lookup, not a Unicode normalisation of the whole text;
* the map from folded offsets back to the original text (``fold_map``) is only computed when a
  rule matched and its hits must be explained.

Folding is defined per character (except runs of conjoining Hangul jamo, which NFKC composes and
which are therefore folded as a whole run), so ``fold_map`` can always say which original
characters produced each folded one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u00ad\u2e3a\u2e3b"
_QUOTES = "\u2018\u2019\u201a\u201b\u2032\u02bc\uff07`\u00b4"
_DQUOTES = "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\uff02"
_UNIFY = str.maketrans(
    {**dict.fromkeys(_DASHES, "-"), **dict.fromkeys(_QUOTES, "'"), **dict.fromkeys(_DQUOTES, '"')}
)
#: Letters with a stroke or bar have no Unicode decomposition, but readers treat them as accented.
_STROKES = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i", "ŧ": "t", "ƀ": "b"})
_WORD = re.compile(r"\w+", re.UNICODE)
#: Accents are the combining diacritical marks; the Japanese voicing marks (dakuten) are not, so
#: ``が`` stays ``が``.
_ACCENT = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
#: Characters that fold to themselves and have no case: CJK punctuation, kana, ideographs, Hangul.
#: Runs of them (and of ASCII) skip the per-character table; tests/test_text.py checks the claim.
IDENTITY_RANGES = (
    (0x3001, 0x3035),
    (0x3041, 0x3097),
    (0x30A1, 0x30FE),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
)
_SEGMENTS = re.compile(
    "([^\x00-\x7f" + "".join(f"{chr(a)}-{chr(b)}" for a, b in IDENTITY_RANGES) + "]+)"
)
_JAMO = re.compile(r"[\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff]")
#: What separates tokens: any run of non-word characters (underscore included) and a possessive
#: ``'s`` ending, which is dropped (``North Korea's`` holds the words ``north korea``).
_SPLIT = re.compile(r"(?:'s(?![^\W_])|[\W_])+")
_UPPER = re.compile(r"[A-Z]+")
_TOKEN = re.compile(r"[^\W_]+")
_POSSESSIVE = re.compile(r"'s(?![^\W_])")
#: ASCII letters and digits stay, an apostrophe becomes a marker (to find ``'s``), all else a space.
_ASCII_SEPARATORS = bytes(
    c if chr(c).isalnum() and c < 128 else (1 if c == ord("'") else 32) for c in range(256)
)
_TABLE_LIMIT = 200_000


def _fold_slow(text: str) -> str:
    """The reference fold: NFKC, casefold, accents stripped, dashes and quotes unified."""
    text = unicodedata.normalize("NFKC", text.translate(_UNIFY)).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = _ACCENT.sub("", decomposed)
    return unicodedata.normalize("NFC", stripped).translate(_UNIFY).translate(_STROKES)


class _CharFolds(dict[int, str]):
    """A ``str.translate`` table that learns: each new character is folded once, then looked up."""

    def __missing__(self, key: int) -> str:
        folded = _fold_slow(chr(key))
        if len(self) < _TABLE_LIMIT:
            self[key] = folded
        return folded


_TABLE = _CharFolds()


def _lower_ascii(segment: str) -> str:
    """Lower-case the ASCII letters of a segment of ASCII and caseless CJK characters."""
    if segment.isascii():
        return segment.lower()
    return _UPPER.sub(lambda m: m.group().lower(), segment) if _UPPER.search(segment) else segment


def _fold_run(run: str) -> str:
    """Fold a run of non-ASCII characters."""
    if _JAMO.search(run):
        return _fold_slow(run)
    return run.translate(_TABLE)


def fold(text: str) -> str:
    """Fold text for comparison: NFKC, casefold, accents dropped, dashes and quotes unified."""
    if text.isascii():
        return text.lower()
    parts = _SEGMENTS.split(text)
    parts[0::2] = [_lower_ascii(p) for p in parts[0::2]]
    parts[1::2] = [_fold_run(p) for p in parts[1::2]]
    return "".join(parts)


def fold_map(text: str) -> tuple[str, list[int], list[int]]:
    """Fold ``text`` and say where each folded character came from.

    Returns ``(folded, starts, ends)``: ``folded[i]`` was produced by ``text[starts[i]:ends[i]]``.
    Characters that fold to nothing (combining accents) are attributed to the character before
    them, so a hit on ``cafe`` in ``Cafe\\u0301`` covers the accent too.
    """
    folded = fold(text)
    if text.isascii():
        identity = list(range(len(text)))
        return folded, identity, [i + 1 for i in identity]
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for index, part in enumerate(_SEGMENTS.split(text)):
        if index % 2 == 0:
            starts.extend(range(position, position + len(part)))
            ends.extend(range(position + 1, position + len(part) + 1))
        elif _JAMO.search(part):
            produced = len(_fold_slow(part))
            starts.extend([position] * produced)
            ends.extend([position + len(part)] * produced)
        else:
            for offset, char in enumerate(part):
                produced = len(_TABLE[ord(char)])
                if produced == 0 and ends:
                    ends[-1] = position + offset + 1
                starts.extend([position + offset] * produced)
                ends.extend([position + offset + 1] * produced)
        position += len(part)
    return folded, starts, ends


def token_stream(folded: str) -> str:
    """The words of folded text joined by single spaces, with a space before and after.

    Matching a term on word boundaries is then a substring search for `` term `` (a prefix
    wildcard searches `` prefix``), which one Aho-Corasick pass does for every term at once.
    ASCII text takes a bytes-translate path about four times faster than the regex; both give
    the same words as ``token_spans`` (a property test holds them to it).
    """
    if folded.isascii():
        marked = (folded + " ").encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii")
        return " " + " ".join(marked.replace("\x01s ", " ").replace("\x01", " ").split()) + " "
    return " " + " ".join(_TOKEN.findall(_POSSESSIVE.sub(" ", folded))) + " "


def token_spans(folded: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets in ``folded`` of each word of ``token_stream(folded)``."""
    spans: list[tuple[int, int]] = []
    position = 0
    for gap in _SPLIT.finditer(folded):
        if gap.start() > position:
            spans.append((position, gap.start()))
        position = gap.end()
    if position < len(folded):
        spans.append((position, len(folded)))
    return spans


def tokens(text: str) -> list[str]:
    """The words a rule sees in ``text``: folded, split on non-word characters, ``'s`` dropped."""
    return token_stream(fold(text)).split()


def words(text: str) -> list[str]:
    """The folded words of a text (hyphens and apostrophes separate words)."""
    return _WORD.findall(fold(text))


def simhash(tokens: list[str], bits: int = 64) -> int:
    """A locality-sensitive signature: similar token sets give signatures a few bits apart."""
    weights = [0] * bits
    for token in tokens:
        h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
        for i in range(bits):
            weights[i] += 1 if (h >> i) & 1 else -1
    return sum(1 << i for i, w in enumerate(weights) if w > 0)
