"""Explanations: turning a hit in the folded token stream back into the article's own text.

Only matched rules are explained, so the offset maps built here (``fold_map``, token spans) are
computed for a field only when something in it matched: the common case, an article that
matches nothing, never pays for them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from operator import add

from monitor.schema import Hit
from monitor.text import OffsetMap, token_starts

SNIPPET_BEFORE = 60
SNIPPET_AFTER = 140
_SPACE = re.compile(r"\s+")


@dataclass
class FieldText:
    """One field of one article: its original text, folded text and token stream."""

    name: str
    original: str
    folded: str
    stream: str
    _stream_starts: list[int] | None = field(default=None, repr=False)
    _folded_starts: list[int] | None = field(default=None, repr=False)
    _map: OffsetMap | None = field(default=None, repr=False)

    def _prepare(self) -> tuple[list[int], list[int]]:
        if self._stream_starts is None or self._folded_starts is None:
            folded_starts, lengths = token_starts(self.folded)
            # word k starts in the stream after the padding space and k words, each plus a space
            self._stream_starts = list(accumulate(map(add, lengths, repeat(1)), initial=1))
            self._folded_starts = folded_starts
            if not self.original.isascii():
                self._map = OffsetMap(self.original)
        return self._stream_starts, self._folded_starts

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map ``stream[start:end]`` (inside words) to offsets in the original text."""
        stream_starts, folded_starts = self._prepare()
        k = bisect_right(stream_starts, start) - 1
        folded_start = folded_starts[k] + (start - stream_starts[k])
        k2 = bisect_right(stream_starts, end - 1) - 1
        folded_end = folded_starts[k2] + (end - 1 - stream_starts[k2]) + 1
        if self._map is None:  # ASCII: folding kept every offset
            return folded_start, folded_end
        return self._map.span(folded_start, folded_end)

    def hit(self, term: str, start: int, end: int) -> Hit:
        """A Hit for ``stream[start:end]``, with offsets and text of the original."""
        o_start, o_end = self.original_span(start, end)
        return Hit(
            term=term, field=self.name, start=o_start, end=o_end, text=self.original[o_start:o_end]
        )


def snippet(text: str, start: int, end: int) -> str:
    """The text around ``[start, end)``, cut at word boundaries, whitespace collapsed."""
    left = max(0, start - SNIPPET_BEFORE)
    right = min(len(text), end + SNIPPET_AFTER)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    body = _SPACE.sub(" ", text[left:right]).strip()
    return ("…" if left > 0 else "") + body + ("…" if right < len(text) else "")


def lead_snippet(fields: list[FieldText]) -> str:
    """A snippet for a match without positive hits (a rule of NOTs): the start of the story."""
    for f in fields:
        if f.original.strip():
            return snippet(f.original, 0, 0)
    return ""
