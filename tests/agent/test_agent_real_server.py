"""The agent against the real Linkwatch server app (uvicorn on 127.0.0.1, migrated SQLite)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from agent_testkit import TOKEN, bound_socket, serve, wait_for
from sqlalchemy import create_engine, func, select

from api.app import create_app
from monitor.agent.runner import run_agent
from monitor.agent.spool import Spool
from monitor.config import AgentConfig, Config, ServerConfig, SiteConfig
from monitor.storage.migrate import upgrade
from monitor.storage.models import Result
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TargetSpec, TcpTarget


def configs(port: int, db_url: str) -> tuple[Config, Config]:
    """Return (server's config, agent's config); the agent has one target the server lacks."""

    def target(target_id: str) -> TcpTarget:
        return TcpTarget(id=target_id, host="127.0.0.1", port=port, interval_s=0.05, timeout_s=0.04)

    def config(targets: list[TargetSpec]) -> Config:
        return Config(
            server=ServerConfig(host="127.0.0.1", port=port, database_url=db_url),
            sites={
                "site-a": SiteConfig(
                    name="Site A",
                    token=TOKEN,
                    agent=AgentConfig(
                        upload_interval_s=0.05, retry_max_s=0.1, batch_max_results=40
                    ),
                    targets=targets,
                ),
                "site-b": SiteConfig(
                    name="Site B", token="other-site-token-0000", targets=[target("gw-tcp")]
                ),
            },
        )

    return config([target("gw-tcp"), target("gw-web")]), config(
        [target("gw-tcp"), target("gw-web"), target("new-target")]
    )


def count_results(db_url: str) -> tuple[int, int, dict[str, int]]:
    """Return (rows, distinct result ids, rows by target) in the server's database."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(Result)).scalar_one()
            distinct = conn.execute(
                select(func.count(func.distinct(Result.result_id)))
            ).scalar_one()
            grouped = conn.execute(
                select(Result.target_id, func.count()).group_by(Result.target_id)
            )
            by_target = {str(t): int(n) for t, n in grouped}
    finally:
        engine.dispose()
    return rows, distinct, by_target


async def test_the_real_server_gets_every_result_once_after_an_outage_and_unknown_targets_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(db_url)
    sock = bound_socket()
    server_config, agent_config = configs(sock.getsockname()[1], db_url)
    calls: dict[str, int] = {}

    async def probe(target: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        calls[target.id] = calls.get(target.id, 0) + 1
        return ProbeResult(kind=ProbeKind.TCP, status=ProbeStatus.UP, duration_s=0.001, rtt_s=0.001)

    stop = asyncio.Event()
    spool_path = tmp_path / "spool.db"
    task = asyncio.create_task(
        run_agent(agent_config, "site-a", spool_path=spool_path, stop=stop, run_probe=probe)
    )
    try:
        await wait_for(lambda: sum(calls.values()) >= 60, what="rounds while the server is down")
        with caplog.at_level(logging.ERROR), serve(create_app(server_config), sock, lifespan=True):
            await wait_for(
                lambda: count_results(db_url)[0] >= 60, what="the backlog stored by the server"
            )
            stop.set()
            await asyncio.wait_for(task, timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)

    rows, distinct, by_target = count_results(db_url)
    assert rows == distinct  # nothing stored twice
    assert by_target == {"gw-tcp": calls["gw-tcp"], "gw-web": calls["gw-web"]}
    with Spool(spool_path) as spool:
        counts = spool.counts()
        assert counts.backlog == 0
        assert counts.dropped_total == 0
        # The server does not know new-target: its results are kept aside, with the reason.
        assert counts.rejected_waiting == calls["new-target"]
        reasons = {reason for _, reason in spool.rejected_reasons(1000)}
    assert len(reasons) >= 1
    assert all("has no target 'new-target'" in r for r in reasons)
    assert "moved to the spool's rejected table" in caplog.text
