"""``linkwatch demo``: the whole product on one machine, on loopback targets, with SQLite.

Starts a DNS responder (in this process), the server and one agent per site of
``examples/lao-border.yaml`` (separate processes, the same commands an operator runs), prints
the status-page URL, and runs until stopped or for ``--duration`` seconds.

Every target is on loopback: ICMP to 127.0.0.0/8 addresses, TCP and HTTP to the server's own
port, DNS to the responder. The responder delays each site's answer by that site's assumed
link RTT (docs/sites.md), so the status page shows a fibre post and a satellite post side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

from monitor.config import Config, ConfigError

log = logging.getLogger("linkwatch.demo")

REPO_ROOT = Path(__file__).resolve().parents[1]
SITES_FILE = REPO_ROOT / "examples" / "lao-border.yaml"
DEMO_ZONE = "demo.linkwatch."
# Assumed one-way-and-back delays for the DNS answer, by link profile (docs/sites.md, rounded).
PROFILE_DELAY_S = {"lan": 0.001, "fibre": 0.012, "4g": 0.045, "3g": 0.12, "vsat": 0.6}


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def demo_config(sites: Config, *, port: int, dns_port: int, data_dir: Path) -> dict[str, Any]:
    """Build the demo's configuration (as plain data) from the example sites.

    Names, Lao names, regions, time zones and link profiles come from the example file;
    tokens are fresh random ones; every target is on loopback.
    """
    data_dir = data_dir.resolve()
    out_sites: dict[str, Any] = {}
    for i, (site_id, site) in enumerate(sites.sites.items()):
        entry: dict[str, Any] = {
            "name": site.name,
            "link_profile": site.link_profile,
            "token": secrets.token_urlsafe(24),
            "agent": {
                "spool_path": str(data_dir / f"spool-{site_id}.db"),
                "upload_interval_s": 2.0,
            },
            "targets": [
                {
                    "id": "gw-icmp",
                    "name": "Gateway ICMP",
                    "kind": "icmp",
                    "host": f"127.0.0.{10 + i}",
                    "count": 5,
                    "spacing_s": 0.2,
                    "timeout_s": 1.0,
                    "interval_s": 10.0,
                },
                {
                    "id": "gw-tcp",
                    "name": "Gateway TCP",
                    "kind": "tcp",
                    "host": "127.0.0.1",
                    "port": port,
                    "interval_s": 5.0,
                    "timeout_s": 2.0,
                },
                {
                    "id": "gw-http",
                    "name": "Gateway HTTP",
                    "kind": "http",
                    "url": f"http://127.0.0.1:{port}/healthz",
                    "keyword": "ok",
                    "interval_s": 5.0,
                    "timeout_s": 3.0,
                },
                {
                    "id": "gw-dns",
                    "name": "Gateway DNS",
                    "kind": "dns",
                    "host": "127.0.0.1",
                    "port": dns_port,
                    "query_name": f"{site_id}.gw.{DEMO_ZONE}",
                    "interval_s": 5.0,
                    "timeout_s": 3.0,
                },
            ],
        }
        for key in ("name_lo", "region", "time_zone"):
            value = getattr(site, key)
            if value is not None:
                entry[key] = value
        out_sites[site_id] = entry
    return {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "database_url": f"sqlite:///{data_dir / 'linkwatch.db'}",
            "time_zone": sites.server.time_zone,
            "site_silent_after_s": 30.0,
            "title": "Linkwatch demo — NCB Vientiane",
        },
        "link_profiles": {
            k: v.model_dump(exclude_none=True) for k, v in sites.link_profiles.items()
        },
        "sites": out_sites,
    }


class _ResponderThread:
    """The demo's DNS responder, on its own event loop in a daemon thread."""

    def __init__(self, zone: dict[str, list[tuple[str, str]]], delays: dict[str, float]) -> None:
        from monitor.dns_responder import DnsResponder

        self._responder = DnsResponder(zone=zone, delays=delays)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> int:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._responder.start("127.0.0.1", 0), self._loop)
        _host, self.port = fut.result(timeout=10)
        return self.port

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._responder.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _icmp_problem() -> str | None:
    """Return why ICMP cannot be used here, or None when it can."""
    from probes.icmp.engine import IcmpEngine
    from probes.icmp.errors import IcmpEngineError

    async def probe_open() -> str | None:
        try:
            engine = await IcmpEngine.open()
        except IcmpEngineError as exc:
            return str(exc)
        engine.close()
        return None

    return asyncio.run(probe_open())


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        # Agents first (they flush a last upload on SIGTERM), the server last.
        for group in (procs[1:], procs[:1]):
            for p in group:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for p in group:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def run_demo(*, duration_s: float | None, port: int, data_dir: Path) -> int:
    """Run the demo; return the exit code (0 after a clean stop, 1/2 on a failure)."""
    from monitor.config_loader import load_config
    from monitor.storage.migrate import upgrade

    if not _port_free("127.0.0.1", port):
        print(
            f"linkwatch: --port: 127.0.0.1:{port} is in use; choose another port", file=sys.stderr
        )
        return 2
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"linkwatch: --data-dir: cannot create {data_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)

    example = load_config(SITES_FILE)
    zone = {f"{site_id}.gw.{DEMO_ZONE}": [("A", "127.0.0.1")] for site_id in example.sites}
    delays = {
        f"{site_id}.gw.{DEMO_ZONE}": PROFILE_DELAY_S.get(site.link_profile, 0.01)
        for site_id, site in example.sites.items()
    }
    responder = _ResponderThread(zone, delays)
    dns_port = responder.start()

    config_path = data_dir / "demo.yaml"
    yaml = YAML()
    yaml.default_flow_style = False
    with config_path.open("w", encoding="utf-8") as fh:
        fh.write("# Written by `linkwatch demo`; regenerated at every start.\n")
        yaml.dump(demo_config(example, port=port, dns_port=dns_port, data_dir=data_dir), fh)
    try:
        config = load_config(config_path)
    except ConfigError as exc:  # a bug in the demo itself: say so plainly
        print(
            "linkwatch: the demo wrote an invalid config:", *exc.messages, sep="\n", file=sys.stderr
        )
        responder.stop()
        return 1
    upgrade(config.server.database_url)

    icmp_problem = _icmp_problem()
    if icmp_problem:
        print(f"ICMP disabled: {icmp_problem}\nTCP, HTTP and DNS probes keep running.")

    # The handler only sets a flag: threading.Event.set() takes a lock the interrupted main
    # thread may hold (inside Event.wait), and a second signal then deadlocked the demo.
    stop_signals: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop_signals.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)

    cmd = [sys.executable, "-m", "monitor"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    url = f"http://127.0.0.1:{port}/"
    try:
        with _processes() as procs:
            server_log = (logs / "server.log").open("ab")
            procs.append(
                subprocess.Popen(
                    [*cmd, "server", "--config", str(config_path)],
                    stdout=server_log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            if not _wait_ready(f"{url}readyz", procs[0], timeout_s=30):
                print(
                    f"linkwatch: the server did not start; see {logs / 'server.log'}",
                    file=sys.stderr,
                )
                return 1
            for site_id in config.sites:
                agent_log = (logs / f"agent-{site_id}.log").open("ab")
                procs.append(
                    subprocess.Popen(
                        [*cmd, "agent", "--config", str(config_path), "--site", site_id],
                        stdout=agent_log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                )
            print(f"Linkwatch demo: {len(config.sites)} sites, server at {url}")
            print(f"Status page: {url}   metrics: {url}metrics   API: {url}api/v1/sites")
            print(f"Data, config and logs in {data_dir.resolve()}. Stop with Ctrl-C.")
            started = time.monotonic()
            next_report = started + 10
            while not stop_signals:
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    print(f"linkwatch: a demo process exited early; see {logs}", file=sys.stderr)
                    return 1
                if time.monotonic() >= next_report:
                    _report(url)
                    next_report += 10
                time.sleep(0.5)  # the loop sees a signal within 0.5 s
            print("Stopping the agents and the server...")
    finally:
        responder.stop()
    _report(url, final=True, config=config)
    return 0


def _wait_ready(url: str, proc: subprocess.Popen[bytes], *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def _report(url: str, *, final: bool = False, config: Config | None = None) -> None:
    """Print one line of progress (or, at the end, the per-site counts from the database)."""
    if final and config is not None:
        from sqlalchemy import func, select

        from monitor.storage.db import make_engine
        from monitor.storage.models import Result

        engine = make_engine(config.server.database_url)
        with engine.connect() as conn:
            rows = dict(
                conn.execute(select(Result.site_id, func.count()).group_by(Result.site_id)).all()
            )
        engine.dispose()
        print(
            "Results stored per site: " + ", ".join(f"{s} {rows.get(s, 0)}" for s in config.sites)
        )
        return
    with contextlib.suppress(httpx.HTTPError, ValueError):
        latest = httpx.get(f"{url}api/v1/latest", timeout=2).json()
        items = latest if isinstance(latest, list) else latest.get("results", [])
        sites = {r.get("site_id") for r in items}
        print(f"{len(items)} targets reporting from {len(sites)} sites")
