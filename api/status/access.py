"""Who is looking at the status page, what they may do, and the CSRF checks of its forms.

- The login session is a server-side row (:mod:`monitor.accounts.sessions`) named by an
  HttpOnly, SameSite=Lax cookie (``Secure`` when the request came over HTTPS).
- In ``private`` mode every page needs a logged-in user (any role); in ``public`` mode
  anyone may read, and changing anything (acknowledge, note) needs an operator.
- Every form of a session carries that session's CSRF token (synchronizer token, compared
  in constant time). The login form, used before any session exists, carries a random
  token that must equal the one in a short-lived SameSite=Strict cookie (double submit).
  Requests whose ``Origin`` header names another origin are refused as well.
- Form bodies are read here (``application/x-www-form-urlencoded``, at most
  :data:`MAX_FORM_BYTES`), so no multipart parser is needed.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from fastapi import Request, Response
from sqlalchemy.orm import Session

from api.i18n import N_
from api.services import Services
from monitor.accounts.sessions import ActiveSession, find_session, touch_session
from monitor.accounts.users import Role, User, role_allows
from monitor.config import StatusPageMode
from monitor.storage.db import read_only

SESSION_COOKIE = "linkwatch_session"
LOGIN_CSRF_COOKIE = "linkwatch_login_csrf"
LOGIN_CSRF_MAX_AGE_S = 3600
MAX_FORM_BYTES = 16_384


class FormError(ValueError):
    """A form that cannot be read or fails its CSRF check.

    ``str(error)`` is an English message id of the UI catalogue: translate it when shown.
    """


@dataclass(frozen=True, slots=True)
class Visitor:
    """The person behind a request: a live session, or nobody logged in (``None``)."""

    session: ActiveSession | None
    mode: StatusPageMode

    @property
    def user(self) -> User | None:
        """The logged-in user, or ``None``."""
        return self.session.user if self.session else None

    @property
    def csrf_token(self) -> str:
        """The CSRF token forms of this session must carry ("" when not logged in)."""
        return self.session.csrf_token if self.session else ""

    def may(self, role: Role) -> bool:
        """Return whether the visitor holds at least ``role``."""
        return self.user is not None and role_allows(self.user.role, role)

    @property
    def may_read(self) -> bool:
        """Whether the visitor may read the pages (public mode, or logged in)."""
        return self.mode == StatusPageMode.PUBLIC or self.user is not None


def visitor(request: Request, services: Services) -> Visitor:
    """Return the visitor of ``request`` (reads the session; records its use at most every
    few minutes)."""
    mode = services.config.server.status_page
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return Visitor(None, mode)
    now = services.clock()
    with Session(bind=read_only(services.engine)) as session:
        active = find_session(session, token, now)
    if active is not None:
        with services.sessions.begin() as session:
            touch_session(session, active, now)
    return Visitor(active, mode)


def is_https(request: Request) -> bool:
    """Whether the request came over HTTPS (as uvicorn saw it, proxy headers included)."""
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Give the browser its session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    """Tell the browser to forget its session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request)
    )


def new_login_csrf(response: Response, request: Request) -> str:
    """Return a fresh login-form token and set it as a SameSite=Strict cookie too."""
    token = secrets.token_urlsafe(32)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path="/",
    )
    return token


def same_origin(request: Request) -> bool:
    """Return false when an ``Origin`` (or, lacking it, ``Referer``) names another origin.

    Neither header present (some privacy tools strip both) is accepted: the CSRF token
    is the defence; this is a second one.
    """
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    if claimed == "null":  # an opaque origin (sandboxed frame, file:) is never ours
        return False
    parts = urlsplit(claimed)
    host = request.headers.get("host", "")
    return parts.netloc == host and parts.scheme in ("http", "https")


async def read_form(request: Request) -> dict[str, str]:
    """Return the fields of an urlencoded form body (first value of each).

    Raises FormError for another content type, a body over :data:`MAX_FORM_BYTES`, or
    text that is not UTF-8.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError(N_("The form was not sent as a web form; reload the page and try again."))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(N_("The form is too long; shorten the note and try again."))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError(N_("The form was not sent as UTF-8 text.")) from exc
    fields = parse_qs(text, keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    return {name: values[0] for name, values in fields.items()}


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Compare two CSRF tokens in constant time; missing or empty never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def check_session_form(request: Request, who: Visitor, form: dict[str, str]) -> None:
    """Raise FormError unless the form carries the session's CSRF token from our origin."""
    if not same_origin(request):
        raise FormError(N_("The form came from another site and was refused."))
    if who.session is None or not tokens_match(form.get("csrf_token"), who.csrf_token):
        raise FormError(N_("The form has expired; reload the page and try again."))


def check_login_form(request: Request, form: dict[str, str]) -> None:
    """Raise FormError unless the login form's token equals its cookie, from our origin."""
    if not same_origin(request):
        raise FormError(N_("The form came from another site and was refused."))
    if not tokens_match(form.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise FormError(N_("The form has expired; reload the page and try again."))
