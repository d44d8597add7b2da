"""Fixtures for the /metrics tests; the test kit is shared with tests/status."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "status"))

from status_testkit import World, migrated_world


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """Yield a migrated database (SQLite, then PostgreSQL: ``db_url``) to fill and serve."""
    with migrated_world(db_url) as w:
        yield w
