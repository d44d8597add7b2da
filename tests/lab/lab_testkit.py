"""Helpers of the lab tests: run the probe child inside a namespace, read its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from monitor.lab.lab import Lab

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("lab_child.py")


def child_argv(mode: str, plan: dict[str, Any]) -> list[str]:
    """Return the command running ``lab_child.py MODE PLAN`` with this interpreter."""
    return [sys.executable, str(CHILD), mode, json.dumps(plan)]


def run_child(lab: Lab, where: str, plan: dict[str, Any], timeout_s: float = 60.0) -> Any:
    """Run the probe child inside ``where`` and return its JSON (fails the test on error)."""
    done = lab.exec_in(where, child_argv("probe", plan), timeout_s=timeout_s, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_child(lab: Lab, where: str, mode: str, plan: dict[str, Any]) -> subprocess.Popen[str]:
    """Start ``lab_child.py`` inside ``where``; the caller ends it."""
    return lab.popen_in(
        where,
        child_argv(mode, plan),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """End a child started by :func:`start_child` and reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
