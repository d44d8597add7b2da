"""A post silent for 30 minutes among seven: one open SITE incident, one alert, one recovery.

Seven posts upload every 10 s of simulated time through the server's ingest, each its own
two targets (30 s interval) and at its own phase; the evaluator runs every 5 s. Post 4's
uploads stop for 30 minutes: either its agent is stopped (no results for the gap) or its
uplink is cut (the agent measures on and flushes its spool when the link returns).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from alerting_testkit import T0, World, WorldFactory, icmp, result, site_config

from monitor.alerting.events import AlertKind
from monitor.alerting.queries import open_incidents
from monitor.wire import ResultIn

SITES = [f"post{n}" for n in range(1, 8)]
TARGETS = ("gw", "web")
STEP_S = 30.0
PASS_S = 5.0
UPLOAD_S = 10.0
SILENT = (5 * 60.0, 35 * 60.0)  # post 4 uploads nothing from 08:05 to 08:35
END_S = 40 * 60.0

CONFIG = site_config(
    {
        site: [
            icmp(t, host=f"198.51.100.{10 * n + i}", interval_s=STEP_S)
            for i, t in enumerate(TARGETS)
        ]
        for n, site in enumerate(SITES, start=1)
    }
)


def _phase_s(site: str) -> float:
    return SITES.index(site) * 4.1


def _silent(site: str, t_s: float) -> bool:
    return site == "post4" and SILENT[0] <= t_s < SILENT[1]


def _open_sites(world: World) -> list[str | None]:
    with world.sessions() as session:
        return [i.site_id for i in open_incidents(session, world.clock()) if i.kind == "site"]


@pytest.mark.parametrize("agent", ["stopped", "cut_off"])
def test_one_post_silent_for_30_minutes_has_one_open_incident_one_alert_and_one_recovery(
    make_world: WorldFactory, agent: str
) -> None:
    silent_after_s = CONFIG.server.site_silent_after_s
    spool: dict[str, list[ResultIn]] = {site: [] for site in SITES}
    next_round = dict.fromkeys(SITES, 0)
    post4_uploads: list[float] = []  # simulated seconds of post 4's uploads
    with make_world(CONFIG) as world:
        t_s = 0.0
        while t_s < END_S:
            t_s += PASS_S
            world.clock.set(T0 + timedelta(seconds=t_s))
            for n, site in enumerate(SITES):
                while _phase_s(site) + next_round[site] * STEP_S + 1.0 <= t_s:
                    measured_s = _phase_s(site) + next_round[site] * STEP_S
                    next_round[site] += 1
                    if agent == "stopped" and _silent(site, measured_s):
                        continue
                    at = T0 + timedelta(seconds=measured_s)
                    spool[site] += [result(t, at, "up") for t in TARGETS]
                # Like the real uploader: every UPLOAD_S, and nothing when the spool is empty.
                uploads_now = t_s % UPLOAD_S == (n % 2) * PASS_S
                if uploads_now and not _silent(site, t_s) and spool[site]:
                    world.upload(site, spool[site])
                    spool[site] = []
                    if site == "post4":
                        post4_uploads.append(t_s)
            world.run()
            last_s = post4_uploads[-1] if post4_uploads else 0.0
            if last_s < SILENT[0]:
                expected = ["post4"] if t_s - last_s > silent_after_s else []
            else:
                expected = [] if last_s >= SILENT[1] else ["post4"]
            assert _open_sites(world) == expected, t_s
            if expected:
                assert world.sink.count() == {AlertKind.SITE_UNREACHABLE: 1}

        before = max(u for u in post4_uploads if u < SILENT[0])
        back = min(u for u in post4_uploads if u >= SILENT[1])
        (incident,) = world.incidents("site")
        assert incident.site_id == "post4"
        assert incident.started_at == T0 + timedelta(seconds=before)
        assert incident.ended_at == T0 + timedelta(seconds=back)
        assert incident.detected_at == T0 + timedelta(seconds=before + silent_after_s + PASS_S)
        assert incident.down_notified_at == incident.detected_at
        assert incident.recovery_notified_at == incident.ended_at
        assert Counter((e.kind, e.site_id) for e in world.sink.events) == {
            (AlertKind.SITE_UNREACHABLE, "post4"): 1,
            (AlertKind.SITE_RECOVERED, "post4"): 1,
        }
        assert world.incidents("gateway") == [] and world.incidents("target") == []
        # Post 4's gap is unknown while its agent was stopped, UP once its spool arrived.
        states = [state for _, _, state in world.periods("post4", "gw")]
        assert states == (["up", "up"] if agent == "stopped" else ["up"])
