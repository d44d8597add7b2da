"""What the app factory wires and every route reads from ``request.app.state.services``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config


def utc_now() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything a request handler needs; built once per app, never at import time.

    Attributes:
        config: the validated configuration.
        engine: the SQLAlchemy engine (SQLite or PostgreSQL).
        sessions: a session factory bound to ``engine``.
        clock: returns "now" as an aware UTC datetime; tests replace it.
    """

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = utc_now
