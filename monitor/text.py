"""Text folding shared by every stage that compares words (a leaf: imports nothing of ours).

Rules, story fingerprints and identities must agree on what "the same word" is, so the one
folding function lives here: Unicode NFKC, case folding, accents dropped, every dash and quote
variant unified.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u00ad"
_QUOTES = "\u2018\u2019\u201a\u201b\u2032\u02bc\uff07`\u00b4"
_DQUOTES = "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\uff02"
_UNIFY = str.maketrans(
    {**dict.fromkeys(_DASHES, "-"), **dict.fromkeys(_QUOTES, "'"), **dict.fromkeys(_DQUOTES, '"')}
)
_WORD = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Fold text for comparison: NFKC, casefold, accents dropped, dashes and quotes unified."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text.translate(_UNIFY)).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


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
