"""Editing ``feeds.yaml`` the way an analyst would: comments, order and layout kept.

`monitor feeds add/remove/import-opml` go through here; a round-trip YAML document is changed in
place and written back atomically. OPML (the feed-list exchange format of every reader) is read
and written here too, so an exported list imports back to the same feeds.
"""

from __future__ import annotations

import io
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from monitor.errors import RuleError

FEEDS_FILE = "feeds.yaml"
_EMPTY = "# Feeds the monitor polls. See README, 'Feeds'.\ndefaults: {interval: 5m}\nfeeds: []\n"


@dataclass(frozen=True)
class FeedEntry:
    """A feed as the list commands see it (``enabled`` as the daemon reads it, defaults too)."""

    url: str
    name: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments and key order survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def feeds_path(rules_dir: Path) -> Path:
    return rules_dir / FEEDS_FILE if rules_dir.is_dir() or not rules_dir.suffix else rules_dir


def _load(path: Path) -> CommentedMap:
    text = path.read_text(encoding="utf-8") if path.exists() else _EMPTY
    try:
        document = _yaml().load(text)
    except Exception as exc:
        raise RuleError([f"{path}: cannot edit: {exc}".splitlines()[0]]) from None
    if document is None:
        document = _yaml().load(_EMPTY)
    if not isinstance(document, CommentedMap):
        raise RuleError([f"{path}:1:1: expected a mapping with 'feeds:'"])
    if not isinstance(document.get("feeds"), CommentedSeq):
        document["feeds"] = CommentedSeq()
    return document


def _save(path: Path, document: CommentedMap) -> None:
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(buffer.getvalue())
    os.replace(tmp, path)


def list_feeds(path: Path) -> list[FeedEntry]:
    document = _load(path)
    defaults = _defaults(document)
    return [_entry(item, defaults) for item in document["feeds"] if isinstance(item, dict)]


def _defaults(document: CommentedMap) -> Mapping[str, Any]:
    defaults = document.get("defaults")
    return defaults if isinstance(defaults, Mapping) else {}


def _entry(item: dict[str, Any], defaults: Mapping[str, Any]) -> FeedEntry:
    return FeedEntry(
        url=str(item.get("url", "")),
        name=str(item.get("name", "")),
        tags=tuple(item.get("tags") or ()),
        enabled=_enabled(item.get("enabled", defaults.get("enabled", True))),
    )


_FLAG: TypeAdapter[bool] = TypeAdapter(bool)


def _enabled(value: object) -> bool:
    """``enabled:`` as the loader validates it: YAML 1.2 reads ``no`` and ``off`` as strings,
    which pydantic takes as false, so the daemon skips such a feed and the list must say so.
    A value the loader refuses counts as enabled here: ``monitor check`` reports it."""
    try:
        return _FLAG.validate_python(value)
    except ValidationError:
        return True


def add_feeds(path: Path, entries: Iterable[FeedEntry]) -> list[FeedEntry]:
    """Append feeds not already listed (by URL); return the ones added."""
    document = _load(path)
    known = {str(item.get("url")) for item in document["feeds"] if isinstance(item, dict)}
    added = []
    for entry in entries:
        if entry.url in known:
            continue
        item = CommentedMap(url=entry.url)
        if entry.name:
            item["name"] = entry.name
        if entry.tags:
            tags = CommentedSeq(entry.tags)
            tags.fa.set_flow_style()
            item["tags"] = tags
        document["feeds"].append(item)
        known.add(entry.url)
        added.append(entry)
    if added:
        _save(path, document)
    return added


def remove_feed(path: Path, url_or_name: str) -> FeedEntry:
    """Remove one feed by URL or name; RuleError when there is no such feed."""
    document = _load(path)
    for index, item in enumerate(document["feeds"]):
        if isinstance(item, dict) and url_or_name in (item.get("url"), item.get("name")):
            del document["feeds"][index]
            _save(path, document)
            return _entry(item, _defaults(document))
    raise RuleError([f"{path}: no feed with URL or name {url_or_name!r}"])


def parse_opml(data: bytes, source: str) -> list[FeedEntry]:
    """Feeds of an OPML file; nested outlines become tags (the folder names)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise RuleError([f"{source}: not OPML: {exc}"]) from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise RuleError([f"{source}: not OPML: no <opml><body>"])
    found: list[FeedEntry] = []

    def walk(node: ET.Element, folders: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            url = outline.get("xmlUrl")
            label = outline.get("title") or outline.get("text") or ""
            if url:
                category = tuple(
                    c.strip() for c in (outline.get("category") or "").split(",") if c.strip()
                )
                found.append(FeedEntry(url=url, name=label, tags=folders + category))
            else:
                walk(outline, (*folders, label) if label else folders)

    walk(body, ())
    return found


def to_opml(entries: Iterable[FeedEntry], title: str = "wire-monitor feeds") -> str:
    """An OPML 2.0 document; tags are written as the `category` attribute."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for entry in entries:
        attributes = {"type": "rss", "text": entry.name or entry.url, "xmlUrl": entry.url}
        if entry.name:
            attributes["title"] = entry.name
        if entry.tags:
            attributes["category"] = ",".join(entry.tags)
        ET.SubElement(body, "outline", attributes)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
