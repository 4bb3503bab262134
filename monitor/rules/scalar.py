"""Where each character of a YAML scalar's value is written in its file.

ruamel.yaml gives the position of a scalar's start (its quote, its ``>`` or ``|`` indicator, or
its first letter), not of the characters inside it, yet a problem in a rule's query is found at
an offset into the value. To report it at its own line and column, the scalar's source is walked
as YAML reads it: indentation dropped, line breaks folded into spaces (or kept, in a ``|``
block), ``''`` and backslash escapes turned into one character. The walk is checked against the
value ruamel read: when they differ (a construct the walk does not follow), there is no mapping
and the caller keeps the scalar's start.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Generator, Iterator

#: A 0-based (line, column), as ruamel.yaml counts them.
Pos = tuple[int, int]
#: One character of a scalar's value and where it was written.
Placed = tuple[str, Pos]

_PROPERTIES = re.compile(r"(?:[!&]\S*[ \t]+)+")
_BLOCK_HEADER = re.compile(r"[|>](?:[+-]?([1-9])?|([1-9])[+-])(?:[ \t]+#.*)?[ \t]*$")
_LINE_START = re.compile(r"[ \t]*(?:-[ \t]+)*")
_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def source_position(lines: list[str], start: Pos, value: str, offset: int) -> Pos:
    """Where ``value[offset]`` is written, for the scalar ``value`` that starts at ``start``.

    An offset at the end of the value (a query that ends too soon) is the column after its last
    character: the closing quote of a quoted scalar. Without a mapping, ``start``.
    """
    positions = value_positions(lines, start, value)
    if not positions:
        return start
    if offset < len(positions):
        return positions[max(offset, 0)]
    line, col = positions[-1]
    return line, col + 1 + offset - len(positions)


def value_positions(lines: list[str], start: Pos, value: str) -> list[Pos] | None:
    """The source position of each character of ``value``; None if the walk does not read
    the scalar at ``start`` as ``value``."""
    line, col = start
    if not 0 <= line < len(lines):
        return None
    text = lines[line]
    properties = _PROPERTIES.match(text, col)
    col = properties.end() if properties else col
    head = text[col : col + 1]
    walk: Iterator[Placed]
    if head in ("'", '"'):
        walk = _quoted(lines, line, col + 1, head)
    elif header := _BLOCK_HEADER.match(text, col):
        walk = _block(lines, line, head == ">", _block_indent(lines, line, col, header))
    else:
        walk = _plain(lines, line, col)
    placed = list(itertools.islice(walk, len(value)))
    if "".join(ch for ch, _ in placed) != value:
        return None
    return [pos for _, pos in placed]


def _plain(lines: list[str], line: int, col: int) -> Iterator[Placed]:
    """A plain scalar, on one line or folded over several."""
    while True:
        content = lines[line][col:].rstrip(" \t")
        yield from ((ch, (line, col + i)) for i, ch in enumerate(content))
        folded = yield from _fold(lines, line)
        if folded is None:
            return
        line, col = folded


def _quoted(lines: list[str], line: int, col: int, quote: str) -> Iterator[Placed]:
    """A quoted scalar from just after its opening quote: line breaks fold (in a double-quoted
    scalar, a break escaped by a backslash joins the lines without a space)."""
    while True:
        placed, stop = _quoted_line(lines[line], line, col, quote)
        if stop == "end of line":  # blanks before a folded break are not content
            while placed and lines[line][placed[-1][1][1]] in " \t":
                placed.pop()
        yield from placed
        if stop not in ("end of line", "escaped break"):
            return
        folded = yield from _fold(lines, line, stop == "end of line")
        if folded is None:
            return
        line, col = folded


def _quoted_line(text: str, line: int, col: int, quote: str) -> tuple[list[Placed], str]:
    """The characters of one line of a quoted scalar, and why the line stopped: "closed",
    "end of line", "escaped break" or "unknown escape"."""
    placed: list[Placed] = []
    i = col
    while i < len(text):
        ch, size = text[i], 1
        if ch == quote:
            if quote == '"' or text[i + 1 : i + 2] != "'":
                return placed, "closed"
            size = 2
        elif ch == "\\" and quote == '"':
            if i + 1 == len(text):
                return placed, "escaped break"
            escaped, size = _escape(text, i)
            if escaped is None:
                return placed, "unknown escape"
            ch = escaped
        placed.append((ch, (line, i)))
        i += size
    return placed, "end of line"


def _escape(text: str, i: int) -> tuple[str | None, int]:
    """The character the escape at ``text[i]`` (a backslash) stands for, and its length."""
    code = text[i + 1]
    if code in _ESCAPES:
        return _ESCAPES[code], 2
    digits = _HEX_ESCAPES.get(code, 0)
    hexa = text[i + 2 : i + 2 + digits]
    if not digits or len(hexa) != digits or not all(c in "0123456789abcdefABCDEF" for c in hexa):
        return None, 0
    return chr(int(hexa, 16)), 2 + digits


def _fold(lines: list[str], line: int, space: bool = True) -> Generator[Placed, None, Pos | None]:
    """Join ``line`` to the next line with content: each empty line between them is a newline,
    and without one the break is a space (nothing, for an escaped break). Returns where the
    next line's content starts, None at the end of the file."""
    following = _next_content_line(lines, line)
    if following is None:
        return None
    empty, start = following
    yield from (("\n", (line + 1 + k, 0)) for k in range(empty))
    if space and not empty:
        yield " ", (line, len(lines[line].rstrip(" \t")))
    return start


def _next_content_line(lines: list[str], line: int, blanks: str = " \t") -> tuple[int, Pos] | None:
    """How many empty lines follow ``line``, and where the next line's content starts (in a
    block scalar, a tab is content: only spaces indent)."""
    for below in range(line + 1, len(lines)):
        text = lines[below]
        if text.strip(blanks):
            return below - line - 1, (below, len(text) - len(text.lstrip(blanks)))
    return None


def _block_indent(lines: list[str], line: int, col: int, header: re.Match[str]) -> int | None:
    """The indentation of a block scalar's content: that of its first line with content, or
    with an indentation indicator (``|2``), the indicator past the enclosing node's column."""
    indicator = header.group(1) or header.group(2)
    if indicator is None:
        following = _next_content_line(lines, line, " ")
        return following[1][1] if following else None
    text = lines[line]
    start = _LINE_START.match(text)
    parent = start.end() if start and start.end() < col else text.rfind("-", 0, col)
    return max(parent, 0) + int(indicator)


def _block(lines: list[str], line: int, folded: bool, indent: int | None) -> Iterator[Placed]:
    """A ``|`` (literal) or ``>`` (folded) block scalar whose header is on ``line``."""
    if indent is None:
        return
    previous: str | None = None  # "normal" or "spaced" (more indented) once a line was read
    end: Pos = (line, len(lines[line]))  # where the previous line's content ends
    empty = 0
    for below in range(line + 1, len(lines)):
        text = lines[below]
        if len(text) <= indent and not text.strip(" "):  # more spaces than that are content
            empty += 1
            continue
        if len(text) - len(text.lstrip(" ")) < indent:
            break
        kind = "spaced" if text[indent] in " \t" else "normal"
        if previous is None:  # empty lines before the first line are kept
            breaks = "\n" * empty
        elif folded and previous == kind == "normal":  # one break is a space
            breaks = "\n" * empty or " "
        else:
            breaks = "\n" * (empty + 1)
        yield from ((ch, end) for ch in breaks)
        yield from ((ch, (below, indent + i)) for i, ch in enumerate(text[indent:]))
        previous, end, empty = kind, (below, len(text)), 0
    # the final break and the empty lines (in the value unless chomped)
    yield from ((ch, end) for ch in "\n" * (empty + (previous is not None)))
