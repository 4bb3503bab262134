"""The JSON Schema of the files under ``rules/``, for editors (``monitor schema``).

Written out rather than generated from the pydantic models because the file format is not the
models' JSON form: durations are ``5m`` strings, severities names, and a rule's items nest.
``tests/test_rules_schema.py`` holds the two together: every key a model accepts is in the
schema and every key in the schema is accepted by a model.
"""

from __future__ import annotations

from typing import Any

#: Longer than zero, as every duration of rules/ must be: the lookahead wants a digit 1-9 in
#: the number, so 0s, 00m and 0.0h are refused as the loader refuses them.
DURATION = {
    "type": "string",
    "pattern": r"^\s*(?=[\d.]*[1-9])\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*$",
    "description": "a number (more than zero) and a unit: 30s, 5m, 2h, 1d, 1w",
}
SEVERITY = {"enum": ["info", "low", "medium", "high", "critical"]}
QUIET_HOURS = {
    "type": "string",
    "pattern": r"^\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}(\s+\S+)?\s*$",
    "description": 'a daily window and an IANA zone, e.g. "22:00-07:00 Europe/Berlin"',
}
FIELD = {"enum": ["title", "summary", "content"]}
STRINGS = {"type": "array", "items": {"type": "string"}}


def _item_ref() -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}}


def json_schema(kind: str = "all") -> dict[str, Any]:
    """The schema of a rule file, ``feeds.yaml``, ``channels.yaml``, or (``all``) any of them."""
    feed_settings: dict[str, Any] = {
        "tags": STRINGS,
        "enabled": {"type": "boolean", "default": True},
        "interval": DURATION,
        "min_interval": DURATION,
        "max_interval": DURATION,
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "HTTP headers; values may use ${ENV_VAR}",
        },
        "alert_on_first_poll": {"type": "boolean", "default": False},
        "max_age": DURATION,
        "respect_cache_hints": {"type": "boolean", "default": True},
        "failure_alert_after": {"type": "integer", "minimum": 1, "default": 5},
        "silence_after": {"anyOf": [DURATION, {"type": "null"}]},
    }
    defs: dict[str, Any] = {
        "item": {
            "description": "a word, phrase, prefix* or @entity; or a nested any/all/none group",
            "anyOf": [{"type": "string", "minLength": 1}, {"$ref": "#/$defs/group"}],
        },
        "group": {
            "type": "object",
            "properties": {"any": _item_ref(), "all": _item_ref(), "none": _item_ref()},
            "additionalProperties": False,
            "minProperties": 1,
        },
        "entity": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "aliases": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            },
            "required": ["aliases"],
            "additionalProperties": False,
        },
        "rule": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "enabled": {"type": "boolean", "default": True},
                "severity": SEVERITY,
                "query": {
                    "type": "string",
                    "description": 'words, "phrases", prefix*, @entity, title:/summary:/content:,'
                    " AND, OR, NOT, ( ), NEAR/n, ONEAR/n",
                },
                "any": _item_ref(),
                "all": _item_ref(),
                "none": _item_ref(),
                "notify": {**STRINGS, "description": "Apprise tags; absent: every channel"},
                "feeds": {**STRINGS, "description": "feed names or feed tags"},
                "fields": {"type": "array", "minItems": 1, "items": FIELD},
                "languages": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[A-Za-z]{2,3}(-.*)?$"},
                },
                "throttle": DURATION,
                "digest": {
                    "type": "string",
                    "description": "hourly, daily 08:00, weekly mon 08:00",
                },
                "quiet_hours": QUIET_HOURS,
            },
            "required": ["id"],
            "oneOf": [
                {
                    "required": ["query"],
                    "not": {"anyOf": [{"required": [k]} for k in ("any", "all", "none")]},
                },
                {
                    "not": {"required": ["query"]},
                    "anyOf": [{"required": [k]} for k in ("any", "all", "none")],
                },
            ],
            "additionalProperties": False,
        },
        "feed_defaults": {
            "type": "object",
            "properties": feed_settings,
            "additionalProperties": False,
        },
        "feed": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "pattern": "^https?://"},
                "name": {"type": "string"},
                **feed_settings,
            },
            "required": ["url"],
            "additionalProperties": False,
        },
        "channel": {
            "type": "object",
            "properties": {
                "rate_limit": {
                    "type": "string",
                    "pattern": r"^\s*\d+\s*/\s*\d*\s*[a-z]+\s*$",
                    "description": "COUNT/PERIOD, e.g. 20/min",
                },
                "quiet_hours": QUIET_HOURS,
                "bypass_severity": SEVERITY,
            },
            "additionalProperties": False,
        },
    }
    files: dict[str, dict[str, Any]] = {
        "rules": {
            "title": "wire-monitor rule file",
            "type": "object",
            "properties": {
                "entities": {"type": "object", "additionalProperties": {"$ref": "#/$defs/entity"}},
                "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
            },
            "additionalProperties": False,
        },
        "feeds": {
            "title": "wire-monitor feeds.yaml",
            "type": "object",
            "properties": {
                "defaults": {"$ref": "#/$defs/feed_defaults"},
                "feeds": {"type": "array", "items": {"$ref": "#/$defs/feed"}},
            },
            "additionalProperties": False,
        },
        "channels": {
            "title": "wire-monitor channels.yaml",
            "type": "object",
            "properties": {
                "channels": {"type": "object", "additionalProperties": {"$ref": "#/$defs/channel"}}
            },
            "additionalProperties": False,
        },
    }
    head = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}
    if kind == "all":
        return {
            **head,
            "title": "wire-monitor rules/*.yaml (rules, feeds or channels)",
            "anyOf": list(files.values()),
        }
    return {**head, **files[kind]}
