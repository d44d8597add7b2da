"""Collect the PromQL expressions of the shipped rules and dashboards, ready to evaluate.

Dashboards use Grafana variables; :func:`dashboard_expressions` substitutes them (a site id
for ``$site``, short ranges for ``$__range`` and ``$__rate_interval``). An alert fires only
under a failure, so :func:`data_variants` turns it into expressions that return data on a
healthy system: comparisons get the ``bool`` modifier (every series, valued 0 or 1), and
each side of an ``unless`` is evaluated on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "prometheus" / "linkwatch.rules.yml"
GRAFANA = ROOT / "dashboards" / "grafana"

_COMPARISON = re.compile(r"(?<![=!<>~])(==|!=|>=|<=|>|<)(?![=~])(\s)")
_METRIC = re.compile(r"\b(linkwatch(?:_|:)[a-zA-Z0-9_:]+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[^,]+),\s*\w+\)$")


@dataclass(frozen=True)
class Expression:
    """One expression to evaluate: where it comes from, and its PromQL."""

    origin: str
    promql: str


def rule_groups() -> list[dict[str, Any]]:
    """Return the rule groups of the shipped rules file."""
    data = YAML(typ="safe").load(RULES.read_text(encoding="utf-8"))
    groups: list[dict[str, Any]] = data["groups"]
    return groups


def rule_expressions() -> tuple[list[Expression], list[Expression]]:
    """Return (recording rules, alerting rules) as expressions."""
    recording: list[Expression] = []
    alerting: list[Expression] = []
    for group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                recording.append(Expression(f"record {rule['record']}", rule["expr"].strip()))
            else:
                alerting.append(Expression(f"alert {rule['alert']}", rule["expr"].strip()))
    return recording, alerting


def recorded_names() -> set[str]:
    """Return the names the recording rules write."""
    return {rule["record"] for g in rule_groups() for rule in g["rules"] if "record" in rule}


def data_variants(expr: Expression) -> list[Expression]:
    """Return variants of an alert expression that return data while nothing is wrong."""
    sides = re.split(r"\bunless\b(?:\s+on\s*\([^)]*\))?", expr.promql)
    return [
        Expression(f"{expr.origin} (data variant {i + 1})", _COMPARISON.sub(r"\1 bool\2", side))
        for i, side in enumerate(sides)
    ]


def dashboard_expressions(site_id: str) -> list[Expression]:
    """Return every panel query and template query of the Grafana dashboards, substituted."""
    out: list[Expression] = []
    for path in sorted(GRAFANA.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                out.append(
                    Expression(
                        f"{path.name}: {panel['title']}", substitute(target["expr"], site_id)
                    )
                )
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"{path.name}: unexpected template query {variable['query']}"
            out.append(Expression(f"{path.name}: variable {variable['name']}", match["metric"]))
    return out


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for panel in panels:
        flat.append(panel)
        flat.extend(_panels(panel.get("panels", [])))
    return flat


def substitute(promql: str, site_id: str) -> str:
    """Replace Grafana's variables as Grafana would for a short time range."""
    return (
        promql.replace("$site", site_id)
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "15s")
    )


def metric_names(promql: str) -> set[str]:
    """Return the linkwatch metric and recording-rule names an expression reads."""
    return set(_METRIC.findall(promql))
