"""Alembic environment: migrate a Linkwatch database (SQLite or PostgreSQL) to a revision.

The database URL is taken, first found wins, from ``config.attributes["url"]`` (set by
:func:`monitor.storage.migrate.upgrade`; not subject to ini ``%`` interpolation), from
``-x url=...`` on the alembic command line, or from the ini's ``sqlalchemy.url``.

On SQLite, migrations run with foreign key enforcement off (a "batch" table rebuild drops
and recreates tables, which must not cascade), inside one transaction (the engine emits
``BEGIN``, so SQLite DDL is transactional), and end with ``PRAGMA foreign_key_check``.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import text

from monitor.storage.db import make_engine, normalize_url
from monitor.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("url")
    if not url:
        url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database URL: pass -x url=... to alembic, or use `linkwatch db upgrade`"
        )
    return str(url)


def run_migrations_offline() -> None:
    """Write the migration SQL to stdout (``alembic upgrade head --sql``)."""
    url = normalize_url(_database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Connect and migrate, in one transaction on both backends."""
    engine = make_engine(_database_url(), sqlite_foreign_keys=False, pooled=False)
    is_sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=is_sqlite,
                transactional_ddl=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if is_sqlite:
                    broken = connection.execute(text("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(
                            f"migration left {len(broken)} row(s) breaking a foreign key, "
                            f"first: {tuple(broken[0])}; nothing was changed"
                        )
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
