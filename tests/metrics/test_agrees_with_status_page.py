"""/metrics and the status page derive the same states from the same database."""

from __future__ import annotations

from datetime import timedelta

from metrics_world import fill, full_config
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session
from status_testkit import NOW, World

from api.status.snapshot import take_snapshot


def current_states(text: str, family: str) -> dict[tuple[str, ...], str]:
    out = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            if s.name == family and s.value == 1:
                key = tuple(v for k, v in sorted(s.labels.items()) if k in ("site", "target"))
                out[key] = s.labels["state"]
    return out


def test_target_and_site_states_match_the_status_page_snapshot(world: World) -> None:
    config = full_config()
    fill(world, config)
    for now in (NOW, NOW + timedelta(minutes=3), NOW + timedelta(hours=2)):
        with world.client(config, now=now) as client:
            text = client.get("/metrics").text
        with Session(world.engine) as session:
            snapshot = take_snapshot(config, session, now)
        page_targets = {
            (t.site_id, t.target_id): t.state.value for s in snapshot.sites for t in s.targets
        }
        page_sites = {(s.site_id,): s.state.value for s in snapshot.sites}
        assert current_states(text, "linkwatch_target_state") == page_targets
        assert current_states(text, "linkwatch_site_state") == page_sites
    assert "unreachable" in page_sites.values()  # two hours later every site is silent


def test_the_fast_reads_equal_the_agent_report_functions(world: World) -> None:
    """api.metrics reads spool reports and clock offsets as tuples; same answers."""
    from api.metrics.readings import agent_rows, best_clock_offsets, spool_reports
    from monitor.storage.agent_reports import agent_backlogs, clock_offsets

    config = full_config()
    fill(world, config)
    with Session(world.engine) as session:
        reports = spool_reports(session, NOW)
        assert reports == agent_backlogs(session, NOW)
        assert reports  # fb1 sent one
        assert best_clock_offsets(agent_rows(session), reports) == clock_offsets(session)
