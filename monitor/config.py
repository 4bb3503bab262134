"""Settings (SPEC section 3): environment ``MONITOR_*``, an optional TOML file, ``.env``.

Loaded once by the CLI and passed down; nothing reads the environment behind its back. Secrets
are ``SecretStr`` and ``masked()`` is the only way settings are shown to a person.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from monitor import PROJECT_URL, __version__
from monitor.errors import ConfigError, did_you_mean
from monitor.schema import ByteSize, PositiveDuration

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
    default_interval: PositiveDuration = timedelta(minutes=5)
    http_listen: str = "127.0.0.1:8600"
    http_token: SecretStr | None = None
    max_feed_bytes: ByteSize = 10 * 1024 * 1024
    #: What the bodies of all fetches in flight may hold together (downloaded, decompressed,
    #: waiting to be parsed); a fetch that finds it full waits. At least ``max_feed_bytes``.
    fetch_memory_budget: ByteSize = 32 * 1024 * 1024
    fetch_timeout: PositiveDuration = timedelta(seconds=30)
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    allowed_private_hosts: str = ""
    user_agent: str = DEFAULT_USER_AGENT
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    retention: PositiveDuration = timedelta(days=30)
    max_concurrency: int = Field(default=100, ge=1)
    per_host_concurrency: int = Field(default=4, ge=1)
    backoff_ceiling: PositiveDuration = timedelta(hours=6)
    #: How long a process holds a feed it polls (scale-out); a crashed process's feeds are
    #: taken over by the others once it expires. Longer than the fetch deadline.
    lease: PositiveDuration = timedelta(seconds=90)
    #: /healthz answers 503 when the scheduler's heartbeat is older than this.
    health_stale_after: PositiveDuration = timedelta(seconds=30)
    #: How often the status page reloads itself.
    status_refresh: PositiveDuration = timedelta(seconds=30)

    @field_validator("apprise_config", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _lease_outlasts_a_fetch(self) -> Settings:
        if self.lease <= self.fetch_timeout:
            raise ValueError(
                f"MONITOR_LEASE ({self.lease}) must be longer than MONITOR_FETCH_TIMEOUT "
                f"({self.fetch_timeout}), or another process would take over a feed mid-poll"
            )
        return self

    @model_validator(mode="after")
    def _budget_holds_a_feed(self) -> Settings:
        if self.max_feed_bytes <= 0:
            raise ValueError(f"MONITOR_MAX_FEED_BYTES ({self.max_feed_bytes}) must be positive")
        if self.fetch_memory_budget < self.max_feed_bytes:
            raise ValueError(
                f"MONITOR_FETCH_MEMORY_BUDGET ({self.fetch_memory_budget} bytes) must be at least "
                f"MONITOR_MAX_FEED_BYTES ({self.max_feed_bytes} bytes), or a feed of the largest "
                "allowed size could never be read"
            )
        return self

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
        """The secret values themselves, so that log and error output can be scrubbed of them.

        Besides each whole value: every Apprise URL on its own and the parts of it that carry
        credentials (user info, and path segments and query values long enough to be tokens),
        and the database URL's password, in its user info or its query string (libpq's
        ``?password=``, ``?sslpassword=``); longest first, so a value is masked before its parts.
        """
        found = {
            v.get_secret_value()
            for v in (self.database_url, self.apprise_urls, self.http_token)
            if v is not None and v.get_secret_value()
        }
        found.update(url_secrets(self.database_url.get_secret_value(), parts=False))
        urls = self.apprise_urls.get_secret_value().replace(",", " ").split()
        urls += apprise_config_secrets(self.apprise_config)
        for url in urls:
            found.add(url)
            found.update(url_secrets(url, parts=True))
        return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

    def masker(self) -> Masker:
        """What removes these settings' secrets from text shown to a person."""
        return Masker(self.secrets())


_URL_PASSWORD = re.compile(r"(?P<head>://[^/:@\s]*:)[^@/\s]*@")
#: Query parameters that carry a credential: libpq's ``password`` and ``sslpassword``
#: (``postgresql://u@h/db?password=...``), and the ``token``, ``key``, ``secret`` of web hooks.
_SECRET_NAME = re.compile(r"[\w.-]*(?:pass(?:word|wd)?|pwd|secret|token|key)[\w.-]*", re.I)
_SECRET_PARAM = re.compile(rf"(?P<head>[?&;]{_SECRET_NAME.pattern}=)[^&#;\s'\"<>]+", re.I)


#: A URL as it appears in an Apprise config file, TEXT (``tag=url``) or YAML (``- url:``).
_CONFIG_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def apprise_config_secrets(path: Path | None) -> list[str]:
    """The URLs in an Apprise config file, whatever its format, and the credentials given as
    options of its YAML entries (``pass:``, ``token:``): they carry tokens as much as
    ``MONITOR_APPRISE_URLS`` does, and Apprise itself logs a URL it cannot load. A file that
    cannot be read yields none (loading the channels reports it)."""
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    # a YAML entry's URL is a key: its ``:`` is not part of it
    found = [m.group().rstrip(",:") for m in _CONFIG_URL.finditer(text)]
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError:  # a TEXT config, or broken YAML: its URLs are all there is
        return found
    found.extend(_credential_values(document))
    return found


def _credential_values(node: Any) -> Iterator[str]:
    """The whole values, however quoted, of credential-named keys anywhere in parsed YAML."""
    if isinstance(node, dict):
        for key, value in node.items():
            named = isinstance(key, str) and _SECRET_NAME.fullmatch(key)
            if named and value is not None and not isinstance(value, dict | list):
                yield str(value)
            yield from _credential_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _credential_values(item)


def mask_url_password(url: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:********@h/db`, and likewise a password
    or token passed as a query parameter (`?password=secret`); the rest stays readable. Works
    on any text (an error message that quotes a URL), not only on a URL alone."""
    url = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('head')}{MASK}", url)


class Masker:
    """Removes secrets from text shown to a person (log lines, `monitor status`, the status
    page, error messages): every given secret, longest first so that a value is masked before
    its parts, and any credential in a URL (``mask_url_password``), configured or not."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        value = mask_url_password("" if text is None else str(text))
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value


#: Shorter pieces of a URL are not treated as secrets (they would mask ordinary words).
MIN_TOKEN_PART = 6


def url_secrets(url: str, *, parts: bool) -> list[str]:
    """The credentials inside a URL: its password and the values of credential query
    parameters (``?password=``, ``?sslpassword=``, ``?token=``...), and with ``parts``
    (Apprise URLs, which put tokens anywhere: ``tgram://TOKEN/CHAT``,
    ``json://u:p@host/?key=TOKEN``) also its user name and every path segment and query value
    of at least ``MIN_TOKEN_PART`` characters."""
    found: list[str] = []
    try:
        split = urlsplit(url)
        password, username = split.password, split.username
    except ValueError:
        return found
    if password:
        found.extend([password, unquote(password)])
    query = parse_qsl(split.query, keep_blank_values=False)
    for name, value in query:
        if _SECRET_NAME.fullmatch(name):
            found.append(value)  # parse_qsl unquoted it; the text may show it quoted too
            found.append(quote(value, safe=""))
    if not parts:
        return found
    if username:
        found.extend([username, unquote(username)])
    host = split.netloc.rsplit("@", 1)[-1]
    pieces = [host, *split.path.split("/")]
    pieces += [value for _, value in query]
    found.extend(p for p in pieces if len(p) >= MIN_TOKEN_PART)
    return found


def _toml_settings(toml_path: str, overrides: dict[str, Any]) -> set[str]:
    """The settings ``monitor.toml`` gives that nothing above it (arguments, environment,
    ``.env``) overrides; an unknown key is an error naming the file (pydantic-settings would
    ignore it, and a misspelt setting would silently keep its default)."""
    try:
        with open(toml_path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:  # the message has the position, not the file
        raise ConfigError(f"MONITOR_CONFIG={toml_path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"MONITOR_CONFIG={toml_path}: {exc.strerror or exc}") from None
    known = Settings.model_fields
    for key in data:
        if key not in known:
            raise ConfigError(
                f"MONITOR_CONFIG={toml_path}: unknown setting '{key}'{did_you_mean(key, known)}"
            )
    env_file = Settings.model_config.get("env_file")
    above = {name.upper() for name in os.environ}
    if isinstance(env_file, str | Path):
        above |= {name.upper() for name in dotenv_values(env_file)}
    return {key for key in data if key not in overrides and f"MONITOR_{key.upper()}" not in above}


def _setting_problem(error: Any, toml_path: str | None, from_file: set[str]) -> str:
    """One validation error, named where the value came from: the TOML file's key, or the
    ``MONITOR_*`` variable (a check across settings names the settings in its message)."""
    location = error["loc"]
    if not location:
        return str(error["msg"]).removeprefix("Value error, ")
    name = "_".join(str(part) for part in location)
    if name in from_file:
        return f"MONITOR_CONFIG={toml_path}: {name}: {error['msg']}"
    return f"MONITOR_{name.upper()}: {error['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Load settings once; a bad value is a ConfigError naming the setting, not a traceback."""
    toml_path = os.environ.get("MONITOR_CONFIG")
    if toml_path and not Path(toml_path).is_file():
        raise ConfigError(f"MONITOR_CONFIG={toml_path}: no such file")
    from_file = _toml_settings(toml_path, overrides) if toml_path else set()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_setting_problem(err, toml_path, from_file) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None
