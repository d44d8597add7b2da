"""The status page through the real app: sites, Lao text, escaping, states, 404, language."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

from status_testkit import NOW, World, icmp, make_config, result, site, tcp

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


def section(html: str, site_id: str) -> str:
    """Return the HTML of one site's section on the overview."""
    match = re.search(
        rf'<section class="site [^"]*" id="site-{site_id}">(.*?)</section>', html, re.S
    )
    assert match, f"no section for site {site_id}"
    return match.group(1)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def parse(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


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


def test_page_loads_nothing_from_another_origin_and_needs_no_script(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        html = client.get("/").text
        css = client.get("/static/status.css")
    tags = parse(html).tags
    assert not [t for t, _ in tags if t == "script"]
    for _, attrs in tags:
        for attr in ("src", "href"):
            value = attrs.get(attr) or ""
            assert not re.match(r"^(https?:)?//", value), value
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "@media" in css.text and "url(" not in css.text and "@import" not in css.text


def test_site_names_are_html_escaped(world: World) -> None:
    config = make_config(
        {"xss": site("<script>alert(1)</script>", [icmp("gw-icmp")], '<b onclick="x">ລາວ</b>')}
    )
    world.ingest(config, "xss", [result("gw-icmp", status="down", error="<img src=x>")])
    with world.client(config) as client:
        overview = client.get("/").text
        page = client.get("/sites/xss").text
    for html in (overview, page):
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert '<b onclick="x">' not in html
        assert "<img src=x>" not in html
        assert "&lt;img src=x&gt;" in html


def test_unmeasured_values_show_a_dash(world: World) -> None:
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
        html = section(client.get("/").text, "fb1")
    icmp_row, tcp_row = re.findall(r"<tr class=\"row-[a-z]+\">(.*?)</tr>", html, re.S)
    icmp_cells = re.findall(r'<td class="num"[^>]*>(.*?)</td>', icmp_row, re.S)
    tcp_cells = re.findall(r'<td class="num"[^>]*>(.*?)</td>', tcp_row, re.S)
    assert icmp_cells == ["\u2014", "100", "\u2014"]
    assert tcp_cells == ["23.4", "\u2014", "\u2014"]
    assert "NaN" not in html


def test_state_is_a_word_and_a_colour_class(world: World) -> None:
    config = standard_config()
    world.ingest(
        config,
        "fb1",
        [result("gw-icmp", rtt_s=0.6), result("gw-tcp", kind="tcp", status="down", rtt_s=None)],
    )
    world.ingest(config, "lpq", [result("gw-icmp", rtt_s=0.6)])
    with world.client(config) as client:
        html = client.get("/").text
    fb1 = section(html, "fb1")
    assert '<span class="state state-degraded">DEGRADED</span>' in fb1
    assert '<span class="state state-down">DOWN</span>' in fb1
    lpq = section(html, "lpq")
    assert '<span class="state state-up">UP</span>' in lpq
    assert '<td class="num" data-label="RTT (ms)">600</td>' in lpq


def test_silent_site_is_shown_unreachable_not_down(world: World) -> None:
    config = standard_config()
    world.ingest(
        config,
        "fb1",
        [result("gw-icmp", rtt_s=None, status="down", age_s=700)],
        received_at=NOW - timedelta(minutes=10),
    )
    with world.client(config) as client:
        html = client.get("/").text
    assert 'class="site site-unreachable" id="site-fb1"' in html
    assert 'class="site site-unreachable" id="site-silent"' in html
    fb1, silent = section(html, "fb1"), section(html, "silent")
    assert "SITE UNREACHABLE" in fb1 and "SITE UNREACHABLE" in silent
    assert "state-down" not in fb1 and "state-down" not in silent
    assert "No upload from this site's agent since 2024-05-01 13:50:00 (10 min ago)." in fb1
    assert "The agent at this site has never uploaded: no data." in silent


def test_last_seen_is_in_the_site_zone_and_names_it(world: World) -> None:
    config = standard_config()
    world.ingest(config, "fb1", [result("gw-icmp", age_s=45)])
    with world.client(config) as client:
        html = section(client.get("/").text, "fb1")
    assert "Times in Asia/Vientiane (UTC+07:00)" in html
    assert '<time datetime="2024-05-01T06:59:15+00:00" title="Asia/Vientiane">' in html
    assert "2024-05-01 13:59:15</time>" in html
    assert "(45 s ago)" in html


def test_monitor_error_is_unknown_not_down(world: World) -> None:
    config = standard_config()
    error = "no permission to open an ICMP socket; run as root or set CAP_NET_RAW"
    world.ingest(
        config,
        "fb1",
        [result("gw-icmp", status="error", rtt_s=None, error=error), result("gw-tcp", kind="tcp")],
    )
    with world.client(config) as client:
        html = section(client.get("/").text, "fb1")
    assert '<span class="state state-unknown">UNKNOWN</span>' in html
    assert "Monitor error: the probe could not measure" in html
    assert error in html
    icmp_row = re.findall(r"<tr class=\"row-[a-z]+\">(.*?)</tr>", html, re.S)[0]
    assert re.findall(r'<td class="num"[^>]*>(.*?)</td>', icmp_row) == ["\u2014"] * 3
    assert "state-down" not in html


def test_site_page_shows_targets_and_recent_results(world: World) -> None:
    config = standard_config()
    world.ingest(
        config,
        "fb1",
        [
            result("gw-icmp", age_s=70, rtt_s=0.011),
            result("gw-icmp", age_s=40, status="down", rtt_s=None, error="no echo reply"),
            result("gw-icmp", age_s=10, rtt_s=0.013),
            result("gw-tcp", kind="tcp", age_s=20, rtt_s=0.0042),
        ],
    )
    with world.client(config) as client:
        response = client.get("/sites/fb1")
    assert response.status_code == 200
    html = response.text
    assert LAO_NAME in html
    recent = html[html.index('<table class="results">') :]
    times = re.findall(r"<time datetime=\"[^\"]+\">([^<]+)</time>", recent)
    assert times == [
        "2024-05-01 13:59:50",
        "2024-05-01 13:59:40",
        "2024-05-01 13:59:20",
        "2024-05-01 13:58:50",
    ]
    assert "no echo reply" in recent
    assert '<span class="result result-down">down</span>' in recent


def test_unknown_site_gets_a_404_page(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        response = client.get("/sites/nowhere")
        lao = client.get("/sites/<nowhere>?lang=lo")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is no site with the id nowhere." in response.text
    assert lao.status_code == 404
    assert "&lt;nowhere&gt;" in lao.text and "ບໍ່ພົບ" in lao.text


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
    assert "ເວລາໄປ-ກັບ (ms)" in lao.text  # RTT (ms)
    assert "SITE UNREACHABLE" not in lao.text
    assert '<html lang="lo">' in again.text
    assert '<html lang="en">' in english.text and "SITE UNREACHABLE" in english.text
    assert '<html lang="en">' in after.text


def test_accept_language_picks_lao_without_a_cookie(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        response = client.get("/", headers={"Accept-Language": "lo-LA, en;q=0.5"})
    assert '<html lang="lo">' in response.text
    assert LANG_COOKIE not in response.cookies


def test_page_refreshes_itself_and_sends_a_strict_content_policy(world: World) -> None:
    config = standard_config()
    with world.client(config) as client:
        response = client.get("/")
    assert '<meta http-equiv="refresh" content="30">' in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
