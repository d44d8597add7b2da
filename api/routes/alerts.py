"""Alert operations for operators: acknowledge an incident, read the delivery log.

Every route needs the operator token: ``Authorization: Bearer <server.admin_token>`` (or the
variable named by ``server.admin_token_env``). Without a configured token the routes answer
403: the operator API is off. Acknowledging stops the incident's reminders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_operator
from api.deps import ReadSessionDep, ServicesDep
from monitor.alerting.channels.base import NotificationKind
from monitor.alerting.outbox import (
    AttemptOutcome,
    DeliveryStatus,
    DeliveryView,
    UnknownIncidentError,
    acknowledge,
    acknowledgements,
    recent_deliveries,
)

router = APIRouter(prefix="/api/v1", tags=["alerts"])

Operator = Depends(require_operator)


class AcknowledgeIn(BaseModel):
    """Who acknowledges, and an optional note."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200, description="The person acknowledging.")
    note: str | None = Field(default=None, max_length=2000)


class AcknowledgementOut(BaseModel):
    """The incident's acknowledgement; ``new`` is false when it was already acknowledged."""

    incident_id: int
    new: bool
    acknowledged_by: str
    acknowledged_at: datetime
    note: str | None


class AttemptOut(BaseModel):
    """One delivery attempt; ``outcome`` null while it runs."""

    attempt: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    error: str | None


class DeliveryOut(BaseModel):
    """One notification on one channel, with its attempts (all carry ``event_id``)."""

    delivery_id: int
    channel: str
    status: DeliveryStatus
    event_id: str
    key: str
    kind: NotificationKind
    alert_kind: str
    incident_id: int | None
    site_id: str | None
    target_id: str | None
    occurred_at: datetime
    summary_en: str
    summary_lo: str
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        """Copy a delivery view."""
        data: dict[str, Any] = {
            name: getattr(view, name) for name in cls.model_fields if name != "attempts"
        }
        data["attempts"] = [AttemptOut(**vars(a)) for a in view.attempts]
        return cls(**data)


@router.post(
    "/incidents/{incident_id}/acknowledge",
    response_model=AcknowledgementOut,
    dependencies=[Operator],
    responses={404: {"description": "No incident has this id."}},
)
async def acknowledge_incident(
    incident_id: int, body: AcknowledgeIn, services: ServicesDep
) -> AcknowledgementOut:
    """Acknowledge an incident: its reminders stop. Acknowledging again changes nothing."""

    def work() -> AcknowledgementOut:
        with services.sessions() as session, session.begin():
            try:
                new = acknowledge(session, incident_id, body.by, body.note, services.clock())
            except UnknownIncidentError:
                raise HTTPException(
                    status_code=status.HTTP_404_NOT_FOUND,
                    detail=f"incident_id: no incident has id {incident_id}.",
                ) from None
            except ValueError as exc:
                raise HTTPException(
                    status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)
                ) from None
            ack = acknowledgements(session, [incident_id])[incident_id]
        return AcknowledgementOut(
            incident_id=incident_id,
            new=new,
            acknowledged_by=ack.by,
            acknowledged_at=ack.at,
            note=ack.note,
        )

    return await run_in_threadpool(work)


@router.get("/notifications/deliveries", response_model=list[DeliveryOut], dependencies=[Operator])
def list_deliveries(
    session: ReadSessionDep,
    incident_id: Annotated[int | None, Query(description="Only this incident's.")] = None,
    delivery_status: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this status.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """List deliveries, newest first, each with its attempts."""
    views = recent_deliveries(session, incident_id=incident_id, status=delivery_status, limit=limit)
    return [DeliveryOut.of(view) for view in views]
