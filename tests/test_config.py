"""Settings come from the environment, .env and monitor.toml; secrets never show."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import MASK, Settings, load_settings
from monitor.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts from the embedded defaults, in an empty directory (no stray .env)."""
    import os

    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_embedded_defaults() -> None:
    settings = load_settings()
    assert settings.rules_dir == Path("rules")
    assert settings.database_url.get_secret_value() == "sqlite:///./data/monitor.db"
    assert settings.default_interval == timedelta(minutes=5)
    assert settings.fetch_timeout == timedelta(seconds=30)
    assert settings.max_feed_bytes == 10 * 1024 * 1024
    assert settings.fetch_memory_budget == 32 * 1024 * 1024
    assert settings.http_listen == "127.0.0.1:8600"
    assert settings.log_format == "text"
    assert settings.user_agent.startswith("wire-monitor/")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_DEFAULT_INTERVAL", "2m")
    monkeypatch.setenv("MONITOR_MAX_FEED_BYTES", "500KB")
    monkeypatch.setenv("MONITOR_ALLOWED_PRIVATE_HOSTS", "intranet.local, feeds.corp")
    settings = load_settings()
    assert settings.default_interval == timedelta(minutes=2)
    assert settings.max_feed_bytes == 500_000
    assert settings.allowed_private_host_set == {"intranet.local", "feeds.corp"}


def test_toml_file_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").write_text('default_interval = "90s"\nlog_format = "json"\n')
    (tmp_path / ".env").write_text("MONITOR_LOG_FORMAT=text\n")
    monkeypatch.setenv("MONITOR_CONFIG", str(tmp_path / "monitor.toml"))
    settings = load_settings()
    assert settings.default_interval == timedelta(seconds=90)
    assert settings.log_format == "text"  # .env wins over the TOML file


def test_missing_toml_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_CONFIG", "nowhere.toml")
    with pytest.raises(ConfigError, match=r"MONITOR_CONFIG=nowhere.toml: no such file"):
        load_settings()


def toml_error(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> str:
    """The ConfigError message of settings loaded with ``text`` as ``monitor.toml``."""
    path.write_text(text)
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def test_malformed_toml_file_is_an_error_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "monitor.toml"
    message = toml_error(monkeypatch, path, 'default_interval = "90s"\nlog_format json\n')
    assert message.startswith(f"MONITOR_CONFIG={path}: invalid TOML: ")
    assert "line 2" in message


def test_misspelt_toml_setting_is_an_error_naming_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "monitor.toml"
    assert toml_error(monkeypatch, path, 'fetch_timout = "5s"\n') == (
        f"MONITOR_CONFIG={path}: unknown setting 'fetch_timout' (did you mean 'fetch_timeout'?)"
    )


def test_bad_toml_value_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    message = toml_error(monkeypatch, path, 'fetch_timeout = "banana"\nretention = "2d"\n')
    assert f"MONITOR_CONFIG={path}: fetch_timeout: " in message
    # the same key from the environment wins, and a bad value there names the variable
    monkeypatch.setenv("MONITOR_FETCH_TIMEOUT", "pear")
    with pytest.raises(ConfigError, match=r"MONITOR_FETCH_TIMEOUT: "):
        load_settings()
    monkeypatch.setenv("MONITOR_FETCH_TIMEOUT", "5s")
    assert load_settings().fetch_timeout == timedelta(seconds=5)


def test_bad_dotenv_value_over_a_toml_key_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MONITOR_FETCH_TIMEOUT=bogus\n")
    message = toml_error(monkeypatch, tmp_path / "monitor.toml", 'fetch_timeout = "30s"\n')
    assert message.startswith("invalid settings: MONITOR_FETCH_TIMEOUT: ")
    assert "monitor.toml" not in message


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_FETCH_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match=r"MONITOR_FETCH_TIMEOUT: .*invalid duration 'soon'"):
        load_settings()


@pytest.mark.parametrize(
    "setting",
    [
        "default_interval",
        "fetch_timeout",
        "connect_timeout",
        "retention",
        "backoff_ceiling",
        "lease",
        "health_stale_after",
        "status_refresh",
    ],
)
def test_a_zero_duration_setting_is_refused(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    """A zero fetch deadline fails every poll, a zero retention forgets what was seen, a zero
    lease hands every feed to every process: none of them is a setting anyone means."""
    name = f"MONITOR_{setting.upper()}"
    monkeypatch.setenv(name, "0s")
    with pytest.raises(ConfigError, match=rf"{name}: .*'0s': must be longer than zero"):
        load_settings()


def test_masked_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_APPRISE_URLS", "tgram://123456:SECRETTOKEN/987")
    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql+psycopg://mon:hunter2@db:5432/mon")
    monkeypatch.setenv("MONITOR_HTTP_TOKEN", "tok3n")
    shown = load_settings().masked()
    text = "\n".join(f"{k}={v}" for k, v in shown.items())
    for secret in ("SECRETTOKEN", "hunter2", "tok3n"):
        assert secret not in text
    assert shown["MONITOR_APPRISE_URLS"] == MASK
    assert shown["MONITOR_DATABASE_URL"] == f"postgresql+psycopg://mon:{MASK}@db:5432/mon"
    assert shown["MONITOR_HTTP_TOKEN"] == MASK


def test_the_fetch_memory_budget_must_hold_the_largest_feed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_MAX_FEED_BYTES", "40MiB")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "MONITOR_FETCH_MEMORY_BUDGET" in message and "MONITOR_MAX_FEED_BYTES" in message
    assert "MONITOR_:" not in message  # a check across settings names them itself
    monkeypatch.setenv("MONITOR_FETCH_MEMORY_BUDGET", "64MiB")
    assert load_settings().fetch_memory_budget == 64 * 1024 * 1024
    monkeypatch.setenv("MONITOR_FETCH_MEMORY_BUDGET", "lots")
    with pytest.raises(ConfigError, match="MONITOR_FETCH_MEMORY_BUDGET"):
        load_settings()


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [
        f"MONITOR_{name.upper()}"
        for name in Settings.model_fields
        if f"`MONITOR_{name.upper()}`" not in readme
    ]
    assert not missing, f"settings missing from README.md: {missing}"
