"""The systemd units, checked by ``systemd-analyze verify`` and for their hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.agent.runner import FINAL_UPLOAD_S

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED = "/opt/linkwatch/bin/linkwatch"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(UNITS / name, encoding="utf-8")
    return parser


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    """Verify copies whose paths point at this machine's files (the real ones do not exist here)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found: install Debian's `systemd` package")
    linkwatch = shutil.which("linkwatch")
    assert linkwatch, "the linkwatch command is not installed"
    env_file = tmp_path / "unit.env"
    env_file.write_text("LINKWATCH_TOKEN_FTB2=token-ftb2-0123456789\n")
    copies = {
        "linkwatch-agent@.service": tmp_path / "linkwatch-agent@ftb2.service",
        "linkwatch-server.service": tmp_path / "linkwatch-server.service",
    }
    for source, copy in copies.items():
        text = (UNITS / source).read_text(encoding="utf-8").replace(INSTALLED, linkwatch)
        for env in ("/etc/linkwatch/agent-%i.env", "/etc/linkwatch/server.env"):
            text = text.replace(env, str(env_file))
        copy.write_text(text, encoding="utf-8")
    out = subprocess.run(
        [analyze, "verify", *map(str, copies.values())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stderr, out.stdout) == (0, "", "")


def test_the_agent_keeps_only_net_raw_and_its_spool() -> None:
    service = unit("linkwatch-agent@.service")["Service"]
    assert service["AmbientCapabilities"] == "CAP_NET_RAW"
    assert service["CapabilityBoundingSet"] == "CAP_NET_RAW"
    assert service["NoNewPrivileges"] == "yes"
    assert service["DynamicUser"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "linkwatch/%i"
    assert service["WorkingDirectory"] == "/var/lib/linkwatch/%i"
    assert service["ExecStart"].endswith("agent --config /etc/linkwatch/linkwatch.yaml --site %i")


def test_stopping_leaves_time_for_the_final_upload() -> None:
    for name in ("linkwatch-agent@.service", "linkwatch-server.service"):
        service = unit(name)["Service"]
        assert service["KillSignal"] == "SIGTERM"
        assert float(service["TimeoutStopSec"]) >= FINAL_UPLOAD_S + 10
        assert service["Restart"] == "on-failure"


def test_the_server_has_no_capability() -> None:
    service = unit("linkwatch-server.service")["Service"]
    assert service["CapabilityBoundingSet"] == ""
    assert service["AmbientCapabilities"] == ""
    assert service["NoNewPrivileges"] == "yes"
    assert unit("linkwatch-server.service")["Install"]["WantedBy"] == "multi-user.target"
