"""The upload protocol between agent and server: one batch of measured results.

``POST /api/v1/ingest`` with ``Authorization: Bearer <site token>`` and a JSON
:class:`BatchIn` body; the server answers :class:`BatchAck`. Idempotent: a batch or a
result sent twice is stored once (``result_id`` is unique server-side), so the agent may
retry any batch whose acknowledgement it did not see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TARGET_ID_PATTERN

MAX_BATCH_RESULTS = 5000
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

    @classmethod
    def from_probe(
        cls, result: ProbeResult, *, result_id: str, target_id: str, measured_at: datetime
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
        )


class BatchIn(BaseModel):
    """A batch of results from one site's agent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    batch_id: str = Field(pattern=_UUID)
    site_id: str = Field(description="Must match the site the bearer token belongs to.")
    agent_sent_at: AwareDatetime
    results: list[ResultIn] = Field(max_length=MAX_BATCH_RESULTS)


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
