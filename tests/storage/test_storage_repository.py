"""The repository on both backends: config sync, exactly-once ingest, and the reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.storage import repository as repo
from monitor.storage.models import Batch, Target
from monitor.wire import BatchAck, BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MakeResult = Callable[..., ResultIn]
MakeBatch = Callable[..., BatchIn]


@pytest.fixture
def sessions(migrated_engine: Engine, sample_config: Config) -> sessionmaker[Session]:
    """A session factory on a migrated database holding ``sample_config``'s sites."""
    factory = sessionmaker(migrated_engine, expire_on_commit=False)
    with factory.begin() as session:
        repo.sync_config(session, sample_config, T0)
    return factory


def ingest(sessions: sessionmaker[Session], batch: BatchIn, now: datetime = T0) -> BatchAck:
    with sessions.begin() as session:
        return repo.ingest_batch(session, batch.site_id, batch, now)


def count(sessions: sessionmaker[Session], site_id: str | None = None) -> int:
    with sessions() as session:
        return repo.count_results(session, site_id)


def test_sync_config_mirrors_sites_and_targets(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        sites = repo.list_sites(session)
        targets = repo.list_targets(session, "bridge1")
    assert [s.site_id for s in sites] == ["bridge1", "wattay"]
    bridge = sites[0]
    assert (bridge.name_lo, bridge.time_zone, bridge.link_profile) == (
        "ຂົວມິດຕະພາບ 1",
        "Asia/Vientiane",
        "fibre",
    )
    by_id = {t.target_id: t for t in targets}
    assert sorted(by_id) == ["gw-dns", "gw-http", "gw-icmp", "gw-tcp"]
    assert by_id["gw-tcp"].endpoint == "127.0.0.1:9"
    assert by_id["gw-http"].endpoint == "http://127.0.0.1:9/health"
    assert by_id["gw-icmp"].spec["count"] == 3
    assert bridge.updated_at == T0 and bridge.updated_at.tzinfo is not None


def test_sync_config_marks_removed_sites_and_targets_inactive_and_keeps_them(
    sessions: sessionmaker[Session], sample_config: Config
) -> None:
    raw = sample_config.model_dump(mode="json")
    raw["sites"]["bridge1"]["targets"] = [
        t for t in raw["sites"]["bridge1"]["targets"] if t["id"] != "gw-dns"
    ]
    del raw["sites"]["wattay"]
    later = T0 + timedelta(hours=1)
    with sessions.begin() as session:
        summary = repo.sync_config(session, Config.model_validate(raw), later)
    assert summary.sites_deactivated == ("wattay",)
    assert set(summary.targets_deactivated) == {"bridge1/gw-dns", "wattay/gw-icmp", "wattay/gw-tcp"}
    with sessions() as session:
        assert [s.site_id for s in repo.list_sites(session)] == ["bridge1"]
        everything = repo.list_sites(session, include_inactive=True)
        assert {(s.site_id, s.active) for s in everything} == {("bridge1", True), ("wattay", False)}
        dns = repo.get_target(session, "bridge1", "gw-dns")
        assert dns is not None and not dns.active and dns.updated_at == later
        kept = repo.get_target(session, "bridge1", "gw-tcp")
        assert kept is not None and kept.active and kept.updated_at == T0
        assert "gw-dns" not in {t.target_id for t in repo.list_targets(session, "bridge1")}


def test_sync_config_reactivates_a_target_that_comes_back(
    sessions: sessionmaker[Session], sample_config: Config
) -> None:
    raw = sample_config.model_dump(mode="json")
    raw["sites"]["wattay"]["targets"] = raw["sites"]["wattay"]["targets"][:1]
    with sessions.begin() as session:
        repo.sync_config(session, Config.model_validate(raw), T0 + timedelta(hours=1))
    with sessions.begin() as session:
        summary = repo.sync_config(session, sample_config, T0 + timedelta(hours=2))
    assert summary.targets_changed == ("wattay/gw-tcp",)
    with sessions() as session:
        rows = session.scalars(select(Target).where(Target.site_id == "wattay")).all()
        assert all(t.active for t in rows)


def test_sync_config_again_with_the_same_config_changes_nothing(
    sessions: sessionmaker[Session], sample_config: Config
) -> None:
    with sessions.begin() as session:
        summary = repo.sync_config(session, sample_config, T0 + timedelta(days=1))
    assert summary == repo.SyncSummary()


def test_a_batch_ingested_twice_is_stored_once(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    results = [result_factory("gw-icmp", T0 + timedelta(seconds=30 * i)) for i in range(5)]
    batch = batch_factory("bridge1", results)
    first = ingest(sessions, batch)
    again = ingest(sessions, batch, T0 + timedelta(minutes=1))
    assert (first.stored, first.duplicates) == (5, 0)
    assert (again.stored, again.duplicates) == (0, 5)
    assert again.batch_id == batch.batch_id
    assert count(sessions) == 5
    with sessions() as session:
        rows = session.scalars(select(Batch)).all()
    assert [(b.batch_id, b.results, b.stored) for b in rows] == [(batch.batch_id, 5, 5)]


def test_overlapping_batches_store_each_result_once(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    results = [result_factory("gw-tcp", T0 + timedelta(seconds=i)) for i in range(6)]
    first = ingest(sessions, batch_factory("bridge1", results[:4]))
    second = ingest(sessions, batch_factory("bridge1", results[2:]))
    assert (first.stored, first.duplicates) == (4, 0)
    assert (second.stored, second.duplicates) == (2, 2)
    assert count(sessions, "bridge1") == 6


def test_a_result_id_repeated_within_one_batch_counts_as_a_duplicate(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    one = result_factory("gw-tcp", T0)
    ack = ingest(sessions, batch_factory("bridge1", [one, one, result_factory("gw-tcp", T0)]))
    assert (ack.stored, ack.duplicates) == (2, 1)
    assert count(sessions) == 2


def test_an_unknown_target_rejects_the_whole_batch(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    good = result_factory("gw-tcp", T0)
    foreign = result_factory("gw-http", T0)  # bridge1 has gw-http, wattay does not
    batch = batch_factory("wattay", [good, foreign, result_factory("nowhere", T0)])
    with pytest.raises(repo.UnknownTargetsError) as caught:
        ingest(sessions, batch)
    assert caught.value.unknown == ((1, "gw-http"), (2, "nowhere"))
    assert "'gw-http'" in str(caught.value)
    assert count(sessions) == 0
    with sessions() as session:
        assert repo.site_agents(session) == {}
        assert session.scalars(select(Batch)).all() == []


def test_results_of_a_target_removed_from_the_config_are_still_accepted(
    sessions: sessionmaker[Session],
    sample_config: Config,
    result_factory: MakeResult,
    batch_factory: MakeBatch,
) -> None:
    raw = sample_config.model_dump(mode="json")
    raw["sites"]["wattay"]["targets"] = raw["sites"]["wattay"]["targets"][:1]
    with sessions.begin() as session:
        repo.sync_config(session, Config.model_validate(raw), T0)
    ack = ingest(sessions, batch_factory("wattay", [result_factory("gw-tcp", T0)]))
    assert ack.stored == 1


def test_site_agent_keeps_last_upload_newest_measurement_and_clock_offset(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    now = T0 + timedelta(minutes=10)
    recent = batch_factory(
        "bridge1",
        [result_factory("gw-tcp", T0 + timedelta(minutes=m)) for m in (1, 9, 5)],
        agent_sent_at=now - timedelta(seconds=2.5),
    )
    ingest(sessions, recent, now)
    backfill = batch_factory(
        "bridge1",
        [result_factory("gw-tcp", T0 - timedelta(hours=2))],
        agent_sent_at=now + timedelta(seconds=60) + timedelta(seconds=4),
    )
    ingest(sessions, backfill, now + timedelta(seconds=60))
    heartbeat = batch_factory("bridge1", [], agent_sent_at=now + timedelta(seconds=120))
    ingest(sessions, heartbeat, now + timedelta(seconds=120))
    with sessions() as session:
        agent = repo.site_agents(session)["bridge1"]
    assert agent.last_upload_at == now + timedelta(seconds=120)
    assert agent.last_measured_at == T0 + timedelta(minutes=9)
    assert agent.last_measured_at.tzinfo is not None
    assert agent.clock_offset_s == pytest.approx(0.0)
    assert agent.uploads == 3


def test_clock_offset_is_server_minus_agent_clock(
    sessions: sessionmaker[Session], batch_factory: MakeBatch
) -> None:
    ingest(sessions, batch_factory("wattay", [], agent_sent_at=T0 - timedelta(seconds=90)), T0)
    with sessions() as session:
        agent = repo.site_agents(session)["wattay"]
    assert agent.clock_offset_s == pytest.approx(90.0)
    assert agent.last_measured_at is None


def test_latest_results_returns_the_newest_per_target_with_nulls_intact(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    down = result_factory(
        "gw-icmp",
        T0 + timedelta(minutes=2),
        status=ProbeStatus.DOWN,
        rtt_s=None,
        packet_loss=1.0,
        jitter_s=None,
        received=0,
        rtts_s=[None, None, None],
        error="no echo reply within 5 s",
    )
    older = result_factory("gw-icmp", T0 + timedelta(minutes=1))
    tcp = result_factory("gw-tcp", T0, kind=ProbeKind.TCP, phases_s={"connect": 0.004})
    other_site = result_factory("gw-tcp", T0 + timedelta(minutes=5), kind=ProbeKind.TCP)
    ingest(sessions, batch_factory("bridge1", [older, down, tcp]))
    ingest(sessions, batch_factory("wattay", [other_site]))
    with sessions() as session:
        everywhere = repo.latest_results(session)
        bridge = repo.latest_results(session, "bridge1")
    assert set(everywhere) == {("bridge1", "gw-icmp"), ("bridge1", "gw-tcp"), ("wattay", "gw-tcp")}
    assert set(bridge) == {("bridge1", "gw-icmp"), ("bridge1", "gw-tcp")}
    newest = bridge[("bridge1", "gw-icmp")]
    assert newest.result_id == down.result_id
    assert (newest.status, newest.rtt_s, newest.jitter_s, newest.packet_loss) == (
        "down",
        None,
        None,
        1.0,
    )
    assert newest.rtts_s == [None, None, None]
    assert newest.error == "no echo reply within 5 s"
    assert newest.measured_at == T0 + timedelta(minutes=2)
    assert newest.measured_at.utcoffset() == timedelta(0)
    assert bridge[("bridge1", "gw-tcp")].phases_s == {"connect": 0.004}


def test_latest_results_breaks_a_tie_in_measured_at_by_arrival(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    first = result_factory("gw-tcp", T0, rtt_s=0.1)
    second = result_factory("gw-tcp", T0, rtt_s=0.2)
    ingest(sessions, batch_factory("bridge1", [first]))
    ingest(sessions, batch_factory("bridge1", [second]))
    with sessions() as session:
        assert repo.latest_results(session)[("bridge1", "gw-tcp")].result_id == second.result_id


def test_series_is_bounded_by_its_window_and_limit_oldest_first(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    times = [T0 + timedelta(minutes=m) for m in (7, 0, 3, 5, 10, 1)]
    ingest(sessions, batch_factory("bridge1", [result_factory("gw-icmp", t) for t in times]))
    ingest(
        sessions, batch_factory("bridge1", [result_factory("gw-tcp", T0 + timedelta(minutes=2))])
    )
    with sessions() as session:
        window = repo.series(
            session,
            "bridge1",
            "gw-icmp",
            T0 + timedelta(minutes=1),
            T0 + timedelta(minutes=10),
            100,
        )
        first_two = repo.series(session, "bridge1", "gw-icmp", T0, T0 + timedelta(hours=1), 2)
    assert [r.measured_at for r in window] == [T0 + timedelta(minutes=m) for m in (1, 3, 5, 7)]
    assert [r.measured_at for r in first_two] == [T0, T0 + timedelta(minutes=1)]


def test_series_compares_instants_whatever_the_zone_they_are_given_in(
    sessions: sessionmaker[Session], result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    ingest(sessions, batch_factory("bridge1", [result_factory("gw-icmp", T0)]))
    vientiane = timezone(timedelta(hours=7))
    start = (T0 - timedelta(seconds=1)).astimezone(vientiane)
    end = (T0 + timedelta(seconds=1)).astimezone(vientiane)
    with sessions() as session:
        rows = repo.series(session, "bridge1", "gw-icmp", start, end, 10)
    assert [r.measured_at for r in rows] == [T0]


def test_concurrent_ingests_from_seven_sites_all_succeed(
    migrated_engine: Engine, result_factory: MakeResult, batch_factory: MakeBatch
) -> None:
    site_ids = [f"site{n}" for n in range(7)]
    config = Config.model_validate(
        {
            "sites": {
                site_id: {
                    "name": site_id,
                    "token": f"token-{site_id}-0123456789",
                    "targets": [{"kind": "tcp", "id": "gw", "host": "127.0.0.1", "port": 9}],
                }
                for site_id in site_ids
            }
        }
    )
    factory = sessionmaker(migrated_engine, expire_on_commit=False)
    with factory.begin() as session:
        repo.sync_config(session, config, T0)
    shared = [result_factory("gw", T0 + timedelta(seconds=i)) for i in range(20)]
    failures: list[BaseException] = []
    acks: list[BatchAck] = []

    def upload(site_id: str) -> None:
        try:
            for n in range(5):
                results = [
                    result_factory("gw", T0 + timedelta(seconds=n * 50 + i)) for i in range(50)
                ]
                acks.append(ingest(factory, batch_factory(site_id, results)))
            if site_id == "site0":
                for _ in range(3):  # the same batch raced against itself
                    acks.append(ingest(factory, batch_factory(site_id, shared)))
        except BaseException as exc:  # reported below, with the thread's site
            failures.append(exc)

    threads = [threading.Thread(target=upload, args=(site_id,)) for site_id in site_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert count(factory) == 7 * 5 * 50 + 20
    assert sum(a.stored for a in acks) == 7 * 5 * 50 + 20
    assert sum(a.duplicates for a in acks) == 2 * 20
    with factory() as session:
        agents = repo.site_agents(session)
    assert {site_id: agents[site_id].uploads for site_id in site_ids} == {
        site_id: 8 if site_id == "site0" else 5 for site_id in site_ids
    }
