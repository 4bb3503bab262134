"""Loading ``rules/``: the one place that reads files; every problem reported with its position.

ruamel.yaml keeps the line and column of every key and value, so each problem reads
``rules/x.yaml:12:7: unknown entity '@north-koreaa' (did you mean '@north-korea'?)``. Loading
never stops at the first problem: an analyst fixing a file wants the whole list at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from monitor.errors import RuleError, did_you_mean
from monitor.rules.compile import compile_rules, search_key
from monitor.rules.matcher import Matcher
from monitor.rules.model import (
    ChannelPolicy,
    Entity,
    EntitySpec,
    FeedConfig,
    FeedDefaults,
    FeedList,
    Position,
    Rule,
    RuleSpec,
)
from monitor.rules.query import (
    Atom,
    EntityRef,
    Node,
    QueryError,
    StructureError,
    Term,
    atoms,
    parse_query,
    parse_structured,
    structure_errors,
)
from monitor.rules.scalar import source_position
from monitor.schema import FIELDS

FEEDS_FILE = "feeds"
CHANNELS_FILE = "channels"
TOP_KEYS = {
    FEEDS_FILE: ("defaults", "feeds"),
    CHANNELS_FILE: ("channels",),
    "": ("entities", "rules"),
}
PathKey = tuple[str | int, ...]


@dataclass
class RuleSet:
    """Everything under ``rules/``, validated, with the matcher compiled once."""

    rules: list[Rule]
    entities: dict[str, Entity]
    feeds: FeedList
    channels: dict[str, ChannelPolicy]
    matcher: Matcher
    #: every file whose rules, entities, feeds or channels were loaded
    sources: list[Path] = field(default_factory=list)
    #: the file named, when one was (rather than a directory)
    named_file: Path | None = None
    #: when one file was named with its directory as context: the other files of the directory
    #: whose entities it could refer to
    context: list[Path] = field(default_factory=list)
    #: what the analyst should know that is not a problem of what was named: which files of
    #: the context could not be read for entities
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Problem:
    """One problem and where it is, so that problems can be ordered and told apart by file."""

    position: Position
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


@dataclass
class _Doc:
    """One parsed YAML file and how to say where things are in it."""

    name: str
    root: Any
    lines: list[str]

    def at(self, path: PathKey, key: bool = False, offset: int | None = None) -> tuple[int, int]:
        """0-based (line, col) of the value (or key) at ``path``, or of its nearest ancestor;
        with ``offset``, of that character of the string value at ``path``."""
        node = self.root
        line, col = _node_position(node)
        for index, step in enumerate(path):
            last = index == len(path) - 1
            if isinstance(node, CommentedMap) and step in node:
                line, col = node.lc.key(step) if (last and key) else node.lc.value(step)
                node = node[step]
            elif isinstance(node, CommentedSeq) and isinstance(step, int) and step < len(node):
                line, col = node.lc.item(step)
                node = node[step]
            else:
                return line, col
        if offset is not None and isinstance(node, str):
            return source_position(self.lines, (line, col), str(node), offset)
        return line, col

    def problem(
        self, path: PathKey, message: str, key: bool = False, offset: int | None = None
    ) -> _Problem:
        """A problem at the value (or key) at ``path``, or at ``offset`` into that value."""
        line, col = self.at(path, key, offset)
        return _Problem(Position(self.name, line + 1, col + 1), message)


def _source_lines(text: str) -> list[str]:
    """The lines of a YAML text as ruamel numbers them, to turn its (line, column) marks into
    text: it breaks lines at LF, CRLF and a lone CR only (``str.splitlines`` also breaks at
    U+2028, U+0085 and others, and every position after one would be a line off), and does
    not count a leading byte order mark as a column."""
    return re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))


def _node_position(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else (0, 0)


def _plain(node: Any) -> Any:
    """ruamel's round-trip types as plain Python values, for pydantic."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _yaml_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def _context_files(path: Path) -> list[Path]:
    """The files one file is checked with: the other YAML files of its directory."""
    return [p for p in _yaml_files(path.parent) if not _same_file(p, path)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _kind(path: Path) -> str:
    return path.stem if path.stem in (FEEDS_FILE, CHANNELS_FILE) else ""


class _Loader:
    def __init__(self) -> None:
        self.problems: list[_Problem] = []
        self.entities: dict[str, Entity] = {}
        self.pending: list[tuple[_Doc, PathKey, RuleSpec]] = []
        #: rules whose other keys failed: their query is still checked, for a complete report
        self.broken: list[tuple[_Doc, PathKey, RuleSpec]] = []
        self.rules: list[Rule] = []
        self.feeds: FeedList | None = None
        self.feed_doc: _Doc | None = None
        self.channels: dict[str, ChannelPolicy] = {}
        #: the feeds and channels files read, by kind: a directory has at most one of each
        self.config_files: dict[str, str] = {}

    # -- files -----------------------------------------------------------------------------

    def read(self, path: Path) -> None:
        doc = self.parse(path)
        if doc is None or doc.root is None:
            return
        kind = _kind(path)
        allowed = TOP_KEYS[kind]
        if not isinstance(doc.root, CommentedMap):
            keys = ", ".join(f"{k}:" for k in allowed)
            self.problems.append(doc.problem((), f"expected a mapping with {keys}"))
            return
        for key in doc.root:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                self.problems.append(doc.problem((key,), f"unknown key '{key}'{hint}", key=True))
        if kind and kind in self.config_files:  # feeds.yaml and feeds.yml: which one is meant?
            first = self.config_files[kind]
            self.problems.append(doc.problem((), f"a second {kind} file beside {first}: keep one"))
            return
        if kind:
            self.config_files[kind] = doc.name
        if kind == FEEDS_FILE:
            self.read_feeds(doc)
        elif kind == CHANNELS_FILE:
            self.read_channels(doc)
        else:
            self.read_entities(doc)
            self.read_rules(doc)

    def read_context(self, path: Path) -> None:
        """What a file another file is checked with lends it: feeds.yaml its feeds (a rule's
        ``feeds:`` names them), channels.yaml its channel policies, any other file its
        ``entities:``; never rules, which were not named (it may be no rules file at all)."""
        if _kind(path):
            self.read(path)
            return
        doc = self.parse(path)
        if doc is not None and isinstance(doc.root, CommentedMap):
            self.read_entities(doc)

    def parse(self, path: Path) -> _Doc | None:
        """The file as YAML, or None with the problem recorded."""
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(_Problem(Position(name, 1, 1), f"cannot read: {exc}"))
            return None
        try:
            root = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            reason = exc.problem or exc.context or "invalid YAML"
            if mark and "cannot start any token" in reason:
                reason += _quote_hint(_source_lines(text), mark.line, mark.column)
            self.problems.append(_Problem(Position(name, line, col), f"invalid YAML: {reason}"))
            return None
        except RecursionError:
            reason = "nested too deeply to read"
            self.problems.append(_Problem(Position(name, 1, 1), f"invalid YAML: {reason}"))
            return None
        except YAMLError as exc:  # e.g. a control character: the reader has no mark to give
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.problems.append(_Problem(Position(name, 1, 1), f"invalid YAML: {reason}"))
            return None
        return _Doc(name, root, _source_lines(text))

    def validate(
        self, doc: _Doc, model: type[BaseModel], data: Any, path: PathKey, what: str
    ) -> Any:
        """Validate with pydantic; each error becomes a positioned problem. None on failure."""
        try:
            return model.model_validate(_plain(data))
        except ValidationError as exc:
            allowed = [f.alias or n for n, f in model.model_fields.items()]
            for error in exc.errors():
                loc = tuple(error["loc"])
                if error["type"] == "extra_forbidden":
                    key = str(loc[-1])
                    message = f"{what}: unknown key '{key}'{did_you_mean(key, allowed)}"
                    self.problems.append(doc.problem(path + loc, message, key=True))
                    continue
                if error["type"] == "missing":
                    message = f"{what}: missing required key '{loc[-1]}'"
                    self.problems.append(doc.problem(path + loc[:-1], message))
                    continue
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["type"] == "too_short":
                    message = "must not be empty"
                where = ".".join(str(p) for p in loc if not isinstance(p, int))
                prefix = f"{what}: {where}: " if where else f"{what}: "
                self.problems.append(doc.problem(path + loc, prefix + message))
            return None

    # -- feeds.yaml and channels.yaml ------------------------------------------------------

    def read_feeds(self, doc: _Doc) -> None:
        defaults_raw = doc.root.get("defaults") or {}
        defaults = self.validate(doc, FeedDefaults, defaults_raw, ("defaults",), "defaults")
        inherited = defaults.model_dump(exclude_unset=True) if defaults else {}
        feeds: list[FeedConfig] = []
        raw_feeds = doc.root.get("feeds") or []
        if not isinstance(raw_feeds, list):
            self.problems.append(doc.problem(("feeds",), "feeds: expected a list of feeds"))
            raw_feeds = []
        seen_urls: dict[str, int] = {}
        seen_names: dict[str, int] = {}
        for i, raw in enumerate(raw_feeds):
            if not isinstance(raw, Mapping):
                self.problems.append(doc.problem(("feeds", i), "a feed is a mapping with url:"))
                continue
            label = f"feed '{raw.get('name') or raw.get('url') or i + 1}'"
            feed = self.validate(doc, FeedConfig, {**inherited, **_plain(raw)}, ("feeds", i), label)
            if feed is None:
                continue
            for seen, value, what in (
                (seen_urls, feed.url, "URL"),
                (seen_names, feed.name, "name"),
            ):
                if value in seen:
                    first = doc.at(("feeds", seen[value]))[0] + 1
                    self.problems.append(
                        doc.problem(
                            ("feeds", i), f"duplicate feed {what} '{value}' (first at line {first})"
                        )
                    )
                seen[value] = i
            feeds.append(feed)
        self.feeds = FeedList(defaults=defaults or FeedDefaults(), feeds=feeds)
        self.feed_doc = doc

    def read_channels(self, doc: _Doc) -> None:
        raw = doc.root.get("channels") or {}
        if not isinstance(raw, Mapping):
            self.problems.append(doc.problem(("channels",), "channels: expected a mapping of tags"))
            return
        for tag, policy in raw.items():
            value = self.validate(
                doc, ChannelPolicy, policy or {}, ("channels", tag), f"channel '{tag}'"
            )
            if value is not None:
                self.channels[str(tag)] = value

    # -- entities and rules ----------------------------------------------------------------

    def read_entities(self, doc: _Doc) -> None:
        raw = doc.root.get("entities")
        if raw is None:
            return
        if not isinstance(raw, Mapping):
            self.problems.append(doc.problem(("entities",), "entities: expected a mapping of ids"))
            return
        for entity_id, body in raw.items():
            path: PathKey = ("entities", entity_id)
            key = str(entity_id)
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", key):
                self.problems.append(
                    doc.problem(path, f"entity id '{key}': letters, digits, - _ .", key=True)
                )
            spec = self.validate(doc, EntitySpec, body or {}, path, f"entity '{key}'")
            if spec is None:
                continue
            for i, alias in enumerate(spec.aliases):
                if search_key(alias) is None:
                    self.problems.append(
                        doc.problem(
                            (*path, "aliases", i),
                            f"entity '{key}': alias '{alias}' has no letters or digits",
                        )
                    )
            line, col = doc.at(path, key=True)
            position = Position(doc.name, line + 1, col + 1)
            if key in self.entities:
                self.problems.append(
                    doc.problem(
                        path,
                        f"duplicate entity '{key}' (first at {self.entities[key].position})",
                        key=True,
                    )
                )
                continue
            self.entities[key] = Entity(key, tuple(spec.aliases), spec.name, position)

    def read_rules(self, doc: _Doc) -> None:
        raw = doc.root.get("rules")
        if raw is None:
            return
        if not isinstance(raw, list):
            self.problems.append(doc.problem(("rules",), "rules: expected a list of rules"))
            return
        for i, body in enumerate(raw):
            path: PathKey = ("rules", i)
            if not isinstance(body, Mapping):
                self.problems.append(doc.problem(path, "a rule is a mapping with id: and query:"))
                continue
            what = f"rule '{body.get('id', i + 1)}'"
            spec = self.validate(doc, RuleSpec, body, path, what)
            if spec is not None:
                self.pending.append((doc, path, spec))
                continue
            partial = _partial_spec(body)
            if partial is not None:
                self.broken.append((doc, path, partial))

    def build_rules(self) -> None:
        """Turn validated specs into rules, now that every file's entities are known."""
        for doc, path, partial in self.broken:
            self.rule_expr(doc, path, partial, f"rule '{partial.id}'")
        seen: dict[str, Rule] = {}
        names: set[str] = set()
        if self.feeds is not None:
            names = {f.name for f in self.feeds.feeds} | {
                t for f in self.feeds.feeds for t in f.tags
            }
        for doc, path, spec in self.pending:
            what = f"rule '{spec.id}'"
            expr = self.rule_expr(doc, path, spec, what)
            line, col = doc.at(path)
            rule = Rule(
                id=spec.id,
                expr=expr if expr is not None else Term("?"),
                title=spec.title or spec.id,
                description=spec.description,
                enabled=spec.enabled,
                severity=spec.severity,
                notify=spec.notify,
                feeds=spec.feeds,
                fields=spec.fields,
                languages=spec.languages,
                throttle=spec.throttle,
                digest=spec.digest,
                quiet_hours=spec.quiet_hours,
                query=spec.query,
                file=doc.name,
                line=line + 1,
                col=col + 1,
            )
            if spec.id in seen:
                self.problems.append(
                    doc.problem(
                        (*path, "id"),
                        f"duplicate rule id '{spec.id}' (first at {seen[spec.id].position})",
                    )
                )
            else:
                seen[spec.id] = rule
            if self.feeds is not None:
                for j, name in enumerate(spec.feeds):
                    if name not in names:
                        hint = did_you_mean(name, names)
                        self.problems.append(
                            doc.problem(
                                (*path, "feeds", j), f"{what}: no feed or feed tag '{name}'{hint}"
                            )
                        )
            if expr is not None:
                self.rules.append(rule)

    def rule_expr(self, doc: _Doc, path: PathKey, spec: RuleSpec, what: str) -> Node | None:
        structured = {
            k: v
            for k, v in (("any", spec.any_), ("all", spec.all_), ("none", spec.none_))
            if v is not None
        }
        if spec.query is not None and structured:
            self.problems.append(
                doc.problem(path, f"{what}: write either query: or any/all/none, not both")
            )
            return None
        if spec.query is None and not structured:
            self.problems.append(doc.problem(path, f"{what}: needs query: or any/all/none"))
            return None
        expr: Node | None
        if spec.query is not None:
            try:
                expr = parse_query(spec.query)
            except QueryError as exc:
                self.problems.append(
                    doc.problem((*path, "query"), f"{what}: {exc.message}", offset=exc.offset)
                )
                return None
            located: list[tuple[Atom, PathKey, int | None]] = [
                (a, (*path, "query"), a.offset) for a in atoms(expr)
            ]
        else:
            errors = structure_errors(structured)
            for error in errors:
                on_key = error.message.startswith("unknown key")
                self.problems.append(
                    doc.problem(path + error.path, f"{what}: {error.message}", key=on_key)
                )
            expr = None if errors else parse_structured(structured)
            located = [(a, (*path, *p), None) for a, p in _structured_atoms(structured, ())]
        ok = expr is not None
        for atom, atom_path, offset in located:
            problem = self.atom_problem(atom, spec)
            if problem:
                self.problems.append(doc.problem(atom_path, f"{what}: {problem}", offset=offset))
                ok = False
        return expr if ok else None

    def atom_problem(self, atom: Atom, spec: RuleSpec) -> str | None:
        if isinstance(atom, EntityRef):
            if atom.id not in self.entities:
                hint = did_you_mean(atom.id, list(self.entities))
                return f"unknown entity '@{atom.id}'" + hint.replace("'", "'@", 1)
        elif search_key(atom.text, atom.prefix) is None:
            return f"term '{atom.label()}' has no letters or digits"
        if atom.fields is not None and not atom.fields & set(spec.fields):
            scope = "/".join(sorted(atom.fields))
            return f"'{scope}:' is outside the rule's fields ({', '.join(spec.fields)})"
        return None


def _quote_hint(lines: list[str], line_no: int, col: int) -> str:
    """For a value YAML refuses to read unquoted (``query: @nk AND x``: ``@`` and the
    backtick are reserved, ``%`` starts a directive): the value as it should be written."""
    line = lines[line_no] if line_no < len(lines) else ""
    if line[col : col + 1] not in ("@", "`", "%"):
        return ""
    value = re.sub(r"[ \t]+#.*$", "", line[col:]).rstrip()
    if "[" in line[:col] or "{" in line[:col]:  # an item of a flow list or mapping
        value = re.split(r"[,\]}]", value)[0].rstrip()
    quoted = "'" + value.replace("'", "''") + "'"
    return f" (a value starting with {line[col]} must be quoted: {quoted})"


def _partial_spec(body: Mapping[str, Any]) -> RuleSpec | None:
    """The query part of a rule whose other keys did not validate, if that part is well-typed."""
    data = _plain(body)
    query = data.get("query")
    forms = {k: data.get(k) for k in ("any", "all", "none")}
    fields = data.get("fields")
    if query is not None and not isinstance(query, str):
        return None
    if any(v is not None and not isinstance(v, list) for v in forms.values()):
        return None
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        fields = list(FIELDS)
    return RuleSpec.model_construct(
        id=str(data.get("id", "?")),
        query=query,
        any_=forms["any"],
        all_=forms["all"],
        none_=forms["none"],
        fields=fields,
    )


def _structured_atoms(spec: Mapping[str, Any], path: PathKey) -> Iterator[tuple[Atom, PathKey]]:
    """Each string item of a structured rule with its path, to place problems on the item."""
    for key in ("any", "all", "none"):
        items = spec.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, Mapping):
                yield from _structured_atoms(item, (*path, key, i))
            elif isinstance(item, str | int | float):
                try:
                    node = parse_structured({"any": [item]})
                except StructureError:  # reported with the rule's other structure errors
                    continue
                if isinstance(node, Term | EntityRef):
                    yield node, (*path, key, i)


def load_rules(path: Path, *, context: bool = False) -> RuleSet:
    """Load and validate a rules directory, or one file; ``RuleError`` lists every problem.

    One file is loaded alone, as the daemon runs it (``MONITOR_RULES_DIR=rules.yaml``). With
    ``context`` (a person checking or trying one file of a rules directory), it is loaded with
    what its directory lends it: the entities the other rule files define, and the feeds and
    channels of feeds.yaml and channels.yaml, unless it defines its own. No rule of another
    file is loaded (a backup copy beside it repeats no rule id), their problems are not its
    problems, and a file there that cannot be read is named in one note.
    """
    if not path.exists():
        raise RuleError([f"{path}: no such file or directory"])
    if context and path.is_file() and _kind(path):  # the feeds or channels of every rule file
        return load_rules(path.parent)
    named = path if path.is_file() else None
    loader = _Loader()
    sources = _yaml_files(path) if named is None else [path]
    for source in sources:
        loader.read(source)
    others = _context_files(path) if named is not None and context else []
    notes = _add_context(loader, others)
    loader.build_rules()
    problems = _ordered(loader.problems)
    if problems:
        raise RuleError([str(p) for p in problems] + notes)
    matcher = compile_rules(loader.rules, loader.entities)
    return RuleSet(
        rules=loader.rules,
        entities=loader.entities,
        feeds=loader.feeds or FeedList(),
        channels=loader.channels,
        matcher=matcher,
        sources=sources,
        named_file=named,
        context=others,
        notes=notes,
    )


def _add_context(loader: _Loader, files: list[Path]) -> list[str]:
    """Give ``loader`` the entities of ``files`` that it does not define itself (the named file
    may redefine one, as an edited copy does), and their feeds and channels when it has none;
    a note naming the files with problems."""
    context = _Loader()
    for path in files:
        context.read_context(path)
    notes = []
    for key, entity in context.entities.items():
        own = loader.entities.setdefault(key, entity)
        if own is not entity:  # right for an edited copy; the directory will not load both
            notes.append(
                f"note: entity '{key}' is also defined at {entity.position}: this file's is"
                " used here, and the directory as a whole will not load with both"
            )
    if loader.feeds is None:
        loader.feeds, loader.feed_doc = context.feeds, context.feed_doc
    if not loader.channels:
        loader.channels = context.channels
    failed = sorted({Path(p.position.file).name for p in context.problems})
    if failed:
        where = files[0].parent
        notes.append(
            f"note: {len(failed)} other file(s) of {where} not read in full, they have"
            f" problems: {', '.join(failed)} (run: monitor check {where})"
        )
    return notes


def _ordered(problems: list[_Problem]) -> list[_Problem]:
    """Problems sorted by file, line and column, duplicates dropped."""
    return sorted(dict.fromkeys(problems), key=lambda p: astuple(p.position))
