"""In private mode the JSON API, the export and /metrics are closed like the pages."""

from __future__ import annotations

from status_testkit import World, icmp, site
from test_status_access import add, app_client, log_in

from monitor.accounts.users import Role
from monitor.config import Config

ADMIN_TOKEN = "operator-token-0123456789abcdef"
DATA_ROUTES = ["/api/v1/sites", "/api/v1/latest", "/api/v1/incidents", "/metrics"]


def config(mode: str) -> Config:
    sites = {"fb1": site("Friendship Bridge I", [icmp("gw-icmp")])}
    return Config.model_validate(
        {"server": {"status_page": mode, "admin_token": ADMIN_TOKEN}, "sites": sites}
    )


def test_private_mode_refuses_data_routes_to_an_anonymous_client(world: World) -> None:
    with app_client(world, config("private")) as client:
        for path in DATA_ROUTES:
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert "private mode" in response.json()["detail"]


def test_private_mode_serves_data_routes_with_the_operator_token(world: World) -> None:
    with app_client(world, config("private")) as client:
        for path in DATA_ROUTES:
            ok = client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert ok.status_code == 200, path
            wrong = client.get(path, headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401, path


def test_private_mode_serves_data_routes_to_a_logged_in_viewer(world: World) -> None:
    add(world, "noy", Role.VIEWER)
    with app_client(world, config("private")) as client:
        log_in(client, "noy")
        for path in DATA_ROUTES:
            assert client.get(path).status_code == 200, path


def test_public_mode_serves_data_routes_to_anyone(world: World) -> None:
    with app_client(world, config("public")) as client:
        for path in DATA_ROUTES:
            assert client.get(path).status_code == 200, path


def test_ingest_keeps_its_own_site_token_auth_in_private_mode(world: World) -> None:
    with app_client(world, config("private")) as client:
        response = client.post("/api/v1/ingest", json={})
        assert response.status_code == 401  # the site token, not a login, guards ingest
