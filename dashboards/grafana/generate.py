"""Write the Grafana dashboards (JSON) of this folder from the panel lists below.

Run ``python dashboards/grafana/generate.py`` after changing a panel; the JSON files are
committed, and ``tests/dashboards`` checks that they equal this script's output and that every
expression returns data from a real Prometheus scraping ``linkwatch demo``.

Two dashboards: ``linkwatch-overview`` (every site at a glance) and ``linkwatch-site`` (one
site: RTT heatmap and quantiles against its link profile, loss, jitter, availability, target
states, link quality, the agent's backlog, drops and clock). Both take their Prometheus from
the ``datasource`` variable (the provisioned default), so they import anywhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}

STATE_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "unknown", "color": "text", "index": 0},
            "1": {"text": "up", "color": "green", "index": 1},
            "2": {"text": "degraded", "color": "yellow", "index": 2},
            "3": {"text": "down", "color": "red", "index": 3},
            "4": {"text": "unreachable", "color": "purple", "index": 4},
            "5": {"text": "maintenance", "color": "blue", "index": 5},
        },
    }
]


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    """Return one Prometheus query of a panel."""
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, **extra}


def panel(
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    *,
    unit: str | None = None,
    description: str = "",
    options: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a panel of ``kind`` at ``grid`` = (x, y, width, height)."""
    x, y, w, h = grid
    field_defaults: dict[str, Any] = {**(defaults or {})}
    if unit:
        field_defaults["unit"] = unit
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [
            {**t, "refId": t["refId"] if len(targets) == 1 else chr(65 + i)}
            for i, t in enumerate(targets)
        ],
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": options or {},
    }


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }


def site_variable() -> dict[str, Any]:
    query = "label_values(linkwatch_site_reachable, site)"
    return {
        "name": "site",
        "label": "Site",
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "site"},
        "refresh": 2,
        "sort": 1,
        "includeAll": False,
        "multi": False,
        "current": {},
        "hide": 0,
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": uid,
        "title": title,
        "tags": ["linkwatch"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "links": [
            {
                "title": "Linkwatch dashboards",
                "type": "dashboards",
                "tags": ["linkwatch"],
                "asDropdown": True,
            }
        ],
        "templating": {"list": variables},
        "panels": panels,
    }


def overview() -> dict[str, Any]:
    """Every site at a glance."""
    percent = "percentunit"
    panels = [
        panel("stat", "Sites reachable", (0, 0, 4, 4), [target("sum(linkwatch_site_reachable)")]),
        panel("stat", "Sites", (4, 0, 4, 4), [target("count(linkwatch_site_reachable)")]),
        panel(
            "stat",
            "Targets DOWN",
            (8, 0, 4, 4),
            [target('sum(linkwatch_target_state{state="down"})')],
            defaults={"thresholds": _thresholds((1, "red"))},
        ),
        panel(
            "stat",
            "Gateways DOWN from most sites",
            (12, 0, 6, 4),
            [target("count(linkwatch:gateway_sites_down:ratio > 0.5) or vector(0)")],
            defaults={"thresholds": _thresholds((1, "red"))},
        ),
        panel(
            "stat",
            "Database",
            (18, 0, 6, 4),
            [target("min(linkwatch_database_up)")],
            defaults={"mappings": _mappings({"0": ("unreadable", "red"), "1": ("ok", "green")})},
        ),
        panel(
            "state-timeline",
            "Site state",
            (0, 4, 24, 9),
            [target("linkwatch:site_state:code", "{{site}}")],
            defaults={"mappings": STATE_MAPPINGS, "color": {"mode": "thresholds"}},
            options={"showValue": "never", "mergeValues": True},
        ),
        panel(
            "bargauge",
            "Availability over the time range",
            (0, 13, 12, 8),
            [
                target(
                    "sum by (site) (sum_over_time(linkwatch:site_available:bool[$__range]))"
                    " / sum by (site) (sum_over_time(linkwatch:site_known:bool[$__range]))",
                    "{{site}}",
                    instant=True,
                )
            ],
            unit=percent,
            description="Time UP or DEGRADED over time with a known state (unknown and "
            "unreachable time left out), from Prometheus's samples.",
            defaults={"min": 0, "max": 1},
        ),
        panel(
            "bargauge",
            "Link quality (worst target)",
            (12, 13, 12, 8),
            [
                target(
                    "min by (site) (linkwatch_probe_link_quality_score)", "{{site}}", instant=True
                )
            ],
            defaults={
                "min": 0,
                "max": 100,
                "thresholds": _thresholds((60, "yellow"), (80, "green"), base="red"),
            },
        ),
        panel(
            "timeseries",
            "Mean RTT of the ICMP targets",
            (0, 21, 12, 8),
            [target('avg by (site) (linkwatch_probe_rtt_mean_seconds{kind="icmp"})', "{{site}}")],
            unit="s",
        ),
        panel(
            "timeseries",
            "Packet loss (worst target)",
            (12, 21, 12, 8),
            [target("max by (site) (linkwatch_probe_packet_loss_ratio)", "{{site}}")],
            unit=percent,
        ),
        panel(
            "bargauge",
            "Seconds since the last upload",
            (0, 29, 8, 8),
            [
                target(
                    "time() - linkwatch_site_last_upload_timestamp_seconds",
                    "{{site}}",
                    instant=True,
                )
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Agent backlog (results waiting at the post)",
            (8, 29, 8, 8),
            [target("linkwatch_site_spool_backlog_results", "{{site}}")],
        ),
        panel(
            "timeseries",
            "Results stored per second",
            (16, 29, 8, 8),
            [target("linkwatch:results_stored:rate5m", "{{site}}")],
            unit="ops",
        ),
        panel(
            "timeseries",
            "Clock offset (server minus agent)",
            (0, 37, 12, 8),
            [target("linkwatch_site_clock_offset_seconds", "{{site}}")],
            unit="s",
        ),
        panel(
            "timeseries",
            "Targets DOWN per site",
            (12, 37, 12, 8),
            [target("linkwatch:site_targets_down:sum", "{{site}}")],
        ),
    ]
    return dashboard("linkwatch-overview", "Linkwatch — all sites", panels, [datasource_variable()])


def site_detail() -> dict[str, Any]:
    """One site in depth."""
    s = 'site="$site"'
    panels = [
        panel(
            "stat",
            "Reachable",
            (0, 0, 4, 4),
            [target(f"linkwatch_site_reachable{{{s}}}")],
            defaults={"mappings": _mappings({"0": ("silent", "red"), "1": ("yes", "green")})},
        ),
        panel(
            "stat",
            "Since the last upload",
            (4, 0, 4, 4),
            [target(f"time() - linkwatch_site_last_upload_timestamp_seconds{{{s}}}")],
            unit="s",
        ),
        panel(
            "stat",
            "Availability over the time range",
            (8, 0, 5, 4),
            [
                target(
                    f"sum(sum_over_time(linkwatch:target_available:bool{{{s}}}[$__range]))"
                    f" / sum(sum_over_time(linkwatch:target_known:bool{{{s}}}[$__range]))"
                )
            ],
            unit="percentunit",
        ),
        panel(
            "state-timeline",
            "Target state",
            (13, 0, 11, 8),
            [target(f"linkwatch:target_state:code{{{s}}}", "{{target}}")],
            defaults={"mappings": STATE_MAPPINGS, "color": {"mode": "thresholds"}},
            options={"showValue": "never", "mergeValues": True},
        ),
        panel(
            "timeseries",
            "Probe success",
            (0, 4, 13, 4),
            [target(f"linkwatch_probe_success{{{s}}}", "{{target}}")],
            defaults={"min": 0, "max": 1},
        ),
        panel(
            "heatmap",
            "RTT of each ICMP round (every reply)",
            (0, 8, 12, 9),
            [
                target(
                    f"sum by (le) (linkwatch_probe_rtt_seconds_bucket{{{s}}})",
                    "{{le}}",
                    format="heatmap",
                )
            ],
            description="The samples of the latest round at each scrape (a gauge histogram, "
            "SmokePing-style smoke): no rate().",
            options={
                "calculate": False,
                "yAxis": {"unit": "s"},
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                "tooltip": {"show": True, "yHistogram": True},
            },
        ),
        panel(
            "timeseries",
            "RTT: median, 95th percentile, mean, and the link profile's limit",
            (12, 8, 12, 9),
            [
                target(
                    "histogram_quantile(0.5, sum by (target, le) "
                    f"(linkwatch_probe_rtt_seconds_bucket{{{s}}}))",
                    "p50 {{target}}",
                ),
                target(
                    "histogram_quantile(0.95, sum by (target, le) "
                    f"(linkwatch_probe_rtt_seconds_bucket{{{s}}}))",
                    "p95 {{target}}",
                ),
                target(f"linkwatch_probe_rtt_mean_seconds{{{s}}}", "mean {{target}}"),
                target(f"linkwatch_site_rtt_degraded_threshold_seconds{{{s}}}", "DEGRADED over"),
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Packet loss",
            (0, 17, 12, 8),
            [
                target(f"linkwatch_probe_packet_loss_ratio{{{s}}}", "{{target}}"),
                target(
                    f"linkwatch_site_packet_loss_degraded_threshold_ratio{{{s}}}", "DEGRADED over"
                ),
            ],
            unit="percentunit",
        ),
        panel(
            "timeseries",
            "Jitter",
            (12, 17, 12, 8),
            [
                target(f"linkwatch_probe_jitter_seconds{{{s}}}", "{{target}}"),
                target(f"linkwatch_site_jitter_degraded_threshold_seconds{{{s}}}", "DEGRADED over"),
            ],
            unit="s",
        ),
        panel(
            "bargauge",
            "Availability per target over the time range",
            (0, 25, 12, 8),
            [
                target(
                    f"sum by (target) (sum_over_time(linkwatch:target_available:bool{{{s}}}"
                    "[$__range])) / sum by (target) "
                    f"(sum_over_time(linkwatch:target_known:bool{{{s}}}[$__range]))",
                    "{{target}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            defaults={"min": 0, "max": 1},
        ),
        panel(
            "timeseries",
            "Link quality score",
            (12, 25, 12, 8),
            [target(f"linkwatch_probe_link_quality_score{{{s}}}", "{{target}}")],
            defaults={"min": 0, "max": 100},
        ),
        panel(
            "timeseries",
            "Agent backlog and its oldest result",
            (0, 33, 12, 8),
            [
                target(f"linkwatch_site_spool_backlog_results{{{s}}}", "results waiting"),
                target(
                    f"linkwatch_site_spool_oldest_unsent_age_seconds{{{s}}}", "oldest waiting (s)"
                ),
            ],
        ),
        panel(
            "timeseries",
            "Results dropped at the post",
            (12, 33, 6, 8),
            [
                target(
                    f"increase(linkwatch_site_spool_dropped_results_total{{{s}}}[$__rate_interval])",
                    "dropped",
                )
            ],
        ),
        panel(
            "timeseries",
            "Clock offset and its warning bound",
            (18, 33, 6, 8),
            [
                target(f"linkwatch_site_clock_offset_seconds{{{s}}}", "offset"),
                target(f"linkwatch_site_clock_offset_warn_threshold_seconds{{{s}}}", "warn over"),
            ],
            unit="s",
        ),
    ]
    return dashboard(
        "linkwatch-site", "Linkwatch — one site", panels, [datasource_variable(), site_variable()]
    )


def _thresholds(*steps: tuple[float, str], base: str = "green") -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def _mappings(values: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                key: {"text": text, "color": color, "index": i}
                for i, (key, (text, color)) in enumerate(values.items())
            },
        }
    ]


DASHBOARDS = {"linkwatch-overview.json": overview, "linkwatch-site.json": site_detail}


def render_all() -> dict[str, str]:
    """Return each dashboard file's text by name."""
    return {
        name: json.dumps(make(), indent=2, ensure_ascii=False) + "\n"
        for name, make in DASHBOARDS.items()
    }


def main() -> int:
    for name, text in render_all().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
