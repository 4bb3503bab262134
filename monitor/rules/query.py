"""The rule language (SPEC section 4): the query AST, the query-string parser, the structured form.

Both spellings of a rule, ``query: '@nk AND (drone* OR UAV)'`` and ``all: [...]``, become the same
small AST, so everything after this module (compiling, matching, explaining) exists once.

Precedence, loosest first: ``OR`` < ``AND`` (explicit or implicit) < ``NEAR/n``/``ONEAR/n`` <
``NOT``. Operators are upper-case only; ``and``/``or``/``not`` are ordinary words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import did_you_mean
from monitor.schema import FIELDS

ALL_FIELDS: frozenset[str] = frozenset(FIELDS)


class QueryError(ValueError):
    """A query that does not parse; ``offset`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Term:
    """A word, a phrase (several words), or a prefix (``drone*``); ``text`` as the analyst wrote it.

    ``fields`` is the field scope written on this term (``title:drone``), or None for "the
    rule's fields".
    """

    text: str
    prefix: bool = False
    fields: frozenset[str] | None = None
    offset: int = field(default=0, compare=False)

    def label(self) -> str:
        """The term as it is shown in explanations."""
        word = self.text + ("*" if self.prefix else "")
        return f'"{word}"' if " " in word else word


@dataclass(frozen=True)
class EntityRef:
    """``@id``: any alias of the entity."""

    id: str
    fields: frozenset[str] | None = None
    offset: int = field(default=0, compare=False)

    def label(self) -> str:
        return f"@{self.id}"


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Near:
    """``left NEAR/distance right``: at most ``distance`` words between, same field.

    ``ordered`` is ONEAR: ``left`` must come first. Operands are terms, entities or OR-groups of
    them (a proximity between Boolean combinations has no clear meaning, so it is refused).
    """

    left: Node
    right: Node
    distance: int
    ordered: bool = False


Node = Term | EntityRef | And | Or | Not | Near
Atom = Term | EntityRef

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<near>O?NEAR/(?P<dist>\d+)(?![^\s()]))
  | (?P<badnear>O?NEAR\b[^\s()]*)
  | (?P<field>[A-Za-z]+):(?=\S)
  | (?P<phrase>"(?P<ptext>[^"]*)"(?P<pstar>\*)?)
  | (?P<open>"[^"]*$)
  | (?P<entity>@(?P<eid>[^\s()"]*))
  | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    offset: int
    distance: int = 0


def _lex(query: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    for m in _TOKEN.finditer(query):
        if m.group("space"):
            continue
        if m.group("near"):
            tokens.append(_Tok("near", m.group("near"), m.start(), int(m.group("dist"))))
        elif m.group("badnear"):
            raise QueryError(
                f"'{m.group('badnear')}': write NEAR/n or ONEAR/n, n the most words between",
                m.start(),
            )
        elif m.group("open"):
            raise QueryError("unclosed quote", m.start())
        elif m.group("phrase"):
            text = m.group("ptext") + ("*" if m.group("pstar") else "")
            tokens.append(_Tok("term", text, m.start() + 1))
        elif m.group("entity"):
            tokens.append(_Tok("entity", m.group("eid"), m.start()))
        elif m.group("field"):
            tokens.append(_Tok("field", m.group("field"), m.start()))
        elif m.group("lparen"):
            tokens.append(_Tok("(", "(", m.start()))
        elif m.group("rparen"):
            tokens.append(_Tok(")", ")", m.start()))
        else:
            word = m.group("word")
            tokens.append(_Tok(word if word in ("AND", "OR", "NOT") else "term", word, m.start()))
    return tokens


_ENTITY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def make_term(text: str, offset: int, fields: frozenset[str] | None) -> Atom:
    """One term from its written form: ``@id``, ``prefix*``, a word or a phrase."""
    stripped = text.strip()
    if stripped.startswith("@"):
        entity_id = stripped[1:]
        if not _ENTITY_ID.match(entity_id):
            raise QueryError(f"'{stripped}': an entity reference is @ and an id", offset)
        return EntityRef(entity_id, fields, offset)
    prefix = stripped.endswith("*")
    body = stripped.rstrip("*") if prefix else stripped
    if "*" in body:
        raise QueryError(f"'{stripped}': a wildcard may only end a word (drone*)", offset)
    if not body.strip():
        raise QueryError(f"'{stripped}': empty term", offset)
    return Term(body, prefix, fields, offset)


#: How deeply groups, NOTs and field scopes may nest: far beyond what a person writes, well
#: within what the recursive parser, the compiler and Python itself can take.
MAX_NESTING = 40


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _lex(query)
        self.pos = 0
        self.depth = 0

    def deeper(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise QueryError(f"nested more than {MAX_NESTING} levels deep", offset)

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def where(self) -> int:
        tok = self.peek()
        return tok.offset if tok else len(self.query)

    def parse(self) -> Node:
        if not self.tokens:
            raise QueryError("empty query", 0)
        node = self.or_expr(None)
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"unexpected '{tok.text}'", tok.offset)
        return node

    def or_expr(self, scope: frozenset[str] | None) -> Node:
        children = [self.and_expr(scope)]
        while (tok := self.peek()) and tok.kind == "OR":
            self.take()
            children.append(self.and_expr(scope))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, scope: frozenset[str] | None) -> Node:
        children = [self.near_expr(scope)]
        while (tok := self.peek()) and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.take()
            children.append(self.near_expr(scope))
        return children[0] if len(children) == 1 else And(tuple(children))

    def near_expr(self, scope: frozenset[str] | None) -> Node:
        start = self.where()
        left = self.unary(scope)
        while (tok := self.peek()) and tok.kind == "near":
            self.take()
            self.check_near_side(left, start, tok.offset, tok)
            right_start = self.where()
            right = self.unary(scope)
            self.check_near_side(right, right_start, self.where(), tok)
            left = Near(left, right, tok.distance, tok.text.startswith("O"))
        return left

    def check_near_side(self, node: Node, start: int, end: int, tok: _Tok) -> None:
        """Refuse a side of a proximity that is not a term or an OR of terms, quoting the side
        as written and saying why: ``NOT a NEAR/2 b`` reads as ``(NOT a) NEAR/2 b``."""
        if not _is_near_operand(node):
            side = self.query[start:end].strip()
            why = _near_refusal(node, tok.text)
            raise QueryError(f"'{side}' cannot be a side of {tok.text}: {why}", start)

    def unary(self, scope: frozenset[str] | None) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "NOT":
            self.take()
            self.deeper(tok.offset)
            node: Node = Not(self.unary(scope))
            self.depth -= 1
            return node
        return self.primary(scope)

    def primary(self, scope: frozenset[str] | None) -> Node:
        tok = self.peek()
        if tok is None:
            raise QueryError("the query ends where a term was expected", len(self.query))
        if tok.kind == "(":
            self.take()
            self.deeper(tok.offset)
            node = self.or_expr(scope)
            self.depth -= 1
            close = self.peek()
            if close is None or close.kind != ")":
                raise QueryError("unclosed parenthesis", tok.offset)
            self.take()
            return node
        if tok.kind == "field":
            self.take()
            name = tok.text.lower()
            if name not in ALL_FIELDS:
                raise QueryError(
                    f"unknown field '{tok.text}'{did_you_mean(name, FIELDS)}", tok.offset
                )
            narrowed = frozenset({name}) if scope is None else scope & {name}
            if not narrowed:
                raise QueryError(f"field '{name}' inside a scope that excludes it", tok.offset)
            self.deeper(tok.offset)
            scoped = self.primary(narrowed)
            self.depth -= 1
            return scoped
        if tok.kind in ("term", "entity"):
            self.take()
            text = "@" + tok.text if tok.kind == "entity" else tok.text
            return make_term(text, tok.offset, scope)
        if tok.kind == ")":
            raise QueryError("unexpected ')'", tok.offset)
        raise QueryError(f"'{tok.text}' needs a term before it", tok.offset)


def _is_near_operand(node: Node) -> bool:
    """A term, an entity, or an OR-group of them: what a proximity can be measured between."""
    if isinstance(node, Or):
        return all(isinstance(c, Term | EntityRef) for c in node.children)
    return isinstance(node, Term | EntityRef)


def _near_refusal(node: Node, op: str) -> str:
    """Why ``node`` cannot be a side of the proximity ``op``, and what to write instead."""
    needs = f"{op} needs a term or an (x OR y) group of terms on each side"
    if isinstance(node, Not):
        return f"NOT binds tighter than {op}, and {needs}; to exclude the pair write NOT (x {op} y)"
    if isinstance(node, Near):
        return f"{needs}, not another proximity; write (x {op} y) AND (y {op} z)"
    if isinstance(node, And):
        return f"{needs}, not an AND; write (x {op} y) AND z"
    return f"{needs}, and this OR group holds more than terms"


def parse_query(text: str) -> Node:
    """Parse a query string into the AST; raises ``QueryError`` with the offset of the problem."""
    return _Parser(text).parse()


def parse_structured(spec: dict[str, Any]) -> Node:
    """The structured form: ``{any|all|none: [items]}``, items strings or nested mappings.

    Each string is one term (several words make a phrase); keys of one mapping combine by AND.
    Raises ``StructureError`` naming the path of the first bad item (``structure_errors``
    lists them all).
    """
    errors: list[StructureError] = []
    node = _structured_group(spec, (), 0, errors)
    if errors or node is None:  # None comes with at least one error
        raise errors[0]
    return node


def structure_errors(spec: dict[str, Any]) -> list[StructureError]:
    """Every bad item and key of the structured form: a misspelt key in one group must not
    hide an empty list or a bad term in another."""
    errors: list[StructureError] = []
    _structured_group(spec, (), 0, errors)
    return errors


class StructureError(ValueError):
    """A bad item in the structured form; ``path`` leads to it from the rule's mapping."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


_GROUP_KEYS = ("any", "all", "none")


def _structured_group(
    spec: dict[str, Any], path: tuple[str | int, ...], depth: int, errors: list[StructureError]
) -> Node | None:
    """One ``{any|all|none: [...]}`` mapping; its problems go to ``errors`` (then None)."""
    if depth > MAX_NESTING:
        errors.append(StructureError(f"nested more than {MAX_NESTING} levels deep", path))
        return None
    if not any(key in spec for key in _GROUP_KEYS):
        errors.append(StructureError("a nested group needs any, all or none", path))
        return None
    parts: list[Node] = []
    before = len(errors)
    for key in _GROUP_KEYS:
        if key not in spec:
            continue
        items = spec[key]
        if not isinstance(items, list) or not items:
            errors.append(StructureError(f"'{key}' needs a non-empty list", (*path, key)))
            continue
        found = [
            _structured_item(item, (*path, key, i), depth, errors) for i, item in enumerate(items)
        ]
        children = tuple(child for child in found if child is not None)
        if len(children) < len(found):
            continue
        if key == "any":
            parts.append(children[0] if len(children) == 1 else Or(children))
        elif key == "all":
            parts.append(children[0] if len(children) == 1 else And(children))
        else:
            parts.append(Not(children[0] if len(children) == 1 else Or(children)))
    if len(errors) > before:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _structured_item(
    item: Any, path: tuple[str | int, ...], depth: int, errors: list[StructureError]
) -> Node | None:
    try:
        if isinstance(item, str):
            return make_term(item, 0, None)
        if isinstance(item, int | float) and not isinstance(item, bool):
            return make_term(str(item), 0, None)
    except QueryError as exc:
        errors.append(StructureError(exc.message, path))
        return None
    if not isinstance(item, dict):
        errors.append(StructureError("an item is a string or a mapping of any/all/none", path))
        return None
    unknown = [key for key in item if key not in _GROUP_KEYS]
    for key in unknown:
        hint = did_you_mean(str(key), _GROUP_KEYS)
        errors.append(StructureError(f"unknown key '{key}'{hint}", (*path, key)))
    if unknown and not any(key in item for key in _GROUP_KEYS):
        return None  # {alll: [...]}: the misspelt key says it all
    node = _structured_group(item, path, depth + 1, errors)
    return None if unknown else node


def atoms(node: Node) -> Iterator[Atom]:
    """Every term and entity reference of a tree, in order."""
    if isinstance(node, Term | EntityRef):
        yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from atoms(child)
    elif isinstance(node, Not):
        yield from atoms(node.child)
    else:
        yield from atoms(node.left)
        yield from atoms(node.right)


def positive_atoms(node: Node, negated: bool = False) -> Iterator[Atom]:
    """The terms whose presence can make the rule match (those not under a NOT)."""
    if isinstance(node, Term | EntityRef):
        if not negated:
            yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from positive_atoms(child, negated)
    elif isinstance(node, Not):
        yield from positive_atoms(node.child, not negated)
    else:
        yield from positive_atoms(node.left, negated)
        yield from positive_atoms(node.right, negated)


def to_query(node: Node) -> str:
    """Render an AST as a query string that parses back to the same tree."""
    if isinstance(node, Term | EntityRef):
        scope = ""
        if node.fields is not None and len(node.fields) == 1:
            scope = next(iter(node.fields)) + ":"
        elif node.fields is not None:
            inner = " OR ".join(f"{f}:{_atom_text(node)}" for f in sorted(node.fields))
            return f"({inner})"
        return scope + _atom_text(node)
    if isinstance(node, And):
        return "(" + " AND ".join(to_query(c) for c in node.children) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(to_query(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return "NOT " + to_query(node.child)
    op = "ONEAR" if node.ordered else "NEAR"
    return f"({to_query(node.left)} {op}/{node.distance} {to_query(node.right)})"


def _atom_text(node: Atom) -> str:
    if isinstance(node, EntityRef):
        return f"@{node.id}"
    return f'"{node.text}"' + ("*" if node.prefix else "")


def to_structured(node: Node) -> dict[str, Any] | str:
    """Render an AST without NEAR or field scopes in the structured form."""
    if isinstance(node, EntityRef):
        return f"@{node.id}"
    if isinstance(node, Term):
        return node.text + ("*" if node.prefix else "")
    if isinstance(node, And):
        return {"all": [to_structured(c) for c in node.children]}
    if isinstance(node, Or):
        return {"any": [to_structured(c) for c in node.children]}
    if isinstance(node, Not):
        return {"none": [to_structured(node.child)]}
    raise ValueError("the structured form has no NEAR")
