"""Explanations: turning a hit in the folded token stream back into the article's own text.

Only matched rules are explained, so the offset maps built here (``fold_map``, token spans) are
computed for a field only when something in it matched: the common case, an article that
matches nothing, never pays for them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from monitor.schema import Hit
from monitor.text import fold_map, token_spans

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
    _maps: tuple[list[int], list[int]] | None = field(default=None, repr=False)
    _stream_starts: list[int] | None = field(default=None, repr=False)
    _folded_spans: list[tuple[int, int]] | None = field(default=None, repr=False)

    def _prepare(self) -> tuple[list[int], list[tuple[int, int]], list[int], list[int]]:
        if self._maps is None or self._stream_starts is None or self._folded_spans is None:
            _, starts, ends = fold_map(self.original)
            self._maps = (starts, ends)
            spans = token_spans(self.folded)
            stream_starts: list[int] = []
            position = 1
            for start, end in spans:
                stream_starts.append(position)
                position += end - start + 1
            self._stream_starts = stream_starts
            self._folded_spans = spans
        return self._stream_starts, self._folded_spans, self._maps[0], self._maps[1]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map ``stream[start:end]`` (inside words) to offsets in the original text."""
        stream_starts, spans, starts, ends = self._prepare()
        k = bisect_right(stream_starts, start) - 1
        folded_start = spans[k][0] + (start - stream_starts[k])
        k2 = bisect_right(stream_starts, end - 1) - 1
        folded_end = spans[k2][0] + (end - 1 - stream_starts[k2]) + 1
        return starts[folded_start], ends[folded_end - 1]

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
