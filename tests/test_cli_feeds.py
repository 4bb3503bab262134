"""`monitor feeds ...` keeps the analyst's comments; OPML round-trips; backtest sends nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app
from monitor.parse import story_fingerprint
from monitor.rules import load_rules
from monitor.rules.backtest import sparkline
from monitor.rules.edit import FeedEntry, list_feeds, parse_opml, to_opml
from monitor.schema import Article
from monitor.store import NewItem, PollRecord, Store, alerts, deliveries

FEEDS = """\
# The desk's feeds. Keep Yonhap first.
defaults: {interval: 5m}
feeds:
  # wires
  - url: https://en.yna.co.kr/RSS/nk.xml
    name: Yonhap NK   # fastest on North Korea
    tags: [wires, korea]
"""

runner = CliRunner()


def rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "feeds.yaml").write_text(FEEDS)
    (rules / "desk.yaml").write_text("rules:\n  - id: drones\n    query: 'drone*'\n")
    return rules


def test_add_and_remove_keep_comments(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path)
    result = runner.invoke(
        app, ["feeds", "add", "https://www.nknews.org/feed/", "--name", "NK News", "--tag", "korea",
              "--rules", str(rules)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (rules / "feeds.yaml").read_text()
    assert "# The desk's feeds. Keep Yonhap first." in text
    assert "# fastest on North Korea" in text
    assert [e.name for e in list_feeds(rules / "feeds.yaml")] == ["Yonhap NK", "NK News"]

    again = runner.invoke(
        app, ["feeds", "add", "https://www.nknews.org/feed/", "--rules", str(rules)]
    )
    assert "already in the list" in again.output

    result = runner.invoke(app, ["feeds", "remove", "NK News", "--rules", str(rules)])
    assert result.exit_code == 0
    assert (rules / "feeds.yaml").read_text() == FEEDS

    missing = runner.invoke(app, ["feeds", "remove", "nothing", "--rules", str(rules)])
    assert missing.exit_code == 1


def test_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["feeds", "list", "--rules", str(rules_dir(tmp_path))])
    assert result.output == "Yonhap NK\thttps://en.yna.co.kr/RSS/nk.xml  [wires, korea]\n"


def test_list_marks_the_feeds_the_daemon_does_not_poll(tmp_path: Path) -> None:
    """``enabled:`` of the feed, else of ``defaults:``, read as the loader reads it."""
    rules = rules_dir(tmp_path)
    (rules / "feeds.yaml").write_text(
        "defaults: {enabled: false}\n"
        "feeds:\n"
        "  - {url: 'https://a.example/rss', name: A, enabled: true}\n"
        "  - {url: 'https://b.example/rss', name: B}\n"
        "  - {url: 'https://c.example/rss', name: C, enabled: 'yes'}\n"
        "  - {url: 'https://d.example/rss', name: D, enabled: no, tags: [wires]}\n"
    )
    result = runner.invoke(app, ["feeds", "list", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "A\thttps://a.example/rss",
        "B\thttps://b.example/rss  (disabled)",
        "C\thttps://c.example/rss",
        "D\thttps://d.example/rss  [wires]  (disabled)",
    ]
    polled = {feed.url: feed.enabled for feed in load_rules(rules).feeds.feeds}
    assert {e.url: e.enabled for e in list_feeds(rules / "feeds.yaml")} == polled


def test_opml_round_trip(tmp_path: Path) -> None:
    entries = [
        FeedEntry("https://a.example/rss", "A wire", ("wires",)),
        FeedEntry("https://b.example/atom", "B & Co", ()),
    ]
    assert parse_opml(to_opml(entries).encode(), "x.opml") == entries


def test_import_opml_folders_become_tags_and_export_reimports(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path)
    opml = tmp_path / "reader.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="1.0"><head><title>r</title></head><body>'
        '<outline text="Asia"><outline text="Diplomat" type="rss" '
        'xmlUrl="https://thediplomat.com/feed/"/></outline>'
        '<outline text="Yonhap" xmlUrl="https://en.yna.co.kr/RSS/nk.xml"/></body></opml>'
    )
    result = runner.invoke(app, ["feeds", "import-opml", str(opml), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert "imported 1 feed(s), 1 already listed" in result.output
    listed = list_feeds(rules / "feeds.yaml")
    assert listed[-1] == FeedEntry("https://thediplomat.com/feed/", "Diplomat", ("Asia",))

    exported = runner.invoke(app, ["feeds", "export-opml", "--rules", str(rules)])
    assert parse_opml(exported.output.encode(), "out") == listed


def test_import_of_a_non_opml_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.opml"
    bad.write_text("<html></html>")
    result = runner.invoke(
        app, ["feeds", "import-opml", str(bad), "--rules", str(rules_dir(tmp_path))]
    )
    assert result.exit_code == 1


def test_backtest_reports_hits_per_rule_and_sends_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rules = rules_dir(tmp_path)
    (rules / "desk.yaml").write_text(
        "rules:\n  - id: drones\n    query: 'drone*'\n  - id: budget\n    query: budget\n"
    )
    db = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MONITOR_DATABASE_URL", db)
    monkeypatch.setenv("MONITOR_RULES_DIR", str(rules))
    now = datetime.now(UTC)
    store = Store.open(db)
    store.sync_feeds([("https://f.example/rss", "F", True)], now)
    state = store.feed("https://f.example/rss")
    assert state is not None
    items = []
    stored = [  # (title, days ago)
        ("Drone strike on depot", 0), ("Budget vote", 1), ("Drones over border", 2),
        ("Drone factory opens", 10),
    ]  # fmt: skip
    for n, (title, age) in enumerate(stored):
        article = Article(
            id=f"a{n}", feed="F", feed_url="https://f.example/rss", title=title,
            fetched_at=now - timedelta(days=age), fingerprint=story_fingerprint(title, ""),
        )  # fmt: skip
        items.append(NewItem(article=article, keys=[f"id:a{n}"]))
    store.record_items(PollRecord(feed_id=state.id, now=now, new_items=items, present_keys=[]), "F")
    store.close()

    result = runner.invoke(app, ["backtest", "--since", "7d"])
    assert result.exit_code == 0, result.output
    # hits 2 and 0 days ago: per day of the 7-day window, and as a sparkline over the eight
    # calendar dates it touches
    assert "drones: 2 hit(s), 0.3/day  ▁▁▁▁▁█▁█" in result.output
    assert "budget: 1 hit(s), 0.1/day  ▁▁▁▁▁▁█▁" in result.output
    assert "Drone strike on depot" in result.output
    assert "Drone factory opens" not in result.output  # older than --since
    assert "nothing was sent" in result.output

    longer = runner.invoke(app, ["backtest", "--since", "12d"])
    assert "drones: 3 hit(s)" in longer.output and "Drone factory opens" in longer.output

    one = runner.invoke(app, ["backtest", "--rule", "drones"])
    assert one.exit_code == 0, one.output
    assert "drones: 2 hit(s)" in one.output
    assert "budget" not in one.output and "Budget vote" not in one.output
    reopened = Store.open(db)
    assert reopened.count(alerts) == 0 and reopened.count(deliveries) == 0
    reopened.close()

    unknown = runner.invoke(app, ["backtest", "--rule", "nope"])
    assert unknown.exit_code == 1


def test_status_tells_a_disabled_feed_from_a_removed_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MONITOR_DATABASE_URL", db)
    monkeypatch.setenv("COLUMNS", "200")
    store = Store.open(db)
    now = datetime.now(UTC)
    off, gone = ("https://off.example/rss", "Off", False), ("https://gone.example/", "Gone", True)
    store.sync_feeds([off, gone], now)
    store.sync_feeds([off], now)  # "Gone" taken out of feeds.yaml
    store.close()
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    (off_row,) = [line for line in result.output.splitlines() if " Off " in line]
    (gone_row,) = [line for line in result.output.splitlines() if " Gone " in line]
    assert "disabled in feeds.yaml" in off_row
    assert "not in feeds.yaml" in gone_row and "disabled" not in gone_row


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 4]) == "▁▂▄█"
    assert sparkline([0, 0]) == "▁▁"
