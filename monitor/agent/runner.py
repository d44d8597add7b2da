"""Run a site's agent: open the ICMP engine and the spool, schedule probes, upload results.

Spool file: ``AgentConfig.spool_path`` when set (a relative path is relative to the working
directory), else ``linkwatch-spool-<site>.db`` in ``data_dir`` (default: the working
directory).

Settings (``AgentConfig``): the spool's bounds (``spool_max_results``, ``spool_max_age_s``),
the upload budget (``upload_budget_bytes_per_hour``), the clock-offset threshold
(``clock_offset_warn_s``) and the local page and ``/metrics`` (``listen``; off by default).

Stopping: SIGINT or SIGTERM (or the ``stop`` event) ends scheduling; rounds in flight get a
few seconds to finish and are spooled; then one final upload runs for at most
``FINAL_UPLOAD_S`` seconds, and the spool is closed. What was not uploaded waits in the
spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.agent.budget import UploadBudget
from monitor.agent.clock import AgentClock, SystemClock
from monitor.agent.scheduler import ProbeRunner, Scheduler
from monitor.agent.spool import Spool, SpoolError
from monitor.agent.status import AgentStatus
from monitor.agent.uploader import Uploader
from monitor.config import Config, ConfigError
from monitor.wire import ResultIn
from probes.context import ProbeContext

if TYPE_CHECKING:
    from monitor.agent.local_http import LocalHttp
    from probes.icmp.engine import IcmpEngine

log = logging.getLogger("linkwatch.agent")

FINAL_UPLOAD_S = 5.0
AGENT_GC_THRESHOLDS = (20_000, 20, 20)
"""Python's collector thresholds in the agent process (the default is ``(700, 10, 10)``)."""


def tune_garbage_collector() -> None:
    """Set the agent process's garbage collection for many short-lived probe objects.

    The ICMP engine keeps a few objects per echo request alive until its timeout (100,000 at
    5,000 targets x 20 requests), and they die by reference counting, not in cycles. With
    the default thresholds Python's cyclic collector ran every 700 allocations and its full
    collections walked every object alive, start-up's included. ``gc.freeze()`` moves what
    start-up allocated (imports, the configuration) out of the collector's reach; the higher
    thresholds make collections rarer. Measured in the lab (``bench/icmp_engine.py``'s
    setting, 6 interleaved runs): 24.9 -> 22.7 us of CPU per probe at 5,000 targets, 25.7 ->
    23.4 at 1,000. Cycles are still collected, a little later. Process-wide: ``linkwatch
    agent`` calls it once at start-up (not :func:`main_agent`, which tests call in-process).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*AGENT_GC_THRESHOLDS)


def default_spool_path(config: Config, site_id: str, data_dir: Path | None = None) -> Path:
    """Return the spool file of ``site_id``: ``agent.spool_path`` if set, else
    ``<data_dir or working dir>/linkwatch-spool-<site>.db``."""
    configured = config.site_agent(site_id).spool_path
    if configured:
        return Path(configured)
    return (data_dir or Path.cwd()) / f"linkwatch-spool-{site_id}.db"


async def open_probe_context() -> tuple[ProbeContext, IcmpEngine | None]:
    """Open the agent-wide ICMP engine; return the probe context and the engine to close.

    When the engine cannot be opened (no ICMP socket permission, no ICMP on this host, any
    OS error) the context carries ``icmp=None`` and the engine's sentence, ICMP targets
    report ERROR with it, one warning is logged, and other probes keep running; the engine
    returned is then ``None``.
    """
    try:
        from probes.icmp.engine import IcmpEngine
        from probes.icmp.errors import IcmpEngineError
    except ImportError as exc:
        return _icmp_disabled(f"the ICMP engine is not available in this build ({exc})")
    try:
        engine = await IcmpEngine.open()
    except (IcmpEngineError, OSError) as exc:
        return _icmp_disabled(str(exc) or type(exc).__name__)
    return ProbeContext(icmp=engine), engine


def _icmp_disabled(reason: str) -> tuple[ProbeContext, None]:
    log.warning("ICMP disabled: %s; other probes keep running", reason)
    return ProbeContext(icmp=None, icmp_error=reason), None


async def run_agent(
    config: Config,
    site_id: str,
    *,
    spool_path: Path | None = None,
    stop: asyncio.Event | None = None,
    clock: AgentClock | None = None,
    run_probe: ProbeRunner | None = None,
    data_dir: Path | None = None,
) -> None:
    """Run the agent of ``site_id`` until ``stop`` is set (or SIGINT/SIGTERM without one).

    Args:
        config: the validated configuration.
        site_id: a key of ``config.sites``.
        spool_path: the spool file; ``None`` means :func:`default_spool_path`.
        stop: set it to stop; ``None`` means one set by SIGINT/SIGTERM.
        clock: the clock seam; ``None`` means the system clock.
        run_probe: the probe runner seam; ``None`` means ``probes.run_probe``.
        data_dir: the folder of the default spool file; ``None`` means the working dir.

    Raises:
        ConfigError: unknown site, or its token cannot be resolved.
        SpoolError: the spool file cannot be opened.
    """
    if site_id not in config.sites:
        raise ConfigError([f"unknown site {site_id!r}; the config has: {', '.join(config.sites)}"])
    token = config.sites[site_id].resolve_token()
    path = spool_path or default_spool_path(config, site_id, data_dir)
    clock = clock or SystemClock()
    stop = stop or _signal_stop()

    settings = config.site_agent(site_id)
    spool = await asyncio.to_thread(
        Spool,
        path,
        max_results=settings.spool_max_results,
        max_age_s=settings.spool_max_age_s,
    )
    try:
        await _run_with_spool(config, site_id, spool, path, token, stop, clock, run_probe)
    finally:
        counts = await asyncio.to_thread(spool.counts)
        await asyncio.to_thread(spool.close)
        log.info(
            "agent for site %s stopped: %d result(s) left in the spool, %d dropped in total",
            site_id,
            counts.backlog,
            counts.dropped_total,
        )


async def _run_with_spool(
    config: Config,
    site_id: str,
    spool: Spool,
    path: Path,
    token: str,
    stop: asyncio.Event,
    clock: AgentClock,
    run_probe: ProbeRunner | None,
) -> None:
    site = config.sites[site_id]
    settings = config.site_agent(site_id)
    ctx, engine = await open_probe_context()
    budget = None
    if settings.upload_budget_bytes_per_hour is not None:
        history = await asyncio.to_thread(spool.recent_uploads)
        budget = UploadBudget(settings.upload_budget_bytes_per_hour, history)
    uploader = Uploader(
        spool,
        site_id=site_id,
        server_url=config.server.agent_url,
        token=token,
        batch_max_results=settings.batch_max_results,
        upload_interval_s=settings.upload_interval_s,
        retry_max_s=settings.retry_max_s,
        upload_timeout_s=settings.upload_timeout_s,
        clock=clock,
        budget=budget,
        clock_offset_warn_s=settings.clock_offset_warn_s,
    )
    status = AgentStatus(
        site_id, site, config.profiles[site.link_profile], settings, spool, uploader, clock.wall
    )
    await asyncio.to_thread(status.load_from_spool)

    def on_result(result: ResultIn) -> None:
        uploader.note_spooled()
        status.observe(result)

    local: LocalHttp | None = None
    try:
        scheduler = Scheduler(
            site_id,
            site.targets,
            spool,
            ctx,
            max_concurrency=settings.max_concurrency,
            run_probe=run_probe,
            clock=clock,
            on_result=on_result,
            clock_offset=lambda: uploader.stats.clock_offset_s,
            site=site,
        )
        status.rounds = lambda target_id: scheduler.stats.targets[target_id].rounds_total
        if settings.listen is not None:  # imported here: uvicorn and Jinja2 only when used
            from monitor.agent.local_http import start_local_http

            local = await start_local_http(settings.listen, status.snapshot)
        log.info(
            "agent for site %s started: %d target(s), spool %s (%d result(s) waiting), server %s",
            site_id,
            len(site.targets),
            path,
            spool.backlog(),
            uploader.url,
        )
        upload_task = asyncio.create_task(uploader.run(stop), name="uploader")
        try:
            await scheduler.run(stop)
        finally:
            stop.set()
            await upload_task
        await uploader.flush(FINAL_UPLOAD_S)
    finally:
        if local is not None:
            await local.stop()
        await uploader.aclose()
        if engine is not None:
            engine.close()


def _signal_stop() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def main_agent(
    config: Config | Path | str,
    site_id: str,
    duration_s: float | None = None,
    *,
    data_dir: Path | None = None,
) -> int:
    """Run the agent from the command line; return the exit code.

    ``config`` is a loaded :class:`Config` or the path of the YAML file. Runs until SIGINT
    or SIGTERM, or for ``duration_s`` seconds. Exit codes: 0 after a clean stop, 2 for a
    configuration problem, 1 when the spool cannot be used. Errors are one sentence on the
    log, never a traceback.
    """
    if isinstance(config, Config):
        loaded = config
    else:
        from monitor.config_loader import load_config

        try:
            loaded = load_config(Path(config))
        except ConfigError as exc:
            for line in exc.messages:
                log.error("%s", line)
            return 2

    # One line per upload from httpx at INFO would drown the agent's own events.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def _main() -> None:
        stop = _signal_stop()
        if duration_s is not None:
            asyncio.get_running_loop().call_later(duration_s, stop.set)
        await run_agent(loaded, site_id, stop=stop, data_dir=data_dir)

    try:
        asyncio.run(_main())
    except ConfigError as exc:
        for line in exc.messages:
            log.error("%s", line)
        return 2
    except SpoolError as exc:
        log.error("%s", exc)
        return 1
    return 0
