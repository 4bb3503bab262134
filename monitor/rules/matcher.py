"""Matching one article against every compiled rule: pure, and fast where it counts.

Per article: each field is folded once (``monitor.text.fold``, ASCII fast path) and turned into a
token stream; one Aho-Corasick pass per field finds every term of every rule; only the rules
triggered by a found term (plus the few that need no term) are evaluated; only the rules that
matched are explained, and only then are offset maps computed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.rules.detect import detect_language, primary_subtag
from monitor.rules.explain import FieldText, lead_snippet, snippet
from monitor.rules.model import Rule
from monitor.schema import FIELDS, Article, Hit, Match
from monitor.text import fold, token_stream

FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}
ANY_FIELD = 3
KIND_WORDS = 0
KIND_PREFIX = 1
KIND_SUBSTRING = 2

Side = tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its compiled test and what its explanation looks for."""

    rule: Rule
    evaluate: Callable[[set[int], Context], bool]
    feeds: frozenset[str]
    languages: frozenset[str]
    #: term id -> (label as written in the rule, field indexes) of its positive terms
    explain: dict[int, list[tuple[str, tuple[int, ...]]]]


@dataclass
class Context:
    """What one article's match needs beyond the atom set: its fields and their hits."""

    matcher: Matcher
    fields: list[FieldText]
    #: per field index: (stream end offset, term id) of every automaton hit
    hits: list[list[tuple[int, int]]]
    _positions: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)
    _by_sid: dict[int, list[tuple[int, int]]] | None = None
    #: explained hits, shared by the rules that use the same term (entities especially)
    _explained: dict[tuple[int, int, int, str], Hit] = field(default_factory=dict)
    _snippets: dict[tuple[int, int, int], str] = field(default_factory=dict)

    def explained_hit(self, field_index: int, end: int, sid: int, label: str) -> Hit:
        """The Hit of one automaton hit, labelled as the rule wrote the term (cached)."""
        key = (field_index, end, sid, label)
        hit = self._explained.get(key)
        if hit is None:
            start, stop = self.stream_span(field_index, end, sid)
            hit = self._explained[key] = self.fields[field_index].hit(label, start, stop)
        return hit

    def snippet(self, field_index: int, start: int, end: int) -> str:
        """The snippet around a hit (cached: many rules share their first hit)."""
        key = (field_index, start, end)
        found = self._snippets.get(key)
        if found is None:
            found = self._snippets[key] = snippet(self.fields[field_index].original, start, end)
        return found

    def hits_by_term(self) -> dict[int, list[tuple[int, int]]]:
        """term id -> (field index, stream end) of its hits, grouped once per article."""
        if self._by_sid is None:
            grouped: dict[int, list[tuple[int, int]]] = {}
            for field_index, field_hits in enumerate(self.hits):
                for end, sid in field_hits:
                    grouped.setdefault(sid, []).append((field_index, end))
            self._by_sid = grouped
        return self._by_sid

    def stream_span(self, field_index: int, end: int, sid: int) -> tuple[int, int]:
        """The ``[start, end)`` in the stream of the words a hit covers (prefixes: whole word)."""
        kind = self.matcher.kinds[sid]
        start = end - self.matcher.key_lengths[sid] + 1
        if kind == KIND_WORDS:
            return start + 1, end
        if kind == KIND_PREFIX:
            return start + 1, self.fields[field_index].stream.index(" ", end)
        return start, end + 1

    def positions(self, field_index: int, sid: int) -> list[tuple[int, int]]:
        """Word positions (first, last) of each hit of a term in a field, for NEAR."""
        cached = self._positions.get((field_index, sid))
        if cached is None:
            stream = self.fields[field_index].stream
            cached = []
            for end, hit_sid in self.hits[field_index]:
                if hit_sid == sid:
                    start, stop = self.stream_span(field_index, end, sid)
                    cached.append(
                        (stream.count(" ", 0, start) - 1, stream.count(" ", 0, stop - 1) - 1)
                    )
            self._positions[(field_index, sid)] = cached
        return cached


def near(x: Context, left: Side, right: Side, distance: int, ordered: bool) -> bool:
    """True when a left and a right hit in one field have at most ``distance`` words between."""
    for field_index in range(3):
        lefts = [p for sid, fs in left if field_index in fs for p in x.positions(field_index, sid)]
        if not lefts:
            continue
        rights = [
            p for sid, fs in right if field_index in fs for p in x.positions(field_index, sid)
        ]
        for l_first, l_last in lefts:
            for r_first, r_last in rights:
                if 0 <= r_first - l_last - 1 <= distance:
                    return True
                if not ordered and 0 <= l_first - r_last - 1 <= distance:
                    return True
    return False


@dataclass
class Matcher:
    """All enabled rules, compiled once (``compile_rules``); ``match`` is pure."""

    automaton: Any
    kinds: list[int]
    key_lengths: list[int]
    rules: list[CompiledRule]
    triggers: dict[int, tuple[int, ...]]
    always: tuple[int, ...]

    def match(self, article: Article, feed_tags: Collection[str] = ()) -> list[Match]:
        """Every rule the article matches, each explained, in rule order."""
        texts = (article.title, article.summary, article.content)
        fields: list[FieldText] = []
        hits: list[list[tuple[int, int]]] = [[], [], []]
        present: set[int] = set()
        candidates: set[int] = set(self.always)
        triggers = self.triggers
        for index, text in enumerate(texts):
            folded = fold(text)
            stream = token_stream(folded)
            fields.append(FieldText(FIELDS[index], text, folded, stream))
            if self.automaton is None or len(stream) < 3:
                continue
            found = list(self.automaton.iter(stream))
            if not found:
                continue
            hits[index] = found
            sids = {sid for _, sid in found}
            present.update([sid * 4 + index for sid in sids])
            present.update([sid * 4 + ANY_FIELD for sid in sids])
            for sid in sids:
                triggered = triggers.get(sid)
                if triggered:
                    candidates.update(triggered)
        if not candidates:
            return []
        context = Context(self, fields, hits)
        names = {article.feed, *feed_tags}
        language: list[str | None] = []
        matches: list[Match] = []
        for index in sorted(candidates):
            compiled = self.rules[index]
            if compiled.feeds and compiled.feeds.isdisjoint(names):
                continue
            if compiled.languages:
                if not language:
                    language.append(_article_language(article, fields))
                if language[0] not in compiled.languages:
                    continue
            if compiled.evaluate(present, context):
                matches.append(self._explain(article.id, compiled, context))
        return matches

    def _explain(self, article_id: str, compiled: CompiledRule, context: Context) -> Match:
        found: dict[tuple[int, int, int], Hit] = {}
        by_term = context.hits_by_term()
        for sid, labels in compiled.explain.items():
            for field_index, end in by_term.get(sid, ()):
                for label, field_indexes in labels:
                    if field_index not in field_indexes:
                        continue
                    hit = context.explained_hit(field_index, end, sid, label)
                    found.setdefault((field_index, hit.start, hit.end), hit)
                    break
        hits = [found[key] for key in sorted(found)]
        if hits:
            first = hits[0]
            summary = context.snippet(FIELD_INDEX[first.field], first.start, first.end)
        else:
            summary = lead_snippet(context.fields)
        return Match(
            article_id=article_id,
            rule=compiled.rule.id,
            severity=compiled.rule.severity.name,
            hits=hits,
            snippet=summary,
        )

    def match_all(self, articles: Sequence[Article]) -> list[Match]:
        """Every match of every article, in order."""
        return [m for article in articles for m in self.match(article)]


def _article_language(article: Article, fields: list[FieldText]) -> str | None:
    """The declared language's primary subtag, else a guess from the text."""
    declared = primary_subtag(article.language)
    if declared:
        return declared
    return detect_language(" ".join(f.folded for f in fields))
