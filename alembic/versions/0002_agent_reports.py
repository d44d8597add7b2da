"""Store-and-forward: the agents' spool reports, and each result's clock offset.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Adds ``results.clock_offset_s`` (the agent's estimate of server minus agent clock when it
measured the result; null for results stored before) and the ``agent_reports`` table (the
newest spool report of each site's agent). Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add results.clock_offset_s and create agent_reports."""
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("clock_offset_s", sa.Float(), nullable=True))
    op.create_table(
        "agent_reports",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("reported_at", _INSTANT, nullable=False),
        sa.Column("backlog", sa.BigInteger(), nullable=False),
        sa.Column("oldest_unsent_at", _INSTANT, nullable=True),
        sa.Column("dropped_total", sa.BigInteger(), nullable=False),
        sa.Column("rejected_total", sa.BigInteger(), nullable=False),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_agent_reports")),
    )


def downgrade() -> None:
    """Drop agent_reports and results.clock_offset_s (their data is lost)."""
    op.drop_table("agent_reports")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("clock_offset_s")
