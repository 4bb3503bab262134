"""Matching one article against every compiled rule: pure, and fast where it counts.

Per article: each field is folded once (``monitor.text.fold``, fast paths for ASCII and for text
whose non-ASCII characters fold to ASCII) and turned into a token stream; one Aho-Corasick pass
per field finds every term of every rule; only the rules triggered by a found term (plus the few
that need no term) are evaluated; only the rules that matched are explained.

Explaining a match lists, for each of its positive terms and each field it was found in, the first
``MAX_HITS_PER_TERM`` occurrences (by position) as Hits with offsets into the original field text,
and a snippet around the first hit. The occurrences of the few terms of matched rules are found
again in the field's ``marked`` text, which has the folded text's offsets (``str.find`` for one
word, a regex for a phrase; C speed, stopping after the cap): cheaper than grouping every
automaton hit by term in Python. An offset map to the original text is built only for a field
whose fold changed some character's length, and only when it has a hit to explain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from operator import itemgetter
from typing import Any

from monitor.rules.detect import detect_language, primary_subtag
from monitor.rules.explain import FieldText, construct, lead_snippet, snippet
from monitor.rules.model import Rule
from monitor.schema import FIELDS, Article, Hit, Match
from monitor.text import SPACELESS, TokenStream, fold_aligned, is_spaceless

FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}
ANY_FIELD = 3
KIND_WORDS = 0
KIND_PREFIX = 1
KIND_SUBSTRING = 2
#: Hits listed per term and field in an explanation: the first occurrences, by position. A term
#: found more often is still one hit of the rule; listing all 40 "said"s helps no reader.
MAX_HITS_PER_TERM = 5

Side = tuple[tuple[int, tuple[int, ...]], ...]
ExplainedTerm = tuple[str, int, tuple[int, ...]]
Present = tuple[set[int], set[int], set[int], set[int]]
_SECOND = itemgetter(1)
Evaluate = Callable[[Present, "Context"], bool]


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its compiled test and what its explanation looks for."""

    rule: Rule
    evaluate: Evaluate
    feeds: frozenset[str]
    languages: frozenset[str]
    #: what its explanation lists: (a positive term as written in the rule, a field index, the
    #: term ids it stands for: one, or one per alias of an entity)
    explain: tuple[ExplainedTerm, ...]
    #: it matches whenever one of its trigger terms was found (``drone OR @uav`` in any field):
    #: ``evaluate`` need not run
    found_means_matched: bool = False


@dataclass(slots=True)
class Context:
    """What one article's match needs beyond the atom set: its fields, for NEAR and explanations."""

    matcher: Matcher
    fields: list[FieldText]
    #: the term ids found in title, summary, content, and in any field
    present: Present
    _positions: dict[tuple[int, int], list[tuple[int, int, int, int]]] = field(default_factory=dict)
    #: explained terms, shared by the rules that use the same term (entities especially)
    _term_hits: dict[ExplainedTerm, list[Hit]] = field(default_factory=dict)
    _snippets: dict[tuple[int, int, int], str] = field(default_factory=dict)

    def occurrences(self, field_index: int, sid: int) -> list[int]:
        """Stream offsets where the key of term ``sid`` starts in a field (NEAR needs them all)."""
        key = self.matcher.keys[sid]
        stream = self.fields[field_index].stream
        found: list[int] = []
        at = stream.find(key)
        while at != -1:
            found.append(at)
            at = stream.find(key, at + 1)  # keys of adjacent words share a space
        return found

    def term_hits(self, term: ExplainedTerm) -> list[Hit]:
        """The Hits of a term in a field: its first ``MAX_HITS_PER_TERM`` occurrences (over all
        its aliases), by position (cached per article)."""
        hits = self._term_hits.get(term)
        if hits is None:
            label, field_index, sids = term
            if len(sids) == 1:  # found: the caller checked
                spans = self.folded_spans(field_index, sids[0], MAX_HITS_PER_TERM)
            else:
                present = self.present[field_index]
                spans = []
                for sid in sids:
                    if sid in present:
                        spans.extend(self.folded_spans(field_index, sid, MAX_HITS_PER_TERM))
                if len(spans) > 1:
                    spans.sort()
                    del spans[MAX_HITS_PER_TERM:]
            hits = self._term_hits[term] = self.fields[field_index].hits(label, spans)
        return hits

    def folded_spans(self, field_index: int, sid: int, limit: int) -> list[tuple[int, int]]:
        """``[start, end)`` in the folded text of the first ``limit`` occurrences of a term.

        Found in the field's padded ``marked`` text, where an offset is the folded offset plus
        one: a one-word term by ``str.find``, a term spanning words (or any term, in a field
        where scripts without spaces meet others) by its ``Matcher.pattern``. Occurrences may
        overlap, as in the token stream.
        """
        matcher = self.matcher
        tokens = self.fields[field_index].tokens
        text, kind = tokens.marked, matcher.kinds[sid]
        spans: list[tuple[int, int]] = []
        # in a field with SPACELESS text a word may end where the script changes: regex only
        if matcher.one_word[sid] and (kind == KIND_SUBSTRING or not tokens.spaceless):
            key = matcher.keys[sid]
            at = text.find(key)
            if kind == KIND_WORDS:  # the common case, flat
                length = len(key) - 2
                while at != -1:
                    spans.append((at, at + length))
                    if len(spans) == limit:
                        break
                    at = text.find(key, at + 1)
                return spans
            while at != -1:
                if kind == KIND_PREFIX:
                    spans.append((at, text.index(" ", at + len(key)) - 1))
                else:
                    spans.append((at - 1, at - 1 + len(key)))
                if len(spans) == limit:
                    break
                at = text.find(key, at + 1)  # adjacent words share a space
            return spans
        search = matcher.pattern(sid, tokens.spaceless).search
        found = search(text)
        while found is not None:
            start, end = found.span(1)
            spans.append((start - 1, end - 1))
            if len(spans) == limit:
                break
            found = search(text, found.start() + 1)
        return spans

    def snippet(self, field_index: int, start: int, end: int) -> str:
        """The snippet around a hit (cached: many rules share their first hit)."""
        key = (field_index, start, end)
        found = self._snippets.get(key)
        if found is None:
            found = self._snippets[key] = snippet(self.fields[field_index].original, start, end)
        return found

    def stream_span(self, field_index: int, at: int, sid: int) -> tuple[int, int]:
        """The ``[start, end)`` in the stream of the words an occurrence covers (prefixes: the
        whole word)."""
        kind, key = self.matcher.kinds[sid], self.matcher.keys[sid]
        end = at + len(key)
        if kind == KIND_WORDS:
            return at + 1, end - 1
        if kind == KIND_PREFIX:
            return at + 1, self.fields[field_index].stream.index(" ", end)
        return at + (key[0] == " "), end - (key[-1] == " ")

    def positions(self, field_index: int, sid: int) -> list[tuple[int, int, int, int]]:
        """Where each occurrence of a term in a field is, for NEAR: its first and last word's
        positions, and its ``[start, end)`` in the stream (two occurrences inside one run of
        Chinese, Japanese or Korean share a word: their characters tell their order)."""
        cached = self._positions.get((field_index, sid))
        if cached is None:
            cached = []
            if sid in self.present[field_index]:
                stream = self.fields[field_index].stream
                words = -1  # spaces before an offset, less the padding: its word's index
                counted = 0
                for at in self.occurrences(field_index, sid):
                    start, stop = self.stream_span(field_index, at, sid)
                    words += stream.count(" ", counted, start)
                    last = words + stream.count(" ", start, stop - 1)
                    cached.append((words, last, start, stop))
                    counted = start
            self._positions[(field_index, sid)] = cached
        return cached


def near(x: Context, left: Side, right: Side, distance: int, ordered: bool) -> bool:
    """True when a left and a right hit in one field have at most ``distance`` words between.

    The two must not overlap; within one run of a script written without spaces they are
    next to each other (no word between), so ``ミサイル NEAR/3 発射`` holds in ``ミサイルを発射``.
    """
    for field_index in range(3):
        lefts = [p for sid, fs in left if field_index in fs for p in x.positions(field_index, sid)]
        if not lefts:
            continue
        rights = [
            p for sid, fs in right if field_index in fs for p in x.positions(field_index, sid)
        ]
        for l_first, l_last, l_start, l_end in lefts:
            for r_first, r_last, r_start, r_end in rights:
                if l_end <= r_start and r_first - l_last - 1 <= distance:
                    return True
                if not ordered and r_end <= l_start and l_first - r_last - 1 <= distance:
                    return True
    return False


def marked_pattern(key: str, kind: int, spaceless: bool) -> str:
    """The regex of an automaton key over ``marked`` text, the occurrence in group 1.

    Between two of its words ``marked`` has a run of spaces, or nothing where the script changes
    (``icbm 級`` is ``icbm級`` there). In a field with no ``SPACELESS`` text a word starts and
    ends at a space (``marked`` is padded). In one with such text it may also start and end
    where the script changes; the test for its start follows its first word (a look-behind of
    fixed width), so the pattern still starts with a literal, which the regex engine finds
    fast (a look-behind first made it try every position: explaining a match in such a field
    cost several times more).
    """
    words = key.split()
    first, rest = re.escape(words[0]), ""
    for before, after in pairwise(words):
        script_changes = is_spaceless(before[-1]) != is_spaceless(after[0])
        rest += (" *" if script_changes else " +") + re.escape(after)
    edge = f"[ {SPACELESS}]"
    starts = f"(?<={edge}{first})"  # the first word starts at a space or a change of script
    if kind == KIND_SUBSTRING:  # a Latin word at either end is whole (``compile.search_key``)
        lead = starts if key.startswith(" ") else ""
        trail = f"(?={edge})" if key.endswith(" ") else ""
        return f"({first}{lead}{rest}){trail}"
    if not spaceless:
        body = first + rest
        return f" ({body})(?= )" if kind == KIND_WORDS else f" ({body}[^ ]*)"
    if kind == KIND_WORDS:
        return f"({first}{starts}{rest})(?={edge})"
    return f"({first}{starts}{rest}[^ {SPACELESS}]*)"


@dataclass
class Matcher:
    """All enabled rules, compiled once (``compile_rules``); ``match`` is pure."""

    automaton: Any
    kinds: list[int]
    #: term id -> whether its key is one word (or one run of CJK): spans never shortened
    one_word: list[bool]
    #: term id -> its automaton key (`` word ``, `` prefix``, or a bare substring)
    keys: list[str]
    rules: list[CompiledRule]
    #: term id -> the rules whose cover holds it (``compile.cover``)
    triggers: dict[int, tuple[int, ...]]
    always: tuple[int, ...]

    _patterns: dict[tuple[int, bool], re.Pattern[str]] = field(default_factory=dict, repr=False)
    #: rule index -> what deciding tests, flat for the hot loop: its feeds, its languages, and
    #: its compiled test (None when finding a trigger term is the rule matching)
    checks: list[tuple[frozenset[str], frozenset[str], Evaluate | None]] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.checks = [
            (c.feeds, c.languages, None if c.found_means_matched else c.evaluate)
            for c in self.rules
        ]

    def pattern(self, sid: int, spaceless: bool = False) -> re.Pattern[str]:
        """A term as a regex over ``marked`` text, its occurrence in group 1 (compiled on first
        use, then kept): ``marked_pattern``."""
        found = self._patterns.get((sid, spaceless))
        if found is None:
            source = marked_pattern(self.keys[sid], self.kinds[sid], spaceless)
            found = self._patterns[(sid, spaceless)] = re.compile(source)
        return found

    def match(self, article: Article, feed_tags: Collection[str] = ()) -> list[Match]:
        """Every rule the article matches, each explained, in rule order."""
        context, matched = self._decide(article, feed_tags)
        if not matched:
            return []
        assert context is not None
        return [self._explain(article.id, self.rules[index], context) for index in matched]

    def matching_rules(self, article: Article, feed_tags: Collection[str] = ()) -> list[str]:
        """The ids of the rules the article matches, in rule order, without explanations.

        The same decision as ``match``; the benchmark uses it to measure what explaining costs.
        """
        return [self.rules[index].rule.id for index in self._decide(article, feed_tags)[1]]

    def _decide(
        self, article: Article, feed_tags: Collection[str]
    ) -> tuple[Context | None, list[int]]:
        texts = (article.title, article.summary, article.content)
        fields: list[FieldText] = []
        per_field: list[set[int]] = [set(), set(), set()]
        automaton = self.automaton
        for index, text in enumerate(texts):
            folded, aligned = fold_aligned(text)
            tokens = TokenStream(folded)
            fields.append(FieldText(FIELDS[index], text, folded, tokens, aligned))
            if automaton is not None and len(tokens.text) > 2:
                per_field[index] = set(map(_SECOND, automaton.iter(tokens.text)))
        found = per_field[0] | per_field[1] | per_field[2]
        present = (per_field[0], per_field[1], per_field[2], found)
        candidates = set(chain.from_iterable(filter(None, map(self.triggers.get, found))))
        candidates.update(self.always)
        if not candidates:
            return None, []
        context = Context(self, fields, present)
        names = {article.feed, *feed_tags}
        language: list[str | None] = []
        matched: list[int] = []
        checks = self.checks
        for index in candidates:
            feeds, languages, evaluate = checks[index]
            if feeds and feeds.isdisjoint(names):
                continue
            if languages:
                if not language:
                    language.append(_article_language(article, fields))
                if language[0] not in languages:
                    continue
            if evaluate is None or evaluate(present, context):
                matched.append(index)
        matched.sort()  # rule order
        return context, matched

    def _explain(self, article_id: str, compiled: CompiledRule, context: Context) -> Match:
        present = context.present
        found = [
            (term[1], hits)
            for term in compiled.explain
            if not present[term[1]].isdisjoint(term[2]) and (hits := context.term_hits(term))
        ]
        if len(found) == 1:  # the common case: hits of one term, in order, distinct
            first_field, hits = found[0]
            hits = list(hits)
        else:
            hits_at: dict[tuple[int, int, int], Hit] = {}
            for field_index, term_hits in found:
                for hit in term_hits:
                    hits_at.setdefault((field_index, hit.start, hit.end), hit)
            hits = [hits_at[key] for key in sorted(hits_at)]
            first_field = FIELD_INDEX[hits[0].field] if hits else 0
        if hits:
            first = hits[0]
            summary = context.snippet(first_field, first.start, first.end)
        else:
            summary = lead_snippet(context.fields)
        return construct(
            Match,
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
