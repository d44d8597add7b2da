"""Status page: rollups (5 min, hour, day), availability-day cache, users and sessions.

Revision ID: 0005
Revises: 0004

Types are spelled out here (not imported from monitor.storage.models_status) so this
revision keeps creating the same schema when the models move on. Also adds the index
``ix_results_received_at`` on ``results (received_at, id)``, which the rollups read by.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ROLLUP_TABLES = ("rollup_5m", "rollup_hour", "rollup_day")


def _target_rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("bucket_start", _INSTANT, nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("rtt_samples", sa.Integer(), nullable=False),
        sa.Column("rtt_sum_s", sa.Float(), nullable=False),
        sa.Column("rtt_min_s", sa.Float(), nullable=True),
        sa.Column("rtt_p10_s", sa.Float(), nullable=True),
        sa.Column("rtt_p50_s", sa.Float(), nullable=True),
        sa.Column("rtt_p90_s", sa.Float(), nullable=True),
        sa.Column("rtt_max_s", sa.Float(), nullable=True),
        sa.Column("jitter_rounds", sa.Integer(), nullable=False),
        sa.Column("jitter_sum_s", sa.Float(), nullable=False),
        sa.Column("sketch", sa.JSON(), nullable=False),
        sa.Column("first_measured_at", _INSTANT, nullable=False),
        sa.Column("last_measured_at", _INSTANT, nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("site_id", "target_id", "bucket_start", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_bucket_start", name, ["bucket_start"])


def upgrade() -> None:
    """Create the status page's tables and the results' received_at index."""
    for name in _ROLLUP_TABLES:
        _target_rollup(name)
    op.create_table(
        "rollup_progress",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("received_at", _INSTANT, nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_progress")),
    )
    op.create_table(
        "availability_day",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("start_at", _INSTANT, nullable=False),
        sa.Column("end_at", _INSTANT, nullable=False),
        sa.Column("up_s", sa.Float(), nullable=False),
        sa.Column("degraded_s", sa.Float(), nullable=False),
        sa.Column("down_s", sa.Float(), nullable=False),
        sa.Column("unknown_s", sa.Float(), nullable=False),
        sa.Column("maintenance_s", sa.Float(), nullable=False),
        sa.Column("stale_until", _INSTANT, nullable=True),
        sa.Column("computed_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "target_id", "local_date", name=op.f("pk_availability_day")
        ),
    )
    op.create_table(
        "status_marks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_status_marks")),
    )
    op.create_table(
        "status_users",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("password_changed_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_users")),
        sa.UniqueConstraint("username", name=op.f("uq_status_users_username")),
    )
    op.create_table(
        "status_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", _BIGINT_PK, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("last_seen_at", _INSTANT, nullable=False),
        sa.Column("expires_at", _INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["status_users.id"],
            name=op.f("fk_status_sessions_user_id_status_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_status_sessions")),
    )
    op.create_index("ix_status_sessions_expires_at", "status_sessions", ["expires_at"])
    op.create_index("ix_results_received_at", "results", ["received_at", "id"])


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    op.drop_index("ix_results_received_at", table_name="results")
    op.drop_index("ix_status_sessions_expires_at", table_name="status_sessions")
    op.drop_table("status_sessions")
    op.drop_table("status_users")
    op.drop_table("status_marks")
    op.drop_table("availability_day")
    op.drop_table("rollup_progress")
    for name in reversed(_ROLLUP_TABLES):
        op.drop_index(f"ix_{name}_bucket_start", table_name=name)
        op.drop_table(name)
