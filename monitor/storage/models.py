"""SQLAlchemy table models. The schema is created and changed only by alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An instant in UTC: aware datetimes in, aware UTC datetimes out, on every backend.

    Raises ValueError when given a naive datetime (its zone would be a guess).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntPk = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Site(Base):
    """A site, mirrored from the configuration at server start."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_lo: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    link_profile: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class Target(Base):
    """A target as seen from one site, mirrored from the configuration at server start."""

    __tablename__ = "targets"
    __table_args__ = (ForeignKeyConstraint(["site_id"], ["sites.site_id"], ondelete="CASCADE"),)

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(500))
    interval_s: Mapped[float] = mapped_column(Float)
    timeout_s: Mapped[float] = mapped_column(Float)
    spec: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class Result(Base):
    """One probe round, as measured by an agent (``measured_at`` is the agent's clock)."""

    __tablename__ = "results"
    __table_args__ = (
        Index("ix_results_site_target_time", "site_id", "target_id", "measured_at"),
        Index("ix_results_measured_at", "measured_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    result_id: Mapped[str] = mapped_column(String(36), unique=True)
    site_id: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    measured_at: Mapped[datetime]
    received_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    rtt_s: Mapped[float | None] = mapped_column(Float)
    packet_loss: Mapped[float | None] = mapped_column(Float)
    jitter_s: Mapped[float | None] = mapped_column(Float)
    sent: Mapped[int | None] = mapped_column(Integer)
    received: Mapped[int | None] = mapped_column(Integer)
    duplicates: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(64))
    family: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    rtts_s: Mapped[list[float | None]] = mapped_column(JSON)
    phases_s: Mapped[dict[str, Any]]
    detail: Mapped[dict[str, Any]]
    clock_offset_s: Mapped[float | None] = mapped_column(Float)  # agent's estimate (issue 4)


class Batch(Base):
    """An accepted upload batch (kept so a repeated batch is recognised and logged)."""

    __tablename__ = "batches"

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    agent_sent_at: Mapped[datetime]
    results: Mapped[int] = mapped_column(Integer)
    stored: Mapped[int] = mapped_column(Integer)


class SiteAgent(Base):
    """What the server knows of a site's agent: when it last uploaded, its clock offset.

    ``last_upload_at`` is the server's clock at the last accepted batch;
    ``last_measured_at`` the newest ``measured_at`` ever uploaded (agent clock);
    ``clock_offset_s`` = server clock minus the agent's ``agent_sent_at`` at the last upload,
    seconds (positive: the agent's clock is behind; includes the upload's transit time);
    ``uploads`` counts accepted batches (resent ones included); ``results_stored`` counts
    results stored new (a resent result is not counted twice).
    """

    __tablename__ = "site_agents"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_upload_at: Mapped[datetime]
    last_measured_at: Mapped[datetime | None]
    clock_offset_s: Mapped[float | None] = mapped_column(Float)
    uploads: Mapped[int] = mapped_column(BigInteger, default=0)
    results_stored: Mapped[int] = mapped_column(BigInteger, default=0)


# Tables of the later features live in their own modules; importing them here puts them on
# Base.metadata, which alembic's autogenerate comparison and the tests read.
from monitor.storage import (  # noqa: E402
    models_agent,  # noqa: F401
    models_incidents,  # noqa: F401
    models_notify,  # noqa: F401
    models_status,  # noqa: F401
)
