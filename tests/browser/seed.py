"""A realistic small world for the browser tests: the seven NCB posts, six hours of rounds.

Results go through the real ingest, the incident engine's evaluator and the rollup job, so
the pages show what a server would. Addresses are documentation ones (never probed).
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.services import Services
from monitor.alerting.evaluator import evaluator_for
from monitor.config import Config
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.storage.repository import ingest_batch, sync_config
from monitor.storage.rollups_job import roll_up_all
from monitor.wire import BatchIn, ResultIn
from probes.result import ProbeKind, ProbeStatus

NOW = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
"""The fixed clock of the browser tests (14:00 in Vientiane)."""

HOURS = 6
STEP_S = 30

# id: (name, Lao name, profile, rtt ms, jitter ms, loss, outage minutes ago (start, end) or None)
SITES: dict[str, tuple[str, str, str, float, float, float, tuple[int, int] | None]] = {
    "ftb2": (
        "Lao-Thai Friendship Bridge 2 (Savannakhet)",
        "ຂົວມິດຕະພາບລາວ-ໄທ ແຫ່ງທີ 2",
        "fibre",
        12,
        1,
        0.001,
        None,
    ),
    "ftb3": (
        "Lao-Thai Friendship Bridge 3 (Thakhek)",
        "ຂົວມິດຕະພາບລາວ-ໄທ ແຫ່ງທີ 3",
        "fibre",
        10,
        1,
        0.02,
        None,
    ),
    "ftb4": (
        "Lao-Thai Friendship Bridge 4 (Houayxay)",
        "ຂົວມິດຕະພາບລາວ-ໄທ ແຫ່ງທີ 4",
        "4g",
        270,
        20,
        0.01,
        None,
    ),
    "lpq": (
        "Luang Prabang International Airport",
        "ສະໜາມບິນສາກົນຫຼວງພະບາງ",
        "fibre",
        8,
        1,
        0.001,
        None,
    ),
    "pkz": ("Pakse International Airport", "ສະໜາມບິນສາກົນປາກເຊ", "fibre", 15, 2, 0.002, (20, 0)),
    "dsv": ("Dansavanh Checkpoint", "ດ່ານສາກົນແດນສະຫວັນ", "3g", 120, 40, 0.03, (200, 170)),
    "btn": ("Boten Checkpoint", "ດ່ານສາກົນບໍ່ເຕັນ", "vsat", 600, 30, 0.02, None),
}
SILENT = {"btn": 30}
"""Sites whose agent stopped uploading this many minutes before NOW."""


def config() -> Config:
    """Return the seven posts, each with a gateway ping and a TCP check."""
    sites: dict[str, Any] = {}
    for site_id, (name, name_lo, profile, *_rest) in SITES.items():
        sites[site_id] = {
            "name": name,
            "name_lo": name_lo,
            "link_profile": profile,
            "token": f"token-{site_id}-0123456789abcdef",
            "targets": [
                {
                    "id": "gw-ping",
                    "name": "NCB gateway (ping)",
                    "kind": "icmp",
                    "host": "192.0.2.1",
                    "count": 5,
                    "spacing_s": 0.2,
                },
                {
                    "id": "gw-tcp",
                    "name": "NCB gateway (TCP 443)",
                    "kind": "tcp",
                    "host": "192.0.2.1",
                    "port": 443,
                },
            ],
        }
    return Config.model_validate({"server": {"title": "Linkwatch — NCB Vientiane"}, "sites": sites})


def _rounds(site_id: str, rng: random.Random) -> list[ResultIn]:
    _name, _lo, _profile, rtt_ms, jitter_ms, loss, outage = SITES[site_id]
    silent_for = SILENT.get(site_id, 0)
    out: list[ResultIn] = []
    steps = HOURS * 3600 // STEP_S
    for i in range(steps):
        at = NOW - timedelta(seconds=STEP_S * (steps - i))
        minutes_ago = (NOW - at).total_seconds() / 60
        if minutes_ago < silent_for:
            break
        down = outage is not None and outage[1] <= minutes_ago < outage[0]
        wave = 1 + 0.3 * math.sin(i / 40)
        samples: list[float | None] = []
        for _ in range(5):
            lost = down or rng.random() < loss
            value = max(0.0005, rng.gauss(rtt_ms * wave, jitter_ms / 2)) / 1000
            samples.append(None if lost else value)
        got = [s for s in samples if s is not None]
        status = ProbeStatus.UP if got else ProbeStatus.DOWN
        diffs = [abs(a - b) for a, b in itertools.pairwise(got)]
        out.append(
            ResultIn(
                result_id=str(uuid.uuid4()),
                target_id="gw-ping",
                kind=ProbeKind.ICMP,
                status=status,
                measured_at=at,
                duration_s=1.0,
                rtt_s=sum(got) / len(got) if got else None,
                packet_loss=1 - len(got) / 5,
                jitter_s=sum(diffs) / len(diffs) if diffs else None,
                sent=5,
                received=len(got),
                duplicates=0,
                rtts_s=samples,
                error=None if got else "no echo reply from 192.0.2.1",
            )
        )
        tcp_ok = not down
        out.append(
            ResultIn(
                result_id=str(uuid.uuid4()),
                target_id="gw-tcp",
                kind=ProbeKind.TCP,
                status=ProbeStatus.UP if tcp_ok else ProbeStatus.DOWN,
                measured_at=at,
                duration_s=0.1,
                rtt_s=max(0.0005, rng.gauss(rtt_ms, jitter_ms / 2)) / 1000 if tcp_ok else None,
                error=None if tcp_ok else "connection to 192.0.2.1:443 timed out",
            )
        )
    return out


def seed(url: str) -> Config:
    """Migrate the database at ``url`` and fill it; return the config to serve it with."""
    upgrade(url)
    cfg = config()
    engine = make_engine(url)
    rng = random.Random(6)
    try:
        for site_id in SITES:
            rounds = _rounds(site_id, rng)
            with Session(engine) as session:
                sync_config(session, cfg, NOW)
                for start in range(0, len(rounds), 2000):
                    chunk = rounds[start : start + 2000]
                    sent_at = chunk[-1].measured_at + timedelta(seconds=2)
                    batch = BatchIn(
                        batch_id=str(uuid.uuid4()),
                        site_id=site_id,
                        agent_sent_at=sent_at,
                        results=chunk,
                    )
                    ingest_batch(session, site_id, batch, sent_at)
                session.commit()
        factory = sessionmaker(engine, expire_on_commit=False)
        services = Services(config=cfg, engine=engine, sessions=factory, clock=lambda: NOW)
        evaluator = evaluator_for(services)
        for _ in range(20):
            if evaluator.run_pass().caught_up:
                break
        evaluator.run_pass()  # sites and gateways once every target is caught up
        roll_up_all(factory, cfg, NOW, settle_s=0)
    finally:
        engine.dispose()
    return cfg
