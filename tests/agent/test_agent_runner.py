"""The whole agent: scheduler, spool and uploader together, against a loopback receiver."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agent_testkit import TOKEN, ReceiverState, bound_socket, build_receiver, serve, wait_for

from monitor.agent.runner import default_spool_path, main_agent, run_agent
from monitor.agent.spool import Spool
from monitor.config import AgentConfig, Config, ServerConfig, SiteConfig
from probes.context import ProbeContext
from probes.result import ProbeKind, ProbeResult, ProbeStatus
from probes.specs import DnsTarget, TargetSpec, TcpTarget


def site_config(port: int, **agent: object) -> Config:
    settings: dict[str, object] = {
        "upload_interval_s": 0.05,
        "retry_max_s": 0.1,
        "batch_max_results": 50,
    }
    settings.update(agent)
    return Config(
        server=ServerConfig(host="127.0.0.1", port=port),
        sites={
            "site-a": SiteConfig(
                name="Site A",
                token=TOKEN,
                agent=AgentConfig.model_validate(settings),
                targets=[
                    TcpTarget(
                        id="gw-tcp", host="127.0.0.1", port=port, interval_s=0.05, timeout_s=0.04
                    ),
                    DnsTarget(
                        id="gw-dns",
                        host="127.0.0.1",
                        port=port,
                        query_name="gw.test.",
                        interval_s=0.05,
                        timeout_s=0.04,
                    ),
                ],
            )
        },
    )


async def test_the_agent_keeps_measuring_while_the_server_is_down_and_delivers_all_once(
    tmp_path: Path,
) -> None:
    sock = bound_socket()
    config = site_config(sock.getsockname()[1])
    calls = 0

    async def probe(target: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        nonlocal calls
        calls += 1
        return ProbeResult(
            kind=ProbeKind(target.kind), status=ProbeStatus.DOWN, duration_s=0.0, error="no answer"
        )

    state = ReceiverState()
    stop = asyncio.Event()
    spool_path = tmp_path / "spool.db"
    task = asyncio.create_task(
        run_agent(config, "site-a", spool_path=spool_path, stop=stop, run_probe=probe)
    )
    try:
        await wait_for(lambda: calls >= 30, what="thirty rounds while the server is down")
        assert state.requests == 0
        with serve(build_receiver(state), sock):
            await wait_for(lambda: len(state.stored) >= 30, what="the backlog delivered")
            stop.set()
            await asyncio.wait_for(task, timeout=20)  # drains rounds, final upload
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
    assert len(state.stored) == calls  # every round measured reached the server
    assert state.deliveries == calls  # and none twice
    assert {r.target_id for r in state.stored.values()} == {"gw-tcp", "gw-dns"}
    with Spool(spool_path) as spool:
        assert spool.backlog() == 0
        assert spool.dropped_total == 0


async def test_a_stopped_agent_leaves_unsent_results_in_the_spool_for_the_next_start(
    tmp_path: Path,
) -> None:
    sock = bound_socket()  # never served: every upload is refused
    config = site_config(sock.getsockname()[1])
    calls = 0

    async def probe(target: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        nonlocal calls
        calls += 1
        return ProbeResult(kind=ProbeKind(target.kind), status=ProbeStatus.UP, duration_s=0.0)

    stop = asyncio.Event()
    spool_path = tmp_path / "spool.db"
    task = asyncio.create_task(
        run_agent(config, "site-a", spool_path=spool_path, stop=stop, run_probe=probe)
    )
    await wait_for(lambda: calls >= 10, what="ten rounds")
    stop.set()
    await asyncio.wait_for(task, timeout=20)
    sock.close()
    with Spool(spool_path) as spool:
        assert spool.backlog() == calls


def test_the_default_spool_is_named_after_the_site_in_the_data_dir(tmp_path: Path) -> None:
    config = site_config(9)
    assert default_spool_path(config, "site-a", tmp_path) == tmp_path / "linkwatch-spool-site-a.db"
    assert default_spool_path(config, "site-a") == Path.cwd() / "linkwatch-spool-site-a.db"
    configured = site_config(9, spool_path=str(tmp_path / "x.db"))
    assert default_spool_path(configured, "site-a") == tmp_path / "x.db"


def test_main_agent_runs_real_probes_for_its_duration_and_spools_them(tmp_path: Path) -> None:
    sock = bound_socket()  # loopback port that refuses: real TCP probes get DOWN, uploads fail
    spool_path = tmp_path / "spool.db"
    config = site_config(sock.getsockname()[1], spool_path=str(spool_path))
    try:
        assert main_agent(config, "site-a", duration_s=0.6) == 0
    finally:
        sock.close()
    with Spool(spool_path) as spool:
        results = spool.peek_batch(1000)
    assert {r.target_id for r in results} >= {"gw-tcp"}
    assert all(r.status is not ProbeStatus.UP for r in results if r.target_id == "gw-tcp")


def test_main_agent_reports_an_unset_token_variable_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = site_config(9)
    site = base.sites["site-a"].model_copy(update={"token": None, "token_env": "LW_TEST_UNSET"})
    config = base.model_copy(update={"sites": {"site-a": site}})
    os.environ.pop("LW_TEST_UNSET", None)
    with caplog.at_level(logging.ERROR):
        assert main_agent(config, "site-a", duration_s=0.1, data_dir=tmp_path) == 2
    assert "environment variable LW_TEST_UNSET (token_env) is not set" in caplog.text
    assert "Traceback" not in caplog.text


def test_main_agent_refuses_an_unknown_site(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert main_agent(site_config(9), "nowhere", duration_s=0.1) == 2
    assert "unknown site 'nowhere'" in caplog.text


def test_main_agent_reports_a_spool_in_use_and_exits_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_path = tmp_path / "spool.db"
    config = site_config(9, spool_path=str(spool_path))
    with Spool(spool_path), caplog.at_level(logging.ERROR):
        assert main_agent(config, "site-a", duration_s=0.1) == 1
    assert "in use by another agent process" in caplog.text


def test_main_agent_reads_a_config_file_path(tmp_path: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    (tmp_path / "lw.yaml").write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        "sites:\n"
        "  site-a:\n"
        "    name: Site A\n"
        f"    token: {TOKEN}\n"
        f"    agent: {{spool_path: {tmp_path / 'spool.db'}, upload_interval_s: 0.1}}\n"
        "    targets:\n"
        f"      - {{id: gw-tcp, kind: tcp, host: 127.0.0.1, port: {port}, interval_s: 0.1,"
        " timeout_s: 0.05}\n",
        encoding="utf-8",
    )
    try:
        assert main_agent(tmp_path / "lw.yaml", "site-a", duration_s=0.5) == 0
    finally:
        sock.close()
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.backlog() >= 1


def test_main_agent_reports_a_bad_config_file_by_line_and_exits_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bad.yaml").write_text("sites:\n  site-a:\n    name: A\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert main_agent(tmp_path / "bad.yaml", "site-a", duration_s=0.1) == 2
    assert "bad.yaml:" in caplog.text
    assert "Traceback" not in caplog.text


async def test_results_carry_the_clock_offset_learnt_from_the_server(
    tmp_path: Path,
) -> None:
    state = ReceiverState()
    state.server_time_offset_s = 40.0  # the server's clock is 40 s ahead of ours
    sock = bound_socket()
    config = site_config(sock.getsockname()[1])
    spool_path = tmp_path / "spool.db"

    async def probe(target: TargetSpec, _ctx: ProbeContext) -> ProbeResult:
        return ProbeResult(kind=ProbeKind.TCP, status=ProbeStatus.UP, duration_s=0.001)

    stop = asyncio.Event()
    with serve(build_receiver(state), sock):
        task = asyncio.create_task(
            run_agent(config, "site-a", spool_path=spool_path, stop=stop, run_probe=probe)
        )
        try:
            await wait_for(
                lambda: (
                    sum(1 for r in list(state.stored.values()) if r.clock_offset_s is not None)
                    >= 20
                ),
                what="results stamped with the learnt offset",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=20)
    offsets = [r.clock_offset_s for r in state.stored.values()]
    assert offsets[0] is None  # measured before the first acknowledgement
    stamped = [o for o in offsets if o is not None]
    assert all(abs(o - 40.0) < 2.0 for o in stamped)


def test_the_agent_process_freezes_start_up_objects_and_collects_less_often() -> None:
    # Process-wide, so in a child interpreter: the thresholds are set and start-up's objects
    # are out of the collector's reach; a reference cycle made afterwards is still collected.
    code = (
        "import gc, json, weakref\n"
        "from monitor.agent.runner import AGENT_GC_THRESHOLDS, tune_garbage_collector\n"
        "before = gc.get_threshold()\n"
        "tune_garbage_collector()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "gc.collect()\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(),\n"
        "    'wanted': AGENT_GC_THRESHOLDS, 'frozen': gc.get_freeze_count(),\n"
        "    'cycle_collected': gone() is None}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    seen = json.loads(out)
    assert seen["before"] == [700, 10, 10]
    assert seen["after"] == list(seen["wanted"]) == [20_000, 20, 20]
    assert seen["frozen"] > 10_000  # the imports of the agent's modules
    assert seen["cycle_collected"] is True
