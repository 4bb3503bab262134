"""Rules: the YAML rule language, validation with positions, a fast explained matcher.

The public surface the daemon and the CLI build on::

    ruleset = load_rules(Path("rules"))          # RuleError(problems) if anything is wrong
    matches = ruleset.matcher.match(article, feed_tags)

``load_rules`` is the only part that reads files (``loader.py``); everything else is pure.
"""

from __future__ import annotations

from monitor.rules.compile import compile_rules, search_key
from monitor.rules.detect import detect_language
from monitor.rules.loader import RuleSet, load_rules
from monitor.rules.matcher import Matcher
from monitor.rules.model import (
    ChannelPolicy,
    Entity,
    FeedConfig,
    FeedDefaults,
    FeedList,
    Position,
    Rule,
    parse_rate_limit,
)
from monitor.rules.query import Node, QueryError, parse_query, parse_structured
from monitor.rules.schema_doc import json_schema
from monitor.schema import QuietHours, parse_quiet_hours

__all__ = [
    "ChannelPolicy",
    "Entity",
    "FeedConfig",
    "FeedDefaults",
    "FeedList",
    "Matcher",
    "Node",
    "Position",
    "QueryError",
    "QuietHours",
    "Rule",
    "RuleSet",
    "compile_rules",
    "detect_language",
    "json_schema",
    "load_rules",
    "parse_query",
    "parse_quiet_hours",
    "parse_rate_limit",
    "parse_structured",
    "search_key",
]
