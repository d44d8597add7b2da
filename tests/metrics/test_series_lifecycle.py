"""Case C38: renamed and deleted targets leave no stale series; no volatile label values."""

from __future__ import annotations

from datetime import timedelta

from metrics_world import fill, full_config, scrape
from prometheus_client.parser import text_string_to_metric_families
from status_testkit import NOW, World, icmp, icmp_round, result, tcp

from api.metrics.catalogue import RTT_BUCKETS_S

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


def series(text: str) -> dict[SeriesKey, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def names_for(found: dict[SeriesKey, float], **labels: str) -> list[str]:
    """Return the sample names of the series carrying all ``labels`` (one per series)."""
    wanted = set(labels.items())
    return sorted(name for name, lbls in found if wanted <= set(lbls))


def test_a_renamed_target_id_leaves_exactly_one_series_per_metric_under_the_new_id(
    world: World,
) -> None:
    before = full_config([icmp("site-a"), tcp("gw-tcp")])
    world.ingest(before, "fb1", [result("site-a", age_s=30)])
    old = series(scrape(world, before))
    assert names_for(old, target="site-a")

    after = full_config([icmp("site-a-gw"), tcp("gw-tcp")])
    world.ingest(after, "fb1", [result("site-a-gw", age_s=5)])
    new = series(scrape(world, after))
    assert names_for(new, target="site-a") == []
    renamed = names_for(new, target="site-a-gw")
    # One series per metric (the state set and the histogram buckets are their own labels).
    assert renamed == names_for(old, target="site-a")
    plain = [
        n
        for n in renamed
        if n not in ("linkwatch_target_state", "linkwatch_probe_rtt_seconds_bucket")
    ]
    assert len(plain) == len(set(plain))


def test_a_new_display_name_changes_no_series(world: World) -> None:
    config = full_config()
    fill(world, config)
    before = series(scrape(world, config))
    data = config.model_dump(mode="json", exclude_none=True)
    data["sites"]["fb1"]["name"] = "Friendship Bridge I (new name)"
    data["sites"]["fb1"]["name_lo"] = "ຂົວມິດຕະພາບ ໃໝ່"
    data["sites"]["fb1"]["targets"][0]["name"] = "Gateway, renamed"
    renamed = type(config).model_validate(data)
    assert series(scrape(world, renamed)) == before


def test_a_deleted_target_and_a_deleted_site_have_no_series(world: World) -> None:
    config = full_config()
    fill(world, config)
    assert 'target="gw-tcp"' in scrape(world, config)
    data = config.model_dump(mode="json", exclude_none=True)
    data["sites"]["fb1"]["targets"] = [
        t for t in data["sites"]["fb1"]["targets"] if t["id"] != "gw-tcp"
    ]
    del data["sites"]["lpq"]
    text = scrape(world, type(config).model_validate(data))
    assert 'target="gw-tcp"' not in text
    assert 'site="lpq"' not in text
    assert 'site="fb1"' in text


def test_the_series_set_stays_the_same_as_new_rounds_errors_and_addresses_arrive(
    world: World,
) -> None:
    config = full_config()
    fill(world, config)
    first = series(scrape(world, config))
    for age_s, address, error in (
        (8, "192.0.2.77", "host unreachable from 198.51.100.9"),
        (6, "192.0.2.78", "timeout after 1.0 s"),
    ):
        world.ingest(
            config,
            "fb1",
            [
                icmp_round(
                    "gw-icmp", NOW - timedelta(seconds=age_s), [0.02, None, 0.5, 0.03, 0.021]
                ),
                result(
                    "gw-tcp", kind="tcp", status="down", rtt_s=None, age_s=age_s, error=error
                ).model_copy(update={"address": address}),
            ],
        )
        text = scrape(world, config)
        assert set(series(text)) == set(first)
        assert address not in text and error not in text


def test_the_series_count_is_targets_times_metrics(world: World) -> None:
    """Per fresh ICMP target UP: 9 probe gauges + 5 states + 13 buckets + gcount + gsum."""
    config = full_config()
    fill(world, config)
    found = series(scrape(world, config))
    icmp_up = names_for(found, site="lpq", target="gw-icmp")
    assert len(icmp_up) == 8 + 5 + (len(RTT_BUCKETS_S) + 1) + 2
    tcp_down = names_for(found, site="fb1", target="gw-tcp")
    # success, monitor_error, last measured, score 0, 5 states (no RTT, loss, jitter, dups).
    assert len(tcp_down) == 4 + 5
    never_seen = names_for(found, site="silent", target="gw-icmp")
    assert never_seen == ["linkwatch_target_state"] * 5


def test_the_histogram_holds_the_latest_rounds_samples(world: World) -> None:
    config = full_config()
    fill(world, config)  # fb1 gw-icmp: 0.011, 0.013, lost, 0.012, 0.3
    found = series(scrape(world, config))
    labels = {"site": "fb1", "target": "gw-icmp", "kind": "icmp"}

    def value(name: str, **extra: str) -> float:
        return found[(name, frozenset({**labels, **extra}.items()))]

    assert value("linkwatch_probe_rtt_seconds_bucket", le="0.01") == 0
    assert value("linkwatch_probe_rtt_seconds_bucket", le="0.025") == 3
    assert value("linkwatch_probe_rtt_seconds_bucket", le="0.25") == 3
    assert value("linkwatch_probe_rtt_seconds_bucket", le="0.5") == 4
    assert value("linkwatch_probe_rtt_seconds_bucket", le="+Inf") == 4
    assert value("linkwatch_probe_rtt_seconds_gcount") == 4
    assert abs(value("linkwatch_probe_rtt_seconds_gsum") - 0.336) < 1e-9
    assert abs(value("linkwatch_probe_packet_loss_ratio") - 0.2) < 1e-9

    world.ingest(config, "fb1", [icmp_round("gw-icmp", NOW - timedelta(seconds=2), [0.01] * 3)])
    found = series(scrape(world, config))
    assert value("linkwatch_probe_rtt_seconds_bucket", le="0.01") == 3  # le is inclusive
    assert value("linkwatch_probe_rtt_seconds_gcount") == 3  # the new round, not a running sum


def test_agent_and_threshold_metrics_come_from_the_report_and_the_profile(world: World) -> None:
    config = full_config()
    fill(world, config)
    found = series(scrape(world, config))

    def site_value(name: str, site_id: str) -> float | None:
        return found.get((name, frozenset({("site", site_id)})))

    assert site_value("linkwatch_site_spool_backlog_results", "fb1") == 42
    assert site_value("linkwatch_site_spool_oldest_unsent_age_seconds", "fb1") == 90
    assert site_value("linkwatch_site_spool_dropped_results_total", "fb1") == 3
    assert site_value("linkwatch_site_spool_rejected_results_total", "fb1") == 1
    assert site_value("linkwatch_site_clock_offset_seconds", "fb1") == 0.25  # agent's estimate
    assert site_value("linkwatch_site_clock_offset_seconds", "lpq") == 0  # at upload
    assert site_value("linkwatch_site_spool_backlog_results", "lpq") is None  # no report
    assert site_value("linkwatch_site_rtt_degraded_threshold_seconds", "lpq") == 1.2  # vsat
    assert site_value("linkwatch_site_rtt_degraded_threshold_seconds", "fb1") == 0.1  # fibre
    assert site_value("linkwatch_site_clock_offset_warn_threshold_seconds", "fb1") == 5
    zero = frozenset({("channel", "ops"), ("outcome", "delivered")})
    assert found[("linkwatch_notification_attempts_total", zero)] == 0
