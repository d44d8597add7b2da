"""A real Prometheus scrapes a running ``linkwatch demo``; every rule and panel returns data.

Debian's ``prometheus`` package (``/usr/bin/prometheus``) listens on a free loopback port
with its database in a temporary folder, scrapes the demo every second and evaluates the
shipped rules every second. Then: the seven sites of ``examples/lao-border.yaml`` are there
with their link profiles' values; every recording rule, every alert (as a data variant, see
``promql.data_variants``) and every dashboard query returns at least one series; every
metric they name exists.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from promql import (
    RULES,
    Expression,
    dashboard_expressions,
    data_variants,
    metric_names,
    recorded_names,
    rule_expressions,
)

from monitor.config_loader import load_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(ROOT / "examples" / "lao-border.yaml")
SITES = sorted(EXAMPLE.sites)
WAIT_S = 75.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class NotReady(Exception):
    """Prometheus answered, but not with a query result (still starting: 503)."""


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate an instant query; return its result vector (or scalar as one item)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        if response.status_code == 503:
            raise NotReady(response.text)
        body = response.json()
        assert body.get("status") == "success", f"{promql!r}: {body}"
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self, promql: str) -> dict[str, float]:
        """Return ``{site: value}`` of a query whose series carry a ``site`` label."""
        return {r["metric"]["site"]: float(r["value"][1]) for r in self.query(promql)}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Run the demo and a Prometheus scraping it until both have what the tests need."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus not found: install Debian's `prometheus` package")
    tmp = tmp_path_factory.mktemp("prom-demo")
    demo_port, prom_port = free_port(), free_port()
    demo_log = (tmp / "demo.log").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--duration", "150",
         "--port", str(demo_port), "--data-dir", str(tmp / "demo")],
        stdout=demo_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: linkwatch\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{demo_port}']\n",
        encoding="utf-8",
    )
    prom_log = (tmp / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        stdout=prom_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = Prometheus(f"http://127.0.0.1:{prom_port}")
    try:
        _wait_for_data(api, demo, prom, tmp)
        yield api
    finally:
        stop(prom)
        stop(demo)
        demo_log.close()
        prom_log.close()


def _every_expression() -> list[Expression]:
    recording, alerting = rule_expressions()
    variants = [v for alert in alerting for v in data_variants(alert)]
    return recording + variants + dashboard_expressions(SITES[0])


def _wait_for_data(
    api: Prometheus, demo: subprocess.Popen[bytes], prom: subprocess.Popen[bytes], tmp: Path
) -> None:
    """Wait (bounded) until all sites are reachable and every expression has data."""
    deadline = time.monotonic() + WAIT_S
    missing: list[str] = ["(not asked yet)"]
    while time.monotonic() < deadline:
        for proc, log in ((demo, "demo.log"), (prom, "prometheus.log")):
            if proc.poll() is not None:
                pytest.fail(f"{log} ended early:\n" + (tmp / log).read_text(errors="replace"))
        try:
            reachable = api.values("linkwatch_site_reachable == 1")
            if len(reachable) == len(SITES):
                missing = [e.origin for e in _every_expression() if not api.query(e.promql)]
                if not missing:
                    return
        except (httpx.HTTPError, NotReady):
            pass
        time.sleep(1.0)
    # Let the tests below say precisely what is missing.


def test_prometheus_sees_the_seven_sites_of_the_example(prometheus: Prometheus) -> None:
    assert sorted(prometheus.values("linkwatch_site_reachable")) == SITES
    assert prometheus.values("linkwatch_site_reachable") == dict.fromkeys(SITES, 1.0)
    assert len(SITES) == 7


def test_prometheus_holds_each_sites_link_profile_and_counts(prometheus: Prometheus) -> None:
    profiles = {s: EXAMPLE.profiles[EXAMPLE.sites[s].link_profile] for s in SITES}
    rtt = prometheus.values("linkwatch_site_rtt_degraded_threshold_seconds")
    assert rtt == {s: profiles[s].rtt_degraded_s for s in SITES}
    loss = prometheus.values("linkwatch_site_packet_loss_degraded_threshold_ratio")
    assert loss == {s: profiles[s].packet_loss_degraded for s in SITES}
    stored = prometheus.values("linkwatch_results_stored_total")
    assert sorted(stored) == SITES and all(v > 0 for v in stored.values())
    tcp = prometheus.values('linkwatch_probe_success{kind="tcp",target="gw-tcp"}')
    assert tcp == dict.fromkeys(SITES, 1.0)  # the demo's TCP target is the server's own port
    targets = prometheus.query('count by (site) (linkwatch_target_state{state="up"})')
    assert {r["metric"]["site"]: r["value"][1] for r in targets} == dict.fromkeys(SITES, "4")


def test_every_recording_rule_returns_data(prometheus: Prometheus) -> None:
    recording, _ = rule_expressions()
    empty = [e.origin for e in recording if not prometheus.query(e.promql)]
    assert empty == []
    stored = [name for name in sorted(recorded_names()) if not prometheus.query(name)]
    assert stored == [], "recording rules evaluated by Prometheus itself wrote nothing"


def test_every_alert_expression_has_data_on_a_healthy_demo(prometheus: Prometheus) -> None:
    _, alerting = rule_expressions()
    empty = [v.origin for a in alerting for v in data_variants(a) if not prometheus.query(v.promql)]
    assert empty == []
    firing = prometheus.query('ALERTS{alertstate="firing"}')
    assert [r["metric"]["alertname"] for r in firing] == []


def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    expressions = dashboard_expressions(SITES[0])
    assert len(expressions) > 30
    empty = [f"{e.origin}: {e.promql}" for e in expressions if not prometheus.query(e.promql)]
    assert empty == []


def test_every_metric_named_by_a_rule_or_panel_exists(prometheus: Prometheus) -> None:
    names: set[str] = set()
    for expression in _every_expression():
        names |= metric_names(expression.promql)
    assert len(names) > 20
    absent = sorted(n for n in names if not prometheus.query(f'count({{__name__="{n}"}})'))
    assert absent == []
