"""Who may see and change what on the status page: modes, login, sessions, CSRF, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from status_testkit import NOW, World, icmp, result, site

from api.status.access import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from monitor.accounts.passwords import ScryptCost
from monitor.accounts.users import Role, add_user
from monitor.config import Config

CHEAP = ScryptCost(log2_n=4)
PASSWORD = "ລະຫັດ-pass-1"


def config(mode: str = "public") -> Config:
    sites = {"fb1": site("Friendship Bridge I", [icmp("gw-icmp")])}
    return Config.model_validate({"server": {"status_page": mode}, "sites": sites})


@contextmanager
def app_client(world: World, cfg: Config) -> Iterator[TestClient]:
    with world.client(cfg) as client:
        client.app.state.status_password_cost = CHEAP  # type: ignore[attr-defined]
        yield client


def add(world: World, name: str, role: Role) -> None:
    with sessionmaker(world.engine).begin() as session:
        add_user(session, name, role, PASSWORD, NOW, CHEAP)


def login_token(client: TestClient) -> str:
    html = client.get("/login").text
    form = html[html.index('<form method="post" action="/login"') :]
    match = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert match
    return match.group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD, next_path: str = "/") -> object:
    token = login_token(client)
    return client.post(
        "/login",
        data={"csrf_token": token, "username": name, "password": password, "next": next_path},
        follow_redirects=False,
    )


def session_csrf(client: TestClient, path: str = "/") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def test_a_private_page_sends_visitors_to_the_login_form(world: World) -> None:
    cfg = config("private")
    with app_client(world, cfg) as client:
        page = client.get("/sites/fb1?range=7d", follow_redirects=False)
        fragment = client.get("/?fragment=1")
        form = client.get(page.headers["location"])
        css = client.get("/static/status.css")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/sites/fb1%3Frange%3D7d"
    assert fragment.status_code == 401
    assert "This status page is private: log in to see it." in form.text
    assert 'name="next" value="/sites/fb1?range=7d"' in form.text
    assert css.status_code == 200


def test_logging_in_opens_a_session_and_returns_to_the_page_asked_for(world: World) -> None:
    cfg = config("private")
    add(world, "Somchai", Role.VIEWER)
    world.ingest(cfg, "fb1", [result("gw-icmp")])
    with app_client(world, cfg) as client:
        response = log_in(client, "SOMCHAI", next_path="/sites/fb1")
        assert response.status_code == 303  # type: ignore[attr-defined]
        assert response.headers["location"] == "/sites/fb1"  # type: ignore[attr-defined]
        cookie = response.headers["set-cookie"]  # type: ignore[attr-defined]
        page = client.get("/sites/fb1")
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert page.status_code == 200 and "Friendship Bridge I" in page.text
    assert 'somchai <span class="role">(viewer)</span>' in page.text


def test_a_wrong_password_says_so_without_telling_which_part(world: World) -> None:
    cfg = config()
    add(world, "noi", Role.OPERATOR)
    with app_client(world, cfg) as client:
        wrong = log_in(client, "noi", password="nope")
        unknown = log_in(client, "nobody")
    for response in (wrong, unknown):
        assert response.status_code == 401  # type: ignore[attr-defined]
        assert "The user name or password is wrong." in response.text  # type: ignore[attr-defined]
        assert SESSION_COOKIE not in response.cookies  # type: ignore[attr-defined]


def test_the_login_form_needs_its_token_and_our_origin(world: World) -> None:
    cfg = config()
    add(world, "noi", Role.OPERATOR)
    with app_client(world, cfg) as client:
        no_token = client.post(
            "/login", data={"username": "noi", "password": PASSWORD}, follow_redirects=False
        )
        token = login_token(client)
        forged = client.post(
            "/login",
            data={"csrf_token": token, "username": "noi", "password": PASSWORD},
            headers={"Origin": "http://evil.invalid"},
            follow_redirects=False,
        )
        client.cookies.delete(LOGIN_CSRF_COOKIE)
        no_cookie = client.post(
            "/login",
            data={"csrf_token": token, "username": "noi", "password": PASSWORD},
            follow_redirects=False,
        )
    assert no_token.status_code == 400 and "The form has expired" in no_token.text
    assert forged.status_code == 400 and "came from another site" in forged.text
    assert no_cookie.status_code == 400


def test_next_never_leads_to_another_site(world: World) -> None:
    cfg = config()
    add(world, "noi", Role.VIEWER)
    with app_client(world, cfg) as client:
        response = log_in(client, "noi", next_path="//evil.invalid/x")
    assert response.headers["location"] == "/"  # type: ignore[attr-defined]


def test_logging_out_needs_the_session_token_and_ends_the_session(world: World) -> None:
    cfg = config("private")
    add(world, "noi", Role.VIEWER)
    with app_client(world, cfg) as client:
        log_in(client, "noi")
        old_cookie = client.cookies.get(SESSION_COOKIE)
        refused = client.post("/logout", data={"csrf_token": "guess"}, follow_redirects=False)
        assert refused.status_code == 403 and "The form has expired" in refused.text
        done = client.post(
            "/logout", data={"csrf_token": session_csrf(client)}, follow_redirects=False
        )
        assert done.status_code == 303
        client.cookies.set(SESSION_COOKIE, old_cookie or "")
        after = client.get("/", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


def test_a_public_page_is_readable_without_login_and_offers_one(world: World) -> None:
    cfg = config("public")
    with app_client(world, cfg) as client:
        html = client.get("/incidents").text
    assert 'href="/login?next=/incidents">Log in</a>' in html
    assert "<textarea" not in html


def test_acknowledging_needs_an_operator_with_the_sessions_token(world: World) -> None:
    cfg = config("public")
    add(world, "viewer1", Role.VIEWER)
    add(world, "op1", Role.OPERATOR)
    with app_client(world, cfg) as client:
        anonymous = client.post("/incidents/7/ack", data={"note": "x"}, follow_redirects=False)
        log_in(client, "viewer1")
        as_viewer = client.post(
            "/incidents/7/ack",
            data={"csrf_token": session_csrf(client), "note": "x"},
            follow_redirects=False,
        )
        log_in(client, "op1")
        forged = client.post(
            "/incidents/7/ack", data={"csrf_token": "nope", "note": "x"}, follow_redirects=False
        )
        as_operator = client.post(
            "/incidents/7/ack",
            data={"csrf_token": session_csrf(client), "note": "<script>x</script>", "site": "fb1"},
            follow_redirects=False,
        )
        shown = client.get(as_operator.headers["location"]).text
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert as_viewer.headers["location"] == "/incidents?error=not_operator"
    assert forged.status_code == 403
    assert as_operator.headers["location"] == "/incidents?site=fb1&error=not_found"
    assert "That incident no longer exists." in shown


def test_a_user_name_in_any_script_is_shown_escaped(world: World) -> None:
    cfg = config()
    add(world, "<b>ສົມໃຈ</b>", Role.ADMIN)
    with app_client(world, cfg) as client:
        log_in(client, "<b>ສົມໃຈ</b>")
        html = client.get("/").text
    assert '&lt;b&gt;ສົມໃຈ&lt;/b&gt; <span class="role">(admin)</span>' in html
    assert "<b>ສົມໃຈ</b>" not in html


def test_a_form_that_is_not_urlencoded_or_too_long_is_refused(world: World) -> None:
    cfg = config()
    with app_client(world, cfg) as client:
        token = login_token(client)
        as_json = client.post("/login", json={"csrf_token": token}, follow_redirects=False)
        huge = client.post(
            "/login",
            content=b"csrf_token=" + b"x" * 20_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
    assert as_json.status_code == 400 and "not sent as a web form" in as_json.text
    assert huge.status_code == 400 and "too long" in huge.text
