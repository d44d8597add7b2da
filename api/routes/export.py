"""``GET /api/v1/export/openmetrics``: stored results as OpenMetrics, one timestamp per sample.

For backfilling Prometheus with history it could not scrape (a site's backlog that arrived
late): ``promtool tsdb create-blocks-from openmetrics``. See
:mod:`monitor.storage.export_openmetrics` for the families and ``docs/store-and-forward.md``
for the operator's procedure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from api.routes.query import Instant
from monitor.storage.db import read_only
from monitor.storage.export_openmetrics import CONTENT_TYPE, render_openmetrics
from monitor.storage.models import Site

DEFAULT_SPAN = timedelta(hours=24)
MAX_SPAN = timedelta(days=31)
_LABEL_VALUE = re.compile(r"^[\x20-\x7e]{1,200}$")

router = APIRouter(prefix="/api/v1/export", tags=["export"])


def _bad(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


@router.get(
    "/openmetrics",
    response_class=StreamingResponse,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "OpenMetrics text."},
        404: {"description": "Unknown site."},
    },
)
def export_openmetrics(
    services: ServicesDep,
    start: Annotated[
        Instant | None, Query(description="ISO 8601 with a zone; default: end minus 24 hours.")
    ] = None,
    end: Annotated[
        Instant | None, Query(description="ISO 8601 with a zone (exclusive); default: now.")
    ] = None,
    site_id: Annotated[str | None, Query(description="Only this site's targets.")] = None,
    job: Annotated[
        str | None, Query(description='Add job="...": the scrape job\'s name in Prometheus.')
    ] = None,
    instance: Annotated[
        str | None, Query(description='Add instance="...": the scraped server\'s host:port.')
    ] = None,
) -> StreamingResponse:
    """Return the results measured in ``[start, end)`` as OpenMetrics text, streamed.

    At most 31 days per request. Each sample carries the result's measurement time.
    """
    end_at = (end if end is not None else services.clock()).astimezone(UTC)
    start_at = (start if start is not None else end_at - DEFAULT_SPAN).astimezone(UTC)
    if start_at >= end_at:
        raise _bad("start", f"must be before end ({end_at.isoformat()})")
    if end_at - start_at > MAX_SPAN:
        raise _bad("start", "the window may span at most 31 days; export in parts")
    extra: dict[str, Any] = {}
    for name, value in (("job", job), ("instance", instance)):
        if value is not None:
            if not _LABEL_VALUE.match(value):
                raise _bad(name, "must be 1-200 printable ASCII characters")
            extra[name] = value
    engine = read_only(services.engine)
    if site_id is not None:
        with Session(bind=engine) as session:
            if session.get(Site, site_id) is None:
                raise HTTPException(
                    status_code=status.HTTP_404_NOT_FOUND, detail=f"No site {site_id!r}."
                )

    def body() -> Iterator[str]:
        with Session(bind=engine) as session:
            yield from render_openmetrics(
                session, start_at, end_at, site_id=site_id, extra_labels=extra
            )

    return StreamingResponse(body(), media_type=CONTENT_TYPE)
