"""GET /metrics through the real app: promtool-clean, exact names and labels, no stale series."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from status_testkit import NOW, World, icmp, make_config, result, site, tcp, token_of

from monitor.config import Config
from monitor.state import SiteState, TargetState
from monitor.storage.db import make_engine
from monitor.wire import BatchIn

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALLOWED_LABELS = {
    "site",
    "target",
    "kind",
    "state",
    "le",
    "channel",
    "outcome",
    "status",
    "version",
    "python_version",
}


def config_with(*fb1_targets: dict[str, object]) -> Config:
    return make_config(
        {
            "fb1": site("Friendship Bridge I", list(fb1_targets), "ຂົວມິດຕະພາບ 1"),
            "lpq": site("Luang Prabang Airport", [icmp("gw-icmp")], profile="vsat"),
            "silent": site("Silent Checkpoint", [icmp("gw-icmp")]),
        }
    )


FULL = config_with(icmp("gw-icmp"), tcp("gw-tcp"))


def fill(world: World) -> None:
    world.ingest(
        FULL,
        "fb1",
        [
            result("gw-icmp", age_s=40, rtt_s=0.5),
            result("gw-icmp", rtt_s=0.012, packet_loss=0.2, jitter_s=0.002, duplicates=1),
            result("gw-tcp", kind="tcp", status="down", rtt_s=None, error="connection refused"),
        ],
    )
    world.ingest(
        FULL,
        "lpq",
        [result("gw-icmp", status="error", rtt_s=None, packet_loss=None, error="no permission")],
    )


def scrape(world: World, config: Config, accept: str | None = None) -> str:
    with world.client(config) as client:
        response = client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    text: str = response.text
    return text


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_metrics_pass_promtool_check(world: World) -> None:
    fill(world)
    text = scrape(world, FULL)
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b"")


def test_probe_metrics_have_exact_names_labels_and_values(world: World) -> None:
    fill(world)
    found = samples(scrape(world, FULL))
    icmp_labels = {"site": "fb1", "target": "gw-icmp", "kind": "icmp"}
    tcp_labels = {"site": "fb1", "target": "gw-tcp", "kind": "tcp"}
    assert value(found, "linkwatch_probe_success", **icmp_labels) == 1
    assert value(found, "linkwatch_probe_success", **tcp_labels) == 0
    assert value(found, "linkwatch_probe_rtt_mean_seconds", **icmp_labels) == pytest.approx(0.012)
    assert value(found, "linkwatch_probe_packet_loss_ratio", **icmp_labels) == 0.2
    assert value(found, "linkwatch_probe_jitter_seconds", **icmp_labels) == 0.002
    assert value(found, "linkwatch_probe_duplicates", **icmp_labels) == 1
    assert value(found, "linkwatch_probe_monitor_error", **icmp_labels) == 0
    assert value(
        found, "linkwatch_probe_last_measured_timestamp_seconds", **icmp_labels
    ) == pytest.approx((NOW - timedelta(seconds=10)).timestamp())
    for state in TargetState:
        expected = 1 if state is TargetState.DEGRADED else 0  # 20 % loss on fibre
        assert value(found, "linkwatch_target_state", **icmp_labels, state=state.value) == expected
    assert value(found, "linkwatch_target_state", **tcp_labels, state="down") == 1


def test_null_measures_have_no_sample(world: World) -> None:
    fill(world)
    text = scrape(world, FULL)
    found = samples(text)
    tcp_labels = {"site": "fb1", "target": "gw-tcp", "kind": "tcp"}
    for name in (
        "linkwatch_probe_rtt_mean_seconds",
        "linkwatch_probe_packet_loss_ratio",
        "linkwatch_probe_jitter_seconds",
        "linkwatch_probe_duplicates",
    ):
        assert value(found, name, **tcp_labels) is None
    assert "NaN" not in text and " -1" not in text


def test_monitor_error_is_not_exported_as_probe_failure(world: World) -> None:
    fill(world)
    found = samples(scrape(world, FULL))
    lpq = {"site": "lpq", "target": "gw-icmp", "kind": "icmp"}
    assert value(found, "linkwatch_probe_success", **lpq) is None
    for name in ("linkwatch_probe_jitter_seconds", "linkwatch_probe_duplicates"):
        assert value(found, name, **lpq) is None
    assert value(found, "linkwatch_probe_monitor_error", **lpq) == 1
    assert value(found, "linkwatch_target_state", **lpq, state="unknown") == 1
    assert value(found, "linkwatch_target_state", **lpq, state="down") == 0


def test_site_metrics_tell_reachable_from_silent(world: World) -> None:
    fill(world)
    found = samples(scrape(world, FULL))
    assert value(found, "linkwatch_site_reachable", site="fb1") == 1
    assert value(found, "linkwatch_site_reachable", site="silent") == 0
    assert value(found, "linkwatch_site_last_upload_timestamp_seconds", site="fb1") == (
        NOW.timestamp()
    )
    assert value(found, "linkwatch_site_last_upload_timestamp_seconds", site="silent") is None
    assert value(found, "linkwatch_site_clock_offset_seconds", site="fb1") == 0
    assert value(found, "linkwatch_results_stored_total", site="fb1") == 3
    assert value(found, "linkwatch_results_stored_total", site="silent") == 0
    assert value(found, "linkwatch_site_uploads_total", site="fb1") == 1
    assert value(found, "linkwatch_site_state", site="silent", state="unreachable") == 1
    assert value(found, "linkwatch_site_state", site="fb1", state="down") == 1
    fb1 = {s: value(found, "linkwatch_site_state", site="fb1", state=s) for s in SiteState}
    assert [s for s, v in fb1.items() if v == 1] == [SiteState.DOWN]
    assert all(v == 0 for s, v in fb1.items() if s is not SiteState.DOWN)


def test_only_stable_id_labels_are_used(world: World) -> None:
    fill(world)
    text = scrape(world, FULL)
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families}
    assert all(name.startswith("linkwatch_") for name in names)
    labels = {key for f in families for s in f.samples for key in s.labels}
    assert labels <= ALLOWED_LABELS
    assert "connection refused" not in text and "192.0.2.1" not in text
    build = [s for f in families for s in f.samples if s.name == "linkwatch_build_info"]
    assert len(build) == 1
    assert build[0].value == 1
    assert set(build[0].labels) == {"version", "python_version"}


def test_deleted_target_and_site_leave_no_series(world: World) -> None:
    fill(world)
    shrunk = make_config({"fb1": site("Friendship Bridge I", [icmp("gw-icmp")])})
    text = scrape(world, shrunk)
    assert 'target="gw-tcp"' not in text
    assert 'site="lpq"' not in text and 'site="silent"' not in text
    assert 'linkwatch_probe_success{kind="icmp",site="fb1",target="gw-icmp"} 1.0' in text


def test_stale_result_keeps_only_its_timestamp(world: World) -> None:
    fill(world)
    later = NOW + timedelta(hours=1)
    with world.client(FULL, now=later) as client:
        found = samples(client.get("/metrics").text)
    icmp_labels = {"site": "fb1", "target": "gw-icmp", "kind": "icmp"}
    assert value(found, "linkwatch_probe_success", **icmp_labels) is None
    assert value(found, "linkwatch_probe_rtt_mean_seconds", **icmp_labels) is None
    assert value(found, "linkwatch_probe_last_measured_timestamp_seconds", **icmp_labels)
    assert value(found, "linkwatch_target_state", **icmp_labels, state="unknown") == 1
    assert value(found, "linkwatch_site_reachable", site="fb1") == 0


def test_each_app_has_its_own_registry_and_the_global_one_stays_empty(world: World) -> None:
    fill(world)
    only_lpq = make_config({"lpq": site("Luang Prabang Airport", [icmp("gw-icmp")])})
    assert 'site="fb1"' in scrape(world, FULL)
    assert 'site="fb1"' not in scrape(world, only_lpq)
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not {n for n in global_names if n.startswith("linkwatch_")}


def test_openmetrics_is_served_when_asked_for(world: World) -> None:
    fill(world)
    with world.client(FULL) as client:
        response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_unreadable_database_is_reported_not_raised(tmp_path: Path) -> None:
    never_migrated = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    engine = make_engine(never_migrated)
    try:
        found = samples(scrape(World(never_migrated, engine), FULL))
    finally:
        engine.dispose()
    assert value(found, "linkwatch_database_up") == 0
    assert not [key for key in found if key[0] == "linkwatch_probe_success"]


def test_results_uploaded_through_the_ingest_endpoint_show_up(world: World) -> None:
    batch = BatchIn(
        batch_id=str(uuid.uuid4()),
        site_id="lpq",
        agent_sent_at=NOW,
        results=[result("gw-icmp", rtt_s=0.6)],
    )
    with world.client(FULL) as client:
        ack = client.post(
            "/api/v1/ingest",
            content=batch.model_dump_json(),
            headers={
                "Authorization": f"Bearer {token_of(FULL, 'lpq')}",
                "Content-Type": "application/json",
            },
        )
        assert ack.status_code == 200, ack.text
        found = samples(client.get("/metrics").text)
    lpq = {"site": "lpq", "target": "gw-icmp", "kind": "icmp"}
    assert value(found, "linkwatch_probe_rtt_mean_seconds", **lpq) == 0.6
    assert value(found, "linkwatch_target_state", **lpq, state="up") == 1  # vsat profile
    assert value(found, "linkwatch_results_stored_total", site="lpq") == 1
