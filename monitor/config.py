"""Settings (SPEC section 3): environment ``MONITOR_*``, an optional TOML file, ``.env``.

Loaded once by the CLI and passed down; nothing reads the environment behind its back. Secrets
are ``SecretStr`` and ``masked()`` is the only way settings are shown to a person.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor import PROJECT_URL, __version__
from monitor.errors import ConfigError
from monitor.schema import ByteSize, Duration

DEFAULT_USER_AGENT = f"wire-monitor/{__version__} (+{PROJECT_URL})"
MASK = "********"


class Settings(BaseSettings):
    """Every setting of the daemon, with the defaults `make run` uses."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_file=".env", extra="ignore", validate_default=True
    )

    rules_dir: Path = Path("./rules")
    data_dir: Path = Path("./data")
    database_url: SecretStr = SecretStr("sqlite:///./data/monitor.db")
    apprise_urls: SecretStr = SecretStr("")
    apprise_config: Path | None = None
    default_interval: Duration = timedelta(minutes=5)
    http_listen: str = "127.0.0.1:8600"
    http_token: SecretStr | None = None
    max_feed_bytes: ByteSize = 10 * 1024 * 1024
    fetch_timeout: Duration = timedelta(seconds=30)
    connect_timeout: Duration = timedelta(seconds=10)
    allowed_private_hosts: str = ""
    user_agent: str = DEFAULT_USER_AGENT
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    retention: Duration = timedelta(days=30)
    max_concurrency: int = Field(default=100, ge=1)
    per_host_concurrency: int = Field(default=4, ge=1)
    backoff_ceiling: Duration = timedelta(hours=6)

    @field_validator("apprise_config", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def allowed_private_host_set(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.allowed_private_hosts.replace(",", " ").split()
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments, environment, `.env`, then `monitor.toml`."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        toml_path = os.environ.get("MONITOR_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    def masked(self) -> dict[str, str]:
        """Every effective setting as text, secrets replaced by a mask (for `monitor config`)."""
        shown: dict[str, str] = {}
        for name, dumped in self.model_dump(mode="json").items():
            raw = getattr(self, name)
            if name == "database_url":
                value = mask_url_password(self.database_url.get_secret_value())
            elif isinstance(raw, SecretStr):
                value = MASK if raw.get_secret_value() else ""
            else:
                value = "" if dumped is None else str(dumped)
            shown[f"MONITOR_{name.upper()}"] = value
        return shown

    def secrets(self) -> list[str]:
        """The secret values themselves, so that log and error output can be scrubbed of them."""
        return [
            v.get_secret_value()
            for v in (self.database_url, self.apprise_urls, self.http_token)
            if v is not None and v.get_secret_value()
        ]


_URL_PASSWORD = re.compile(r"(?P<head>://[^/:@]*:)[^@/]*@")


def mask_url_password(url: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:********@h/db`; the rest stays readable."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", url)


def load_settings(**overrides: Any) -> Settings:
    """Load settings once; a bad value is a ConfigError naming the setting, not a traceback."""
    toml_path = os.environ.get("MONITOR_CONFIG")
    if toml_path and not Path(toml_path).is_file():
        raise ConfigError(f"MONITOR_CONFIG={toml_path}: no such file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"MONITOR_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except ValueError as exc:  # e.g. a malformed monitor.toml
        raise ConfigError(f"invalid settings: {exc}") from None
