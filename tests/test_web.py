"""monitor/web.py: probes, metrics, the status page and its guard, through Starlette's TestClient
and through the real uvicorn server on 127.0.0.1 (httpx)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from starlette.testclient import TestClient

from monitor.config import Settings
from monitor.dedupe import best_story
from monitor.errors import ConfigError
from monitor.store import AlertPlan, PollRecord, Store
from monitor.web import (
    CSP,
    Heartbeat,
    Metrics,
    WebServer,
    check_listen,
    create_app,
    feed_state,
    is_loopback,
    parse_listen,
)
from tests.test_store import NOW, make_article, new_item

TOKEN = "s3cret-web-token-1234"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class Report:
    outcome: str
    error_kind: str | None = None
    elapsed: float = 0.2
    items: int = 3
    new_items: int = 1
    matches: int = 1
    alerts: int = 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def populate(store: Store) -> None:
    """Two feeds (one failing, one with a hostile name), matches, alerts, deliveries, polls."""
    store.sync_feeds(
        [("https://feeds.example.org/asia.xml", "Asia", True),
         ("https://evil.example.org/rss", f"Evil {EVIL}", True)],
        NOW,
    )  # fmt: skip
    asia = store.feed("https://feeds.example.org/asia.xml")
    evil = store.feed("https://evil.example.org/rss")
    assert asia and evil
    hostile = make_article(2, title=f"Drone {EVIL}").model_copy(
        update={"url": "javascript:alert(1)", "feed": f"Evil {EVIL}"}
    )
    items = [new_item(make_article(1), ("nk-drones",)), new_item(hostile, ("nk-drones", "treaty"))]
    store.record_items(
        PollRecord(
            feed_id=asia.id, now=NOW, new_items=items, present_keys=[], pick_story=best_story
        ),
        feed_name="Asia",
    )
    store.plan_alerts(NOW, lambda a: AlertPlan(dict.fromkeys(a.channels, (NOW, None))))
    store.update_feed(
        evil.id,
        consecutive_failures=3,
        last_error=f"cannot connect to postgresql://u:{TOKEN}@db/x {EVIL}",
        last_error_kind="connect",
        last_polled_at=NOW,
    )
    store.update_feed(asia.id, last_polled_at=NOW, last_status=200, last_item_count=2)
    for n, outcome in enumerate(["new", "unchanged", "error", "not_modified"]):
        store.record_poll(asia.id, NOW + timedelta(minutes=n), outcome, status=200)
    store.record_poll(evil.id, NOW, "error", error_kind="connect")


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    populate(store)
    beat = Heartbeat(30)
    app = create_app(
        store=store,
        metrics=Metrics(store, beat),
        heartbeat=beat,
        rule_ids=lambda: ["nk-drones", "treaty", "quiet-rule"],
        clock=lambda: NOW + timedelta(minutes=10),
        secrets=[TOKEN],
    )
    with TestClient(app) as test_client:
        yield test_client


def test_listen_addresses() -> None:
    assert parse_listen("") is None
    assert parse_listen("127.0.0.1:8600") == ("127.0.0.1", 8600)
    assert parse_listen("[::1]:8600") == ("::1", 8600)
    assert parse_listen(":8600") == ("0.0.0.0", 8600)
    with pytest.raises(ConfigError, match="host:port"):
        parse_listen("localhost")
    assert is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert not is_loopback("monitor.example.org")


def test_non_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="MONITOR_HTTP_TOKEN"):
        check_listen(Settings(http_listen="0.0.0.0:8600"))
    assert check_listen(Settings(http_listen="0.0.0.0:8600", http_token=TOKEN)) == (
        "0.0.0.0",
        8600,
    )
    assert check_listen(Settings(http_listen="127.0.0.1:8600")) == ("127.0.0.1", 8600)
    assert check_listen(Settings(http_listen="")) is None


def test_healthz_follows_the_heartbeat(store: Store) -> None:
    clock = FakeClock()
    beat = Heartbeat(30, clock=clock)
    with TestClient(create_app(store=store, metrics=Metrics(), heartbeat=beat)) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        clock.now += 31
        stale = client.get("/healthz")
        assert stale.status_code == 503 and stale.json()["status"] == "stale"
        beat.beat()
        assert client.get("/healthz").status_code == 200
        beat.stopping = True
        assert client.get("/healthz").status_code == 503


def test_readyz_asks_the_database(store: Store) -> None:
    beat = Heartbeat(30)
    with TestClient(create_app(store=store, metrics=Metrics(), heartbeat=beat)) as client:
        assert client.get("/readyz").json() == {"status": "ok", "database": "ok"}
    down = Store.open("postgresql+psycopg://monitor:pw@127.0.0.1:9/none", migrate=False)
    with TestClient(create_app(store=down, metrics=Metrics(), heartbeat=beat)) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    assert "pw" not in answer.text


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    assert found, f"{name}{labels} not in metrics"
    return float(found.group(1))


def test_metrics_from_the_process_and_from_the_store(store: Store) -> None:
    populate(store)
    beat = Heartbeat(30)
    metrics = Metrics(store, beat)
    metrics.observe_poll(Report("new"))
    metrics.observe_poll(Report("error", error_kind="timeout", items=0, new_items=0, matches=0))
    metrics.observe_sent("console", NOW - timedelta(minutes=2), NOW - timedelta(seconds=1), NOW)
    deliveries = store.claim_deliveries("me", NOW, timedelta(minutes=1))
    store.settle_delivery(deliveries[0].id, NOW, sent=True)
    store.settle_delivery(deliveries[1].id, NOW, sent=False, error="down", retry_at=NOW)
    store.settle_delivery(deliveries[2].id, NOW, sent=False, error="gone")
    with TestClient(create_app(store=store, metrics=metrics, heartbeat=beat)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert metric(text, "monitor_polls_total", outcome="new") == 1
    assert metric(text, "monitor_polls_total", outcome="error") == 1
    assert metric(text, "monitor_fetch_errors_total", kind="timeout") == 1
    assert metric(text, "monitor_fetch_seconds_count") == 2
    assert metric(text, "monitor_items_total") == 3
    assert metric(text, "monitor_matches_total") == 1
    assert metric(text, "monitor_publish_to_alert_seconds_count", channel="console") == 1
    assert metric(text, "monitor_publish_to_alert_seconds_sum", channel="console") == 120
    assert metric(text, "monitor_alerts_sent", channel="console") == 1
    assert metric(text, "monitor_alerts_failed", channel="console") == 1
    assert metric(text, "monitor_alerts_dead", channel="console") == 1
    assert metric(text, "monitor_delivery_failed_attempts", channel="console") == 2
    assert metric(text, "monitor_outbox_depth") == 1
    assert metric(text, "monitor_feeds_in_backoff") == 1
    escaped = f"Evil {EVIL}".replace('"', '\\"')
    assert metric(text, "monitor_feed_consecutive_failures", feed=escaped, kind="connect") == 3
    assert metric(text, "monitor_store_up") == 1
    # per-daemon registries: a second daemon's metrics start from zero
    assert "monitor_polls_total{" not in Metrics().render().decode()


def test_a_feed_disabled_in_feeds_yaml_is_disabled_not_removed(store: Store) -> None:
    """``enabled: false`` is the analyst's choice, shown as such; a feed taken out of
    feeds.yaml is "removed"; both stay in the store."""
    on, off, gone = (f"https://{n}.example.org/rss" for n in ("on", "off", "gone"))
    store.sync_feeds([(on, "On", True), (off, "Off", False), (gone, "Gone", True)], NOW)
    store.sync_feeds([(on, "On", True), (off, "Off", False)], NOW)
    assert {f.name: feed_state(f) for f in store.all_feeds()} == {
        "On": ("new", "new"),
        "Off": ("disabled", "disabled in feeds.yaml"),
        "Gone": ("removed", "not in feeds.yaml"),
    }
    beat = Heartbeat(30)
    with TestClient(create_app(store=store, metrics=Metrics(store, beat), heartbeat=beat)) as web:
        text, page = web.get("/metrics").text, web.get("/").text
    assert metric(text, "monitor_feeds", state="disabled") == 1
    assert metric(text, "monitor_feeds", state="removed") == 1
    assert "disabled in feeds.yaml" in page

    store.sync_feeds([(on, "On", True), (off, "Off", False), (gone, "Gone", True)], NOW)
    state = store.feed(gone)
    assert state is not None and state.enabled and not state.removed


def test_status_page_escapes_masks_and_charts(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html  # a hostile link is shown as text, not linked
    assert TOKEN not in html
    assert "postgresql://u:********@db/x" in html
    assert 'http-equiv="refresh"' in html
    assert " style=" not in html  # the CSP allows only the one hashed <style> element
    assert html.count('<svg class="strip"') == 2
    assert html.count('<svg class="chart"') == 3  # nk-drones, treaty and a rule with no alerts
    assert "backing off (3 failures)" in html
    assert "nk-drones" in html and "quiet-rule" in html
    assert "outbox:\n3 pending" in html


def test_token_guards_everything_but_the_probes(store: Store) -> None:
    beat = Heartbeat(30)
    app = create_app(store=store, metrics=Metrics(store, beat), heartbeat=beat, token=TOKEN)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        for path in ("/", "/metrics", "/nothing-here"):
            refused = client.get(path)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic")
            assert "content-security-policy" in refused.headers
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/metrics", headers=bearer).status_code == 200
        assert client.get("/", auth=("anyone", TOKEN)).status_code == 200
        assert client.get("/", auth=("anyone", "wrong")).status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        garbage = {"Authorization": "Basic !!!" + base64.b64encode(b"x").decode()}
        assert client.get("/", headers=garbage).status_code == 401


async def test_the_real_server_on_loopback(store: Store) -> None:
    populate(store)
    beat = Heartbeat(30)
    app = create_app(store=store, metrics=Metrics(store, beat), heartbeat=beat, token=TOKEN)
    server = WebServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get("/metrics")).status_code == 401
            authed = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert authed.status_code == 200 and "monitor_outbox_depth" in authed.text
            page = await http.get("/", auth=("ops", TOKEN))
            assert page.status_code == 200 and "Recent alerts" in page.text
        with pytest.raises(ConfigError, match="cannot listen"):
            await WebServer(app, "127.0.0.1", server.port).start()
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=2)


def test_page_renders_with_an_empty_database(store: Store) -> None:
    beat = Heartbeat(30)
    with TestClient(create_app(store=store, metrics=Metrics(store, beat), heartbeat=beat)) as c:
        page = c.get("/")
    assert page.status_code == 200
    assert "no feeds" in page.text and "no alerts yet" in page.text
