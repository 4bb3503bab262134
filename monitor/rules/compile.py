"""Compiling rules: every term of every rule into one Aho-Corasick automaton, every rule into a
small Python function over the set of terms found.

Why this shape (PITFALLS item 14): trying one regex per rule costs time proportional to the
number of rules; one automaton pass costs time proportional to the text. After the pass only the
rules indexed under a term that was found (their *trigger* terms) are evaluated, plus the few
rules that can match with no term present at all (``NOT opinion``).

Keys live in the token stream of ``monitor.text.token_stream`` (words joined by single spaces,
padded): a word or phrase is searched as `` word ``, so it only matches whole words; a prefix
``drone*`` as `` drone``; a term in a script written without spaces (Chinese, Japanese) or in
Korean (particles attach to nouns) as a bare substring.

A rule becomes ``def _rN(p, x): return <expression>``, compiled in one batch: ``p`` is the set of
term ids found per field (``p[0]`` title, ``p[1]`` summary, ``p[2]`` content, ``p[3]`` any
field: sets built at C speed from the automaton's output), ``x`` the match context
for NEAR. Only integers and our own names are ever written into the generated source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import ahocorasick

from monitor.errors import RuleError
from monitor.rules.matcher import (
    ANY_FIELD,
    FIELD_INDEX,
    KIND_PREFIX,
    KIND_SUBSTRING,
    KIND_WORDS,
    CompiledRule,
    Matcher,
    near,
)
from monitor.rules.model import Entity, Rule
from monitor.rules.query import And, Atom, EntityRef, Node, Not, Or, Term, positive_atoms
from monitor.text import HAS_SPACELESS, fold, is_spaceless, token_stream

_COMMON_WORDS = (
    "the a an and of to in is that for with was on are by this from has have it its said be as at"
    " or not but he she they we you i his her their new after over more"
)
_COMMON = frozenset(_COMMON_WORDS.split())


@dataclass(frozen=True)
class SearchKey:
    """A term as the automaton sees it."""

    key: str
    kind: int


def search_key(text: str, prefix: bool = False) -> SearchKey | None:
    """The automaton key of a term, or None when the term has no letters or digits."""
    words = token_stream(fold(text)).strip()
    if not words:
        return None
    if HAS_SPACELESS.search(words):
        # a substring, but a Latin word at either end is whole: "NATO 首脳" is not in "SENATO首脳"
        before = "" if is_spaceless(words[0]) else " "
        after = "" if prefix or is_spaceless(words[-1]) else " "
        return SearchKey(before + words + after, KIND_SUBSTRING)
    if prefix:
        return SearchKey(" " + words, KIND_PREFIX)
    return SearchKey(" " + words + " ", KIND_WORDS)


class _Builder:
    """Collects keys and generated source while walking the rules."""

    def __init__(self, entities: Mapping[str, Entity]) -> None:
        self.entities = entities
        self.keys: dict[str, int] = {}
        self.kinds: list[int] = []
        self.constants: dict[str, object] = {"_near": near}
        self.problems: list[str] = []
        self._by_sid: dict[int, str] = {}
        #: term id -> how many rules use it (positively)
        self.uses: dict[int, int] = {}
        self._cache: dict[tuple[str, bool], frozenset[int]] = {}

    def sid(self, key: SearchKey) -> int:
        found = self.keys.get(key.key)
        if found is None:
            found = self.keys[key.key] = len(self.kinds)
            self.kinds.append(key.kind)
        return found

    def atom_sids(self, atom: Atom, rule: Rule) -> frozenset[int]:
        """The term ids of a term (one) or of an entity (one per alias)."""
        cache_key = (
            ("@" + atom.id, False) if isinstance(atom, EntityRef) else (atom.text, atom.prefix)
        )
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        if isinstance(atom, EntityRef):
            entity = self.entities.get(atom.id)
            if entity is None:
                self.problems.append(f"{rule.position}: unknown entity '@{atom.id}'")
                return frozenset()
            keys = [search_key(alias) for alias in entity.aliases]
        else:
            keys = [search_key(atom.text, atom.prefix)]
        sids = frozenset(self.sid(k) for k in keys if k is not None)
        self._cache[cache_key] = sids
        return sids

    def mask(self, atom: Atom, rule: Rule) -> tuple[int, ...]:
        allowed = set(rule.fields)
        if atom.fields is not None:
            allowed &= atom.fields
        if allowed == set(FIELD_INDEX):
            return (ANY_FIELD,)
        return tuple(sorted(FIELD_INDEX[f] for f in allowed))

    def const(self, value: object) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def expr(self, node: Node, rule: Rule) -> str:
        if isinstance(node, Term | EntityRef):
            sids = self.atom_sids(node, rule)
            if not sids:
                return "False"
            if len(sids) == 1:
                tests = [f"({next(iter(sids))} in p[{f}])" for f in self.mask(node, rule)]
            else:
                name = self.const(sids)
                tests = [f"(not p[{f}].isdisjoint({name}))" for f in self.mask(node, rule)]
            return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"
        if isinstance(node, And):
            return "(" + " and ".join(self.expr(c, rule) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.expr(c, rule) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"(not {self.expr(node.child, rule)})"
        left_side = self.near_side(node.left, rule)
        right_side = self.near_side(node.right, rule)
        # word positions are only computed when both sides were found
        guards = [
            f"(not p[{ANY_FIELD}].isdisjoint({self.const(frozenset(s for s, _ in side))}))"
            for side in (left_side, right_side)
        ]
        left, right = self.const(left_side), self.const(right_side)
        near = f"_near(x, {left}, {right}, {node.distance}, {node.ordered})"
        return f"({guards[0]} and {guards[1]} and {near})"

    def near_side(self, node: Node, rule: Rule) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """(term id, field indexes) pairs; ANY_FIELD expanded, NEAR never spans two fields."""
        members = node.children if isinstance(node, Or) else (node,)
        side: list[tuple[int, tuple[int, ...]]] = []
        for member in members:
            assert isinstance(member, Term | EntityRef)
            mask = self.mask(member, rule)
            fields = (0, 1, 2) if mask == (ANY_FIELD,) else mask
            side.extend((s, fields) for s in sorted(self.atom_sids(member, rule)))
        return tuple(side)

    def cost(self, sid: int) -> float:
        """A guess at how often a term occurs in the stories the rules are written for.

        From the term itself: phrases are rare, short and common words frequent. From the rule
        set: a term many rules share is a topic word (``missile*``, ``sanction*``), the names
        and phrases that make rules specific are used by one or a few; the word-length guess
        alone cannot tell ``inflation`` from a rare name. So the guess is multiplied by the
        number of rules using the term.
        """
        words = self._by_sid[sid].split()
        shared = self.uses.get(sid, 1)
        if len(words) > 1:
            return 0.1 * shared
        if self.kinds[sid] == KIND_PREFIX:
            return 4.0 / max(1, len(words[0])) * shared
        return (10.0 if words[0] in _COMMON else 2.0 / max(1, len(words[0]))) * shared

    def cover(self, node: Node, rule: Rule) -> frozenset[int] | None:
        """Term ids of which at least one is present whenever the rule matches (None: no such).

        A rule is evaluated only for articles in which a term of its cover was found; an AND or
        a NEAR takes the cover of its child with the lowest ``cost``.
        """
        if isinstance(node, Term | EntityRef):
            return self.atom_sids(node, rule)
        if isinstance(node, Or):
            union: set[int] = set()
            for child in node.children:
                sub = self.cover(child, rule)
                if sub is None:
                    return None
                union |= sub
            return frozenset(union)
        if isinstance(node, Not):
            return None
        children: Iterable[Node] = (
            node.children if isinstance(node, And) else (node.left, node.right)
        )
        covers = [c for c in (self.cover(child, rule) for child in children) if c is not None]
        if not covers:
            return None
        return min(covers, key=lambda c: sum(self.cost(s) for s in c))

    def any_of_terms(self, node: Node, rule: Rule) -> bool:
        """Whether the rule is one term or an OR of terms, each looked for in every field: then
        finding any of them (which is what triggers it) is the rule matching."""
        members = node.children if isinstance(node, Or) else (node,)
        return all(
            isinstance(m, Term | EntityRef)
            and self.atom_sids(m, rule)
            and self.mask(m, rule) == (ANY_FIELD,)
            for m in members
        )

    def finish(self, rules: list[Rule]) -> None:
        self._by_sid = {v: k for k, v in self.keys.items()}
        for rule in rules:
            used = {sid for atom in positive_atoms(rule.expr) for sid in self.atom_sids(atom, rule)}
            for sid in used:
                self.uses[sid] = self.uses.get(sid, 0) + 1


def compile_rules(rules: Iterable[Rule], entities: Mapping[str, Entity]) -> Matcher:
    """Compile enabled rules into one Matcher; unknown entities raise ``RuleError``."""
    enabled = [r for r in rules if r.enabled]
    builder = _Builder(entities)
    expressions = [builder.expr(rule.expr, rule) for rule in enabled]
    builder.finish(enabled)
    if builder.problems:
        raise RuleError(sorted(set(builder.problems)))
    source = "\n".join(
        f"def _r{i}(p, x):\n    return {expression}" for i, expression in enumerate(expressions)
    )
    namespace: dict[str, object] = dict(builder.constants)
    exec(compile(source, "<rules>", "exec"), namespace)  # only ints and our own names

    automaton: ahocorasick.Automaton | None = None
    if builder.keys:
        automaton = ahocorasick.Automaton()
        for key, sid in builder.keys.items():
            automaton.add_word(key, sid)
        automaton.make_automaton()
    keys = [""] * len(builder.kinds)
    for key, sid in builder.keys.items():
        keys[sid] = key

    compiled: list[CompiledRule] = []
    triggers: dict[int, list[int]] = {}
    always: list[int] = []
    for index, rule in enumerate(enabled):
        cover = builder.cover(rule.expr, rule)
        if cover is None:
            always.append(index)
        else:
            for sid in cover:
                triggers.setdefault(sid, []).append(index)
        labels: dict[int, list[tuple[str, tuple[int, ...]]]] = {}
        for atom in positive_atoms(rule.expr):
            mask = builder.mask(atom, rule)
            fields = (0, 1, 2) if mask == (ANY_FIELD,) else mask
            for sid in sorted(builder.atom_sids(atom, rule)):
                labels.setdefault(sid, []).append((atom.label(), fields))
        # a term id found in a field is explained under the first label that looks there
        explain: dict[tuple[str, int], list[int]] = {}
        for sid, sid_labels in labels.items():
            for field_index in range(3):
                for label, fields in sid_labels:
                    if field_index in fields:
                        explain.setdefault((label, field_index), []).append(sid)
                        break
        compiled.append(
            CompiledRule(
                rule=rule,
                evaluate=namespace[f"_r{index}"],  # type: ignore[arg-type]
                feeds=frozenset(rule.feeds),
                languages=frozenset(rule.languages),
                explain=tuple((lb, f, tuple(sids)) for (lb, f), sids in explain.items()),
                found_means_matched=builder.any_of_terms(rule.expr, rule),
            )
        )
    return Matcher(
        automaton=automaton,
        kinds=builder.kinds,
        one_word=[" " not in key.strip(" ") for key in keys],
        keys=keys,
        rules=compiled,
        triggers={sid: tuple(indexes) for sid, indexes in triggers.items()},
        always=tuple(always),
    )
