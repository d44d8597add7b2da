"""The overview page through the real app: cards, states, Lao, escaping, bars, paging, refresh."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

from status_testkit import NOW, World, icmp, icmp_round, make_config, result, site, tcp

from api.i18n import LANG_COOKIE
from monitor.config import Config

LAO_NAME = "ຂົວມິດຕະພາບ ລາວ-ໄທ 1"


def standard_config() -> Config:
    return make_config(
        {
            "fb1": site("Friendship Bridge I", [icmp("gw-icmp"), tcp("gw-tcp")], LAO_NAME, "fibre"),
            "lpq": site("Luang Prabang Airport", [icmp("gw-icmp")], "ສະໜາມບິນຫຼວງພະບາງ", "vsat"),
            "silent": site("Silent Checkpoint", [icmp("gw-icmp")], "ດ່ານງຽບ"),
        }
    )


def card(html: str, site_id: str) -> str:
    """Return the HTML of one site's card on the overview."""
    match = re.search(
        rf'<section class="card site [^"]*" id="site-{site_id}"[^>]*>(.*?)</section>', html, re.S
    )
    assert match, f"no card for site {site_id}"
    return match.group(1)


def card_class(html: str, site_id: str) -> str:
    match = re.search(rf'<section class="([^"]*)" id="site-{site_id}"', html)
    assert match, site_id
    return match.group(1)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_overview_lists_every_configured_site_with_its_lao_name(world: World) -> None:
    config = standard_config()
    world.ingest(config, "fb1", [result("gw-icmp"), result("gw-tcp", kind="tcp")])
    with world.client(config) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for name in ("Friendship Bridge I", "Luang Prabang Airport", "Silent Checkpoint"):
        assert name in html
    assert f'<span class="name-lo" lang="lo">{LAO_NAME}</span>' in html
    assert '<span class="name-lo" lang="lo">ສະໜາມບິນຫຼວງພະບາງ</span>' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_page_loads_nothing_from_another_origin_and_only_its_own_script(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        html = client.get("/").text
        css = client.get("/static/status.css")
        script = client.get("/static/refresh.js")
    found = tags(html)
    assert [a.get("src") for t, a in found if t == "script"] == ["/static/refresh.js"]
    for _, attrs in found:
        for attr in ("src", "href", "action"):
            value = attrs.get(attr) or ""
            assert not re.match(r"^(https?:)?//", value), value
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "@import" not in css.text
    assert re.findall(r"url\(([^)]*)\)", css.text) == [
        '"fonts/NotoSansLao-Regular.ttf"',
        '"fonts/NotoSansLao-Bold.ttf"',
    ]
    assert script.status_code == 200 and "http" not in script.text.replace("https?", "")


def test_the_lao_font_and_its_licence_are_served_from_the_app(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        regular = client.get("/static/fonts/NotoSansLao-Regular.ttf")
        bold = client.get("/static/fonts/NotoSansLao-Bold.ttf")
        licence = client.get("/static/fonts/OFL.txt")
        other = client.get("/static/../app.py")
    assert regular.status_code == 200 and regular.headers["content-type"] == "font/ttf"
    assert regular.content[:4] == b"\x00\x01\x00\x00"  # TrueType outlines
    assert len(regular.content) + len(bold.content) < 1_000_000
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence.text
    assert other.status_code == 404


def test_names_and_errors_are_html_escaped_everywhere(world: World) -> None:
    evil = '<script>alert("x")</script>'
    config = make_config(
        {
            "xss": site(
                evil,
                [{**icmp("gw-icmp"), "name": "<img src=x onerror=alert(1)>"}],
                '<b onclick="x">ລາວ</b>',
            )
        }
    )
    world.ingest(config, "xss", [result("gw-icmp", status="down", error="<img src=y>")])
    world.roll_up(config)
    with world.client(config) as client:
        pages = [
            client.get(path).text
            for path in ("/", "/sites/xss", "/sites/xss/targets/gw-icmp", "/incidents")
        ]
    for html in pages:
        assert "<script>alert" not in html
        assert '<b onclick="x">' not in html
        assert "<img src=" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=y&gt;" in pages[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[2]


def test_a_card_shows_state_measures_score_and_last_seen_in_the_site_zone(world: World) -> None:
    config = standard_config()
    world.ingest(
        config,
        "fb1",
        [result("gw-icmp", age_s=45, rtt_s=0.0123, packet_loss=0.0, jitter_s=0.002)],
    )
    world.ingest(config, "fb1", [result("gw-tcp", kind="tcp", age_s=50)])
    with world.client(config) as client:
        html = card(client.get("/").text, "fb1")
    assert '<span class="state state-up">UP</span>' in html
    assert '<dd>12.3 <span class="unit">ms</span></dd>' in html
    assert '<dd>0 <span class="unit">%</span></dd>' in html
    assert '<dd>2.00 <span class="unit">ms</span></dd>' in html
    assert '<span class="quality quality-good">100 <span class="band">good</span></span>' in html
    assert '<time datetime="2024-05-01T06:59:15+00:00" title="Asia/Vientiane">' in html
    assert "2024-05-01 13:59:15</time>" in html and "(45 s ago)" in html
    assert "2 of 2 targets UP." in html


def test_a_down_headline_target_scores_zero_and_shows_dashes(world: World) -> None:
    config = standard_config()
    world.ingest(
        config,
        "fb1",
        [
            result("gw-icmp", status="down", rtt_s=None, packet_loss=1.0, jitter_s=None),
            result("gw-tcp", kind="tcp", rtt_s=0.0234),
        ],
    )
    with world.client(config) as client:
        html = card(client.get("/").text, "fb1")
    assert 'class="state state-down">DOWN</span>' in html
    assert re.findall(r"<dd>(.*?) <span class=\"unit\">", html) == ["\u2014", "100", "\u2014"]
    assert '<span class="quality quality-poor">0 <span class="band">poor</span></span>' in html
    assert "1 of 2 targets UP." in html
    assert "NaN" not in html


def test_a_silent_site_is_unreachable_and_looks_unlike_a_down_one(world: World) -> None:
    config = standard_config()
    world.ingest(
        config,
        "fb1",
        [result("gw-icmp", rtt_s=None, status="down", age_s=700)],
        received_at=NOW - timedelta(minutes=10),
    )
    world.ingest(config, "lpq", [result("gw-icmp", status="down", rtt_s=None)])
    with world.client(config) as client:
        html = client.get("/").text
    assert card_class(html, "fb1") == "card site site-unreachable"
    assert card_class(html, "silent") == "card site site-unreachable"
    assert card_class(html, "lpq") == "card site site-down"
    fb1, silent = card(html, "fb1"), card(html, "silent")
    assert "SITE UNREACHABLE" in fb1 and "state-down" not in fb1
    assert "No data from this site: the centre cannot see it." in silent
    assert "No upload from this site's agent since 2024-05-01 13:50:00 (10 min ago)." in fb1
    assert "The agent at this site has never uploaded: no data." in silent


def test_the_state_tally_counts_every_site_and_filters_by_state(world: World) -> None:
    config = standard_config()
    world.ingest(config, "fb1", [result("gw-icmp"), result("gw-tcp", kind="tcp")])
    world.ingest(config, "lpq", [result("gw-icmp", status="down", rtt_s=None)])
    with world.client(config) as client:
        html = client.get("/").text
        down_only = client.get("/?state=down").text
        nonsense = client.get("/?state=<x>&page=abc").text
    tally = html[html.index('<ul class="tally"') : html.index("</ul>")]
    assert re.findall(r'state-(\w+)">[^<]+</span> <strong class="n">(\d+)', tally) == [
        ("down", "1"),
        ("unreachable", "1"),
        ("up", "1"),
    ]
    assert 'href="/?state=down"' in tally
    assert 'id="site-lpq"' in down_only and 'id="site-fb1"' not in down_only
    assert "Show all sites" in down_only
    assert 'id="site-fb1"' in nonsense and 'id="site-lpq"' in nonsense


def test_many_sites_are_paged_and_the_tally_still_counts_them_all(world: World) -> None:
    sites = {f"s{i:03d}": site(f"Site {i}", [icmp("gw")]) for i in range(120)}
    config = make_config(sites)
    with world.client(config) as client:
        first = client.get("/").text
        third = client.get("/?page=3").text
        beyond = client.get("/?page=99").text
    assert first.count('class="card site') == 50
    assert third.count('class="card site') == 20
    assert "Page 3 of 3 (120 sites)" in third and 'id="site-s119"' in third
    assert "Page 3 of 3 (120 sites)" in beyond
    assert re.search(r'state-unreachable">[^<]+</span> <strong class="n">120<', first)
    assert 'href="/?page=2" rel="next"' in first


def test_the_90_day_bar_has_one_segment_per_local_day_with_its_figure(world: World) -> None:
    config = standard_config()
    midnight = NOW.replace(hour=17) - timedelta(days=1)  # 2024-05-01 00:00 in Vientiane
    yesterday = midnight - timedelta(days=1)
    world.periods(
        config,
        "fb1",
        [
            ("gw-icmp", "up", yesterday, yesterday + timedelta(hours=18)),
            ("gw-icmp", "down", yesterday + timedelta(hours=18), midnight),
            ("gw-icmp", "up", midnight, NOW),
            ("gw-tcp", "up", yesterday, NOW),
        ],
    )
    with world.client(config) as client:
        html = card(client.get("/").text, "fb1")
    segments = re.findall(
        r'<span class="d d-(\w+)" tabindex="-1" role="img" title="([^"]*)"></span>', html
    )
    assert len(segments) == 90
    assert segments[-1] == (
        "full",
        "2024-05-01: 100 % available, state known 100 % of the time",
    )
    assert segments[-2] == (
        "low",
        "2024-04-30: 75.00 % available, state known 100 % of the time, DOWN for 6 h 0 min",
    )
    assert segments[0] == ("nodata", "2024-02-02: no data")
    assert "Availability over the last 90 days: 84.21 %" in html  # 32 h of 38 known


def test_the_bar_comes_from_the_incident_engines_evaluation(world: World) -> None:
    config = standard_config()
    rounds = [icmp_round("gw-icmp", NOW - timedelta(seconds=30 * i), [0.01]) for i in range(1, 60)]
    world.ingest(config, "fb1", rounds)
    world.evaluate(config)
    with world.client(config) as client:
        html = card(client.get("/").text, "fb1")
    segments = re.findall(r'<span class="d d-(\w+)" tabindex="-1" role="img"', html)
    assert segments[-1] == "full" and set(segments[:-1]) == {"nodata"}


def test_language_switch_is_remembered_in_a_cookie(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        lao = client.get("/?lang=lo")
        assert lao.cookies.get(LANG_COOKIE) == "lo"
        again = client.get("/")
        english = client.get("/?lang=en")
        after = client.get("/")
    assert '<html lang="lo">' in lao.text
    assert "ຕິດຕໍ່ສະຖານທີ່ບໍ່ໄດ້" in lao.text  # SITE UNREACHABLE
    assert "<dt>ເວລາໄປ-ກັບ</dt>" in lao.text  # RTT
    assert "SITE UNREACHABLE" not in lao.text
    assert '<html lang="lo">' in again.text
    assert '<html lang="en">' in english.text and "SITE UNREACHABLE" in english.text
    assert '<html lang="en">' in after.text


def test_the_language_links_keep_the_page_and_its_query(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        html = client.get("/sites/fb1?range=7d&lang=en").text
    assert 'href="/sites/fb1?range=7d&amp;lang=lo" lang="lo"' in html


def test_accept_language_picks_lao_without_a_cookie(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        response = client.get("/", headers={"Accept-Language": "lo-LA, en;q=0.5"})
    assert '<html lang="lo">' in response.text
    assert LANG_COOKIE not in response.cookies


def test_pages_refresh_their_live_part_and_send_a_strict_content_policy(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        response = client.get("/")
        fragment = client.get("/?fragment=1")
    html = response.text
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in html
    assert '<main id="live" data-refresh-s="30">' in html
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "font-src 'self'" in policy and "unsafe-inline" not in policy
    assert fragment.status_code == 200
    assert not fragment.text.lstrip().startswith("<!DOCTYPE")
    assert "<main" not in fragment.text and "<h1>Sites</h1>" in fragment.text
    assert 'id="site-fb1"' in fragment.text


def test_times_name_the_zone_of_the_page(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        html = client.get("/").text
    assert "Generated at 2024-05-01 14:00:00 (Asia/Vientiane, UTC+07:00)." in html
