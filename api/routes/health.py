"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve: database ready)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from api.deps import ServicesDep
from monitor.storage.db import read_only
from monitor.storage.migrate import current_revision
from monitor.storage.sync import ConfigMirror

router = APIRouter(tags=["health"])

_UPGRADE_HINT = "run `linkwatch db upgrade --config FILE`"


class Health(BaseModel):
    """The answer of ``/healthz`` and ``/readyz``; ``reason`` says why when not ready."""

    status: str
    revision: str | None = None
    reason: str | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Answer 200 while the process serves requests (nothing else is checked)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready; `reason` says why."}},
)
def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """Answer 200 when the database answers, its schema is at the newest migration and the
    configuration is loaded into it; else 503 with the reason."""
    mirror: ConfigMirror = request.app.state.config_mirror
    try:
        revision = current_revision(read_only(services.engine))
    except SQLAlchemyError as exc:
        return _not_ready(f"the database does not answer: {_first_line(exc)}")
    if revision is None:
        return _not_ready(f"the database has no schema yet; {_UPGRADE_HINT}", revision)
    if revision != mirror.head:
        return _not_ready(
            f"the database schema is at revision {revision}, not {mirror.head} (the newest); "
            f"{_UPGRADE_HINT}",
            revision,
        )
    if not mirror.ensure():
        return _not_ready("the configuration could not be loaded into the database; see the log")
    return JSONResponse(Health(status="ready", revision=revision).model_dump())


def _not_ready(reason: str, revision: str | None = None) -> JSONResponse:
    body = Health(status="not ready", revision=revision, reason=reason)
    return JSONResponse(body.model_dump(), status_code=503)


def _first_line(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:300]
