"""Initial schema: sites, targets, results, batches, site_agents.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Types are spelled out here (not imported from monitor.storage.models) so this revision
keeps creating the same schema when the models move on. ``UTCDateTime`` is stored as
``DateTime(timezone=True)``; constraint names follow models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables of monitor.storage.models as of this revision."""
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_lo", sa.String(length=200), nullable=True),
        sa.Column("region", sa.String(length=200), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("link_profile", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_sites")),
    )
    op.create_table(
        "targets",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=500), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.site_id"],
            name=op.f("fk_targets_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "target_id", name=op.f("pk_targets")),
    )
    op.create_table(
        "results",
        sa.Column("id", _BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("result_id", sa.String(length=36), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("measured_at", _INSTANT, nullable=False),
        sa.Column("received_at", _INSTANT, nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("rtt_s", sa.Float(), nullable=True),
        sa.Column("packet_loss", sa.Float(), nullable=True),
        sa.Column("jitter_s", sa.Float(), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=True),
        sa.Column("received", sa.Integer(), nullable=True),
        sa.Column("duplicates", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("family", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("rtts_s", sa.JSON(), nullable=False),
        sa.Column("phases_s", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint("result_id", name=op.f("uq_results_result_id")),
    )
    op.create_index(
        "ix_results_site_target_time", "results", ["site_id", "target_id", "measured_at"]
    )
    op.create_index("ix_results_measured_at", "results", ["measured_at"])
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("received_at", _INSTANT, nullable=False),
        sa.Column("agent_sent_at", _INSTANT, nullable=False),
        sa.Column("results", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batches")),
    )
    op.create_table(
        "site_agents",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("last_upload_at", _INSTANT, nullable=False),
        sa.Column("last_measured_at", _INSTANT, nullable=True),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.Column("uploads", sa.BigInteger(), nullable=False),
        sa.Column("results_stored", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_agents")),
    )


def downgrade() -> None:
    """Drop every table (all data is lost)."""
    op.drop_table("site_agents")
    op.drop_table("batches")
    op.drop_index("ix_results_measured_at", table_name="results")
    op.drop_index("ix_results_site_target_time", table_name="results")
    op.drop_table("results")
    op.drop_table("targets")
    op.drop_table("sites")
