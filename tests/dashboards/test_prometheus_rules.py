"""The shipped Prometheus rules are valid and behave as their unit tests say (real promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from promql import (
    dashboard_expressions,
    metric_names,
    recorded_names,
    rule_expressions,
    rule_groups,
)

from api.metrics import catalogue

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


def exported_sample_names() -> set[str]:
    """Return every sample name /metrics can expose (from the code's catalogue)."""
    names: set[str] = set()
    for spec in catalogue.ALL:
        match spec.type.value:
            case "counter":
                names.add(f"{spec.name}_total")
            case "info":
                names.add(f"{spec.name}_info")
            case "gaugehistogram":
                names |= {f"{spec.name}_bucket", f"{spec.name}_gcount", f"{spec.name}_gsum"}
            case _:
                names.add(spec.name)
    return names


def test_rules_and_dashboards_only_read_names_the_server_exports_or_rules_record() -> None:
    recording, alerting = rule_expressions()
    expressions = recording + alerting + dashboard_expressions("ftb2")
    used = set().union(*(metric_names(e.promql) for e in expressions))
    assert used, "the rules use no linkwatch metric"
    unknown = sorted(used - exported_sample_names() - recorded_names())
    assert unknown == []


def test_every_alert_has_a_unit_test() -> None:
    _, alerting = rule_expressions()
    tests = (RULES_DIR / "linkwatch.rules.test.yml").read_text()
    untested = [a.origin for a in alerting if f"alertname: {a.origin.split()[1]}" not in tests]
    assert untested == []


def test_every_alert_names_its_severity_and_summary() -> None:
    for group in rule_groups():
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]
