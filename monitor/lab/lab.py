"""The lab: build, inspect, impair, cut and tear down the namespace test network.

``Lab(prefix)`` names everything it makes after ``prefix`` (default ``lw``): the gateway
namespace ``<prefix>-gw``, one namespace per site ``<prefix>-<site>``, the per-namespace
files ``/etc/netns/<prefix>-*/{hosts,resolv.conf}`` and the state directory
``/run/linkwatch-lab/<prefix>/`` (``state.json``, ``truth.jsonl``, ``responder.stats.json``,
``responder.log``). Tests use a prefix of their own so that they never touch a lab a person
(or another test run) has up. Addresses: :mod:`monitor.lab.topology`; the responder and its
truth: :mod:`monitor.lab.responder`, :mod:`monitor.lab.truth`. Every method needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.lab import netns
from monitor.lab.impairment import SITE_ORDER, LabError, LinkImpairment, merge_impairments
from monitor.lab.topology import (
    FALLBACK_METRIC,
    GATEWAY,
    GATEWAY6,
    GATEWAY_ROLE,
    RESOLVER,
    LabSite,
    check_prefix,
    cut_commands,
    gateway_commands,
    gateway_link_commands,
    make_site,
    restore_commands,
    site_commands,
    veth_command,
)
from monitor.lab.truth import TruthRecord, read_truth

STATE_ROOT = Path("/run/linkwatch-lab")
READY_TIMEOUT_S = 15.0
RELOAD_TIMEOUT_S = 5.0

_GATEWAY_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.icmp_echo_ignore_all=1",
    "net.ipv6.icmp.echo_ignore_all=1",
    "net.ipv6.ip_nonlocal_bind=1",
)
_COMMON_SYSCTLS = (
    "net.ipv6.conf.all.keep_addr_on_down=1",
    "net.ipv6.conf.default.keep_addr_on_down=1",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.default.accept_ra=0",
    "net.ipv4.ping_group_range=0 2147483647",
)
_DEFAULT_HOSTS = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost"),
    (GATEWAY, "gateway.lab gateway"),
    (GATEWAY6, "gateway.lab gateway"),
)


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """One site as the kernel shows it now.

    Attributes:
        site: the site's namespace, interfaces and addresses.
        impairment: the impairment in force.
        present: whether its namespace exists.
        cut: ``None`` when the link is whole; ``"link"`` (cut), ``"ipv4"`` or ``"ipv6"``
            (that family blackholed), or ``"ipv4+ipv6"``.
    """

    site: LabSite
    impairment: LinkImpairment
    present: bool
    cut: str | None


@dataclass(frozen=True, slots=True)
class LabStatus:
    """The lab as it is now (read from the kernel and the state directory).

    Attributes:
        prefix: the lab's name prefix.
        up: every namespace exists and the responder is running.
        gateway_namespace: ``<prefix>-gw``.
        gateway_present: whether the gateway namespace exists.
        responder_pid: the responder's process id (``None`` if not recorded).
        responder_alive: whether that process runs.
        sites: each site's state, in index order.
        leftovers: namespaces named ``<prefix>-*`` that the state does not list.
        stats: the responder's last counters (see :mod:`monitor.lab.responder`), or ``None``.
        truth_path: the truth file.
    """

    prefix: str
    up: bool
    gateway_namespace: str
    gateway_present: bool
    responder_pid: int | None
    responder_alive: bool
    sites: tuple[SiteStatus, ...]
    leftovers: tuple[str, ...]
    stats: Mapping[str, Any] | None
    truth_path: Path


@dataclass
class _State:
    prefix: str
    seed: int
    generation: int
    sites: list[tuple[LabSite, LinkImpairment]]
    responder_pid: int | None = None
    files: dict[str, str] = field(default_factory=dict)


class Lab:
    """The namespace test network named by ``prefix`` (see the module docstring).

    Args:
        prefix: 1-8 characters of a-z0-9 starting with a letter; ``lw`` by default.
        state_root: the parent of the state directory.

    Raises:
        ValueError: a bad prefix.
    """

    def __init__(self, prefix: str = "lw", state_root: Path = STATE_ROOT) -> None:
        self.prefix = check_prefix(prefix)
        self.state_dir = state_root / prefix
        self.gateway_namespace = f"{prefix}-{GATEWAY_ROLE}"
        self._process: subprocess.Popen[bytes] | None = None

    # -- files and addresses -----------------------------------------------------------

    @property
    def state_path(self) -> Path:
        """The state file: sites, impairments, seed, responder pid."""
        return self.state_dir / "state.json"

    @property
    def truth_path(self) -> Path:
        """The responder's truth file (:mod:`monitor.lab.truth`)."""
        return self.state_dir / "truth.jsonl"

    @property
    def stats_path(self) -> Path:
        """The responder's counters, rewritten every half second (JSON)."""
        return self.state_dir / "responder.stats.json"

    gateway = GATEWAY
    """The gateway's service address (every site reaches it; the responder answers it)."""
    gateway6 = GATEWAY6
    """The gateway's IPv6 service address."""
    resolver = RESOLVER
    """The address every namespace's resolv.conf names (start a DNS server there to use it)."""

    @property
    def sites(self) -> dict[str, LabSite]:
        """The sites of the lab that is up, by id (empty when no lab is up)."""
        state = self._read_state()
        return {site.id: site for site, _imp in state.sites} if state else {}

    def site(self, site_id: str) -> LabSite:
        """Return one site of the lab that is up.

        Raises:
            LabError: no lab is up or it has no such site.
        """
        state = self._require_state()
        for site, _imp in state.sites:
            if site.id == site_id:
                return site
        known = ", ".join(s.id for s, _i in state.sites)
        raise LabError(f"the lab {self.prefix} has no site {site_id!r}; it has: {known}")

    def namespace(self, where: str) -> str:
        """Return the namespace of ``where``: ``"gw"``, a site id, or a lab namespace name."""
        if where == GATEWAY_ROLE or where == self.gateway_namespace:
            return self.gateway_namespace
        if where.startswith(f"{self.prefix}-"):
            return where
        return self.site(where).namespace

    # -- building ----------------------------------------------------------------------

    def up(
        self,
        impairments: Mapping[str, Mapping[str, Any] | LinkImpairment] | None = None,
        *,
        sites: Sequence[str] | None = None,
        seed: int = 1,
    ) -> LabStatus:
        """Build the lab from scratch (tearing down any lab of this prefix first).

        Args:
            impairments: per-site overrides of the default impairments (SITES.md's table);
                a site id not among the seven adds a site.
            sites: build only these sites (default: all of the seven and any added); a
                site's addresses do not depend on which others are built.
            seed: the seed of the responder's random generators.

        Raises:
            LabError: not root, a bad impairment or site, or a step failed (the lab is then
                torn down again); the sentence says which.
        """
        netns.require_root()
        merged = merge_impairments(impairments)
        order = list(SITE_ORDER) + [s for s in merged if s not in SITE_ORDER]
        chosen = list(sites) if sites is not None else order
        unknown = [s for s in chosen if s not in merged]
        if unknown:
            raise LabError(f"no impairment for site {unknown[0]!r}; known: {', '.join(order)}")
        try:
            built = [(make_site(self.prefix, s, order.index(s) + 1), merged[s]) for s in chosen]
        except ValueError as exc:
            raise LabError(str(exc)) from None
        self.down()
        state = _State(self.prefix, seed, 1, built)
        try:
            self._build(state)
        except BaseException:
            self.down()
            raise
        return self.status()

    def _build(self, state: _State) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.truth_path.write_bytes(b"")
        state.files = {
            "truth": str(self.truth_path),
            "stats": str(self.stats_path),
            "ready": str(self.state_dir / "responder.ready"),
            "log": str(self.state_dir / "responder.log"),
        }
        self._write_state(state)
        sites = [site for site, _imp in state.sites]
        names = [self.gateway_namespace, *(s.namespace for s in sites)]
        netns.batch([f"netns add {name}" for name in names])
        netns.sysctl(self.gateway_namespace, [*_COMMON_SYSCTLS, *_GATEWAY_SYSCTLS])
        for site in sites:
            netns.sysctl(site.namespace, _COMMON_SYSCTLS)
        netns.batch([veth_command(self.gateway_namespace, s) for s in sites])
        netns.batch(gateway_commands(sites), self.gateway_namespace)
        for site in sites:
            netns.batch(site_commands(site), site.namespace)
        for name in names:
            self._write_etc(name, {}, [RESOLVER])
        state.responder_pid = self._start_responder(state)
        self._write_state(state)

    def _start_responder(self, state: _State) -> int:
        ready = Path(state.files["ready"])
        ready.unlink(missing_ok=True)
        with open(state.files["log"], "ab") as log:
            self._process = subprocess.Popen(
                [
                    *self.command_in(GATEWAY_ROLE, [sys.executable, "-m", "monitor.lab.responder"]),
                    str(self.state_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd="/",
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready.exists():
                return self._process.pid
            if self._process.poll() is not None:
                tail = _tail(Path(state.files["log"]))
                raise LabError(f"the lab's echo responder exited at start: {tail}")
            time.sleep(0.02)
        raise LabError(f"the lab's echo responder was not ready within {READY_TIMEOUT_S:g} s")

    def down(self) -> list[str]:
        """Tear the lab down, leftovers of a crash included; return the namespaces removed.

        Ends the responder and every process still running in a ``<prefix>-*`` namespace,
        deletes those namespaces (their veths go with them), any ``<prefix>-*`` veth left in
        the host namespace, ``/etc/netns/<prefix>-*`` and the state directory. Idempotent.

        Raises:
            LabError: not root.
        """
        netns.require_root()
        state = self._read_state()
        if self._process is not None:  # started by this object: end it and reap it
            if self._process.poll() is None:
                self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)
            self._process = None
        if state is not None and _is_responder(state.responder_pid):
            netns.end_processes([state.responder_pid])  # type: ignore[list-item]
        mine = [n for n in netns.list_namespaces() if n.startswith(f"{self.prefix}-")]
        for name in mine:
            netns.end_processes(netns.namespace_pids(name))
        for name in mine:
            netns.ip("netns", "del", name, check=False)
        for link in self._host_leftover_links():
            netns.ip("link", "del", link, check=False)
        if netns.NETNS_ETC.is_dir():
            for folder in netns.NETNS_ETC.glob(f"{self.prefix}-*"):
                shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return mine

    def _host_leftover_links(self) -> list[str]:
        out = netns.ip("-j", "link", "show", "type", "veth", check=False).strip()
        try:
            links = json.loads(out) if out else []
        except ValueError:
            return []
        return [
            str(link["ifname"])
            for link in links
            if str(link.get("ifname", "")).startswith(f"{self.prefix}-")
        ]

    # -- inspecting --------------------------------------------------------------------

    def status(self) -> LabStatus:
        """Return the lab as the kernel and the state directory show it now.

        Raises:
            LabError: not root.
        """
        netns.require_root()
        state = self._read_state()
        present = set(netns.list_namespaces())
        ours = {n for n in present if n.startswith(f"{self.prefix}-")}
        listed = {self.gateway_namespace} if state else set()
        site_states: list[SiteStatus] = []
        gw_present = self.gateway_namespace in present
        links = netns.link_states(self.gateway_namespace) if gw_present else {}
        holes = netns.blackholes(self.gateway_namespace, FALLBACK_METRIC) if gw_present else set()
        for site, impairment in state.sites if state else []:
            listed.add(site.namespace)
            site_states.append(
                SiteStatus(site, impairment, site.namespace in present, _cut(site, links, holes))
            )
        pid = state.responder_pid if state else None
        alive = netns.pid_alive(pid)
        up = state is not None and gw_present and alive and all(s.present for s in site_states)
        return LabStatus(
            prefix=self.prefix,
            up=up,
            gateway_namespace=self.gateway_namespace,
            gateway_present=gw_present,
            responder_pid=pid,
            responder_alive=alive,
            sites=tuple(site_states),
            leftovers=tuple(sorted(ours - listed)),
            stats=self.stats(),
            truth_path=self.truth_path,
        )

    def stats(self) -> dict[str, Any] | None:
        """Return the responder's last counters (requests, answered, drops, ...), or ``None``."""
        try:
            data = json.loads(self.stats_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- impairing ---------------------------------------------------------------------

    def set_impairment(self, site_id: str, impairment: LinkImpairment | Mapping[str, Any]) -> None:
        """Change one site's impairment while the lab runs (the responder reloads).

        Returns once the responder reports the new settings in force; its random generators
        restart from the seed.

        Raises:
            LabError: no lab is up, no such site, a bad value, or the responder did not
                reload within a few seconds.
        """
        state = self._require_state()
        site = self.site(site_id)
        if not isinstance(impairment, LinkImpairment):
            current = dict(state.sites)[site]
            impairment = merge_impairments({site_id: {**current.model_dump(), **impairment}})[
                site_id
            ]
        state.sites = [(s, impairment if s == site else imp) for s, imp in state.sites]
        state.generation += 1
        self._write_state(state)
        if not state.responder_pid or not netns.pid_alive(state.responder_pid):
            raise LabError(f"the lab {self.prefix}'s responder is not running: run lab up again")
        os.kill(state.responder_pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats is not None and stats.get("generation") == state.generation:
                return
            time.sleep(0.02)
        raise LabError(f"the lab's responder did not reload within {RELOAD_TIMEOUT_S:g} s")

    def cut(self, site_id: str, family: int | None = None) -> None:
        """Cut a site's link: whole (``family`` None) or for IPv4 or IPv6 only.

        Whole: the gateway's end of the veth goes down; the site's packets vanish silently
        and nothing reaches it. One family: that family's packets from the site still reach
        the gateway, but nothing comes back (blackhole routes in the gateway).

        Raises:
            LabError: no lab is up, no such site, or ``ip`` failed.
        """
        site = self.site(site_id)
        try:
            lines = cut_commands(site, family)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        netns.batch(lines, self.gateway_namespace)

    def restore(self, site_id: str, family: int | None = None) -> None:
        """Undo :meth:`cut` (for ``family``, or everything when ``None``); idempotent.

        Raises:
            LabError: no lab is up, no such site, or ``ip`` failed.
        """
        site = self.site(site_id)
        try:
            lines = restore_commands(site, family)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        netns.batch(lines, self.gateway_namespace, check=False)
        netns.batch(gateway_link_commands(site), self.gateway_namespace)
        netns.batch(site_commands(site), site.namespace)

    # -- running things inside ---------------------------------------------------------

    def command_in(self, where: str, argv: Sequence[str]) -> list[str]:
        """Return ``argv`` prefixed to run inside ``where`` (``ip netns exec NS ...``).

        ``ip netns exec`` bind-mounts ``/etc/netns/NS/hosts`` and ``resolv.conf`` over
        ``/etc``'s, so the command resolves names only from the lab's files.
        """
        return ["ip", "netns", "exec", self.namespace(where), *argv]

    def exec_in(
        self,
        where: str,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``where`` and wait (text output captured, never raises on rc).

        Raises:
            subprocess.TimeoutExpired: it ran past ``timeout_s`` (it is killed).
        """
        return subprocess.run(
            self.command_in(where, argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )

    def popen_in(self, where: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``where`` and return the process (``Popen`` keywords pass on).

        Processes still running at :meth:`down` are ended by it.
        """
        return subprocess.Popen(self.command_in(where, argv), **kwargs)

    def set_hosts(self, where: str, entries: Mapping[str, Sequence[str]]) -> None:
        """Give ``where`` an /etc/hosts of the lab defaults plus ``{name: [addresses]}``.

        Takes effect for commands started afterwards with :meth:`command_in` (and for
        running ones, as the file is rewritten in place).
        """
        self._write_etc(self.namespace(where), entries, None)

    def set_nameservers(self, where: str, servers: Sequence[str]) -> None:
        """Give ``where`` a resolv.conf naming ``servers`` (1 s timeout, 1 attempt)."""
        self._write_etc(self.namespace(where), None, servers)

    def _write_etc(
        self,
        namespace: str,
        hosts: Mapping[str, Sequence[str]] | None,
        servers: Sequence[str] | None,
    ) -> None:
        folder = netns.NETNS_ETC / namespace
        folder.mkdir(parents=True, exist_ok=True)
        if hosts is not None:
            lines = [f"{addr} {names}" for addr, names in _DEFAULT_HOSTS]
            lines += [f"{addr} {name}" for name, addrs in hosts.items() for addr in addrs]
            _write_in_place(folder / "hosts", "\n".join(lines) + "\n")
        if servers is not None:
            text = "".join(f"nameserver {s}\n" for s in servers) + "options timeout:1 attempts:1\n"
            _write_in_place(folder / "resolv.conf", text)

    # -- truth -------------------------------------------------------------------------

    def truth_offset(self) -> int:
        """Return the truth file's current size: read from here to see only later requests."""
        try:
            return self.truth_path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_truth(self, offset: int = 0) -> tuple[list[TruthRecord], int]:
        """Return the truth records from byte ``offset`` on, and the offset to read next."""
        return read_truth(self.truth_path, offset)

    def wait_truth(
        self, offset: int, count: int, timeout_s: float = 10.0, settle_s: float = 0.15
    ) -> list[TruthRecord]:
        """Return the records from ``offset`` once at least ``count`` are there (or timeout).

        Waits ``settle_s`` more after reaching ``count`` (or at the timeout) and reads again,
        so records decided in the same instant are included. Never raises on timeout: the
        caller compares what it got.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records, _next = read_truth(self.truth_path, offset)
            if len(records) >= count:
                break
            time.sleep(0.05)
        time.sleep(settle_s)
        return read_truth(self.truth_path, offset)[0]

    # -- state -------------------------------------------------------------------------

    def _write_state(self, state: _State) -> None:
        data = {
            "prefix": state.prefix,
            "seed": state.seed,
            "generation": state.generation,
            "responder_pid": state.responder_pid,
            "files": state.files,
            "sites": [
                {"id": s.id, "index": s.index, "impairment": imp.model_dump()}
                for s, imp in state.sites
            ],
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(self.state_path)

    def _read_state(self) -> _State | None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            sites = [
                (
                    make_site(self.prefix, str(e["id"]), int(e["index"])),
                    LinkImpairment.model_validate(e["impairment"]),
                )
                for e in data["sites"]
            ]
            return _State(
                prefix=self.prefix,
                seed=int(data["seed"]),
                generation=int(data.get("generation", 0)),
                sites=sites,
                responder_pid=data.get("responder_pid"),
                files=dict(data.get("files", {})),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _require_state(self) -> _State:
        state = self._read_state()
        if state is None:
            raise LabError(f"no lab {self.prefix} is up: run `linkwatch lab up` first")
        return state


def _cut(site: LabSite, links: Mapping[str, bool], holes: set[str]) -> str | None:
    if not links.get(site.gw_device, False):
        return "link"
    families = []
    if f"{site.address}/32" in holes:
        families.append("ipv4")
    if f"{site.address6}/128" in holes:
        families.append("ipv6")
    return "+".join(families) or None


def _is_responder(pid: int | None) -> bool:
    """Return whether ``pid`` runs this lab's responder (a stale pid may name another process)."""
    if not pid or not netns.pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"monitor.lab.responder" in cmdline


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` keeping its inode (``ip netns exec`` bind-mounts that inode)."""
    with path.open("a+", encoding="utf-8") as fh:
        fh.seek(0)
        fh.truncate()
        fh.write(text)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no message"
