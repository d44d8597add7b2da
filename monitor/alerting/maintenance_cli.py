"""``linkwatch maintenance add|list|delete``: maintenance windows from the command line.

Times are local wall-clock time in the window's zone (``--zone``, default the site's zone,
or ``server.time_zone`` for a window on every site); recurring windows keep their local
times across DST changes (see :mod:`monitor.alerting.maintenance`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from monitor.alerting.maintenance import (
    MaintenanceError,
    Repeat,
    Window,
    WindowIn,
    add_window,
    delete_window,
    list_windows,
)
from monitor.cli_common import engine_at_head as _engine_at_head
from monitor.cli_common import fail as _fail
from monitor.cli_common import load_config_or_exit as _load

app = typer.Typer(
    help="Maintenance windows: alerts suppressed, time excluded from availability.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The YAML configuration file.", show_default=False)
]
_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_OPTION = {"start": "--start", "end": "--end", "until": "--until", "title": "--title"}


def parse_local(text: str, option: str, day: date | None = None) -> datetime:
    """Return a naive local datetime from ``YYYY-MM-DD HH:MM`` (or ``HH:MM`` given ``day``).

    Raises ValueError with one sentence naming ``option``.
    """
    value = text.strip()
    for fmt in _FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    if day is not None:
        try:
            clock = datetime.strptime(value, "%H:%M").time()
        except ValueError:
            pass
        else:
            return datetime.combine(day, clock)
    shape = "YYYY-MM-DD HH:MM or HH:MM" if day is not None else "YYYY-MM-DD HH:MM"
    raise ValueError(f"{option} must be local time {shape} (got {text!r})")


def _validation_sentence(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error.get("loc") else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{_OPTION.get(field, '--' + field) if field else '--end'}: {message}"


@app.command("add")
def add_command(
    config_path: ConfigOpt,
    title: Annotated[str, typer.Option("--title", help="What the maintenance is.")],
    start: Annotated[str, typer.Option("--start", help="Local start: YYYY-MM-DD HH:MM.")],
    end: Annotated[
        str,
        typer.Option("--end", help="Local end: YYYY-MM-DD HH:MM, or HH:MM (next day if earlier)."),
    ],
    site: Annotated[
        str | None, typer.Option("--site", help="Only this site (default: every site).")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Only this target (default: all).")
    ] = None,
    repeat: Annotated[Repeat, typer.Option("--repeat", help="once, daily or weekly.")] = (
        Repeat.ONCE
    ),
    until: Annotated[
        str | None, typer.Option("--until", help="Last local date it repeats, YYYY-MM-DD.")
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="IANA time zone (default: the site's).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Free text.")] = None,
) -> None:
    """Add a maintenance window (one-off, daily or weekly, in local wall-clock time)."""
    try:
        start_at = parse_local(start, "--start")
        end_at = parse_local(end, "--end", start_at.date())
        if end_at <= start_at and len(end.strip()) <= 5:
            end_at += timedelta(days=1)
        last = date.fromisoformat(until) if until else None
    except ValueError as exc:
        message = str(exc) if str(exc).startswith("--") else f"--until must be YYYY-MM-DD ({exc})"
        raise _fail(message) from None
    try:
        given = WindowIn(
            site_id=site,
            target_id=target,
            title=title,
            zone=zone,
            repeat=repeat,
            start=start_at,
            end=end_at,
            until=last,
            note=note,
        )
    except ValidationError as exc:
        raise _fail(_validation_sentence(exc)) from None
    config = _load(config_path)
    engine = _engine_at_head(config)
    try:
        with Session(engine) as session, session.begin():
            window = add_window(session, config, given, datetime.now(UTC))
    except MaintenanceError as exc:
        raise _fail(f"--{exc}") from None
    finally:
        engine.dispose()
    typer.echo(f"added maintenance window {window.id}: {_describe(window)}")


@app.command("list")
def list_command(
    config_path: ConfigOpt,
    site: Annotated[
        str | None, typer.Option("--site", help="Only windows that apply to this site.")
    ] = None,
) -> None:
    """List maintenance windows and when each next applies."""
    config = _load(config_path)
    engine = _engine_at_head(config)
    try:
        with Session(engine) as session:
            windows = list_windows(session, site)
    finally:
        engine.dispose()
    if not windows:
        typer.echo("no maintenance windows")
        return
    now = datetime.now(UTC)
    for window in windows:
        upcoming = window.occurrences(now, now + timedelta(days=400))
        when = "no further occurrence"
        if upcoming:
            start, end = upcoming[0]
            tz = ZoneInfo(window.zone)
            when = (
                f"next {start.astimezone(tz):%Y-%m-%d %H:%M}-{end.astimezone(tz):%H:%M} "
                f"{window.zone} ({start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC)"
            )
        typer.echo(f"{window.id:>4}  {_describe(window)}; {when}")


@app.command("delete")
def delete_command(
    config_path: ConfigOpt,
    window_id: Annotated[int, typer.Argument(help="The window's id (see 'list').")],
) -> None:
    """Delete a maintenance window."""
    config = _load(config_path)
    engine = _engine_at_head(config)
    try:
        with Session(engine) as session, session.begin():
            found = delete_window(session, window_id)
    finally:
        engine.dispose()
    if not found:
        raise _fail(f"there is no maintenance window {window_id}", 1)
    typer.echo(f"deleted maintenance window {window_id}")


def _describe(window: Window) -> str:
    scope = window.site_id or "every site"
    if window.target_id:
        scope += f" / {window.target_id}"
    times = f"{window.start_local:%Y-%m-%d %H:%M} to {window.end_local:%Y-%m-%d %H:%M}"
    repeat = "" if window.repeat is Repeat.ONCE else f", {window.repeat.value}"
    until = f" until {window.until.isoformat()}" if window.until else ""
    return f"{window.title!r} on {scope}, {times} {window.zone}{repeat}{until}"
