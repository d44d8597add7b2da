"""Helpers of the browser tests: viewport sizes and screenshots as test artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Where screenshots go (``test-artifacts/`` at the repository root; git ignores it)."""

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/<name>.png``; return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Server:
    """The running app: its base URL and the FastAPI app (for test seams on app.state)."""

    url: str
    app: Any


@dataclass
class Requests:
    """Every URL the browser asked for; those not on 127.0.0.1 were refused."""

    seen: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
