"""Incidents on the pages, from the incident engine: open, recent, acknowledged with a note."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from status_testkit import NOW, World, icmp, icmp_round, make_config, site

from monitor.accounts.passwords import ScryptCost
from monitor.accounts.users import Role, add_user
from monitor.config import Config

CHEAP = ScryptCost(log2_n=4)
PASSWORD = "pw-1234"


def config() -> Config:
    return make_config(
        {
            "fb1": site("Friendship Bridge I", [icmp("gw")], "ຂົວມິດຕະພາບ 1"),
            "lpq": site("Luang Prabang Airport", [icmp("gw")]),
        }
    )


def outage(world: World, cfg: Config) -> None:
    """Store 20 minutes of replies at fb1, then 10 minutes of none, and evaluate them."""
    rounds = [icmp_round("gw", NOW - timedelta(minutes=m), [0.01]) for m in range(30, 10, -1)]
    rounds += [
        icmp_round("gw", NOW - timedelta(minutes=m), [None], status="down")
        for m in range(10, 0, -1)
    ]
    world.ingest(cfg, "fb1", rounds)
    world.ingest(cfg, "lpq", [icmp_round("gw", NOW - timedelta(seconds=20), [0.5])])
    world.evaluate(cfg)


@contextmanager
def client_as(world: World, cfg: Config, name: str | None) -> Iterator[TestClient]:
    with world.client(cfg) as client:
        client.app.state.status_password_cost = CHEAP  # type: ignore[attr-defined]
        if name is not None:
            html = client.get("/login").text
            form = html[html.index('<form method="post" action="/login"') :]
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token
            client.post(
                "/login",
                data={"csrf_token": token.group(1), "username": name, "password": PASSWORD},
            )
        yield client


def session_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_an_open_incident_shows_on_its_card_and_on_the_incidents_page(world: World) -> None:
    cfg = config()
    outage(world, cfg)
    with client_as(world, cfg, None) as client:
        overview = client.get("/").text
        page = client.get("/incidents").text
        only_lpq = client.get("/incidents?site=lpq").text
        site_page = client.get("/sites/fb1").text
    fb1 = overview[overview.index('id="site-fb1"') : overview.index('id="site-lpq"')]
    assert "Open incident since 2024-05-01 13:50:00 (10 min 0 s)." in fb1
    lpq = overview[overview.index('id="site-lpq"') :]
    assert "No open incident." in lpq.split("</section>")[0]
    open_part = page[page.index('id="h-open"') : page.index('id="h-recent"')]
    assert 'Target DOWN: <span class="target-name">gw</span>' in open_part
    assert "Friendship Bridge I" in open_part and "still open" in open_part
    assert '<td class="num" data-label="Alerts sent">0</td>' in open_part
    assert "<textarea" not in page  # reading needs no login; acknowledging does
    assert "No open incident." in only_lpq
    assert '<option value="lpq" selected>' in only_lpq
    assert "Target DOWN" in site_page[site_page.index('id="h-incidents"') :]


def test_an_operator_acknowledges_with_a_note_shown_escaped(world: World) -> None:
    cfg = config()
    outage(world, cfg)
    with sessionmaker(world.engine).begin() as session:
        add_user(session, "op1", Role.OPERATOR, PASSWORD, NOW, CHEAP)
    note = '<script>alert(1)</script> ສາຍໄຟຂາດ & "fixed"'
    with client_as(world, cfg, "op1") as client:
        page = client.get("/incidents").text
        incident = re.search(r'action="/incidents/(\d+)/ack"', page)
        assert incident
        url = f"/incidents/{incident.group(1)}/ack"
        done = client.post(
            url, data={"csrf_token": session_token(page), "note": note}, follow_redirects=False
        )
        shown = client.get(done.headers["location"]).text
        again = client.post(
            url, data={"csrf_token": session_token(page), "note": "x"}, follow_redirects=False
        )
    assert done.headers["location"] == "/incidents?done=acknowledged"
    assert "The incident was acknowledged." in shown
    assert "by op1 at 2024-05-01 14:00:00" in shown
    assert (
        '<span class="note-text">&lt;script&gt;alert(1)&lt;/script&gt; ສາຍໄຟຂາດ &amp; '
        "&#34;fixed&#34;</span>" in shown
    )
    assert "<script>alert(1)" not in shown
    assert f'action="{url}"' not in shown  # acknowledged: no second form
    assert again.headers["location"] == "/incidents?done=already"
