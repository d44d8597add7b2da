"""Run the alembic migrations programmatically, and tell whether a database is at the head.

The migration scripts live in the repository's ``alembic/`` folder (the project is installed
editable); the schema is created and changed only through them.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(url: str | None = None) -> AlembicConfig:
    """Return an alembic config for our scripts; ``url`` (if given) is the database to migrate.

    The URL travels in ``attributes`` rather than the ini option, so a ``%`` in a password
    is not taken for ini interpolation.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest), in one transaction.

    Creates the schema on an empty database. Raises whatever the driver or alembic raise
    (``sqlalchemy.exc.OperationalError`` when the database does not answer); on failure the
    transaction is rolled back, so the schema is left as it was.
    """
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """Return the newest revision id of our migration scripts.

    Raises RuntimeError if the scripts have more than one head (a merge is missing).
    """
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migration scripts have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """Return the database's revision id; ``None`` for a database never migrated.

    Raises ``sqlalchemy.exc.OperationalError`` when the database does not answer.
    """
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    """Return whether the database's schema is at the newest revision.

    Raises ``sqlalchemy.exc.OperationalError`` when the database does not answer.
    """
    return current_revision(engine) == head_revision()
