"""The server keeps each agent's spool report and clock offsets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.storage.agent_reports import (
    agent_backlogs,
    clock_offset_flags,
    clock_offset_thresholds,
    clock_offsets,
)
from monitor.storage.models import Result
from monitor.wire import BatchIn, ResultIn, SpoolReport

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
URL = "/api/v1/ingest"
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]
Auth = Callable[[str], dict[str, str]]


def post(client: TestClient, batch: BatchIn, headers: dict[str, str]) -> None:
    response = client.post(URL, content=batch.model_dump_json(), headers=headers)
    assert response.status_code == 200, response.text


def test_the_newest_spool_report_of_each_site_is_kept_and_read_back(
    client: TestClient,
    migrated_engine: Engine,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
) -> None:
    first = batch_factory("bridge1", [result_factory("gw-icmp", T0)])
    first.spool = SpoolReport(
        backlog=8000, oldest_unsent_at=T0 - timedelta(hours=3), dropped_total=2, rejected_total=0
    )
    post(client, first, auth_header("bridge1"))
    second = batch_factory("bridge1", [result_factory("gw-icmp", T0 + timedelta(seconds=30))])
    second.spool = SpoolReport(
        backlog=3000,
        oldest_unsent_at=T0 - timedelta(hours=1),
        dropped_total=2,
        rejected_total=4,
        clock_offset_s=0.5,
    )
    post(client, second, auth_header("bridge1"))
    post(client, batch_factory("bridge1", []), auth_header("bridge1"))  # no report: kept
    post(client, batch_factory("wattay", []), auth_header("wattay"))  # never reported

    with Session(migrated_engine) as session:
        backlogs = agent_backlogs(session, T0)
    assert set(backlogs) == {"bridge1"}
    report = backlogs["bridge1"]
    assert (report.backlog, report.dropped_total, report.rejected_total) == (3000, 2, 4)
    assert report.oldest_unsent_at == T0 - timedelta(hours=1)
    assert report.oldest_unsent_age_s == 3600.0
    assert report.clock_offset_s == 0.5
    assert report.reported_at == T0  # the server's (fake) clock


def test_each_result_keeps_the_clock_offset_it_was_measured_with(
    client: TestClient,
    migrated_engine: Engine,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
) -> None:
    batch = batch_factory(
        "bridge1",
        [
            result_factory("gw-icmp", T0, clock_offset_s=-7.25),
            result_factory("gw-icmp", T0 + timedelta(seconds=30)),
        ],
    )
    post(client, batch, auth_header("bridge1"))
    with Session(migrated_engine) as session:
        offsets = sorted(session.execute(select(Result.measured_at, Result.clock_offset_s)).all())
    assert [o for _, o in offsets] == [-7.25, None]


def test_clocks_off_by_more_than_the_threshold_are_flagged_with_the_best_estimate(
    client: TestClient,
    migrated_engine: Engine,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
    auth_header: Auth,
    sample_config: Config,
) -> None:
    # wattay: no report, so the transit-inclusive offset of site_agents: server T0 minus 20 s
    post(
        client,
        batch_factory("wattay", [], agent_sent_at=T0 - timedelta(seconds=20)),
        auth_header("wattay"),
    )
    # bridge1: its own estimate (-1.5 s) wins over the raw one (server T0 minus T0 = 0)
    reported = batch_factory("bridge1", [])
    reported.spool = SpoolReport(backlog=0, dropped_total=0, clock_offset_s=-1.5)
    post(client, reported, auth_header("bridge1"))
    with Session(migrated_engine) as session:
        assert clock_offsets(session) == {"wattay": 20.0, "bridge1": -1.5}
        assert clock_offset_flags(session, 5.0) == {"wattay": 20.0}
        assert clock_offset_flags(session, 1.0) == {"wattay": 20.0, "bridge1": -1.5}
        assert clock_offset_flags(session, {"bridge1": 1.0}) == {"bridge1": -1.5}
    assert clock_offset_thresholds(sample_config) == {"bridge1": 5.0, "wattay": 5.0}
