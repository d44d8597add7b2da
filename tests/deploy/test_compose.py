"""deploy/compose.yaml and the files it mounts, validated without a container engine.

``docker-compose config`` (Debian's ``docker-compose`` 1.29, which validates against its
bundled Compose schema and needs no engine) runs when installed; the structure checks,
``promtool check config`` on the Prometheus configuration and ``amtool check-config`` on the
Alertmanager one always run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from monitor.config_loader import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV = {"LINKWATCH_DB_PASSWORD": "test-password", "GRAFANA_ADMIN_PASSWORD": "test-password"}
CENTRE = {"postgres", "migrate", "server", "prometheus", "alertmanager", "grafana"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    return data


def bind_sources(service: dict[str, Any]) -> list[str]:
    out = []
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith((".", "/")):
            out.append(source)
    return out


def test_docker_compose_config_accepts_the_file() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    out = subprocess.run(
        [tool, "--project-directory", str(DEPLOY), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ENV},
        check=False,
    )
    assert (out.returncode, out.stderr) == (0, ""), out.stderr


def test_the_centre_runs_server_database_prometheus_alertmanager_grafana() -> None:
    services = compose()["services"]
    assert set(services) >= CENTRE
    server = services["server"]
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"][:2] == ["db", "upgrade"]
    assert server["command"][0] == "server"
    assert services["agent"]["command"][0] == "agent"
    assert services["agent"]["profiles"] == ["agent"]


def test_linkwatch_containers_are_non_root_with_net_raw_only() -> None:
    for name in ("migrate", "server", "agent"):
        service = compose()["services"][name]
        assert service["user"] == "10001:10001", name
        assert service["cap_drop"] == ["ALL"] and service["cap_add"] == ["NET_RAW"], name
        assert service["read_only"] is True, name
        # no-new-privileges would ignore the interpreter's file capability.
        assert "no-new-privileges:true" not in service.get("security_opt", []), name


def test_images_are_pinned_and_ports_stay_on_loopback() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        assert re.search(r":v?\d+\.\d+(\.\d+)?", image), f"{name}: {image} is not pinned"
        assert not image.endswith(":latest")
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_every_mounted_file_exists() -> None:
    sources = [s for svc in compose()["services"].values() for s in bind_sources(svc)]
    assert len(sources) >= 6
    missing = [s for s in sources if not (DEPLOY / s).exists()]
    assert missing == []
    build = compose()["services"]["server"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_grafana_is_provisioned_with_our_dashboards_and_prometheus() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    dashboards_dir = mounts["../dashboards/grafana"]
    provider = YAML(typ="safe").load(
        (DEPLOY / "grafana/provisioning/dashboards/linkwatch.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == dashboards_dir
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (
        home.startswith(dashboards_dir) and (ROOT / "dashboards/grafana" / Path(home).name).exists()
    )
    sources = YAML(typ="safe").load(
        (DEPLOY / "grafana/provisioning/datasources/linkwatch.yaml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert sources["datasources"][0]["isDefault"] is True


def test_promtool_accepts_the_prometheus_configuration_with_our_rules(tmp_path: Path) -> None:
    """Lay the files out as the container sees them, then check the configuration."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package")
    prometheus = compose()["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"] if v.startswith("."))
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["../dashboards/prometheus"] == "/etc/prometheus/rules"
    shutil.copy(DEPLOY / "prometheus/prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(ROOT / "dashboards/prometheus", tmp_path / "rules")
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout + out.stderr


def test_amtool_accepts_the_alertmanager_configuration() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (Debian's prometheus-alertmanager package)")
    out = subprocess.run(
        [amtool, "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 inhibit rules" in out.stdout


def test_inhibitions_name_alerts_that_exist() -> None:
    rules = (ROOT / "dashboards/prometheus/linkwatch.rules.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", rules))
    config = (DEPLOY / "alertmanager/alertmanager.yml").read_text()
    named = set(re.findall(r"Linkwatch\w+", config))
    assert named and named <= alerts


def test_the_compose_config_is_the_example_with_a_postgresql_server() -> None:
    deployed = load_config(DEPLOY / "linkwatch/linkwatch.yaml")
    example = load_config(ROOT / "examples/lao-border.yaml")
    assert deployed.sites == example.sites
    assert deployed.profiles == example.profiles
    assert deployed.server.database_url.startswith("postgresql")
    assert deployed.server.host == "0.0.0.0"
    tokens = {site.token_env for site in deployed.sites.values()}
    server_env = compose()["services"]["server"]["environment"]
    assert tokens <= set(server_env)
    example_env = (DEPLOY / ".env.example").read_text()
    assert all(f"{t}=" in example_env for t in tokens)
