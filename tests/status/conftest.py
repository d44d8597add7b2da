"""Fixtures for the status page tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from status_testkit import World, migrated_world


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """Yield a migrated database (SQLite, then PostgreSQL: ``db_url``) to fill and serve."""
    with migrated_world(db_url) as w:
        yield w
