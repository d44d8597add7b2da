"""States and incidents: state periods, evaluator progress, incidents, maintenance windows.

Revision ID: 0003
Revises: 0002

Types are spelled out (not imported from the models) so this revision keeps creating the
same schema when the models move on; names follow models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables of monitor.storage.models_incidents."""
    op.create_table(
        "target_state_periods",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("start_at", _INSTANT, nullable=False),
        sa.Column("end_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_state_periods")),
    )
    op.create_index(
        "ix_target_state_periods_site_target_start",
        "target_state_periods",
        ["site_id", "target_id", "start_at"],
    )
    op.create_table(
        "target_progress",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("last_at", _INSTANT, nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("max_seq", sa.BigInteger(), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("behind", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("site_id", "target_id", name=op.f("pk_target_progress")),
    )
    op.create_table(
        "target_checkpoints",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", _INSTANT, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "target_id", "bucket", name=op.f("pk_target_checkpoints")
        ),
    )
    op.create_table(
        "incidents",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=63), nullable=True),
        sa.Column("gateway", sa.String(length=255), nullable=True),
        sa.Column("open_key", sa.String(length=400), nullable=True),
        sa.Column("started_at", _INSTANT, nullable=False),
        sa.Column("ended_at", _INSTANT, nullable=True),
        sa.Column("confirmed_at", _INSTANT, nullable=True),
        sa.Column("detected_at", _INSTANT, nullable=False),
        sa.Column("closed_at", _INSTANT, nullable=True),
        sa.Column("down_notified_at", _INSTANT, nullable=True),
        sa.Column("recovery_notified_at", _INSTANT, nullable=True),
        sa.Column("suppressed", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("open_key", name=op.f("uq_incidents_open_key")),
    )
    op.create_index(
        "ix_incidents_site_target_start", "incidents", ["site_id", "target_id", "started_at"]
    )
    op.create_index("ix_incidents_started_at", "incidents", ["started_at"])
    op.create_index("ix_incidents_ended_at", "incidents", ["ended_at"])
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=63), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("repeat", sa.String(length=16), nullable=False),
        sa.Column("start_local", sa.String(length=19), nullable=False),
        sa.Column("end_local", sa.String(length=19), nullable=False),
        sa.Column("until_local", sa.String(length=10), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    op.create_table(
        "evaluator_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("low_id", sa.BigInteger(), nullable=False),
        sa.Column("pass_token", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_evaluator_cursor")),
    )


def downgrade() -> None:
    """Drop the tables of monitor.storage.models_incidents."""
    op.drop_table("evaluator_cursor")
    op.drop_table("maintenance_windows")
    op.drop_index("ix_incidents_ended_at", table_name="incidents")
    op.drop_index("ix_incidents_started_at", table_name="incidents")
    op.drop_index("ix_incidents_site_target_start", table_name="incidents")
    op.drop_table("incidents")
    op.drop_table("target_checkpoints")
    op.drop_table("target_progress")
    op.drop_index("ix_target_state_periods_site_target_start", table_name="target_state_periods")
    op.drop_table("target_state_periods")
