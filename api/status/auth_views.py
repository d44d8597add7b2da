"""Log in and out of the status page: ``GET/POST /login``, ``POST /logout``.

A successful login always opens a new session and ends the one the browser had (a token
set before login is never kept, so a planted cookie cannot be upgraded) and redirects to
``next`` when it is a path on this site. A failed login says only that the name or
password is wrong. The scrypt cost used to check passwords is
:data:`monitor.accounts.passwords.DEFAULT_COST`, or the ``ScryptCost`` in
``app.state.status_password_cost`` (a seam for tests).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from api.i18n import N_
from api.services import Services
from api.status.access import (
    SESSION_COOKIE,
    FormError,
    Visitor,
    check_login_form,
    check_session_form,
    clear_session_cookie,
    new_login_csrf,
    read_form,
    set_session_cookie,
    visitor,
)
from api.status.render import html_page, services_of
from api.status.web import safe_next
from monitor.accounts.passwords import DEFAULT_COST, ScryptCost
from monitor.accounts.sessions import end_session, prune_sessions, start_session
from monitor.accounts.users import User, authenticate
from monitor.config import StatusPageMode

router = APIRouter(include_in_schema=False)

WRONG_LOGIN = N_("The user name or password is wrong.")


def password_cost(request: Request) -> ScryptCost:
    """Return the scrypt cost of this app (see the module docstring)."""
    cost = getattr(request.app.state, "status_password_cost", None)
    return cost if isinstance(cost, ScryptCost) else DEFAULT_COST


def _login_page(
    request: Request,
    who: Visitor,
    *,
    next_path: str,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    services = services_of(request)
    placeholder = Response()
    token = new_login_csrf(placeholder, request)
    context: dict[str, Any] = {
        "taken_at": services.clock(),
        "login_csrf": token,
        "next_path": next_path,
        "error": error,
        "username": username,
        "private_notice": services.config.server.status_page == StatusPageMode.PRIVATE,
    }
    response = html_page(
        request, "login.html", context, who, status_code=status_code, refresh=False
    )
    for name, value in placeholder.headers.items():
        if name.lower() == "set-cookie":
            response.headers.append("set-cookie", value)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """Show the login form (with a fresh login CSRF token)."""
    who = visitor(request, services_of(request))
    return _login_page(request, who, next_path=safe_next(request.query_params.get("next")))


def _log_in(
    services: Services, username: str, password: str, cost: ScryptCost, previous: str | None
) -> tuple[str, User] | None:
    now = services.clock()
    with services.sessions.begin() as session:
        user = authenticate(session, username, password, now, cost)
        if user is None:
            return None
        if previous:
            end_session(session, previous)
        prune_sessions(session, now)
        token, _ = start_session(session, user, now)
    return token, user


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the login form; on success open a session and go to ``next``."""
    services = services_of(request)
    who = Visitor(None, services.config.server.status_page)
    try:
        form = await read_form(request)
        check_login_form(request, form)
    except FormError as exc:
        return _login_page(request, who, next_path="/", error=str(exc), status_code=400)
    next_path = safe_next(form.get("next"))
    username = form.get("username", "")
    outcome = await run_in_threadpool(
        _log_in,
        services,
        username,
        form.get("password", ""),
        password_cost(request),
        request.cookies.get(SESSION_COOKIE),
    )
    if outcome is None:
        return _login_page(
            request,
            who,
            next_path=next_path,
            error=WRONG_LOGIN,
            username=username[:64],
            status_code=401,
        )
    token, _user = outcome
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}{next_path}", status_code=303)
    set_session_cookie(response, request, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (the form must carry its CSRF token) and go to the overview."""
    services = services_of(request)
    who = await run_in_threadpool(visitor, request, services)
    try:
        form = await read_form(request)
        check_session_form(request, who, form)
    except FormError as exc:
        context = {
            "taken_at": services.clock(),
            "heading": N_("Not logged out"),
            "message": str(exc),
            "back": None,
        }
        return html_page(request, "message.html", context, who, status_code=403, refresh=False)
    token = request.cookies.get(SESSION_COOKIE, "")

    def _end() -> None:
        with services.sessions.begin() as session:
            end_session(session, token)

    await run_in_threadpool(_end)
    root = request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}/", status_code=303)
    clear_session_cookie(response, request)
    return response
