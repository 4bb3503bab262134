"""`monitor parse` and `monitor config` as a user runs them: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


def run_monitor(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def test_parse_file_prints_json_lines() -> None:
    result = run_monitor("parse", str(FIXTURES / "rss20_wire.xml"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["title"] for a in lines] == [
        "North Korea tests new kamikaze drones, state media says",
        "WASHINGTON, Pyongyang trade barbs",
    ]
    assert lines[0]["dateline"] == "SEOUL"


def test_parse_stdin() -> None:
    result = run_monitor("parse", "-", stdin=(FIXTURES / "jsonfeed11.json").read_bytes())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["title"] for line in lines] == [
        "김정은, 무인기 시험 참관",
        "Kim’s & drones",
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("not_a_feed.html", "HTML page"),
        ("empty.xml", "empty document"),
        ("garbage.bin", "not a feed"),
    ],
)
def test_parse_non_feed_exits_1_with_one_line(name: str, reason: str) -> None:
    result = run_monitor("parse", str(FIXTURES / name))
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert name in line and reason in line
    assert "Traceback" not in result.stderr


def test_parse_missing_file_exits_1() -> None:
    result = run_monitor("parse", "no/such/feed.xml")
    assert result.returncode == 1
    assert "no/such/feed.xml: cannot read" in result.stderr


def test_usage_error_exits_2() -> None:
    assert run_monitor("parse").returncode == 2
    assert run_monitor("no-such-command").returncode == 2


def test_help_on_every_command() -> None:
    for command in ("parse", "config"):
        result = run_monitor(command, "--help")
        assert result.returncode == 0
        assert "Usage" in result.stdout


def test_config_masks_secrets() -> None:
    result = run_monitor(
        "config", env={"MONITOR_APPRISE_URLS": "json://127.0.0.1/hook?token=s3cr3t"}
    )
    assert result.returncode == 0
    assert "s3cr3t" not in result.stdout
    assert "MONITOR_APPRISE_URLS=********" in result.stdout
    assert "MONITOR_DEFAULT_INTERVAL=5m" in result.stdout


def test_config_error_exits_1() -> None:
    result = run_monitor("config", env={"MONITOR_LOG_FORMAT": "xml"})
    assert result.returncode == 1
    assert "MONITOR_LOG_FORMAT" in result.stderr
    assert "Traceback" not in result.stderr


def test_parse_url_fetches_over_http() -> None:
    from tests.feedserver import FeedServer, Route

    with FeedServer() as server:
        server.routes["/feed"] = Route(body=(FIXTURES / "rss20_wire.xml").read_bytes())
        result = run_monitor("parse", server.url("/feed"))
        missing = run_monitor("parse", server.url("/missing"))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["title"] for line in result.stdout.splitlines()]
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "HTTP 404" in missing.stderr
