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
from bisect import bisect_right
from itertools import accumulate, compress, repeat
from operator import add

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
#: ASCII letters and digits stay, everything else becomes a space (length preserved).
_ASCII_SPACES = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
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
                    ends[-1] = position + offset + 1  # an accent belongs to the letter before
                starts.extend([position + offset] * produced)
                ends.extend([position + offset + 1] * produced)
        position += len(part)
    return folded, starts, ends


def _segment_detail(part: str, position: int) -> tuple[list[int], list[int]]:
    """Per folded character of a non-ASCII segment: the original span it came from."""
    if _JAMO.search(part):
        produced = len(_fold_slow(part))
        return [position] * produced, [position + len(part)] * produced
    starts: list[int] = []
    ends: list[int] = []
    for offset, char in enumerate(part):
        produced = len(_TABLE[ord(char)])
        if produced == 0 and ends:
            ends[-1] = position + offset + 1
        starts.extend([position + offset] * produced)
        ends.extend([position + offset + 1] * produced)
    return starts, ends


class OffsetMap:
    """Folded offsets back to original offsets, kept per segment rather than per character.

    ASCII and caseless CJK segments fold one character to one, so they map by a shift; only
    the other segments (a curly quote, an accented name) keep per-character detail. Building
    one costs a split of the text, not a list entry per character.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.folded_starts: list[int] = []
        self.original_starts: list[int] = []
        self.detail: list[tuple[list[int], list[int]] | None] = []
        folded_at = original_at = 0
        for index, part in enumerate(_SEGMENTS.split(text)):
            if not part:
                continue
            self.folded_starts.append(folded_at)
            self.original_starts.append(original_at)
            if index % 2 == 0:
                self.detail.append(None)
                folded_at += len(part)
            else:
                starts, ends = _segment_detail(part, original_at)
                self.detail.append((starts, ends))
                folded_at += len(starts)
            original_at += len(part)

    def _locate(self, folded: int) -> tuple[int, int]:
        # the last segment starting at or before ``folded``: a segment that folded to nothing
        # shares its start with the next one, which is the one that owns the offset
        index = bisect_right(self.folded_starts, folded) - 1
        detail = self.detail[index]
        offset = folded - self.folded_starts[index]
        if detail is None or offset >= len(detail[0]):
            position = self.original_starts[index] + offset
            return position, position + 1
        return detail[0][offset], detail[1][offset]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``[start, end)`` of ``folded[start:end]`` (``end > start``)."""
        original_start = self._locate(start)[0]
        original_end = self._locate(end - 1)[1]
        text = self.text
        while original_end < len(text) and not text[original_end].isascii():
            if _TABLE[ord(text[original_end])]:
                break
            original_end += 1  # a trailing accent that folded away belongs to the hit
        return original_start, original_end


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


def token_starts(folded: str) -> tuple[list[int], list[int]]:
    """Where each word of ``token_stream(folded)`` starts in ``folded``, and its length.

    Only needed to explain a match. ASCII text is split with C-level iteration (translate,
    split, accumulate, compress) instead of one regex match object per word.
    """
    blanked = _POSSESSIVE.sub("  ", folded)
    if blanked.isascii():
        pieces = blanked.encode("ascii").translate(_ASCII_SPACES).decode("ascii").split(" ")
        lengths = list(map(len, pieces))
        starts = list(compress(accumulate(map(add, lengths, repeat(1)), initial=0), lengths))
        return starts, list(filter(None, lengths))
    matches = list(_TOKEN.finditer(blanked))
    return [m.start() for m in matches], [m.end() - m.start() for m in matches]


def token_spans(folded: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets in ``folded`` of each word of ``token_stream(folded)``."""
    starts, lengths = token_starts(folded)
    return [(start, start + length) for start, length in zip(starts, lengths, strict=True)]


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
