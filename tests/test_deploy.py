"""deploy/: what the tools here can check (no container engine, no cluster): the systemd unit
with `systemd-analyze verify`, every YAML parses, only settings that exist are referenced, and
the properties the operator relies on (non-root, probes, replicas, secrets kept apart)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.web import parse_listen

DEPLOY = Path(__file__).parent.parent / "deploy"
UNIT = DEPLOY / "systemd" / "wire-monitor.service"
KNOWN = {f"MONITOR_{name.upper()}" for name in Settings.model_fields} | {"MONITOR_CONFIG"}


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s(kind: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        found += [doc for doc in documents(path) if doc.get("kind") == kind]
    return found


def test_every_yaml_file_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 4
    for path in files:
        assert documents(path), f"{path.name}: empty"


#: Every file of deploy/, whatever tool reads it.
FILES = sorted(str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.is_file())
_NAME = r"\bMONITOR_[A-Z_]+\b"
#: compose interpolation (``${POSTGRES_PASSWORD}``, ``${X:?message}``): the operator's value
_INTERPOLATION = re.compile(r"\$\{[^}]*\}")


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _collect(node: Any, found: dict[str, str]) -> None:
    """MONITOR_* values in YAML: mapping keys (compose ``environment:``, a Secret's
    ``stringData``), ``{name: ..., value: ...}`` (a container's ``env``), ``NAME=value`` items."""
    if isinstance(node, dict):
        if re.fullmatch(_NAME, str(node.get("name", ""))) and "value" in node:
            found[node["name"]] = str(node["value"])
        for key, value in node.items():
            if re.fullmatch(_NAME, str(key)) and not isinstance(value, dict | list):
                found[key] = str(value)
            else:
                _collect(value, found)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and re.match(rf"{_NAME}=", item):
                name, value = item.split("=", 1)
                found[name] = value
            else:
                _collect(item, found)


def settings_set_by(path: Path) -> dict[str, str]:
    """The MONITOR_* settings a deploy file gives a value, as the daemon would see them."""
    found: dict[str, str] = {}
    if path.suffix in (".yaml", ".yml"):
        for document in documents(path):
            _collect(document, found)
    else:  # Dockerfile ENV, systemd Environment=, env files: NAME=value words
        text = without_comments(path.read_text())
        found = {k: v.strip("'\"") for k, v in re.findall(rf"({_NAME})=(\S+)", text)}
    return {name: _INTERPOLATION.sub("operator-value", v) for name, v in found.items()}


def validated(values: dict[str, str]) -> Settings:
    """The values as ``Settings`` (every check of monitor/config.py) from them alone."""
    fields = {k.removeprefix("MONITOR_").lower(): v for k, v in values.items()}
    fields.pop("config", None)  # a path to monitor.toml, not a setting itself
    settings = Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    parse_listen(settings.http_listen)  # host:port, or empty
    return settings


@pytest.mark.parametrize("path", FILES)
def test_settings_in_deploy_files_exist_and_are_valid(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("MONITOR_")]:
        monkeypatch.delenv(name)  # the file's values alone
    text = (DEPLOY / path).read_text()
    names = set(re.findall(_NAME, text))
    assert names <= KNOWN, f"{path}: not settings of monitor/config.py: {sorted(names - KNOWN)}"
    values = settings_set_by(DEPLOY / path)
    # every setting the file uses (not only mentions in a comment) has a value checked here
    assert set(values) == set(re.findall(_NAME, without_comments(text))), path
    validated(values)


def test_deploy_files_set_settings_and_bad_values_are_caught(tmp_path: Path) -> None:
    setting = [path for path in FILES if settings_set_by(DEPLOY / path)]
    assert len(setting) >= 5, setting  # compose, Dockerfile, systemd, Deployment, Secret
    bad = tmp_path / "monitor.service"
    bad.write_text("[Service]\nEnvironment=MONITOR_LEASE=5s MONITOR_FETCH_TIMEOUT=30s\n")
    with pytest.raises(ValidationError, match="MONITOR_LEASE"):
        validated(settings_set_by(bad))
    bad.write_text("[Service]\nEnvironment=MONITOR_HTTP_LISTEN=8600\n")
    with pytest.raises(ConfigError, match="host:port"):
        validated(settings_set_by(bad))


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # verify checks that ExecStart exists: point it at this environment's `monitor`
    unit = tmp_path / UNIT.name
    monitor = Path(sys.executable).parent / "monitor"
    unit.write_text(UNIT.read_text().replace("/opt/wire-monitor/bin/monitor", str(monitor)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if UNIT.name in line], output


def test_systemd_unit_restarts_reloads_and_is_hardened() -> None:
    text = UNIT.read_text()
    for line in (
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/wire-monitor",
        "User=wire-monitor",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), line


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*", text, re.MULTILINE)
    assert "/healthz" in text
    assert re.search(r'^VOLUME \[.*"/etc/wire-monitor/rules"', text, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.MULTILINE)


def test_compose_runs_two_monitors_on_postgresql() -> None:
    (compose,) = documents(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres")
    monitor = services["monitor"]
    assert monitor["deploy"]["replicas"] == 2
    env = monitor["environment"]
    assert env["MONITOR_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["MONITOR_HTTP_LISTEN"].startswith("0.0.0.0:")
    assert "MONITOR_HTTP_TOKEN" in env  # required off loopback
    assert any(v.startswith("../rules:/etc/wire-monitor/rules") for v in monitor["volumes"])
    assert "service_healthy" in str(monitor["depends_on"])


def test_kubernetes_probes_rules_and_secrets() -> None:
    (deployment,) = k8s("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["replicas"] >= 2
    (config_map,) = k8s("ConfigMap")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert {"feeds.yaml"} <= set(config_map["data"])
    (secret,) = k8s("Secret")
    assert {"MONITOR_APPRISE_URLS", "MONITOR_HTTP_TOKEN"} <= set(secret["stringData"])
    assert container["envFrom"][0]["secretRef"]["name"] == secret["metadata"]["name"]
    plain = {e["name"] for e in container.get("env", [])}
    assert not plain & {"MONITOR_APPRISE_URLS", "MONITOR_HTTP_TOKEN", "MONITOR_DATABASE_URL"}


def test_the_kubernetes_rules_are_valid_rules(tmp_path: Path) -> None:
    from monitor.rules import load_rules

    (config_map,) = k8s("ConfigMap")
    for name, text in config_map["data"].items():
        (tmp_path / name).write_text(text)
    ruleset = load_rules(tmp_path)
    assert ruleset.rules and ruleset.feeds.feeds
