"""The shipped Prometheus rules are valid and behave as their unit tests say (real promtool)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's `prometheus` package (scripts/test.sh does)"
        )
    return path


def test_rules_pass_promtool_check() -> None:
    out = subprocess.run(
        [_promtool(), "check", "rules", "linkwatch.rules.yml"],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_rule_unit_tests_pass_promtool_test() -> None:
    out = subprocess.run(
        [_promtool(), "test", "rules", "linkwatch.rules.test.yml"],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_only_use_metric_names_the_server_exports() -> None:
    exported = (Path(__file__).resolve().parents[2] / "api" / "metrics.py").read_text()
    rules = (RULES_DIR / "linkwatch.rules.yml").read_text()

    used = set(re.findall(r"\blinkwatch_[a-z_]+", rules))
    assert used, "the rules use no linkwatch metric"
    missing = sorted(name for name in used if f'"{name}"' not in exported)
    assert missing == []
