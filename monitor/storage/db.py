"""Engines for the two supported backends: SQLite (one file, WAL) and PostgreSQL (psycopg 3).

Nothing here runs at import time; the app factory, the CLI and the tests call
:func:`make_engine` and own (and dispose) what it returns.

SQLite notes. The ``sqlite3`` module's legacy transaction handling does not emit ``BEGIN``
before a ``SELECT``, so a read-then-write transaction is neither repeatable nor safe under
concurrent writers (SQLite answers ``SQLITE_BUSY`` at once, without waiting, when a
transaction that read tries to write after another connection wrote). Following the
SQLAlchemy SQLite documentation ("Enabling Non-Legacy SQLite Transactional Modes"), the
engine takes over: the driver is put in autocommit and SQLAlchemy emits ``BEGIN IMMEDIATE``
at the start of every transaction, which takes the write lock up front (waiting up to
``busy_timeout``). Read paths that never write may use :func:`read_only`, whose
transactions start with a plain (deferred) ``BEGIN`` and so run beside a writer (WAL).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, StaticPool

SQLITE_BUSY_TIMEOUT_S = 10.0
"""How long a SQLite connection waits for another writer's lock before failing, seconds."""

SQLITE_BEGIN_OPTION = "linkwatch_sqlite_begin"
"""Execution option naming the SQLite ``BEGIN`` mode: ``"IMMEDIATE"`` (default) or
``"DEFERRED"``; ignored on PostgreSQL."""

_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


def normalize_url(url: str) -> URL:
    """Parse ``url`` and pick our driver: ``postgresql://`` / ``postgres://`` become psycopg 3.

    Raises ``sqlalchemy.exc.ArgumentError`` when ``url`` is not a database URL.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, *, sqlite_foreign_keys: bool = True, pooled: bool = True) -> Engine:
    """Return an engine for ``url`` (SQLite or PostgreSQL), configured for this project.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///path.db`` (relative to the working directory),
            ``sqlite://`` (in memory, one shared connection), ``postgresql://...`` (rewritten
            to ``postgresql+psycopg://``) or ``postgresql+psycopg://...``.
        sqlite_foreign_keys: turn on SQLite's foreign key enforcement on each connection.
            Migrations turn it off, since SQLite "batch" table rebuilds must not cascade.
        pooled: keep connections in a pool; ``False`` opens one per use (migrations, CLI).

    Every SQLite connection gets ``journal_mode=WAL``, ``busy_timeout`` (see
    :data:`SQLITE_BUSY_TIMEOUT_S`) and ``foreign_keys``; transactions begin as described in
    the module docstring. Nothing is connected until the engine is first used.
    """
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        in_memory = parsed.database in (None, "", ":memory:")
        if in_memory:
            kwargs["poolclass"] = StaticPool
        elif not pooled:
            kwargs["poolclass"] = NullPool
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_hooks(engine, foreign_keys=sqlite_foreign_keys)
        return engine
    if not pooled:
        kwargs["poolclass"] = NullPool
    else:
        kwargs["pool_pre_ping"] = True
    return create_engine(parsed, **kwargs)


def read_only(engine: Engine) -> Engine:
    """Return a view of ``engine`` for transactions that only read.

    On SQLite its transactions begin ``DEFERRED`` (no write lock, so they run beside a
    writer); on PostgreSQL it is the same engine. The view shares ``engine``'s pool.
    """
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


def _install_sqlite_hooks(engine: Engine, *, foreign_keys: bool) -> None:
    busy_ms = int(SQLITE_BUSY_TIMEOUT_S * 1000)
    fk = "ON" if foreign_keys else "OFF"

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver must not open transactions itself; on_begin does (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA foreign_keys = {fk}")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")).upper()
        if mode not in _BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be one of {sorted(_BEGIN_MODES)}")
        conn.exec_driver_sql(f"BEGIN {mode}")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
