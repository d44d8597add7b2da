"""What every ``linkwatch`` sub-command shares: one-sentence failures, config, database."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import Engine

from monitor.config import Config, ConfigError


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``linkwatch: <message>`` on stderr; return the Exit to raise (2: bad input)."""
    typer.echo(f"linkwatch: {message}", err=True)
    return typer.Exit(code)


def load_config_or_exit(path: Path) -> Config:
    """Load ``path``; on a bad config print every message and exit with status 2."""
    from monitor.config_loader import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.messages:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


def engine_at_head(config: Config) -> Engine:
    """Return an engine on the config's database; exit 1 if its schema is not current."""
    from monitor.storage.db import make_engine
    from monitor.storage.migrate import is_at_head

    engine = make_engine(config.server.database_url, pooled=False)
    if not is_at_head(engine):
        engine.dispose()
        raise fail("the database schema is not current; run 'linkwatch db upgrade' first", 1)
    return engine
