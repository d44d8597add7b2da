"""The incidents page: ``GET /incidents`` (``?site=``), ``POST /incidents/{id}/ack``.

Anyone who may read the pages sees open and recent incidents; an operator (or admin) may
acknowledge one, with a note (the incident engine keeps the first acknowledgement). The
form carries the session's CSRF token; the note is stored as typed (trimmed, at most
:data:`MAX_NOTE_CHARS`) and always shown HTML-escaped.
After a POST the browser is redirected back to the list (post/redirect/get).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from api.i18n import N_
from api.status.access import FormError, check_session_form, read_form, visitor
from api.status.incidents import IncidentNotFound, acknowledge, incident_list
from api.status.render import html_page, services_of
from api.status.web import login_required, read_session, reader, site_refs
from monitor.accounts.users import Role

router = APIRouter(include_in_schema=False)

RECENT_SHOWN = 50
MAX_NOTE_CHARS = 2000

FLASHES = {
    "acknowledged": N_("The incident was acknowledged."),
    "already": N_("Someone had already acknowledged this incident; their note is kept."),
}
ERRORS = {
    "not_operator": N_("Only an operator can acknowledge incidents; log in as one."),
    "not_found": N_("That incident no longer exists."),
}


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request) -> Response:
    """Show open and recent incidents, of one site (``?site=``) or of all."""
    services, who, refused = reader(request)
    if refused:
        return refused
    refs = site_refs(request)
    site = request.query_params.get("site") or None
    site = site if site in refs else None
    now = services.clock()
    with read_session(services) as session:
        incidents = incident_list(session, now, site, RECENT_SHOWN)
    context = {
        "taken_at": now,
        "incidents": incidents,
        "sites": refs,
        "site_filter": site,
        "flash": FLASHES.get(request.query_params.get("done", "")),
        "error": ERRORS.get(request.query_params.get("error", "")),
    }
    return html_page(request, "incidents.html", context, who)


def _back(request: Request, site: str | None, **flags: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in {"site": site or "", **flags}.items() if v})
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/incidents" + (f"?{query}" if query else ""), status_code=303)


@router.post("/incidents/{incident_id}/ack")
async def acknowledge_incident(request: Request, incident_id: int) -> Response:
    """Acknowledge an incident with an optional note (operators; CSRF-checked)."""
    services = services_of(request)
    who = await run_in_threadpool(visitor, request, services)
    if who.user is None:
        return login_required(request)
    try:
        form = await read_form(request)
        check_session_form(request, who, form)
    except FormError as exc:
        context = {
            "taken_at": services.clock(),
            "heading": N_("Not saved"),
            "message": str(exc),
            "back": f"{request.scope.get('root_path', '')}/incidents",
        }
        return html_page(request, "message.html", context, who, status_code=403, refresh=False)
    site = form.get("site") or None
    if site not in site_refs(request):
        site = None
    if not who.may(Role.OPERATOR):
        return _back(request, site, error="not_operator")
    note = form.get("note", "").strip()[:MAX_NOTE_CHARS]
    user = who.user

    def _save() -> tuple[str, str]:
        try:
            with services.sessions.begin() as session:
                new = acknowledge(session, incident_id, user.username, note, services.clock())
        except IncidentNotFound:
            return "error", "not_found"
        return "done", "acknowledged" if new else "already"

    key, value = await run_in_threadpool(_save)
    return _back(request, site, **{key: value})
