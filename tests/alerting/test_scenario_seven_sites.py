"""Seven border posts in simulated time: exactly the expected alerts, counted (C20).

Every result enters through the server's ingest function; each post uploads each round
2 s after measuring it, the posts a third of an interval apart; the evaluator runs every
10 s of simulated time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from alerting_testkit import T0, World, WorldFactory, result, site_config

from monitor.alerting.correlation import CENTRAL_GROUP
from monitor.alerting.events import AlertKind
from monitor.availability.queries import availability
from monitor.wire import ResultIn

SITES = [f"post{n}" for n in range(1, 8)]
STEP_S = 30.0  # every target's interval
TICKS = 3  # evaluator passes per interval
START = T0.replace(hour=10)
TARGETS = ("gw-icmp", "gw-tcp", "local")


def _targets(n: int) -> list[dict[str, object]]:
    icmp = {"kind": "icmp", "count": 3, "interval_s": STEP_S}
    return [
        {**icmp, "id": "gw-icmp", "host": "192.0.2.1"},
        {"kind": "tcp", "id": "gw-tcp", "host": "192.0.2.1", "port": 443, "interval_s": STEP_S},
        {**icmp, "id": "local", "host": f"198.51.100.{n}"},
    ]


CONFIG = site_config({site: _targets(n) for n, site in enumerate(SITES, start=1)})

Observe = Callable[[str, str, int], str]
"""``observe(site, target, round)``: what the post measures: up or down."""


def _round_result(site: str, target: str, k: int, obs: str) -> ResultIn:
    at = START + timedelta(seconds=k * STEP_S + _tick(site) * STEP_S / TICKS)
    if target == "gw-tcp":
        none = dict.fromkeys(("sent", "received", "duplicates", "jitter_s", "packet_loss"))
        return result(target, at, obs, kind="tcp", rtts_s=[], **none)
    return result(target, at, obs)


def _tick(site: str) -> int:
    return int(site.removeprefix("post")) % TICKS


def simulate(
    world: World,
    rounds: int,
    observe: Observe,
    cut: Callable[[str, int], bool] = lambda site, k: False,
    after_round: Callable[[int], None] = lambda k: None,
) -> None:
    """Run ``rounds`` rounds. A post whose uplink is ``cut`` keeps its results in its spool
    and sends them all with its first upload after the cut."""
    spool: dict[str, list[ResultIn]] = {site: [] for site in SITES}
    for k in range(rounds):
        for tick in range(TICKS):
            world.clock.set(START + timedelta(seconds=k * STEP_S + tick * STEP_S / TICKS + 2))
            for site in (s for s in SITES if _tick(s) == tick):
                spool[site] += [_round_result(site, t, k, observe(site, t, k)) for t in TARGETS]
                if not cut(site, k):
                    world.upload(site, spool[site])
                    spool[site] = []
            world.run()
        after_round(k)


def _alerts(world: World) -> Counter[tuple[AlertKind, str | None, str | None]]:
    return Counter((e.kind, e.site_id, e.target_id) for e in world.sink.events)


# post2's local target flaps (one letter per 30 s round from 10:00): with 3 failed rounds to
# go DOWN and 2 good ones to recover, this is exactly two outages.
FLAP = "uuuuuuuuuudddduudddudddduuuuuuuuuudududd" + "u" * 20


def test_a_cut_uplink_and_a_flapping_target_give_exactly_the_expected_alerts(
    make_world: WorldFactory,
) -> None:
    cut = range(20, 40)  # post4's WAN is down from 10:10 to 10:20

    def observe(site: str, target: str, k: int) -> str:
        if site == "post4" and k in cut and target.startswith("gw-"):
            return "down"  # the post cannot reach the gateway; it keeps measuring
        if site == "post2" and target == "local":
            return "up" if FLAP[k] == "u" else "down"
        return "up"

    def during_the_cut(k: int) -> None:
        if k != 38:
            return
        now = world.clock()
        with world.sessions() as session:
            gap = availability(
                session, "post4", "gw-icmp", START + timedelta(minutes=11), now, now=now
            )
            others = [
                availability(session, site, None, START, now, now=now)
                for site in SITES
                if site not in ("post2", "post4")
            ]
        # Nothing of post4's gap has arrived: unknown for post4, nobody else's uptime reduced.
        assert gap.availability is None and gap.down_s == 0 and gap.unknown_s > 400
        assert all(a.availability == 1.0 and a.unknown_s < STEP_S for a in others)

    with make_world(CONFIG) as world:
        simulate(world, 60, observe, lambda site, k: site == "post4" and k in cut, during_the_cut)
        assert _alerts(world) == {
            (AlertKind.SITE_UNREACHABLE, "post4", None): 1,
            (AlertKind.SITE_RECOVERED, "post4", None): 1,
            (AlertKind.TARGET_DOWN, "post2", "local"): 2,
            (AlertKind.TARGET_RECOVERED, "post2", "local"): 2,
        }
        # The spool arrived: post4's gap is what its agent measured (issue 4), recorded as
        # incidents nobody was paged for.
        down = [(a, b) for a, b, state in world.periods("post4", "gw-icmp") if state == "down"]
        start4 = START + timedelta(seconds=_tick("post4") * STEP_S / TICKS)
        assert down == [(start4 + timedelta(minutes=10), start4 + timedelta(minutes=20))]
        quiet = [i for i in world.incidents("target") if i.site_id == "post4"]
        assert len(quiet) == 2 and all(i.down_notified_at is None for i in quiet)
        assert world.incidents("gateway") == []


def test_most_posts_losing_the_gateway_give_one_gateway_alert_and_no_storm(
    make_world: WorldFactory,
) -> None:
    outage = range(8, 18)  # the gateway host stops answering for 5 minutes; uploads go on

    def observe(site: str, target: str, k: int) -> str:
        return "down" if k in outage and target.startswith("gw-") else "up"

    with make_world(CONFIG) as world:
        simulate(world, 26, observe)
        assert _alerts(world) == {
            (AlertKind.GATEWAY_DOWN, None, None): 1,
            (AlertKind.GATEWAY_RECOVERED, None, None): 1,
        }
        (gateway,) = world.incidents("gateway")
        assert gateway.gateway == "192.0.2.1"
        assert len(world.incidents("target")) == 14  # recorded for every post and target
        down = world.sink.of(AlertKind.GATEWAY_DOWN)[0]
        assert "192.0.2.1" in down.summary_en and "ເກດເວ" in down.summary_lo


def test_every_post_falling_silent_at_once_gives_one_alert_not_seven(
    make_world: WorldFactory,
) -> None:
    silence = range(6, 20)  # the centre's own link is down for 7 minutes

    with make_world(CONFIG) as world:
        simulate(world, 30, lambda site, target, k: "up", lambda site, k: k in silence)
        assert _alerts(world) == {
            (AlertKind.GATEWAY_DOWN, None, None): 1,
            (AlertKind.GATEWAY_RECOVERED, None, None): 1,
        }
        (central,) = world.incidents("gateway")
        assert central.gateway == CENTRAL_GROUP
        sites = world.incidents("site")
        assert len(sites) == 7 and all(i.down_notified_at is None for i in sites)
        assert all(i.ended_at is not None for i in sites)
