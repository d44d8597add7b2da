"""``linkwatch report``: the monthly availability table per site (and a CSV file).

Each site's month is its own calendar month in its own zone (``sites.<id>.time_zone``, else
``server.time_zone``). Availability = (up + degraded) / (up + degraded + down) over the
month so far, maintenance taken out, unknown time shown apart; "no data" when no time is
known. See docs/availability.md.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from monitor.availability.maths import Availability, month_window
from monitor.availability.queries import availability
from monitor.cli_common import engine_at_head as _engine_at_head
from monitor.cli_common import fail as _fail
from monitor.cli_common import load_config_or_exit as _load
from monitor.config import Config

app = typer.Typer(help="Availability reports per site and month.", no_args_is_help=True)

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
CSV_COLUMNS = (
    "month",
    "site_id",
    "site_name",
    "target_id",
    "zone",
    "start_utc",
    "end_utc",
    "up_s",
    "degraded_s",
    "down_s",
    "unknown_s",
    "maintenance_s",
    "availability",
)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the report: a site (``target_id`` ``None``) or one of its targets."""

    site_id: str
    site_name: str
    target_id: str | None
    zone: str
    figures: Availability


def parse_month(text: str) -> tuple[int, int]:
    """Return ``(year, month)`` of ``YYYY-MM``; ValueError with one sentence if it is not."""
    match = _MONTH.match(text.strip())
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"--month must be a calendar month YYYY-MM, e.g. 2026-10 (got {text!r})")
    return int(match[1]), int(match[2])


def build_report(
    session: Session, config: Config, year: int, month: int, now: datetime, *, targets: bool
) -> list[ReportRow]:
    """Return the rows of the report: each site, then (if asked) each of its targets."""
    rows: list[ReportRow] = []
    for site_id, site in config.sites.items():
        zone = config.site_zone(site_id)
        start, end = month_window(year, month, zone)
        ids: Sequence[str | None] = [None, *(t.id for t in site.targets)] if targets else [None]
        for target_id in ids:
            got = availability(session, site_id, target_id, start, end, now=now)
            rows.append(ReportRow(site_id, site.name, target_id, zone, got))
    return rows


def percent(value: float | None) -> str:
    """Return a ratio as ``99.9512 %``, or ``no data``."""
    return "no data" if value is None else f"{value * 100:.4f} %"


def hours(seconds: float) -> str:
    """Return seconds as ``12 h 05 min``."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def render_table(rows: Sequence[ReportRow], month: str) -> str:
    """Return the report as aligned text."""
    header = ("site", "target", "name", "zone", "availability", "down", "unknown", "maintenance")
    lines = [
        (
            row.site_id,
            row.target_id or "(site)",
            row.site_name,
            row.zone,
            percent(row.figures.availability),
            hours(row.figures.down_s),
            hours(row.figures.unknown_s),
            hours(row.figures.maintenance_s),
        )
        for row in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=False)]
    text = [f"Availability {month} (each site's calendar month in its own time zone, to now)"]
    for line in (header, *lines):
        text.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(text)


def write_csv(path: Path, rows: Sequence[ReportRow], month: str) -> None:
    """Write the rows to ``path`` (UTF-8, header line, availability as a ratio 0-1)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            f = row.figures
            writer.writerow(
                (
                    month,
                    row.site_id,
                    row.site_name,
                    row.target_id or "",
                    row.zone,
                    f.start.isoformat(),
                    f.end.isoformat(),
                    f"{f.up_s:.0f}",
                    f"{f.degraded_s:.0f}",
                    f"{f.down_s:.0f}",
                    f"{f.unknown_s:.0f}",
                    f"{f.maintenance_s:.0f}",
                    "" if f.availability is None else f"{f.availability:.6f}",
                )
            )


@app.callback(invoke_without_command=True)
def report(
    config_path: Annotated[
        Path, typer.Option("--config", "-c", help="The YAML configuration file.")
    ],
    month: Annotated[str, typer.Option("--month", help="The calendar month, YYYY-MM.")],
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write the table to this CSV file.")
    ] = None,
    targets: Annotated[
        bool, typer.Option("--targets", help="Print a line per target too (the CSV has them).")
    ] = False,
) -> None:
    """Print each site's availability for a month; optionally write a CSV file."""
    try:
        year, number = parse_month(month)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    config = _load(config_path)
    from monitor.storage.db import read_only

    engine = _engine_at_head(config)
    label = f"{year:04d}-{number:02d}"
    try:
        with Session(read_only(engine)) as session:
            now = datetime.now(UTC)
            rows = build_report(session, config, year, number, now, targets=True)
    finally:
        engine.dispose()
    shown = rows if targets else [row for row in rows if row.target_id is None]
    typer.echo(render_table(shown, label))
    if csv_path is not None:
        try:
            write_csv(csv_path, rows, label)
        except OSError as exc:
            raise _fail(f"--csv: cannot write {csv_path}: {exc.strerror or exc}", 1) from None
        typer.echo(f"wrote {len(rows)} rows to {csv_path}")
