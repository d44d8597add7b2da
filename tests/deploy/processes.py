"""Start and stop real Linkwatch processes (``python -m monitor ...``) for the deploy tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as the YAML file ``path``; return it."""
    with path.open("w", encoding="utf-8") as fh:
        YAML().dump(data, fh)
    return path


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m monitor ARGS`` with stdout and stderr into ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    """Wait until ``url`` answers at all (any status); fail with the log if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout_s} s:\n{log.read_text()}")


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> int:
    """Send SIGTERM and return the exit code (killed, and 'killed' asserted, after a timeout)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"no exit within {timeout_s} s of SIGTERM") from None
