"""Helpers shared by the status page's routes: site labels, sessions, login redirects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from sqlalchemy.orm import Session

from api.services import Services
from api.status.access import Visitor, visitor
from api.status.render import is_fragment, services_of
from monitor.config import Config
from monitor.storage.db import read_only


@dataclass(frozen=True, slots=True)
class SiteRef:
    """A configured site's names, zone and target names, for labels anywhere on the pages."""

    site_id: str
    name: str
    name_lo: str | None
    time_zone: str
    targets: Mapping[str, str]


def site_refs(request: Request) -> Mapping[str, SiteRef]:
    """Return every configured site's :class:`SiteRef`, in config order (built once per app)."""
    refs: Mapping[str, SiteRef] | None = getattr(request.app.state, "status_site_refs", None)
    if refs is None:
        config: Config = services_of(request).config
        refs = {
            sid: SiteRef(
                sid,
                s.name,
                s.name_lo,
                config.site_zone(sid),
                {t.id: t.display_name for t in s.targets},
            )
            for sid, s in config.sites.items()
        }
        request.app.state.status_site_refs = refs
    return refs


def read_session(services: Services) -> Session:
    """Open a session for reads only (on SQLite it takes no write lock)."""
    return Session(bind=read_only(services.engine))


def safe_next(path: str | None) -> str:
    """Return ``path`` if it is a path on this site ("/..."), else "/" (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_required(request: Request) -> Response:
    """Answer a visitor who must log in: 401 for the refresh script, else a redirect."""
    if is_fragment(request):
        return PlainTextResponse("Log in to see this page.\n", status_code=401)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/login?next={quote(safe_next(here))}", status_code=303)


def reader(request: Request) -> tuple[Services, Visitor, Response | None]:
    """Return the services, the visitor, and the response refusing them if they may not
    read (``None`` when they may)."""
    services = services_of(request)
    who = visitor(request, services)
    return services, who, None if who.may_read else login_required(request)
