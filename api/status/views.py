"""The status page's routes: overview, site, target, static files (auth and incidents apart).

``GET /`` every site (``?state=``, ``?page=``); ``GET /sites/{site_id}`` one site
(``?range=3h|1d|7d|30d|1y``, default 1d); ``GET /sites/{site_id}/targets/{target_id}`` one
target over every window; ``GET /static/{name}`` the page's own files (a fixed list). Every
page also answers ``?fragment=1`` (its live part, for the refresh script) and ``?lang=``.
Server-rendered HTML: charts are inline SVG, so they show with JavaScript off; nothing is
loaded from another origin (the Lao font is served from here).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from api.status.access import Visitor
from api.status.charts import ChartRange
from api.status.overview import build_overview
from api.status.render import html_page, services_of
from api.status.site_detail import build_site_page, build_target_page
from api.status.web import read_session, reader, site_refs
from monitor.state import SiteState

STATIC_FILES: Mapping[str, str] = {
    "status.css": "text/css; charset=utf-8",
    "refresh.js": "text/javascript; charset=utf-8",
    "fonts/NotoSansLao-Regular.ttf": "font/ttf",
    "fonts/NotoSansLao-Bold.ttf": "font/ttf",
    "fonts/OFL.txt": "text/plain; charset=utf-8",
}
"""The files under ``api/static`` served, with their media types; anything else is 404."""

DEFAULT_RANGE = ChartRange.D1

router = APIRouter(include_in_schema=False)


def _positive_int(text: str | None, default: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return max(1, value)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    """Show every configured site as a card (paged; ``?state=`` keeps one state)."""
    services, who, refused = reader(request)
    if refused:
        return refused
    now = services.clock()
    state_text = request.query_params.get("state")
    state = SiteState(state_text) if state_text in set(SiteState) else None
    page = _positive_int(request.query_params.get("page"), 1)
    with read_session(services) as session:
        model = build_overview(services.config, session, now, page=page, state=state)
    return html_page(request, "overview.html", {"taken_at": now, "overview": model}, who)


def _not_found(request: Request, who: Visitor, **ids: str) -> Response:
    services = services_of(request)
    context = {"taken_at": services.clock(), "site_id": "", "target_id": "", "incident_id": ""}
    return html_page(
        request, "not_found.html", {**context, **ids}, who, status_code=404, refresh=False
    )


@router.get("/sites/{site_id}", response_class=HTMLResponse)
def site_page(request: Request, site_id: str) -> Response:
    """Show one site: targets, latency charts (``?range=``), availability, incidents, agent."""
    services, who, refused = reader(request)
    if refused:
        return refused
    if site_id not in services.config.sites:
        return _not_found(request, who, site_id=site_id)
    range_text = request.query_params.get("range")
    chart_range = ChartRange(range_text) if range_text in set(ChartRange) else DEFAULT_RANGE
    now = services.clock()
    with read_session(services) as session:
        model = build_site_page(services.config, session, now, site_id, chart_range)
    context = {"taken_at": now, "page": model, "sites": site_refs(request)}
    return html_page(request, "site.html", context, who)


@router.get("/sites/{site_id}/targets/{target_id}", response_class=HTMLResponse)
def target_page(request: Request, site_id: str, target_id: str) -> Response:
    """Show one target's latency over 3 hours, 1 day, 7 days, 30 days and 1 year."""
    services, who, refused = reader(request)
    if refused:
        return refused
    now = services.clock()
    with read_session(services) as session:
        model = build_target_page(services.config, session, now, site_id, target_id)
    if model is None:
        if site_id not in services.config.sites:
            return _not_found(request, who, site_id=site_id)
        return _not_found(request, who, site_id=site_id, target_id=target_id)
    return html_page(request, "target.html", {"taken_at": now, "page": model}, who)


@router.get("/static/{name:path}")
def static_file(name: str) -> Response:
    """Serve one of the page's own static files (a fixed list; anything else is 404)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("Not found.\n", status_code=404, media_type="text/plain")
    body = resources.files("api").joinpath("static", *name.split("/")).read_bytes()
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def include_status_routes(target: APIRouter) -> None:
    """Add the login and incident routes to ``target`` (kept in their own modules)."""
    from api.status.auth_views import router as auth_router
    from api.status.incident_views import router as incident_router

    target.include_router(auth_router)
    target.include_router(incident_router)


include_status_routes(router)
