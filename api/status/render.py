"""Turn a template and its context into the status page's HTTP responses.

Every page: the language of the request (``?lang=``, remembered in a cookie, else the
cookie, Accept-Language, English), strict security headers, the visitor for the header's
login box. ``?fragment=1`` renders only the page's ``main`` block: the refresh script
fetches it every :data:`REFRESH_S` seconds and swaps it in, so pages update without a
full reload (with JavaScript off, a ``<noscript>`` meta refresh reloads the page).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.i18n import LANG_COOKIE, LANG_COOKIE_MAX_AGE_S, Language, choose_language, parse_language
from api.services import Services
from api.status.access import Visitor
from api.status.pages import Pages, build_pages

REFRESH_S = 30

# Scripts and fonts only from this app; no inline script, no frame, nothing from elsewhere.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        "script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Cookie, Accept-Language",
}


def services_of(request: Request) -> Services:
    """Return the app's services."""
    services: Services = request.app.state.services
    return services


def pages_of(request: Request) -> Pages:
    """Return the app's compiled templates, building them on first use (one set per app)."""
    pages: Pages | None = getattr(request.app.state, "status_pages", None)
    if pages is None:
        pages = build_pages()
        request.app.state.status_pages = pages
    return pages


def request_language(request: Request) -> Language:
    """Return the language of this request (see the module docstring)."""
    return choose_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def is_fragment(request: Request) -> bool:
    """Whether the request asks only for the page's live part (``?fragment=1``)."""
    return request.query_params.get("fragment") == "1"


def url_with(request: Request, **changes: str | int | None) -> str:
    """Return this page's path and query with ``changes`` (``None`` removes a key).

    ``fragment`` and ``lang`` are always dropped unless given: links must open full pages.
    """
    params = {k: v for k, v in request.query_params.items() if k not in ("fragment", "lang")}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    root = request.scope.get("root_path", "")
    query = urlencode(params)
    return f"{root}{request.url.path}" + (f"?{query}" if query else "")


def html_page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    who: Visitor,
    *,
    status_code: int = 200,
    refresh: bool = True,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` (whole, or its ``main`` block for ``?fragment=1``) for ``who``.

    A ``?lang=`` choice is remembered in a cookie for a year. ``refresh`` false turns the
    self-refresh off (forms, the login page); its period is :data:`REFRESH_S`, or
    ``app.state.status_refresh_s`` when set (a seam for tests).
    """
    services = services_of(request)
    every_s = int(getattr(request.app.state, "status_refresh_s", REFRESH_S))
    language = request_language(request)
    full_context = {
        "title": services.config.server.title,
        "zone": services.config.server.time_zone,
        "refresh_s": every_s if refresh else 0,
        "root_path": request.scope.get("root_path", ""),
        "visitor": who,
        "lang_links": {lang: url_with(request, lang=lang.value) for lang in Language},
        "url_with": lambda **changes: url_with(request, **changes),
        "request_path": url_with(request),
        **context,
    }
    pages = pages_of(request)
    if is_fragment(request):
        body = pages.render_block(template, "main", language, full_context)
    else:
        body = pages.render(template, language, full_context)
    response = HTMLResponse(
        body, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )
    chosen = parse_language(request.query_params.get("lang"))
    if chosen is not None:
        response.set_cookie(
            LANG_COOKIE,
            chosen.value,
            max_age=LANG_COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="lax",
        )
    return response
