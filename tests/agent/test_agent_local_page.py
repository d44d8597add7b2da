"""The agent's local page and /metrics, served by a running agent on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from agent_testkit import TOKEN, bound_socket, wait_for

from monitor.agent.runner import run_agent
from monitor.config import AgentConfig, Config, ServerConfig, SiteConfig
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import TargetSpec, TcpTarget

PROMTOOL = "/usr/bin/promtool"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_config(server_port: int, listen: str) -> Config:
    targets: list[TargetSpec] = [
        TcpTarget(
            id="gw-tcp",
            name="Gateway <TCP>",
            host="127.0.0.1",
            port=9,
            interval_s=0.05,
            timeout_s=0.04,
        ),
        TcpTarget(id="gw-web", host="127.0.0.1", port=9, interval_s=0.05, timeout_s=0.04),
    ]
    return Config(
        server=ServerConfig(host="127.0.0.1", port=server_port),
        sites={
            "post-1": SiteConfig(
                name='Post "One" <script>alert(1)</script>',
                token=TOKEN,
                agent=AgentConfig(upload_interval_s=0.05, retry_max_s=0.1, listen=listen),
                targets=targets,
            )
        },
    )


async def probe(target: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
    if target.id == "gw-web":
        return ProbeResult(
            kind=ProbeKind.TCP, status=ProbeStatus.DOWN, duration_s=0.01, error="refused <x>"
        )
    return ProbeResult(kind=ProbeKind.TCP, status=ProbeStatus.UP, duration_s=0.01, rtt_s=0.0123)


async def test_the_local_page_and_metrics_show_the_backlog_while_the_centre_is_down(
    tmp_path: Path,
) -> None:
    server = bound_socket()  # the centre: bound, never listening
    port = free_port()
    config = agent_config(server.getsockname()[1], f"127.0.0.1:{port}")
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_agent(config, "post-1", spool_path=tmp_path / "s.db", stop=stop, run_probe=probe)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def backlog_shown() -> bool:
                try:
                    text = (await client.get(f"{base}/metrics")).text
                except httpx.HTTPError:
                    return False
                return (
                    'linkwatch_agent_upload_failures_total{site="post-1"} 0.0' not in text
                    and 'linkwatch_agent_probe_success{kind="tcp",site="post-1",target="gw-web"}'
                    in text
                )

            for _ in range(500):
                if await backlog_shown():
                    break
                await asyncio.sleep(0.02)
            metrics = await client.get(f"{base}/metrics")
            page = await client.get(f"{base}/")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        server.close()

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=metrics.content, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = metrics.text
    for name in (
        "linkwatch_agent_backlog_results",
        "linkwatch_agent_oldest_unsent_age_seconds",
        'linkwatch_agent_dropped_results_total{reason="spool_full",site="post-1"} 0.0',
        "linkwatch_agent_rejected_results_total",
        'linkwatch_agent_probe_rtt_seconds{kind="tcp",site="post-1",target="gw-tcp"} 0.0123',
        'linkwatch_agent_probe_success{kind="tcp",site="post-1",target="gw-web"} 0.0',
        'linkwatch_agent_target_state{kind="tcp",site="post-1",state="down",target="gw-web"} 1.0',
    ):
        assert name in text, name
    assert "linkwatch_agent_last_upload_timestamp_seconds{" not in text  # never uploaded

    assert page.status_code == 200
    html = page.text
    assert "<script>alert(1)</script>" not in html  # autoescaped
    assert "&lt;script&gt;" in html
    assert "Gateway &lt;TCP&gt;" in html and "refused &lt;x&gt;" in html
    assert "The centre cannot be reached" in html
    assert "Waiting to be sent" in html
    assert "http://" not in html.split("server", 1)[0]  # no external assets before content
    assert "<link" not in html and "src=" not in html


async def test_a_busy_listen_address_is_one_error_and_the_agent_keeps_measuring(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = bound_socket()
    taken.listen(1)
    host, port = taken.getsockname()[:2]
    server = bound_socket()
    config = agent_config(server.getsockname()[1], f"{host}:{port}")
    stop = asyncio.Event()
    spool_path = tmp_path / "s.db"
    rounds: list[str] = []

    async def counting(target: TargetSpec, ctx: ProbeContext) -> ProbeResult:
        rounds.append(target.id)
        return await probe(target, ctx)

    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(
            run_agent(config, "post-1", spool_path=spool_path, stop=stop, run_probe=counting)
        )
        try:
            await wait_for(lambda: len(rounds) >= 10, what="rounds without the page")
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=20)
            taken.close()
            server.close()
    assert "cannot serve the local page" in caplog.text and "agent.listen" in caplog.text
