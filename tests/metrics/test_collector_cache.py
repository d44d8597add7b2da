"""The collector's cache between scrapes: only ever reused for the same round, never stale.

One app keeps its collector (and cache) across scrapes here, as a uvicorn worker does, while
the database changes under it: a new round, a removed round, a round going stale, a target
renamed or removed, and a second app (another worker) on the same database. Each answer
must be byte for byte what a new app, with nothing cached, answers for the same database.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from metrics_world import fill, full_config
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session
from status_testkit import NOW, World, icmp, icmp_round, result, tcp

from api.app import create_app
from api.metrics import catalogue as cat
from api.metrics.exposition import MetricType
from api.metrics.readings import bucket_samples
from monitor.config import Config
from monitor.storage.models import Result

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
SeriesKey = tuple[str, frozenset[tuple[str, str]]]


class Clock:
    """The apps' clock (a seam we own): set by the test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def serve(world: World, config: Config, clock: Clock) -> Iterator[TestClient]:
    """Serve the database through one real app that lives across the scrapes."""
    app = create_app(config, engine=world.engine, clock=clock, run_workers=False)
    with TestClient(app) as client:
        yield client


def body(client: TestClient, accept: str | None = None) -> str:
    response = client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    text: str = response.text
    return text


def cold(world: World, config: Config, clock: Clock, accept: str | None = None) -> str:
    """Return what a new app (nothing cached) answers now."""
    with serve(world, config, clock) as client:
        return body(client, accept)


def series(text: str) -> dict[SeriesKey, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


@contextmanager
def round_reads(world: World) -> Iterator[list[list[Any]]]:
    """Record the parameters of every statement that reads rounds by id (``rtts_s``)."""
    seen: list[list[Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "rtts_s" in statement and "INSERT" not in statement.upper():
            values = parameters.values() if isinstance(parameters, dict) else parameters
            flat: list[Any] = []
            for v in values:
                flat.extend(v if isinstance(v, list | tuple) else [v])
            seen.append(flat)

    event.listen(world.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(world.engine, "before_cursor_execute", record)


def newest_id(world: World, site_id: str, target_id: str) -> int:
    with Session(world.engine) as session:
        found = session.scalar(
            select(Result.id)
            .where(Result.site_id == site_id, Result.target_id == target_id)
            .order_by(Result.measured_at.desc(), Result.id.desc())
            .limit(1)
        )
    assert found is not None
    return found


def test_a_new_round_changes_that_targets_series_only_and_only_it_is_read(world: World) -> None:
    config = full_config()
    fill(world, config)
    clock = Clock()
    with serve(world, config, clock) as client:
        before = body(client)
        with round_reads(world) as reads:
            assert body(client) == before
        assert reads == []  # nothing new: no round read again

        world.ingest(config, "lpq", [result("gw-icmp", age_s=3, rtt_s=0.9, packet_loss=0.4)])
        with round_reads(world) as reads:
            after = body(client)
        assert reads == [[newest_id(world, "lpq", "gw-icmp")]]
    assert after == cold(world, config, clock)

    old, new = series(before), series(after)
    assert set(old) == set(new)
    changed = {key for key in old if old[key] != new[key]}
    target = frozenset({("site", "lpq"), ("target", "gw-icmp"), ("kind", "icmp")})
    lpq = frozenset({("site", "lpq")})
    site_series = {
        ("linkwatch_site_uploads_total", lpq),
        ("linkwatch_results_stored_total", lpq),
        ("linkwatch_site_state", lpq | {("state", "up")}),
        ("linkwatch_site_state", lpq | {("state", "degraded")}),
    }
    # Only that target's series and its own site's moved (one more upload, now degraded) ...
    assert {key for key in changed if not target <= key[1]} == site_series
    # ... and the target's moved to the new round's values.
    assert new[("linkwatch_probe_rtt_mean_seconds", target)] == 0.9
    assert new[("linkwatch_probe_packet_loss_ratio", target)] == 0.4
    assert (
        new[("linkwatch_probe_last_measured_timestamp_seconds", target)]
        == (NOW - timedelta(seconds=3)).timestamp()
    )
    assert new[("linkwatch_target_state", target | {("state", "degraded")})] == 1
    assert new[("linkwatch_probe_rtt_seconds_gsum", target)] == 0.9  # its one sample


def test_a_round_removed_from_the_database_is_not_served_from_the_cache(world: World) -> None:
    config = full_config()
    fill(world, config)  # lpq gw-icmp: rtt 0.6, 10 s old
    world.ingest(config, "lpq", [result("gw-icmp", age_s=2, rtt_s=0.3)])
    clock = Clock()
    rtt = (
        "linkwatch_probe_rtt_mean_seconds",
        frozenset({("site", "lpq"), ("target", "gw-icmp"), ("kind", "icmp")}),
    )
    with serve(world, config, clock) as client:
        assert series(body(client))[rtt] == 0.3
        with Session(world.engine) as session:
            session.execute(delete(Result).where(Result.id == newest_id(world, "lpq", "gw-icmp")))
            session.commit()
        text = body(client)
    assert series(text)[rtt] == 0.6
    assert text == cold(world, config, clock)


def test_a_cached_round_going_stale_and_fresh_again_follows_the_clock(world: World) -> None:
    config = full_config()
    fill(world, config)
    clock = Clock()
    labels = frozenset({("site", "lpq"), ("target", "gw-icmp"), ("kind", "icmp")})
    unknown = ("linkwatch_target_state", labels | {("state", "unknown")})
    with serve(world, config, clock) as client:
        fresh = body(client)
        assert series(fresh)[unknown] == 0
        clock.now = NOW + timedelta(hours=2)
        stale = body(client)
        assert stale == cold(world, config, clock)
        assert series(stale)[unknown] == 1
        assert ("linkwatch_probe_success", labels) not in series(stale)
        clock.now = NOW  # a clock stepped back: the same round is fresh again
        assert body(client) == fresh


def test_a_warm_collector_drops_a_renamed_and_a_deleted_target(world: World) -> None:
    before = full_config([icmp("site-a"), tcp("gw-tcp")])
    world.ingest(before, "fb1", [result("site-a", age_s=30), result("gw-tcp", kind="tcp")])
    after = full_config([icmp("site-a-gw")])
    world.ingest(after, "fb1", [result("site-a-gw", age_s=5)])
    clock = Clock()
    app = create_app(before, engine=world.engine, clock=clock, run_workers=False)
    with TestClient(app) as client:
        text = body(client)
        assert 'target="site-a"' in text and 'target="gw-tcp"' in text
        app.state.services.config = after  # what a configuration reload hands the app
        text = body(client)
    assert 'target="site-a"' not in text
    assert 'target="gw-tcp"' not in text
    assert 'target="site-a-gw"' in text
    assert text == cold(world, after, clock)


def test_two_apps_on_one_database_answer_byte_identical(world: World) -> None:
    config = full_config()
    fill(world, config)
    clock = Clock()
    with ExitStack() as stack:
        a = stack.enter_context(serve(world, config, clock))
        b = stack.enter_context(serve(world, config, clock))
        assert body(a) == body(b)
        # Only A sees the first change; both then answer after a second one.
        world.ingest(config, "fb1", [icmp_round("gw-icmp", NOW - timedelta(seconds=4), [0.02])])
        body(a)
        world.ingest(
            config,
            "fb1",
            [
                icmp_round("gw-icmp", NOW - timedelta(seconds=2), [0.03, None, 0.2]),
                result("gw-tcp", kind="tcp", age_s=2, rtt_s=0.04),
            ],
        )
        clock.now = NOW + timedelta(seconds=30)
        for accept in (None, OPENMETRICS):
            first, second = body(a, accept), body(b, accept)
            assert first == second
            assert first == cold(world, config, clock, accept)


def test_the_per_target_families_written_as_gauges_are_gauges() -> None:
    # collector._target_output writes these families' samples under the family name.
    for spec in (
        cat.TARGET_STATE,
        cat.PROBE_MEASURED,
        cat.PROBE_MONITOR_ERROR,
        cat.PROBE_SCORE,
        cat.PROBE_SUCCESS,
        cat.PROBE_RTT_MEAN,
        cat.PROBE_LOSS,
        cat.PROBE_JITTER,
        cat.PROBE_DUPLICATES,
    ):
        assert spec.type is MetricType.GAUGE, spec.name
        assert spec.new().sample_name == spec.name


def test_bucket_counts_equal_a_plain_count_with_samples_on_the_bounds() -> None:
    rng = random.Random(41)
    bounds = cat.RTT_BUCKETS_S
    for _ in range(200):
        samples = [
            rng.choice([rng.uniform(0, 6), rng.choice(bounds), 0.0])
            for _ in range(rng.randint(0, 25))
        ]
        counts = bucket_samples(samples, bounds)
        plain = tuple(sum(1 for v in samples if v <= b) for b in (*bounds, math.inf))
        assert counts.cumulative == plain
        assert counts.sum_s == sum(samples)
