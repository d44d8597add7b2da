"""The Grafana dashboards: generated from dashboards/grafana/generate.py, well formed."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

from promql import GRAFANA


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lw_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in GRAFANA.glob("*.json")}


def test_the_committed_json_is_what_the_generator_writes() -> None:
    rendered: dict[str, str] = generator().render_all()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in GRAFANA.glob("*.json")}
    assert on_disk == rendered, "run: python dashboards/grafana/generate.py"


def test_an_overview_and_a_site_drill_down_are_shipped() -> None:
    found = boards()
    assert {b["uid"] for b in found.values()} == {"linkwatch-overview", "linkwatch-site"}
    site = found["linkwatch-site.json"]
    kinds = {p["type"] for p in site["panels"]}
    assert {"heatmap", "timeseries", "state-timeline", "stat", "bargauge"} <= kinds
    titles = " ".join(p["title"].lower() for p in site["panels"])
    for word in ("rtt", "packet loss", "jitter", "availability", "backlog"):
        assert word in titles, word
    heatmap = next(p for p in site["panels"] if p["type"] == "heatmap")
    assert heatmap["targets"][0]["format"] == "heatmap"
    assert "linkwatch_probe_rtt_seconds_bucket" in heatmap["targets"][0]["expr"]
    assert [v["name"] for v in site["templating"]["list"]] == ["datasource", "site"]


def test_panels_fit_the_grid_and_have_unique_ids_and_ref_ids() -> None:
    for name, board in boards().items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), (name, panel["title"])
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_no_panel_rates_the_gauge_histogram() -> None:
    for name, board in boards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                if "linkwatch_probe_rtt_seconds" in expr:
                    assert "rate(" not in expr and "increase(" not in expr, (name, expr)
