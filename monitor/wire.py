"""The upload protocol between agent and server: one batch of measured results.

``POST /api/v1/ingest`` with ``Authorization: Bearer <site token>`` and a :class:`BatchIn`
body; the server answers :class:`BatchAck`. Idempotent: a batch or a result sent twice is
stored once (``result_id`` is unique server-side), so the agent may retry any batch whose
acknowledgement it did not see.

Two encodings of the same :class:`BatchIn`, told apart by ``Content-Type`` (both usually
sent with ``Content-Encoding: gzip``):

- :data:`JSON_CONTENT_TYPE` (``application/json``, also assumed when the header is absent
  or another type): the model as JSON, one object per result. Version 1, always accepted.
- :data:`COMPACT_CONTENT_TYPE`: the columnar encoding of :mod:`monitor.wire_compact`,
  layout 3 (field names once per batch, measurement times as per-target deltas in
  microseconds, RTT samples bit-packed per round). A server that does not know this type
  reads the body as JSON and answers 422 naming the compact envelope (``v``, ``n``,
  ``cols``), or 415; the agent then falls back to JSON.
- :data:`COMPACT_V2_CONTENT_TYPE`: layout 2, what agents before layout 3 send; still read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TARGET_ID_PATTERN

MAX_BATCH_RESULTS = 5000
JSON_CONTENT_TYPE = "application/json"
COMPACT_CONTENT_TYPE = "application/vnd.linkwatch.batch.v3+json"
COMPACT_V2_CONTENT_TYPE = "application/vnd.linkwatch.batch.v2+json"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class ResultIn(BaseModel):
    """One probe round as uploaded: the probe's record plus where and when it was measured."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    result_id: str = Field(pattern=_UUID, description="UUID made by the agent; idempotency key")
    target_id: str = Field(pattern=TARGET_ID_PATTERN)
    kind: ProbeKind
    status: ProbeStatus
    measured_at: AwareDatetime = Field(description="Agent's clock at the start of the round.")
    duration_s: float = Field(ge=0)
    rtt_s: float | None = Field(default=None, ge=0)
    packet_loss: float | None = Field(default=None, ge=0, le=1)
    jitter_s: float | None = Field(default=None, ge=0)
    sent: int | None = Field(default=None, ge=0)
    received: int | None = Field(default=None, ge=0)
    duplicates: int | None = Field(default=None, ge=0)
    rtts_s: list[float | None] = Field(default_factory=list, max_length=1000)
    address: str | None = Field(default=None, max_length=64)
    family: int | None = Field(default=None)
    error: str | None = Field(default=None, max_length=2000)
    phases_s: dict[str, float] = Field(default_factory=dict)
    detail: dict[str, Any] = Field(default_factory=dict)
    clock_offset_s: float | None = Field(
        default=None,
        description="The agent's estimate of the server's clock minus its own when it measured "
        "this result, seconds (positive: the agent is behind); null before its first estimate.",
    )

    @classmethod
    def from_probe(
        cls,
        result: ProbeResult,
        *,
        result_id: str,
        target_id: str,
        measured_at: datetime,
        clock_offset_s: float | None = None,
    ) -> ResultIn:
        """Wrap a probe's record for upload."""
        return cls(
            result_id=result_id,
            target_id=target_id,
            kind=result.kind,
            status=result.status,
            measured_at=measured_at,
            duration_s=result.duration_s,
            rtt_s=result.rtt_s,
            packet_loss=result.packet_loss,
            jitter_s=result.jitter_s,
            sent=result.sent,
            received=result.received,
            duplicates=result.duplicates,
            rtts_s=list(result.rtts_s),
            address=result.address,
            family=result.family,
            error=result.error,
            phases_s=dict(result.phases_s),
            detail=dict(result.detail),
            clock_offset_s=clock_offset_s,
        )


class SpoolReport(BaseModel):
    """The agent's spool besides this batch, when it built the batch (for the centre to show).

    ``backlog`` counts the results still waiting once this batch is stored, and
    ``oldest_unsent_at`` is the ``measured_at`` of the oldest of them (``None``: none);
    ``dropped_total`` and ``rejected_total`` are totals since the spool file was created
    (they survive agent restarts).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    backlog: int = Field(ge=0, description="Results waiting in the spool besides this batch.")
    oldest_unsent_at: AwareDatetime | None = None
    dropped_total: int = Field(ge=0, description="Results dropped unsent (spool full or too old).")
    rejected_total: int = Field(default=0, ge=0, description="Results the server refused.")
    clock_offset_s: float | None = Field(
        default=None, description="The agent's latest estimate of server minus agent clock, s."
    )


class BatchIn(BaseModel):
    """A batch of results from one site's agent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    batch_id: str = Field(pattern=_UUID)
    site_id: str = Field(description="Must match the site the bearer token belongs to.")
    agent_sent_at: AwareDatetime
    results: list[ResultIn] = Field(max_length=MAX_BATCH_RESULTS)
    spool: SpoolReport | None = Field(
        default=None, description="The agent's spool state; absent from older agents."
    )


class BatchAck(BaseModel):
    """The server's answer to a batch.

    ``stored`` results were new; ``duplicates`` were already stored (an earlier attempt
    landed); ``stored + duplicates == len(results)``. ``server_time`` lets the agent estimate
    its clock offset.
    """

    batch_id: str
    stored: int
    duplicates: int
    server_time: datetime
