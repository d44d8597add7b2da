"""``linkwatch notify``: list and test the notification channels, read the delivery log, ack.

Every error is one sentence on stderr and exit code 2 (bad input) or 1 (the action failed).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from monitor.alerting.channels.base import (
    DeliveryError,
    Notification,
    NotificationKind,
)
from monitor.alerting.outbox import DeliveryStatus
from monitor.cli_common import engine_at_head as _engine_at_head
from monitor.cli_common import fail as _fail
from monitor.cli_common import load_config_or_exit as _load
from monitor.config import Config

app = typer.Typer(
    help="Notification channels: test a channel, list deliveries, acknowledge incidents.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The YAML configuration file.", show_default=False)
]


def test_notification(config: Config, channel: str, now: datetime) -> Notification:
    """Return the notification ``notify test`` sends: a TEST about the first configured site."""
    site_id = next(iter(config.sites))
    site = config.sites[site_id]
    key = f"test|{channel}|{uuid.uuid4()}"
    return Notification(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        key=key,
        kind=NotificationKind.TEST,
        alert_kind="test",
        resolved=False,
        incident_id=None,
        site_id=site_id,
        target_id=None,
        started_at=now,
        occurred_at=now,
        summary_en=f"Linkwatch test message on channel {channel} ({site.name})",
        summary_lo=f"ຂໍ້ຄວາມທົດສອບຂອງ Linkwatch ທາງຊ່ອງທາງ {channel} ({site.name_lo or site.name})",
    )


@app.command("channels")
def channels_command(config_path: ConfigOpt) -> None:
    """List the configured channels in escalation order."""
    config = _load(config_path)
    channels = config.notifications.channels
    if not channels:
        typer.echo("no channel configured: alerts are recorded, not sent")
        return
    for name, spec in channels.items():
        role = "fallback only" if spec.fallback_only else "every alert"
        then = config.notifications.next_channel(name) or "-"
        typer.echo(
            f"{name:<20} {spec.kind:<13} {role:<13} timeout {spec.timeout_s:g} s, "
            f"escalates to {then}"
        )


@app.command("test")
def test_command(
    config_path: ConfigOpt,
    channel: Annotated[str, typer.Option("--channel", help="The channel's name.")],
) -> None:
    """Send one test message (English and Lao) through CHANNEL now, without the outbox."""
    from monitor.alerting.channels.registry import build_channel
    from monitor.alerting.messages import render

    config = _load(config_path)
    spec = config.notifications.channels.get(channel)
    if spec is None:
        known = ", ".join(config.notifications.channels) or "none configured"
        raise _fail(f"--channel: no channel named {channel!r} (known: {known})")
    notification = test_notification(config, channel, datetime.now(UTC))
    message = render(notification, zone=config.server.time_zone, sites=config.sites)
    sender = build_channel(channel, spec)

    async def send() -> None:
        try:
            async with asyncio.timeout(spec.timeout_s):
                await sender.send(notification, message)
        finally:
            await sender.aclose()

    try:
        asyncio.run(send())
    except TimeoutError:
        raise _fail(f"channel {channel}: no answer within {spec.timeout_s:g} s", 1) from None
    except DeliveryError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"sent a test message through {channel} (event id {notification.event_id})")


@app.command("list")
def list_command(
    config_path: ConfigOpt,
    incident: Annotated[int | None, typer.Option("--incident", help="Only this incident.")] = None,
    status: Annotated[
        DeliveryStatus | None, typer.Option("--status", help="Only deliveries in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
) -> None:
    """List recent deliveries, newest first, with every attempt."""
    from sqlalchemy.orm import Session

    from monitor.alerting.outbox import recent_deliveries

    config = _load(config_path)
    engine = _engine_at_head(config)
    try:
        with Session(engine) as session:
            views = recent_deliveries(session, incident_id=incident, status=status, limit=limit)
    finally:
        engine.dispose()
    if not views:
        typer.echo("no deliveries")
        return
    for view in views:
        typer.echo(
            f"{view.occurred_at:%Y-%m-%d %H:%M:%SZ} {view.channel:<16} {view.status:<9} "
            f"{view.kind:<15} incident {view.incident_id if view.incident_id is not None else '-'} "
            f"event {view.event_id}: {view.summary_en}"
        )
        for attempt in view.attempts:
            typer.echo(
                f"    attempt {attempt.attempt} at {attempt.started_at:%H:%M:%SZ} by "
                f"{attempt.worker}: {attempt.outcome or 'running'}"
                + (f": {attempt.error}" if attempt.error else "")
            )


@app.command("ack")
def ack_command(
    incident: Annotated[int, typer.Argument(help="The incident's id.")],
    config_path: ConfigOpt,
    by: Annotated[str, typer.Option("--by", help="Who acknowledges.")],
    note: Annotated[str | None, typer.Option("--note", help="A note for the others.")] = None,
) -> None:
    """Acknowledge an incident: its reminders stop."""
    from sqlalchemy.orm import Session

    from monitor.alerting.outbox import UnknownIncidentError, acknowledge

    config = _load(config_path)
    engine = _engine_at_head(config)
    try:
        with Session(engine) as session, session.begin():
            new = acknowledge(session, incident, by, note, datetime.now(UTC))
    except UnknownIncidentError:
        raise _fail(f"INCIDENT: no incident has id {incident}") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(
        f"incident {incident} acknowledged by {by}"
        if new
        else f"incident {incident} was already acknowledged; nothing changed"
    )
