"""``POST /api/v1/ingest``: store a batch of results from a site's agent, exactly once.

The token is checked before the body is read. The body is a :class:`monitor.wire.BatchIn`,
as JSON (``Content-Type: application/json``, or no or another type: version 1) or in the
compact columnar encoding (``Content-Type: application/vnd.linkwatch.batch.v3+json``, or
``...batch.v2+json`` from older agents, see
:mod:`monitor.wire_compact`), optionally ``Content-Encoding: gzip``; at most
:data:`MAX_BODY_BYTES` are read and, after decompression, accepted. A bad body gets 422
naming the field; nothing is stored on any error, and a batch either is stored whole or not
at all.
"""

from __future__ import annotations

import logging
import math
import zlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from api.auth import AuthenticatedSite
from api.deps import ServicesDep
from api.services import Services
from monitor.storage.repository import UnknownTargetsError, ingest_batch
from monitor.wire import COMPACT_CONTENT_TYPE, COMPACT_V2_CONTENT_TYPE, BatchAck, BatchIn
from monitor.wire_compact import CompactBodyError, decode_batch

log = logging.getLogger("linkwatch.api.ingest")

MAX_BODY_BYTES = 20 * 1024 * 1024
"""Largest body accepted, in bytes, both as sent and after gzip decompression (20 MiB)."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token; nothing stored."},
    403: {"description": "The token is another site's than the body's site_id; nothing stored."},
    413: {"description": "Body larger than 20 MiB (after gzip decompression)."},
    415: {"description": "Content-Encoding other than gzip."},
    422: {"description": "Invalid body or unknown target id; the detail names the field."},
    503: {"description": "Database unavailable or not migrated; nothing stored, retry later."},
}

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@router.post("/ingest", response_model=BatchAck, responses=_ERRORS)
async def ingest(request: Request, site_id: AuthenticatedSite, services: ServicesDep) -> BatchAck:
    """Store a batch (``BatchIn`` as JSON or compact, optionally gzip-encoded) from the
    token's site.

    Idempotent: results already stored (same ``result_id``) count as ``duplicates``, so an
    agent may resend any batch whose answer it did not see.
    """
    raw = await read_body(request, MAX_BODY_BYTES)
    batch = parse_batch(raw, request.headers.get("content-type", ""))
    problems = non_finite_numbers(batch)
    if problems:
        raise RequestValidationError(problems)
    if batch.site_id != site_id:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=(
                f"This token is site {site_id!r}'s, but the batch's site_id is "
                f"{batch.site_id!r}; nothing was stored."
            ),
        )
    return await run_in_threadpool(_store, services, request, site_id, batch)


def _store(services: Services, request: Request, site_id: str, batch: BatchIn) -> BatchAck:
    """Store ``batch`` in one transaction (runs in a worker thread: the database is sync)."""
    if not request.app.state.config_mirror.ensure():
        raise _unavailable("the server's database is not ready (see /readyz)")
    try:
        with services.sessions.begin() as session:
            ack = ingest_batch(session, site_id, batch, services.clock())
    except UnknownTargetsError as exc:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "results", index, "target_id"),
                    "msg": f"site {exc.site_id!r} has no target {target_id!r}; nothing of "
                    "this batch was stored (add the target to the server's configuration, "
                    "or remove it from the agent's)",
                    "type": "unknown_target",
                }
                for index, target_id in exc.unknown
            ]
        ) from None
    except SQLAlchemyError:
        log.exception("storing batch %s from site %s failed", batch.batch_id, site_id)
        raise _unavailable("the database failed while storing it") from None
    log.debug(
        "site %s batch %s: %d stored, %d duplicates",
        site_id,
        batch.batch_id,
        ack.stored,
        ack.duplicates,
    )
    return ack


def parse_batch(raw: bytes, content_type: str) -> BatchIn:
    """Decode a body by its ``Content-Type``; raise RequestValidationError naming the field.

    :data:`monitor.wire.COMPACT_CONTENT_TYPE` and ``COMPACT_V2_CONTENT_TYPE`` (parameters
    ignored) are the compact encoding (the body's ``v`` says which layout); anything else is
    read as JSON (version 1, what agents before the compact encoding send).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in (COMPACT_CONTENT_TYPE, COMPACT_V2_CONTENT_TYPE):
        try:
            return decode_batch(raw)
        except CompactBodyError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors]
            ) from None
    try:
        return BatchIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def non_finite_numbers(batch: BatchIn) -> list[dict[str, Any]]:
    """Return a validation error for each NaN or infinity in a result's free-form fields.

    ``rtts_s``, ``phases_s`` and ``detail`` are not range-checked by the wire model, and JSON
    (hence PostgreSQL's json type) has no NaN: a lost echo is ``null``, not NaN.
    """
    problems: list[dict[str, Any]] = []
    for index, result in enumerate(batch.results):
        for name in ("rtts_s", "phases_s", "detail"):
            for path in _non_finite_paths(getattr(result, name), ()):
                problems.append(
                    {
                        "loc": ("body", "results", index, name, *path),
                        "msg": "must be a finite number (NaN and infinity are not JSON; "
                        "send null for a value not measured)",
                        "type": "finite_number",
                    }
                )
    return problems


def _non_finite_paths(value: Any, path: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite_paths(v, (*path, str(k)))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _non_finite_paths(v, (*path, i))]
    return []


def _unavailable(why: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"The batch was not stored: {why}; send it again later.",
        headers={"Retry-After": "30"},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, gunzipping it for ``Content-Encoding: gzip``, at most ``limit``.

    Raises HTTPException 413 when the body, as sent or decompressed, exceeds ``limit``
    bytes; 415 for another content encoding; 400 when the gzip data is corrupt or truncated.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Encoding {encoding!r} is not supported; send gzip or none.",
        )
    too_large = HTTPException(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"The body is larger than {limit} bytes; send smaller batches.",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise too_large
    if encoding != "gzip":
        return bytes(received)
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip container only
    try:
        body = inflater.decompress(bytes(received), limit + 1)
    except zlib.error as exc:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST,
            detail=f"The body is not valid gzip data ({exc}).",
        ) from None
    if len(body) > limit:
        raise too_large
    if not inflater.eof:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail="The gzip body is truncated."
        )
    return body
