"""The status page in headless Chromium: layouts, Lao font, language switch, no-JS charts,
refresh without reload; no request ever leaves 127.0.0.1 (checked by the context fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from browser_kit import DESKTOP, PHONE, Requests, Server, screenshot

Context = Callable[..., Any]
SIZES = [pytest.param(DESKTOP, "desktop", id="desktop"), pytest.param(PHONE, "phone", id="phone")]


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize(("viewport", "size"), SIZES)
def test_the_overview_shows_every_post_at_desktop_and_phone_sizes(
    server: Server, new_context: Context, viewport: dict[str, int], size: str
) -> None:
    page = new_context(viewport=viewport).new_page()
    page.goto(server.url + "/")
    cards = page.locator("section.card")
    assert cards.count() == 7
    for i in range(7):
        assert cards.nth(i).is_visible()
    assert page.locator("#site-pkz .state-down").first.inner_text() == "DOWN"
    assert page.locator("#site-btn .state-unreachable").first.inner_text() == "SITE UNREACHABLE"
    assert page.locator("#site-ftb2 .days .d").count() == 90
    assert no_sideways_scroll(page)
    assert screenshot(page, f"overview-{size}").stat().st_size > 10_000


@pytest.mark.parametrize(("viewport", "size"), SIZES)
def test_the_site_page_draws_its_charts_at_desktop_and_phone_sizes(
    server: Server, new_context: Context, viewport: dict[str, int], size: str
) -> None:
    page = new_context(viewport=viewport).new_page()
    page.goto(server.url + "/sites/dsv")
    charts = page.locator(".panel svg")
    assert charts.count() == 2
    for i in range(2):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80
    assert page.locator(".panel .c-median").count() >= 2
    assert page.locator(".panel .c-outage").count() >= 1  # the half-hour outage
    assert no_sideways_scroll(page)
    assert screenshot(page, f"site-{size}").stat().st_size > 10_000


def test_lao_text_is_rendered_with_the_shipped_font(
    server: Server, new_context: Context, requests: Requests
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    page.goto(server.url + "/?lang=lo")
    page.evaluate("document.fonts.ready.then(() => true)")
    assert page.locator("html").get_attribute("lang") == "lo"
    assert page.locator("h1").inner_text() == "ສະຖານທີ່"
    assert page.evaluate("document.fonts.check('16px \"Noto Sans Lao\"')")
    loaded = page.evaluate(
        "[...document.fonts].filter(f => f.family.includes('Noto Sans Lao')).map(f => f.status)"
    )
    assert "loaded" in loaded
    assert any(url.endswith("/static/fonts/NotoSansLao-Regular.ttf") for url in requests.seen)
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "h1"})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert {"familyName": "Noto Sans Lao", "isCustomFont": True} in [
        {"familyName": f["familyName"], "isCustomFont": f["isCustomFont"]} for f in fonts
    ]
    screenshot(page, "overview-lao")


def test_the_language_switch_changes_the_page_and_is_remembered(
    server: Server, new_context: Context
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    page.goto(server.url + "/sites/ftb2?range=7d")
    assert page.locator("html").get_attribute("lang") == "en"
    page.locator("nav.lang a.lang-lo").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "lo"
    assert "range=7d" in page.url
    assert page.locator("#h-latency").inner_text() == "ຄວາມໜ່ວງ"
    page.goto(server.url + "/incidents")
    assert page.locator("h1").inner_text() == "ເຫດຂັດຂ້ອງ"
    page.locator("nav.lang a.lang-en").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Incidents"


def test_charts_and_day_bars_show_with_javascript_off(server: Server, new_context: Context) -> None:
    page = new_context(viewport=DESKTOP, java_script_enabled=False).new_page()
    page.goto(server.url + "/sites/dsv")
    medians = page.locator(".panel .c-median")
    assert medians.count() >= 2 and medians.first.is_visible()
    box = page.locator(".panel svg").first.bounding_box()
    assert box is not None and box["height"] > 80
    screenshot(page, "site-no-javascript")
    page.goto(server.url + "/")
    assert page.locator("#site-dsv .days").is_visible()
    assert page.locator("noscript").count() == 1


def test_the_page_refreshes_its_live_part_without_reloading(
    server: Server, new_context: Context
) -> None:
    server.app.state.status_refresh_s = 1
    try:
        page = new_context(viewport=DESKTOP).new_page()
        page.goto(server.url + "/")
        page.evaluate("window.linkwatchMarker = 42")
        # A locator wait: the page's CSP forbids the eval() that wait_for_function needs.
        page.locator("#live[data-refreshed-at]").wait_for(state="attached", timeout=10_000)
        assert page.evaluate("window.linkwatchMarker") == 42  # same document: no reload
        assert page.locator("section.card").count() == 7
    finally:
        del server.app.state.status_refresh_s


def test_tapping_a_day_of_the_bar_shows_its_figure(server: Server, new_context: Context) -> None:
    page = new_context(viewport=PHONE, has_touch=True, is_mobile=True).new_page()
    page.goto(server.url + "/")
    today = page.locator("#site-dsv .days .d").last
    today.tap()
    shown = page.evaluate("getComputedStyle(document.activeElement, '::after').content")
    title = today.get_attribute("title") or ""
    assert "2024-05-01" in title and "% available" in title
    assert title in shown
