"""Text folding shared by every stage that compares words (a leaf: imports nothing of ours).

Rules, story fingerprints and identities must agree on what "the same word" is, so the one
folding function lives here: Unicode NFKC, case folding, accents dropped, every dash and quote
variant unified.

Folding is the largest cost of rule matching (PITFALLS item 14), so it is built for speed:

* ASCII text is folded by ``str.lower`` alone, and offsets are the identity;
* text whose non-ASCII characters all fold to lower-case ASCII (curly quotes, dashes, accented
  Latin letters: most wire copy) or to themselves (CJK) takes one ``str.replace`` per distinct
  non-ASCII character, then ``str.lower``; the distinct characters are found at C speed;
* other text is split into ASCII and non-ASCII runs; each non-ASCII character is folded once
  through a growing per-character ``str.translate`` table, so a Cyrillic story costs table
  lookups, not a Unicode normalisation of the whole text;
* the map from folded offsets back to the original text (``OffsetMap``) is only built when a rule
  matched and its hits must be explained, and records only the characters whose fold is not
  exactly one character (usually none: the map is then the identity).

Folding is defined per character (except a character with the marks NFKC composes into it,
conjoining jamo or a kana voicing mark, which is folded as one cluster), so ``fold_map`` can
always say which original characters produced each folded one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from bisect import bisect_right
from functools import lru_cache

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
_IDENTITY = "".join(f"{chr(a)}-{chr(b)}" for a, b in IDENTITY_RANGES)
#: Marks NFKC composes into the character before them: vowel and final jamo, and the kana
#: voicing marks, combining or half-width (``ｶﾞ`` and ``カ\u3099`` are ``ガ``).
_MARKS = "\u1160-\u11ff\ud7b0-\ud7ff\u3099\u309a\uff9e\uff9f"
#: Runs folded by ``_fold_run``: characters not ASCII nor identity, and an identity character
#: (kana, a Hangul syllable) that a mark follows, which composes with it.
_SEGMENTS = re.compile(f"((?:[{_IDENTITY}](?=[{_MARKS}]))?[^\x00-\x7f{_IDENTITY}]+)")
#: Characters NFKC composes with their neighbours: conjoining jamo into Hangul syllables, and
#: voicing marks into kana. A run holding one folds by clusters.
_COMPOSING = re.compile(f"[\u1100-\u11ff\ua960-\ua97f{_MARKS}]")
#: a character with the marks NFKC may compose into it: composition never crosses clusters,
#: so folding cluster by cluster folds the run, and a folded offset maps back to its own
#: cluster, not to the whole run
_CLUSTER = re.compile(f".[{_MARKS}]*", re.DOTALL)
#: Scripts written without spaces between words (Han, kana) and Hangul, whose particles attach to
#: nouns: a term in them matches as a substring (``김정은`` in ``김정은이``), and a change between
#: one of them and any other word character is a word boundary (``ICBM을``, ``NATO首脳会議``).
SPACELESS = (
    "\u1100-\u11ff\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"
)
HAS_SPACELESS = re.compile(f"[{SPACELESS}]")
#: splitting on it (kept) and joining with spaces spaces out every ``SPACELESS`` run: C speed,
#: and measured faster than inserting a space only where a script changes
_SPACELESS_RUNS = re.compile(f"([{SPACELESS}]+)")
_UPPER = re.compile(r"[A-Z]+")
#: a non-word character that is not already a space (rewriting spaces costs a third of the time)
_NON_WORD = re.compile(r"[^\w ]|_")
#: a word: a run of word characters (underscore excluded) all of one side of ``SPACELESS``
_TOKEN = re.compile(f"(?:(?![\\W_])[{SPACELESS}])+|[^\\W_{SPACELESS}]+")
_POSSESSIVE = re.compile(r"'s(?![^\W_])")
#: ASCII letters and digits stay, everything else becomes a space (length preserved).
_ASCII_SPACES = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
_TABLE_LIMIT = 200_000


def _fold_slow(text: str) -> str:
    """The reference fold: NFKC, casefold, accents stripped, dashes and quotes unified."""
    text = unicodedata.normalize("NFKC", text.translate(_UNIFY)).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = _ACCENT.sub("", decomposed)
    return unicodedata.normalize("NFC", stripped).translate(_UNIFY).translate(_STROKES)


#: the fold of one cluster (syllables and kana repeat: a Korean text has a few hundred)
_fold_cluster = lru_cache(maxsize=8192)(_fold_slow)


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
    if _COMPOSING.search(run):
        return "".join(map(_fold_cluster, _CLUSTER.findall(run)))
    return run.translate(_TABLE)


def _char_plan(char: str) -> str | bool | None:
    """How the fast path folds a non-ASCII character.

    ``None``: it folds to itself and has no case (the ``IDENTITY_RANGES``); a string: it folds to
    that lower-case ASCII (a curly quote, a dash, an accented Latin letter, a combining accent);
    ``False``: it needs the segment path (jamo, a voicing mark, or a fold that is not ASCII,
    e.g. Cyrillic).
    """
    code = ord(char)
    if any(low <= code <= high for low, high in IDENTITY_RANGES):
        return None
    if _COMPOSING.match(char):
        return False
    folded = _TABLE[code]
    return folded if folded.isascii() and folded == folded.lower() else False


_PLANS: dict[str, str | bool | None] = {}
_ASCII_BYTES = bytes(range(128))
#: More distinct non-ASCII characters than this and one ``str.replace`` per character stops paying.
_REPLACE_LIMIT = 40


def non_ascii_chars(text: str) -> set[str]:
    """The distinct non-ASCII characters of ``text``, found at C speed (UTF-8 bytes >= 0x80 form
    whole characters, so deleting the ASCII bytes leaves exactly the other characters)."""
    high = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    return set(high.decode("utf-8", "surrogatepass"))


def fold(text: str) -> str:
    """Fold text for comparison: NFKC, casefold, accents dropped, dashes and quotes unified.

    Three paths give the same result: ASCII text is only lower-cased; text whose non-ASCII
    characters all fold to ASCII (wire copy with curly quotes, dashes, accented names) or to
    themselves (CJK) gets one ``str.replace`` per distinct character and ``str.lower``; anything
    else is split into segments and folded run by run.
    """
    return fold_aligned(text)[0]


def fold_aligned(text: str) -> tuple[str, bool]:
    """``fold(text)``, and whether every character folded to exactly one (offsets unchanged).

    The second answer is known for free on the two fast paths and spares explaining a match in
    most wire copy (curly quotes, accented names) the cost of an ``OffsetMap``.
    """
    if "`" in text:  # the one ASCII quote variant, which no path below sees: ``People`s``
        text = text.replace("`", "'")
    if text.isascii():
        return text.lower(), True
    replacements: list[tuple[str, str]] = []
    aligned = True
    for char in non_ascii_chars(text):
        plan = _PLANS.get(char, True)
        if plan is True:
            plan = _PLANS[char] = _char_plan(char) if len(_PLANS) < _TABLE_LIMIT else False
        if plan is False or len(replacements) >= _REPLACE_LIMIT:
            return _fold_segments(text), False
        if plan is not None:
            assert isinstance(plan, str)
            replacements.append((char, plan))
            aligned = aligned and len(plan) == 1
    for char, folded in replacements:
        text = text.replace(char, folded)
    # only ASCII letters have case now: the replacements are lower-case ASCII, the rest caseless
    return text.lower(), aligned


def _fold_segments(text: str) -> str:
    parts = _SEGMENTS.split(text)
    parts[0::2] = [_lower_ascii(p) for p in parts[0::2]]
    parts[1::2] = [_fold_run(p) for p in parts[1::2]]
    return "".join(parts)


def fold_map(text: str) -> tuple[str, list[int], list[int]]:
    """Fold ``text`` and say where each folded character came from (the reference map).

    Returns ``(folded, starts, ends)``: ``folded[i]`` was produced by ``text[starts[i]:ends[i]]``.
    Characters that fold to nothing (combining accents) are attributed to the character before
    them, so a hit on ``cafe`` in ``Cafe\\u0301`` covers the accent too. One list entry per
    character: tests use it to check ``OffsetMap``, the matcher uses ``OffsetMap``.
    """
    folded = fold(text)
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for index, part in enumerate(_SEGMENTS.split(text)):
        if index % 2 == 0:
            starts.extend(range(position, position + len(part)))
            ends.extend(range(position + 1, position + len(part) + 1))
        elif _COMPOSING.search(part):
            for cluster in _CLUSTER.finditer(part):
                produced = len(_fold_cluster(cluster.group()))
                starts.extend([position + cluster.start()] * produced)
                ends.extend([position + cluster.end()] * produced)
        else:
            for offset, char in enumerate(part):
                produced = len(_TABLE[ord(char)])
                if produced == 0 and ends:
                    ends[-1] = position + offset + 1  # an accent belongs to the letter before
                starts.extend([position + offset] * produced)
                ends.extend([position + offset + 1] * produced)
        position += len(part)
    return folded, starts, ends


class OffsetMap:
    """Folded offsets back to original offsets, for explaining hits.

    Almost every character folds to exactly one character (ASCII, curly quotes, dashes,
    accented letters, CJK), and a run of those maps by a shift. Only the characters that fold
    to nothing or to several (a combining accent, ``ß``, a ligature, a cluster of jamo) are
    recorded, as *events* in ``array``s: where each starts in the original and in the folded
    text, and how long it is in each. A folded offset is found by bisecting the events. Text
    with no such character (most wire copy) has no events and maps by identity; building the
    map costs a scan of the distinct non-ASCII characters, not a Python step per character.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.original = array("l")
        self.original_lengths = array("l")
        self.folded = array("l")
        self.folded_lengths = array("l")
        if text.isascii():
            return
        chars = non_ascii_chars(text)
        if any(_COMPOSING.match(c) for c in chars):
            events = _segment_events(text)
        else:
            events = []
            for char in chars:
                produced = len(_TABLE[ord(char)])
                if produced != 1:
                    at = text.find(char)
                    while at != -1:
                        events.append((at, 1, produced))
                        at = text.find(char, at + 1)
            events.sort()
        shift = 0
        for at, length, produced in events:
            self.original.append(at)
            self.original_lengths.append(length)
            self.folded.append(at + shift)
            self.folded_lengths.append(produced)
            shift += produced - length

    def _locate(self, folded: int) -> tuple[int, int]:
        """The original ``[start, end)`` of the character that produced ``folded[folded]``."""
        # the last event starting at or before ``folded``: an event that produced nothing
        # shares its folded start with the next one, which is the one that owns the offset
        k = bisect_right(self.folded, folded) - 1
        if k < 0:
            return folded, folded + 1
        inside = folded - self.folded[k]
        if inside < self.folded_lengths[k]:
            return self.original[k], self.original[k] + self.original_lengths[k]
        position = self.original[k] + self.original_lengths[k] + inside - self.folded_lengths[k]
        return position, position + 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``[start, end)`` of ``folded[start:end]`` (``end > start``)."""
        if not self.folded:
            original_start, original_end = start, end
        else:
            original_start = self._locate(start)[0]
            original_end = self._locate(end - 1)[1]
        text = self.text
        while original_end < len(text) and not text[original_end].isascii():
            if _TABLE[ord(text[original_end])]:
                break
            original_end += 1  # a trailing accent that folded away belongs to the hit
        return original_start, original_end


def _segment_events(text: str) -> list[tuple[int, int, int]]:
    """Events (original start, original length, folded length) of text with ``_COMPOSING``
    characters, whose runs fold cluster by cluster (NFKC composes each)."""
    events: list[tuple[int, int, int]] = []
    position = 0
    for index, part in enumerate(_SEGMENTS.split(text)):
        if index % 2 == 1:
            if _COMPOSING.search(part):
                for cluster in _CLUSTER.finditer(part):
                    length, produced = len(cluster.group()), len(_fold_cluster(cluster.group()))
                    if (length, produced) != (1, 1):
                        events.append((position + cluster.start(), length, produced))
            else:
                for offset, char in enumerate(part):
                    produced = len(_TABLE[ord(char)])
                    if produced != 1:
                        events.append((position + offset, 1, produced))
        position += len(part)
    return events


def marked(folded: str) -> str:
    """``folded`` with every character that is not part of a word turned into a space.

    Same length as ``folded``, so word offsets are folded offsets. Separators are non-word
    characters (underscore included) and a possessive ``'s`` ending (``North Korea's`` holds the
    words ``north korea``). ASCII text takes a bytes-translate path.
    """
    if "'s" in folded:
        folded = _POSSESSIVE.sub("  ", folded)
    if folded.isascii():
        return folded.encode("ascii").translate(_ASCII_SPACES).decode("ascii")
    return _NON_WORD.sub(" ", folded)


class TokenStream:
    """The words of folded text joined by single spaces, with a space before and after.

    Matching a term on word boundaries is then a substring search for `` term `` (a prefix
    wildcard searches `` prefix``), which one Aho-Corasick pass does for every term at once.

    The stream is made from ``marked(folded)`` by halving runs of spaces until none is left
    (``split("  ")`` / ``" ".join``, a few C-level passes), after putting spaces around each
    run of ``SPACELESS`` script, so it is a word apart from Latin letters (``icbm을`` is
    ``icbm 을``). The padded ``marked`` text is kept: it has the offsets of ``folded`` (plus
    one), so explanations find hits there.
    """

    __slots__ = ("marked", "spaceless", "text")

    def __init__(self, folded: str) -> None:
        padded = " " + marked(folded) + " "
        #: ``marked(folded)`` padded with one space each side: offset ``i`` here is ``i - 1``
        #: in ``folded``
        self.marked = padded
        #: the text has ``SPACELESS`` characters: in ``marked`` a word may also end where the
        #: script changes, with no space (the stream has one there)
        self.spaceless = not padded.isascii() and HAS_SPACELESS.search(padded) is not None
        if self.spaceless:
            padded = " ".join(_SPACELESS_RUNS.split(padded))
        while "  " in padded:
            padded = " ".join(padded.split("  "))
        self.text = padded


def is_spaceless(char: str) -> bool:
    """Whether a character is of a script written without spaces (``SPACELESS``)."""
    return HAS_SPACELESS.match(char) is not None


def token_stream(folded: str) -> str:
    """The words of ``folded`` joined by single spaces, padded (``TokenStream(folded).text``)."""
    return TokenStream(folded).text


def token_spans(folded: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets in ``folded`` of each word of ``token_stream(folded)``."""
    return [m.span() for m in _TOKEN.finditer(_POSSESSIVE.sub("  ", folded))]


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
