"""Run ``ip`` and ``sysctl`` for the lab; every failure becomes one :class:`LabError` sentence."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.lab.impairment import LabError

IP_TIMEOUT_S = 20.0
NETNS_ETC = Path("/etc/netns")


def require_root() -> None:
    """Raise :class:`LabError` unless this process may build network namespaces.

    Raises:
        LabError: not root, or the ``ip`` command (iproute2) is missing.
    """
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (it creates network namespaces and raw sockets): "
            "run it with sudo or as root"
        )
    if shutil.which("ip") is None:
        raise LabError("the lab needs the ip command (iproute2), which is not installed")


def ip(*args: str, check: bool = True, input_text: str | None = None) -> str:
    """Run ``ip ARGS`` and return its standard output.

    Raises:
        LabError: it failed (``check``) or did not finish in :data:`IP_TIMEOUT_S`.
    """
    try:
        done = subprocess.run(
            ["ip", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=IP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"ip {' '.join(args[:4])} did not finish in {IP_TIMEOUT_S:g} s") from None
    if check and done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"ip {' '.join(args[:6])} failed: {why[-1] if why else 'no message'}")
    return done.stdout


def batch(lines: Sequence[str], namespace: str | None = None, *, check: bool = True) -> None:
    """Run ``lines`` with one ``ip [-n NAMESPACE] -batch -`` process.

    Raises:
        LabError: a line failed (``check``: the sentence quotes ip's message).
    """
    if not lines:
        return
    where = ["-n", namespace] if namespace else []
    extra = [] if check else ["-force"]
    ip(*where, *extra, "-batch", "-", check=check, input_text="\n".join(lines) + "\n")


def sysctl(namespace: str, settings: Sequence[str], *, check: bool = True) -> None:
    """Set ``key=value`` sysctls inside ``namespace`` (they are per network namespace).

    Raises:
        LabError: ``check`` and a setting was refused.
    """
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, "sysctl", "-qw", *settings],
            capture_output=True,
            text=True,
            timeout=IP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"sysctl in {namespace} did not finish in {IP_TIMEOUT_S:g} s") from None
    if check and done.returncode != 0:
        raise LabError(f"sysctl in {namespace} failed: {done.stderr.strip()}")


def list_namespaces() -> list[str]:
    """Return the names of the host's named network namespaces (``ip netns list``)."""
    out = ip("-j", "netns", "list", check=False).strip()
    if not out:
        return []
    try:
        return [str(entry["name"]) for entry in json.loads(out)]
    except (ValueError, KeyError, TypeError):
        return [line.split()[0] for line in out.splitlines() if line.strip()]


def namespace_pids(namespace: str) -> list[int]:
    """Return the ids of the processes running inside ``namespace``."""
    out = ip("netns", "pids", namespace, check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def end_processes(pids: Sequence[int], grace_s: float = 3.0) -> None:
    """Send SIGTERM to each live process id, wait up to ``grace_s``, then SIGKILL the rest.

    A zombie (ended, not yet reaped by its parent) counts as ended.
    """
    alive = [pid for pid in pids if pid_alive(pid) and _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [pid for pid in alive if pid_alive(pid)]
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def pid_alive(pid: int | None) -> bool:
    """Return whether process ``pid`` exists and is not a zombie."""
    if not pid or not _exists(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def link_states(namespace: str) -> dict[str, bool]:
    """Return ``{interface: administratively up}`` for the links of ``namespace``."""
    out = ip("-n", namespace, "-j", "link", "show", check=False).strip()
    try:
        links = json.loads(out) if out else []
    except ValueError:
        return {}
    return {str(link["ifname"]): "UP" in link.get("flags", []) for link in links}


def blackholes(namespace: str, ignore_metric: int | None = None) -> set[str]:
    """Return the destinations of blackhole routes (IPv4 and IPv6) in ``namespace``.

    Routes of metric ``ignore_metric`` are left out.
    """
    found: set[str] = set()
    for family in ("-4", "-6"):
        out = ip("-n", namespace, family, "-j", "route", "show", "type", "blackhole", check=False)
        try:
            routes = json.loads(out) if out.strip() else []
        except ValueError:
            continue
        for route in routes:
            if ignore_metric is not None and int(route.get("metric", 0)) == ignore_metric:
                continue
            dst = str(route.get("dst", ""))
            found.add(dst if "/" in dst else f"{dst}/{'32' if family == '-4' else '128'}")
    return found


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
