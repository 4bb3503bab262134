"""Property tests: on random rule trees and random texts the compiled matcher agrees with a
small reference evaluator that is slow and obviously correct, and both rule forms agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st

from monitor.rules import Entity, Rule, compile_rules, parse_query
from monitor.rules.matcher import MAX_HITS_PER_TERM
from monitor.rules.query import (
    And,
    EntityRef,
    Near,
    Node,
    Not,
    Or,
    Term,
    parse_structured,
    to_query,
    to_structured,
)
from monitor.schema import FIELDS, Article
from monitor.text import fold

ENTITIES = {
    "kju": Entity("kju", ("Kim Jong-un", "김정은")),
    "nk": Entity("nk", ("North Korea", "DPRK")),
}
WORDS = ["drone", "drones", "uav", "war", "award", "kim", "jong", "un", "north", "korea", "dprk"]
#: words of scripts written without spaces: a Japanese run, Korean nouns with particles
SPACELESS_WORDS = ["김정은", "김정은이", "ミサイル", "発射", "ミサイルを発射"]
TEXT_WORDS = [*WORDS, *SPACELESS_WORDS, "s", "the"]
#: "" glues two words: one word, or two where the script changes (``dprk김정은``)
SEPARATORS = [" ", " ", " ", "-", ", ", "'s ", "\u2019s ", "\u2011", " \u2014 ", ". ", ""]
#: what a hit never starts or ends with: a separator (or the ``s`` of a possessive's quote)
EDGES = set("".join(SEPARATORS)) - {"s"}
#: the reference's own list of scripts written without spaces (Hangul, kana, Han)
SPACELESS_REF = "\u1100-\u11ff\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3"
CJK = re.compile(f"[{SPACELESS_REF}]")


# -- the reference -------------------------------------------------------------------------


def ref_tokens(text: str) -> list[str]:
    """Runs of word characters, split where a script written without spaces meets another."""
    folded = re.sub(r"'s(?![^\W_])", " ", fold(text))
    return re.findall(f"[{SPACELESS_REF}]+|[^\\W_{SPACELESS_REF}]+", folded)


Place = tuple[int, int, int, int]


def ref_occurrences(phrase: str, prefix: bool, tokens: list[str]) -> list[Place]:
    """Each occurrence of a term in a field's words: its first and last word's positions, and
    its ``[start, end)`` in the words joined by single spaces. A term with Hangul, kana or Han
    is a substring of that text; any other is a sequence of whole words (the last one a prefix
    of a word for ``prefix``)."""
    words = ref_tokens(phrase)
    joined = " ".join(tokens)
    found = []
    if CJK.search(phrase):
        needle = " ".join(words)
        whole_first = not CJK.match(words[0])  # a Latin word at either end must be whole
        whole_last = not prefix and not CJK.match(words[-1])
        for i in range(len(joined)):
            end = i + len(needle)
            if not joined.startswith(needle, i):
                continue
            if whole_first and joined[i - 1 : i] not in ("", " "):
                continue
            if whole_last and joined[end : end + 1] not in ("", " "):
                continue
            found.append((joined.count(" ", 0, i), joined.count(" ", 0, end - 1), i, end))
        return found
    starts = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
    n = len(words)
    for i in range(len(tokens) - n + 1):
        head_ok = tokens[i : i + n - 1] == words[:-1]
        last = tokens[i + n - 1]
        if head_ok and (last.startswith(words[-1]) if prefix else last == words[-1]):
            found.append((i, i + n - 1, starts[i], starts[i + n - 1] + len(last)))
    return found


def ref_near(a: Place, b: Place, distance: int) -> bool:
    """``a`` before ``b`` without overlapping, at most ``distance`` words strictly between them
    (none when they share a word: two terms inside one run of Japanese text)."""
    return a[3] <= b[2] and max(0, b[0] - a[1] - 1) <= distance


def ref_atom(node: Term | EntityRef, field: str, rule_fields: set[str]) -> list[Place]:
    allowed = rule_fields if node.fields is None else rule_fields & node.fields
    if field not in allowed:
        return []
    return [
        p
        for phrase, prefix in ref_phrases(node)
        for p in ref_occurrences(phrase, prefix, ARTICLE_TOKENS[field])
    ]


def ref_phrases(node: Term | EntityRef) -> list[tuple[str, bool]]:
    if isinstance(node, EntityRef):
        return [(alias, False) for alias in ENTITIES[node.id].aliases]
    return [(node.text, node.prefix)]


ARTICLE_TOKENS: dict[str, list[str]] = {}


def ref_eval(node: Node, rule_fields: set[str]) -> bool:
    if isinstance(node, Term | EntityRef):
        return any(ref_atom(node, f, rule_fields) for f in FIELDS)
    if isinstance(node, And):
        return all(ref_eval(c, rule_fields) for c in node.children)
    if isinstance(node, Or):
        return any(ref_eval(c, rule_fields) for c in node.children)
    if isinstance(node, Not):
        return not ref_eval(node.child, rule_fields)
    for field in FIELDS:
        lefts = [p for a in _members(node.left) for p in ref_atom(a, field, rule_fields)]
        rights = [p for a in _members(node.right) for p in ref_atom(a, field, rule_fields)]
        for left in lefts:
            for right in rights:
                if ref_near(left, right, node.distance):
                    return True
                if not node.ordered and ref_near(right, left, node.distance):
                    return True
    return False


def _members(node: Node) -> list[Term | EntityRef]:
    if isinstance(node, Or):
        return [c for c in node.children if isinstance(c, Term | EntityRef)]
    assert isinstance(node, Term | EntityRef)
    return [node]


# -- strategies ----------------------------------------------------------------------------

scopes = st.sampled_from([None, None, None, frozenset({"title"}), frozenset({"content"})])
terms = st.one_of(
    st.builds(Term, st.sampled_from(WORDS), st.just(False), scopes),
    st.builds(
        Term,
        st.sampled_from(
            ["kim jong", "north korea", "the war", "jong un", "김정은", "ミサイル", "dprk김정은"]
        ),
        st.just(False),
        scopes,
    ),
    st.builds(Term, st.sampled_from(["dro", "aw", "kor", "u"]), st.just(True), scopes),
    st.builds(EntityRef, st.sampled_from(sorted(ENTITIES)), scopes),
)
near_sides = st.one_of(terms, st.lists(terms, min_size=2, max_size=3).map(lambda c: Or(tuple(c))))


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
        children.map(Not),
        st.builds(Near, near_sides, near_sides, st.integers(0, 3), st.booleans()),
    )


trees = st.recursive(terms, _extend, max_leaves=8)


def _styled(word: str, style: int) -> str:
    if style == 1:
        return word.upper()
    if style == 2:
        return word.title()
    if style == 3 and word.isascii():
        return "".join(chr(ord(c) + 0xFEE0) for c in word.upper())
    if style == 4 and word.isascii():  # a combining accent folds to nothing: offsets shift
        return word[0] + "\u0301" + word[1:]
    return word


field_text = st.lists(
    st.tuples(st.sampled_from(TEXT_WORDS), st.sampled_from(SEPARATORS), st.integers(0, 5)),
    max_size=14,
).map(lambda parts: "".join(_styled(w, s) + sep for w, sep, s in parts))


def _article(title: str, summary: str, content: str) -> Article:
    return Article(
        id="p",
        feed="f",
        feed_url="https://example.org/",
        title=title,
        summary=summary,
        content=content,
        fetched_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


@settings(max_examples=200, deadline=None)
@given(
    trees,
    st.sampled_from([list(FIELDS), ["title", "summary"], ["content"]]),
    field_text,
    field_text,
    field_text,
)
def test_compiled_matcher_agrees_with_the_reference(
    tree: Node, rule_fields: list[str], title: str, summary: str, content: str
) -> None:
    article = _article(title, summary, content)
    ARTICLE_TOKENS.clear()
    ARTICLE_TOKENS.update({f: ref_tokens(t) for f, t in article.text_fields().items()})
    matcher = compile_rules([Rule(id="r", expr=tree, fields=rule_fields)], ENTITIES)
    got = bool(matcher.match(article))
    assert got == ref_eval(tree, set(rule_fields)), (to_query(tree), article.text_fields())


#: NEAR's terms and the words of its texts come from one small pool, so that both sides are
#: present in most examples and every distance from adjacent to too far occurs
NEAR_POOL = ["drone", "uav", "kim", "jong", "war", "ミサイル", "発射", "김정은", "dprk", "x"]
near_atoms = st.one_of(
    st.builds(
        Term, st.sampled_from([*NEAR_POOL, "kim jong", "ミサイルを", "dprk김정은"]), st.just(False)
    ),
    st.builds(Term, st.sampled_from(["dro", "ミサ"]), st.just(True)),
    st.builds(EntityRef, st.sampled_from(sorted(ENTITIES))),
)


def _words_of(atom: Term | EntityRef) -> list[str]:
    phrases = ENTITIES[atom.id].aliases if isinstance(atom, EntityRef) else (atom.text,)
    return [w for phrase in phrases for w in phrase.split()]


@settings(max_examples=400, deadline=None)
@given(near_atoms, near_atoms, st.integers(0, 3), st.booleans(), st.data())
def test_near_agrees_with_the_reference(
    left: Term | EntityRef,
    right: Term | EntityRef,
    distance: int,
    ordered: bool,
    data: st.DataObject,
) -> None:
    """NEAR and ONEAR, in texts made of their own terms' words and a few others: adjacent, in
    one run of Japanese or Korean, a few words apart, too far, overlapping, in either order."""
    pool = [*_words_of(left), *_words_of(right), "x", "を", "이"]
    parts = data.draw(
        st.lists(
            st.tuples(st.sampled_from(pool), st.sampled_from([" ", " ", "", ", "])), max_size=9
        )
    )
    text = "".join(word + sep for word, sep in parts)
    tree = Near(left, right, distance, ordered)
    article = _article("", "", text)
    ARTICLE_TOKENS.clear()
    ARTICLE_TOKENS.update({f: ref_tokens(t) for f, t in article.text_fields().items()})
    expected = ref_eval(tree, set(FIELDS))
    got = bool(compile_rules([Rule(id="n", expr=tree)], ENTITIES).match(article))
    assert got == expected, (to_query(tree), text)
    event(f"near: {expected}")


@settings(max_examples=200, deadline=None)
@given(trees)
def test_query_rendering_parses_back_to_the_same_tree(tree: Node) -> None:
    assert parse_query(to_query(tree)) == tree


unscoped_terms = st.one_of(
    st.builds(Term, st.sampled_from([*WORDS, "kim jong", "김정은"]), st.just(False)),
    st.builds(Term, st.sampled_from(["dro", "kor"]), st.just(True)),
    st.builds(EntityRef, st.sampled_from(sorted(ENTITIES))),
)
structured_trees = st.recursive(
    unscoped_terms,
    lambda c: st.one_of(
        st.lists(c, min_size=2, max_size=3).map(lambda x: And(tuple(x))),
        st.lists(c, min_size=2, max_size=3).map(lambda x: Or(tuple(x))),
        c.map(Not),
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(structured_trees, field_text)
def test_query_and_structured_forms_match_alike(tree: Node, text: str) -> None:
    spec = to_structured(tree)
    structured = parse_structured(spec if isinstance(spec, dict) else {"all": [spec]})
    from_query = parse_query(to_query(tree))
    article = _article("", "", text)
    a = compile_rules([Rule(id="q", expr=from_query)], ENTITIES).match(article)
    b = compile_rules([Rule(id="s", expr=structured)], ENTITIES).match(article)
    assert bool(a) == bool(b)
    assert [h for m in a for h in m.hits] == [h for m in b for h in m.hits]


@settings(max_examples=300, deadline=None)
@given(unscoped_terms, field_text, field_text)
def test_every_hit_is_an_occurrence_of_its_term_in_the_original_text(
    term: Term | EntityRef, summary: str, content: str
) -> None:
    """Explanations: as many hits per field as the reference finds occurrences (capped), each
    the original text of one occurrence, whatever the case, width, accents and separators."""
    found = compile_rules([Rule(id="h", expr=term)], ENTITIES).match(_article("", summary, content))
    phrases = ref_phrases(term)
    for field, source in (("summary", summary), ("content", content)):
        tokens = ref_tokens(source)
        expected = sum(len(ref_occurrences(p, prefix, tokens)) for p, prefix in phrases)
        hits = [h for m in found for h in m.hits if h.field == field]
        assert len(hits) == min(expected, MAX_HITS_PER_TERM), (field, source, hits)
        for hit in hits:
            assert source[hit.start : hit.end] == hit.text
            assert hit.text[0] not in EDGES and hit.text[-1] not in EDGES, (hit, source)
            words = ref_tokens(hit.text)
            assert any([o[:2] for o in ref_occurrences(p, prefix, words)] == [(0, len(words) - 1)]
                       for p, prefix in phrases), (hit, source)  # fmt: skip
