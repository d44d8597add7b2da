"""A database filled so that every documented metric family has samples, and helpers to scrape.

Built on the status test kit's :class:`World` (real migrations, real ingest, the real app).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from sqlalchemy.orm import Session
from status_testkit import NOW, World, icmp, icmp_round, make_config, result, site, tcp

from monitor.config import Config
from monitor.storage.repository import ingest_batch, sync_config
from monitor.wire import BatchIn, ResultIn, SpoolReport

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def full_config(fb1_targets: list[dict[str, object]] | None = None) -> Config:
    """Two sites (fibre with ICMP+TCP, VSAT with ICMP), a silent third, one webhook channel."""
    base = make_config(
        {
            "fb1": site("Friendship Bridge I", fb1_targets or [icmp("gw-icmp"), tcp("gw-tcp")]),
            "lpq": site("Luang Prabang Airport", [icmp("gw-icmp")], profile="vsat"),
            "silent": site("Silent Checkpoint", [icmp("gw-icmp")], profile="3g"),
        }
    )
    data = base.model_dump(mode="json", exclude_none=True)
    data["notifications"] = {
        "channels": {"ops": {"kind": "webhook", "url": "http://192.0.2.1/hook"}}
    }
    return Config.model_validate(data)


def ingest_with_report(
    world: World, config: Config, site_id: str, results: list[ResultIn], backlog: int
) -> None:
    """Store ``results`` as one batch of ``site_id`` carrying a spool report."""
    with Session(world.engine) as session:
        sync_config(session, config, NOW)
        batch = BatchIn(
            batch_id=str(uuid.uuid4()),
            site_id=site_id,
            agent_sent_at=NOW - timedelta(seconds=0.4),
            results=results,
            spool=SpoolReport(
                backlog=backlog,
                oldest_unsent_at=NOW - timedelta(seconds=90) if backlog else None,
                dropped_total=3,
                rejected_total=1,
                clock_offset_s=0.25,
            ),
        )
        ingest_batch(session, site_id, batch, NOW)
        session.commit()


def fill(world: World, config: Config) -> None:
    """Give fb1 and lpq fresh rounds (fb1 with a spool report); leave ``silent`` silent."""
    ingest_with_report(
        world,
        config,
        "fb1",
        [
            icmp_round("gw-icmp", NOW - timedelta(seconds=10), [0.011, 0.013, None, 0.012, 0.3]),
            result("gw-tcp", kind="tcp", status="down", rtt_s=None, error="connection refused"),
        ],
        backlog=42,
    )
    world.ingest(config, "lpq", [result("gw-icmp", rtt_s=0.6, packet_loss=0.0)])


def scrape(world: World, config: Config, accept: str | None = None) -> str:
    """Return the body of ``GET /metrics`` (200 asserted)."""
    with world.client(config) as client:
        response = client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    text: str = response.text
    return text


@dataclass(frozen=True)
class Row:
    """One row of the naming table: the exposed name, its type, unit and label names."""

    name: str
    type: str
    unit: str
    labels: frozenset[str]


def naming_table(doc: Path = DOC) -> dict[str, Row]:
    """Parse the naming table of ``docs/metrics.md`` into rows by exposed name."""
    rows: dict[str, Row] = {}
    in_table = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("| name | type | unit | labels | meaning |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if not in_table or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        labels = frozenset(x.strip() for x in cells[3].split(",") if x.strip())
        rows[name] = Row(name, cells[1], cells[2], labels)
    return rows


def exposed_families(text: str, openmetrics: bool) -> dict[str, tuple[str, frozenset[str]]]:
    """Return ``{family name: (type, label names without le)}`` parsed by prometheus_client."""
    parse = parse_openmetrics if openmetrics else parse_text
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for family in parse(text):
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        out[family.name] = (family.type, labels)
    return out


def doc_family_name(row: Row) -> str:
    """Return the OpenMetrics family name of a documented metric (suffix of its type removed)."""
    for suffix, kind in (("_total", "counter"), ("_info", "info")):
        if row.type == kind:
            return re.sub(f"{suffix}$", "", row.name)
    return row.name
