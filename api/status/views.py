"""The status page: ``GET /`` (every site), ``GET /sites/{site_id}``, ``GET /static/{name}``.

Server-rendered HTML that works without JavaScript and without any external asset (one
stylesheet from this app, system fonts). The language comes from ``?lang=`` (then
remembered in a cookie), the cookie, or Accept-Language; see :func:`api.i18n.choose_language`.
The page reloads itself every :data:`REFRESH_S` seconds (meta refresh).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from api.i18n import LANG_COOKIE, LANG_COOKIE_MAX_AGE_S, choose_language, parse_language
from api.services import Services
from api.status.pages import Pages, build_pages
from api.status.queries import site_recent_readings
from api.status.snapshot import take_snapshot
from monitor.storage.db import read_only

REFRESH_S = 30
RECENT_RESULTS = 50
STATIC_FILES: Mapping[str, str] = {"status.css": "text/css; charset=utf-8"}

# No script, no frame, nothing from another origin: the page must work offline anyway.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
    "Vary": "Cookie, Accept-Language",
}

router = APIRouter(include_in_schema=False)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _pages(request: Request) -> Pages:
    """Return the app's compiled templates, building them on first use (one set per app)."""
    pages: Pages | None = getattr(request.app.state, "status_pages", None)
    if pages is None:
        pages = build_pages()
        request.app.state.status_pages = pages
    return pages


def _read_session(services: Services) -> Session:
    """Open a session for reads only (on SQLite it takes no write lock)."""
    return Session(bind=read_only(services.engine))


def _html(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` in the request's language; remember a ``?lang=`` choice."""
    query_lang = request.query_params.get("lang")
    language = choose_language(
        query_lang, request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
    )
    services = _services(request)
    body = _pages(request).render(
        template,
        language,
        {
            "title": services.config.server.title,
            "zone": services.config.server.time_zone,
            "refresh_s": REFRESH_S,
            "root_path": request.scope.get("root_path", ""),
            **context,
        },
    )
    response = HTMLResponse(body, status_code=status_code, headers=_SECURITY_HEADERS)
    chosen = parse_language(query_lang)
    if chosen is not None:
        response.set_cookie(
            LANG_COOKIE,
            chosen.value,
            max_age=LANG_COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="lax",
        )
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    """Show every configured site with its state and its targets' latest measures."""
    services = _services(request)
    now = services.clock()
    with _read_session(services) as session:
        snapshot = take_snapshot(services.config, session, now)
    return _html(request, "overview.html", {"taken_at": now, "sites": snapshot.sites})


@router.get("/sites/{site_id}", response_class=HTMLResponse)
def site_page(request: Request, site_id: str) -> HTMLResponse:
    """Show one site: its targets' latest measures and its most recent results.

    A site id not in the configuration gets a 404 page.
    """
    services = _services(request)
    now = services.clock()
    config = services.config
    if site_id not in config.sites:
        return _html(request, "not_found.html", {"taken_at": now, "site_id": site_id}, 404)
    targets = config.sites[site_id].targets
    with _read_session(services) as session:
        snapshot = take_snapshot(config, session, now, [site_id])
        recent = site_recent_readings(session, site_id, [t.id for t in targets], RECENT_RESULTS)
    return _html(
        request,
        "site.html",
        {
            "taken_at": now,
            "site": snapshot.sites[0],
            "recent": recent,
            "target_names": {t.id: t.display_name for t in targets},
        },
    )


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """Serve one of the page's own static files (a fixed list; anything else is 404)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("Not found.\n", status_code=404, media_type="text/plain")
    body = resources.files("api").joinpath("static", name).read_bytes()
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
