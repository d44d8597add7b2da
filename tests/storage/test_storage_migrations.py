"""The alembic migrations create exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from monitor.storage.db import make_engine
from monitor.storage.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    is_at_head,
    upgrade,
)
from monitor.storage.models import Base

TABLES = {"sites", "targets", "results", "batches", "site_agents", "agent_reports"}
TABLES |= {  # issue 6: status page (monitor/storage/models_status.py)
    "rollup_5m",
    "rollup_hour",
    "rollup_day",
    "rollup_progress",
    "availability_day",
    "status_marks",
    "status_users",
    "status_sessions",
}
TABLES |= {  # issue 5: notifications (monitor/storage/models_notify.py)
    "notifications",
    "notification_deliveries",
    "notification_attempts",
    "incident_acknowledgements",
}
TABLES |= {  # issue 5: states and incidents (monitor/storage/models_incidents.py)
    "target_state_periods",
    "target_progress",
    "target_checkpoints",
    "incidents",
    "maintenance_windows",
    "evaluator_cursor",
}


def test_an_empty_database_has_no_revision_and_is_not_at_head(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        assert not is_at_head(engine)
    finally:
        engine.dispose()


def test_upgrade_to_head_creates_exactly_the_models_schema(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert is_at_head(engine)
        assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_upgrade_again_at_head_changes_nothing(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(db_url: str) -> None:
    upgrade(db_url)
    command.downgrade(alembic_config(db_url), "base")
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(engine) is None
        upgrade(db_url)
        assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    finally:
        engine.dispose()


def test_sqlite_engine_uses_wal_foreign_keys_and_a_busy_timeout(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    finally:
        engine.dispose()


def test_a_postgresql_url_without_driver_uses_psycopg() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_db_upgrade_names_a_missing_sqlite_directory_and_creates_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    target = tmp_path / "not-yet" / "var" / "linkwatch.db"
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", f"sqlite:///{target}"])
    assert result.exit_code == 1
    assert f"the directory {target.parent} does not exist" in result.output
    assert "sqlalche.me" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "not-yet").exists()
    made = CliRunner().invoke(app, ["db", "upgrade", "--url", f"sqlite:///{tmp_path / 'ok.db'}"])
    assert made.exit_code == 0, made.output
    assert "database at schema head" in made.output
