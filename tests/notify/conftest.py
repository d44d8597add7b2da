"""Fixtures of the notification tests: a migrated database on one or both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade


@pytest.fixture
def sessions(migrated_engine: Engine) -> sessionmaker[Session]:
    """Return a session factory on the migrated test database (SQLite or PostgreSQL)."""
    return sessionmaker(migrated_engine, expire_on_commit=False)


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Return a session factory on a migrated SQLite file (channel tests need one backend)."""
    url = f"sqlite:///{tmp_path / 'notify.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()
