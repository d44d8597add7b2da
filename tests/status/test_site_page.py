"""A site's page and a target's page through the real app: charts, availability, the agent."""

from __future__ import annotations

import re
from datetime import timedelta

from status_testkit import NOW, World, icmp, icmp_round, make_config, result, site, tcp

from monitor.config import Config

LAO_NAME = "ຂົວມິດຕະພາບ ລາວ-ໄທ 1"


def config() -> Config:
    return make_config(
        {"fb1": site("Friendship Bridge I", [icmp("gw-icmp"), tcp("gw-tcp")], LAO_NAME)}
    )


def day_of_rounds(world: World, cfg: Config) -> None:
    """Store one round a minute for the last 26 hours, one in ten lost entirely."""
    rounds = [
        icmp_round(
            "gw-icmp",
            NOW - timedelta(minutes=m),
            [None] * 4 if m % 10 == 0 else [0.010, 0.012, 0.015, 0.030],
            status="down" if m % 10 == 0 else "up",
        )
        for m in range(1, 26 * 60)
    ]
    world.ingest(cfg, "fb1", rounds)
    world.ingest(cfg, "fb1", [result("gw-tcp", kind="tcp", age_s=20, rtt_s=0.0042)])
    world.roll_up(cfg)


def panel(html: str, target_id: str) -> str:
    match = re.search(
        rf'<section class="panel" id="target-{target_id}">(.*?)</section>', html, re.S
    )
    assert match, target_id
    return match.group(1)


def test_site_page_draws_a_latency_chart_per_target_from_the_rollups(world: World) -> None:
    cfg = config()
    day_of_rounds(world, cfg)
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    chart = panel(html, "gw-icmp")
    assert '<svg viewBox="0 0 720 200"' in chart and 'role="img"' in chart
    assert "<title>Round-trip time of gw-icmp over 1 day</title>" in chart
    assert re.search(r'<path class="c-inner" d="M[\d., L]+Z', chart)
    assert re.search(r'<path class="c-outer" d="M[\d., L]+Z', chart)
    # A 5-minute bucket holds five rounds: none lost (class 0) or one lost entirely (20 %).
    medians = re.findall(r'<path class="c-median loss-(\d)"', chart)
    assert set(medians) == {"0", "2"}
    # Quantiles come from the sketch: within 1 % of a true sample (12 ms, 30 ms).
    assert re.search(r"Median 1[12]\.\d ms, 90th percentile (29\.\d|30\.\d) ms", chart)
    assert "loss 10 %" in chart
    assert '<strong aria-current="true">1 day</strong>' in html
    assert 'href="/sites/fb1?range=7d"' in html
    assert "10th to 90th percentile of the samples" in html  # the legend, in words


def test_every_chart_window_renders_and_a_bad_one_falls_back_to_a_day(world: World) -> None:
    cfg = config()
    day_of_rounds(world, cfg)
    with world.client(cfg) as client:
        for key, label in (
            ("3h", "3 hours"),
            ("7d", "7 days"),
            ("30d", "30 days"),
            ("1y", "1 year"),
        ):
            html = client.get(f"/sites/fb1?range={key}").text
            assert f"<title>Round-trip time of gw-icmp over {label}</title>" in html, key
            assert 'class="c-median' in panel(html, "gw-icmp"), key
        fallback = client.get("/sites/fb1?range=<9y>").text
    assert '<strong aria-current="true">1 day</strong>' in fallback


def test_a_target_without_rollups_says_so_in_its_chart(world: World) -> None:
    cfg = config()
    world.ingest(cfg, "fb1", [result("gw-icmp")])
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    chart = panel(html, "gw-tcp")
    assert "No data in this period" in chart and "No rounds in this period." in chart
    assert 'class="c-median' not in chart


def test_an_outage_is_drawn_as_a_red_column(world: World) -> None:
    cfg = config()
    rounds = [
        icmp_round("gw-icmp", NOW - timedelta(minutes=m), [None] * 3, status="down")
        for m in range(1, 30)
    ]
    world.ingest(cfg, "fb1", rounds)
    world.roll_up(cfg)
    with world.client(cfg) as client:
        chart = panel(client.get("/sites/fb1?range=3h").text, "gw-icmp")
    assert re.search(r'<path class="c-outage" d="M[\d.]+,[\d.]+ H', chart)
    assert "29 rounds, none with a reply." in chart


MIDNIGHT = NOW.replace(hour=17) - timedelta(days=1)  # 2024-05-01 00:00 in Vientiane


def ten_percent_down_yesterday(world: World, cfg: Config) -> None:
    """Store state periods: 2024-04-30 DOWN 2 h 24 min of 24 h; today UP so far."""
    yesterday = MIDNIGHT - timedelta(days=1)
    world.periods(
        cfg,
        "fb1",
        [
            ("gw-icmp", "up", yesterday, yesterday + timedelta(hours=12)),
            ("gw-icmp", "down", yesterday + timedelta(hours=12), yesterday + timedelta(hours=14.4)),
            ("gw-icmp", "up", yesterday + timedelta(hours=14.4), NOW),
            ("gw-tcp", "up", yesterday, NOW),
        ],
    )


def test_site_page_shows_availability_per_day_and_per_month(world: World) -> None:
    cfg = config()
    ten_percent_down_yesterday(world, cfg)
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    days = html[
        html.index('<table class="days-table">') : html.index('<table class="months-table">')
    ]
    rows = re.findall(
        r'<th scope="row"[^>]*>([\d-]+)</th><td class="num av-(\w+)"[^>]*>([^<]+)</td>'
        r'<td class="num"[^>]*>([^<]+)</td><td[^>]*>([^<]+)</td>',
        days,
    )
    assert len(rows) == 31
    assert rows[0] == ("2024-05-01", "full", "100", "100", "\u2014")
    assert rows[1] == ("2024-04-30", "low", "90.00", "100", "2 h 24 min")
    assert rows[2] == ("2024-04-29", "nodata", "\u2014", "0", "\u2014")
    months = html[html.index('<table class="months-table">') :]
    month_rows = re.findall(
        r'<th scope="row"[^>]*>(\d{4}-\d{2})</th><td class="num[^"]*"[^>]*>([^<]+)<', months
    )
    assert month_rows[:3] == [("2024-05", "100"), ("2024-04", "90.00"), ("2024-03", "\u2014")]
    assert "Per day (Asia/Vientiane)" in html


def test_site_page_shows_the_agents_backlog_and_clock_offset(world: World) -> None:
    cfg = config()
    world.ingest(
        cfg,
        "fb1",
        [result("gw-icmp")],
        spool={
            "backlog": 1234,
            "oldest_unsent_at": (NOW - timedelta(hours=2)).isoformat(),
            "dropped_total": 5,
            "clock_offset_s": -42.5,
        },
    )
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    assert "1234 results, oldest measured 2024-05-01 12:00:00; 5 dropped so far" in html
    assert "-42 s" in html or "-43 s" in html
    assert "more than +5.00 s off" in html


def test_site_page_without_an_agent_report_says_not_reported(world: World) -> None:
    cfg = config()
    world.ingest(cfg, "fb1", [result("gw-icmp")])
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    facts = html[html.index('<dl class="facts">') : html.index("</dl>")]
    assert "not reported" in facts
    assert "+0.00 s" in facts  # server minus agent send time at upload


def test_site_page_lists_targets_with_score_and_30_day_availability(world: World) -> None:
    cfg = config()
    ten_percent_down_yesterday(world, cfg)
    world.ingest(cfg, "fb1", [result("gw-icmp"), result("gw-tcp", kind="tcp")])
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    table = html[html.index('<table class="targets">') : html.index("</table>")]
    assert '<a href="#target-gw-icmp">' in table
    # 2 h 24 min DOWN of 38 h known.
    assert re.findall(r'data-label="Availability, 30 days \(%\)">([^<]+)<', table) == [
        "93.68",
        "100",
    ]
    assert table.count('<span class="quality quality-good">100') == 2
    assert "Times in Asia/Vientiane (UTC+07:00)" in table
    assert LAO_NAME in html


def test_monitor_error_is_unknown_not_down_and_shows_no_numbers(world: World) -> None:
    cfg = config()
    error = "no permission to open an ICMP socket; run as root or set CAP_NET_RAW"
    world.ingest(
        cfg,
        "fb1",
        [result("gw-icmp", status="error", rtt_s=None, error=error), result("gw-tcp", kind="tcp")],
    )
    with world.client(cfg) as client:
        html = client.get("/sites/fb1").text
    table = html[html.index('<table class="targets">') : html.index("</table>")]
    icmp_row = re.findall(r'<tr class="row-[a-z]+">(.*?)</tr>', table, re.S)[0]
    assert '<span class="state state-unknown">UNKNOWN</span>' in icmp_row
    assert "Monitor error: the probe could not measure" in icmp_row and error in icmp_row
    assert (
        re.findall(
            r'<td class="num" data-label="[^"]*(?:RTT|loss|Jitter)[^"]*">(.*?)</td>', icmp_row
        )
        == ["\u2014"] * 3
    )
    assert "state-down" not in table


def test_target_page_shows_all_five_windows(world: World) -> None:
    cfg = config()
    day_of_rounds(world, cfg)
    with world.client(cfg) as client:
        html = client.get("/sites/fb1/targets/gw-icmp").text
    assert re.findall(r'<section class="panel" id="range-(\w+)">', html) == [
        "3h",
        "1d",
        "7d",
        "30d",
        "1y",
    ]
    assert html.count("<svg ") == 5


def test_unknown_site_and_target_get_404_pages(world: World) -> None:
    cfg = config()
    with world.client(cfg) as client:
        site_404 = client.get("/sites/nowhere")
        target_404 = client.get("/sites/fb1/targets/<nope>")
        lao = client.get("/sites/<nowhere>?lang=lo")
    assert site_404.status_code == 404
    assert "There is no site with the id nowhere." in site_404.text
    assert lao.status_code == 404 and "&lt;nowhere&gt;" in lao.text and "ບໍ່ພົບ" in lao.text
    assert target_404.status_code == 404
    assert "Site fb1 has no target with the id &lt;nope&gt;." in target_404.text


def test_the_site_page_refreshes_its_fragment(world: World) -> None:
    cfg = config()
    with world.client(cfg) as client:
        fragment = client.get("/sites/fb1?range=3h&fragment=1").text
    assert "<html" not in fragment and "<svg " in fragment
    assert '<strong aria-current="true">3 hours</strong>' in fragment
