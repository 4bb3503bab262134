"""Logs: one line per event, text or JSON, stable keys; secrets masked in logs, `monitor config`,
`monitor status`, the status page and error messages (end to end, on PostgreSQL)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from monitor.cli import LOG_BACKLOG, LogFormatter, configure_logging
from monitor.config import MASK, Masker, Settings
from tests.feedserver import FeedServer, Route
from tests.pg import free_port
from tests.receivers import Webhook, wait_for
from tests.test_daemon import healthy, monitor, rss, workspace

APPRISE_TOKEN = "apprtok7Q2wX9zL"
TELEGRAM_TOKEN = "123456789:AAbbCCddEEffGGhh"
DB_PASSWORD = "dbpassW0rd42"
HTTP_TOKEN = "httptokZ8k3M1"
SECRETS = [APPRISE_TOKEN, TELEGRAM_TOKEN, DB_PASSWORD, HTTP_TOKEN]
APPRISE_URLS = f"json://127.0.0.1:9/hook?token={APPRISE_TOKEN}, tgram://{TELEGRAM_TOKEN}/12345"
#: Secrets of the end-to-end run, whose channels are all on 127.0.0.1 (nothing else is sent to):
#: a token in a query, a password and a token in a path, a database password in a query.
HOOK_PASSWORD = "hookpassQ4r8"
PATH_TOKEN = "pathtokN6v2J"
SSL_PASSWORD = "sslpassT5y7U"
E2E_SECRETS = [APPRISE_TOKEN, HOOK_PASSWORD, PATH_TOKEN, DB_PASSWORD, SSL_PASSWORD, HTTP_TOKEN]
#: A text log line starts with its time stamp; anything else is a line that was split.
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 [A-Z]+ ")


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("monitor.daemon", logging.INFO, __file__, 1, message, (), None)
    rec.__dict__.update(extra)
    return rec


def test_text_lines_carry_stable_keys() -> None:
    formatter = LogFormatter("text", [])
    line = formatter.format(
        record("polled", feed="Yonhap English", status=200, elapsed_ms=12, rule=None, ok=True)
    )
    assert "\n" not in line
    assert line.endswith(
        'monitor.daemon: polled feed="Yonhap English" status=200 elapsed_ms=12 rule=- ok=true'
    )


def test_json_lines_carry_the_keys_as_fields() -> None:
    formatter = LogFormatter("json", [])
    line = formatter.format(record("matched", feed="A", rule="nk", article_id="x1", msg_id=3))
    data = json.loads(line)
    assert data["msg"] == "matched" and data["level"] == "INFO"
    assert (data["feed"], data["rule"], data["article_id"]) == ("A", "nk", "x1")
    try:
        raise RuntimeError(f"boom {DB_PASSWORD}")
    except RuntimeError:
        failing = record("crashed", feed="A")
        failing.exc_info = sys.exc_info()
    data = json.loads(LogFormatter("json", [DB_PASSWORD]).format(failing))
    assert "RuntimeError" in data["exc"] and DB_PASSWORD not in data["exc"]


def test_a_traceback_stays_on_its_line_in_text() -> None:
    try:
        raise RuntimeError(f"boom {DB_PASSWORD}\nsecond line")
    except RuntimeError:
        failing = record("poll crashed\nby a multi-line message", feed="A")
        failing.exc_info = sys.exc_info()
    line = LogFormatter("text", [DB_PASSWORD]).format(failing)
    assert "\n" not in line and TEXT_LINE.match(line)
    assert "poll crashed\\nby a multi-line message feed=A exc=" in line
    trace = json.loads(line.split(" exc=", 1)[1])  # the traceback, whole, as one JSON string
    assert trace.startswith("Traceback") and "RuntimeError: boom" in trace
    assert DB_PASSWORD not in line and MASK in trace


def test_database_passwords_in_the_query_string_are_masked() -> None:
    url = f"postgresql://u@h/db?sslmode=require&password={DB_PASSWORD}&sslpassword={SSL_PASSWORD}"
    settings = Settings(database_url=url)
    shown = settings.masked()["MONITOR_DATABASE_URL"]
    assert shown == f"postgresql://u@h/db?sslmode=require&password={MASK}&sslpassword={MASK}"
    assert {DB_PASSWORD, SSL_PASSWORD} <= set(settings.secrets())
    # in any text, configured or not: an error quoting some other URL's query credentials
    assert Masker([])(f"refused by http://h/x?token={APPRISE_TOKEN}&page=2") == (
        f"refused by http://h/x?token={MASK}&page=2"
    )


def test_secrets_are_masked_in_message_fields_and_urls() -> None:
    settings = Settings(
        apprise_urls=APPRISE_URLS,
        database_url=f"postgresql+psycopg://monitor:{DB_PASSWORD}@db/monitor",
        http_token=HTTP_TOKEN,
    )
    formatter = LogFormatter("text", settings.secrets())
    line = formatter.format(
        record(
            f"sent to tgram://{TELEGRAM_TOKEN}/12345",
            error=f"refused ?token={APPRISE_TOKEN} by postgresql://x:other@h/d",
            header=f"Bearer {HTTP_TOKEN}",
        )
    )
    for secret in [*SECRETS, "other"]:
        assert secret not in line
    assert MASK in line
    shown = "\n".join(f"{k}={v}" for k, v in settings.masked().items())
    for secret in SECRETS:
        assert secret not in shown


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("apprise.txt", "desk, ops = json://hooks.example/{token}/in\n# a comment\n"),
        ("apprise.yml", "urls:\n  - json://hooks.example/{token}/in:\n      tag: desk\n"),
        ("apprise.yaml", "urls:\n  - json://hooks.example/in/{token}:\n      tag: desk\n"),
    ],
)
def test_urls_in_an_apprise_config_file_are_secrets(tmp_path: Path, name: str, body: str) -> None:
    # Apprise logs a URL it cannot load: the tokens of the file's URLs are masked like the env's
    token = "cfgTokenZq81xV"
    config = tmp_path / name
    config.write_text(body.format(token=token), encoding="utf-8")
    formatter = LogFormatter("text", Settings(apprise_config=config).secrets())
    line = formatter.format(
        record(f"could not load json://hooks.example/{token}/in or json://hooks.example/in/{token}")
    )
    assert token not in line and MASK in line


def test_credentials_given_as_options_in_a_yaml_apprise_config_are_secrets(
    tmp_path: Path,
) -> None:
    config = tmp_path / "apprise.yml"
    config.write_text(
        "urls:\n  - mailtos://mail.example:\n      user: desk\n      pass: pw9Kq2mZ\n"
        "  - json://hooks.example/in:\n      - token: 'tk7Hq3xLw'\n"
        '  - mailto://other.example:\n      password: "correct horse battery"\n'
        "  - json://hooks.example/two:\n      - apikey: s3cr3t#tok3n99\n"
        "  - json://hooks.example/three:\n      - secret: 'it''s-a-key'\n",
        encoding="utf-8",
    )
    formatter = LogFormatter("text", Settings(apprise_config=config).secrets())
    values = ["pw9Kq2mZ", "tk7Hq3xLw", "correct horse battery", "s3cr3t#tok3n99", "it's-a-key"]
    line = formatter.format(record("login failed with " + ", ".join(values)))
    for value in values:
        assert value not in line
    assert "horse" not in line and "tok3n99" not in line


def log_events(stderr: str) -> dict[str, list[dict[str, object]]]:
    """A JSON log's lines by message."""
    events: dict[str, list[dict[str, object]]] = {}
    for line in stderr.splitlines():
        event = json.loads(line)
        events.setdefault(str(event["msg"]), []).append(event)
    return events


def assert_stable_keys(events: dict[str, list[dict[str, object]]]) -> None:
    """The feed, channel, rule and article of an event are fields, not words of its message."""
    (matched,) = events["matched"]
    assert matched["feed"] == "feed0" and matched["rule"] == "drones" and matched["article_id"]
    delivered = events["delivered"]
    assert [(e["rule"], e["article_id"]) for e in delivered] == [("drones", matched["article_id"])]
    assert str(delivered[0]["channel"]).startswith("json-")
    failed = events["delivery failed"][0]  # the refusing channel (retried after 5-10 s)
    assert failed["channel"] != delivered[0]["channel"] and failed["error"]
    assert failed["attempts"] == 1 and failed["dead_lettered"] is False
    polled = {str(e["feed"]): e for e in events["polled"]}
    assert polled["feed0"]["status"] == 200 and isinstance(polled["feed0"]["elapsed_ms"], int)
    assert polled["feed1"]["outcome"] == "error"


def add_dead_letter(dsn: str, error: str) -> None:
    """Give up on the delivery still pending (its channel refuses), with an error that quotes
    secrets, as a channel's error may: `monitor status` lists it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        updated = conn.execute(
            "UPDATE deliveries SET state = 'dead', last_error = %s WHERE state <> 'sent'", [error]
        ).rowcount
    assert updated == 1


@pytest.mark.slow
def test_no_secret_in_any_output_end_to_end(pg_url: str, tmp_path: Path) -> None:
    # trust auth: the passwords are accepted (and not needed)
    secret_url = f"{pg_url}?password={DB_PASSWORD}&sslpassword={SSL_PASSWORD}"
    dsn = pg_url.replace("+psycopg", "")
    outputs: list[str] = []
    with FeedServer() as server, Webhook() as hook:
        server.routes["/wire"] = Route(body=rss("Parliament sits"))
        # a feed whose URL carries a password, and which fails: its error names the URL
        private = f"http://reader:{DB_PASSWORD}@127.0.0.1:9/private"
        env = workspace(tmp_path, [server.url("/wire"), private])
        port = free_port()
        # two channels: one accepts, one refuses (nothing listens on port 9)
        channels = f"{hook.url()}?token={APPRISE_TOKEN}, "
        channels += f"json://hook:{HOOK_PASSWORD}@127.0.0.1:9/{PATH_TOKEN}"
        env.update(
            MONITOR_DATABASE_URL=secret_url,
            MONITOR_APPRISE_URLS=channels,
            MONITOR_HTTP_TOKEN=HTTP_TOKEN,
            MONITOR_HTTP_LISTEN=f"127.0.0.1:{port}",
            MONITOR_LOG_LEVEL="DEBUG",
        )
        for log_format in ("text", "json"):
            done = monitor("run", "--once", env={**env, "MONITOR_LOG_FORMAT": log_format})
            assert done.returncode == 0, done.stderr
            outputs += [done.stdout, done.stderr]
            lines = done.stderr.splitlines()
            assert lines
            if log_format == "json":  # one JSON object per line
                assert all(json.loads(line)["msg"] for line in lines)
            else:
                assert all(TEXT_LINE.match(line) for line in lines), done.stderr
        assert "error=" in outputs[1] and MASK in outputs[1]  # the failing feed was logged
        server.routes["/wire"] = Route(body=rss("Drone sighted", "Parliament sits"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE feeds SET next_poll_at = NULL")  # due again for the daemon
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env={**env, "MONITOR_LOG_FORMAT": "json"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_for(lambda: healthy(base), 30), "the daemon's HTTP listener did not come up"
            auth = {"Authorization": f"Bearer {HTTP_TOKEN}"}
            assert wait_for(lambda: "Drone sighted" in httpx.get(base, headers=auth).text, 30)
            assert wait_for(lambda: bool(hook.bodies), 30), "the alert was not delivered"
            page = httpx.get(base, headers=auth)
            assert MASK in page.text  # the failing feed's error, password masked
            outputs += [page.text, httpx.get(f"{base}/metrics", headers=auth).text]
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        outputs += [out, err]
    assert_stable_keys(log_events(err))
    add_dead_letter(dsn, f"refused: {channels}; {secret_url}")
    for command in (["config"], ["status"]):
        done = monitor(*command, env={**env, "COLUMNS": "300"})
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
    config, status = outputs[-4], outputs[-2]
    assert f"MONITOR_HTTP_TOKEN={MASK}" in config
    assert f"?password={MASK}&sslpassword={MASK}" in config
    dead_letters = status.split("Dead letters", 1)[-1].split("Feeds", 1)[0]
    assert "refused: json://" in dead_letters and f"?token={MASK}" in dead_letters
    # an error message: a database that refuses, named by a URL with a password
    refused = monitor(
        "status", env={**env, "MONITOR_DATABASE_URL": f"postgresql+psycopg://u:{DB_PASSWORD}@/x"}
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    outputs += [refused.stdout, refused.stderr]
    everything = "\n".join(outputs)
    for secret in E2E_SECRETS:
        assert secret not in everything, f"a secret leaked: {secret[:3]}..."


def test_a_log_reader_that_stops_reading_never_blocks_the_daemon() -> None:
    """A pipe nobody reads fills at 64 KiB; logging must go on (dropping lines), not block the
    event loop, and say how many lines were dropped once the reader is back."""
    read_end, write_end = os.pipe()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    writer = configure_logging(Settings(log_format="text"), os.fdopen(write_end, "w"))
    log = logging.getLogger("monitor.test")
    try:
        flood = threading.Thread(
            target=lambda: [log.warning("line %d %s", i, "x" * 100) for i in range(3 * LOG_BACKLOG)]
        )
        flood.start()
        flood.join(60)
        assert not flood.is_alive(), "logging blocked on a full pipe"
        chunks: list[bytes] = []
        reader = threading.Thread(
            target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b""))
        )
        reader.start()
        deadline = time.monotonic() + 30
        while not writer.lines.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        log.warning("after the stall")
        writer.close()
        writer.stream.close()
        reader.join(30)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        os.close(read_end)
    lines = b"".join(chunks).decode().splitlines()
    assert f"line {3 * LOG_BACKLOG - 1} " not in "\n".join(lines)  # the flood's tail was dropped
    # a notice each time a line got through after drops (the writer may free a slot or two
    # before the pipe is full), counting the lines dropped since the last one
    notices = [line for line in lines if "log lines dropped" in line]
    assert notices and lines[-1].endswith("after the stall")
    dropped = sum(int(line.split("monitor: ")[1].split()[0]) for line in notices)
    assert dropped + sum(line.count("xxxxx") > 0 for line in lines) == 3 * LOG_BACKLOG
