"""The quota tables in the store (migrations: ``quotas_*.py``, Alembic branch ``quotas``).

- ``quota_policies``: one row per policy (the default, a group, a user) with the limits
  it sets as JSON (a key present with null means *unlimited*; a key absent, *inherit*).
- ``quota_users``: each user the gateway has seen, with their hub groups (for group
  usage) — and the row admission locks, so admissions of one user are serialised.
- ``quota_slots``: admitted (running) and waiting (queued) queries, each a *lease* that
  expires unless renewed, so a crashed gateway process cannot hold slots for ever.
- ``quota_usage``: the daily counters per user and usage day.
- ``quota_refusals``: recent refusals, for the admin page.
- ``quota_changes``: the audit of every policy or usage change (who, when, before, after).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base


class UTCDateTime(sa.types.TypeDecorator):
    """An aware UTC datetime on every database (SQLite keeps no time zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("quota timestamps must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class QuotaPolicy(Base):
    __tablename__ = "quota_policies"
    __table_args__ = (
        sa.UniqueConstraint("scope", "name"),
        sa.CheckConstraint("scope IN ('default', 'group', 'user')", name="scope"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(255))
    limits: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(sa.String(255))


class QuotaUser(Base):
    __tablename__ = "quota_users"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(sa.JSON)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class QuotaSlot(Base):
    __tablename__ = "quota_slots"
    __table_args__ = (
        sa.Index("ix_quota_slots_user_state", "user_name", "state"),
        sa.CheckConstraint("state IN ('queued', 'running')", name="state"),
        # Never reused (SQLite would reuse the largest id once deleted): a queued query's
        # client names its slot by id, and must never reach a later query's slot.
        {"sqlite_autoincrement": True},
    )

    #: Increasing, so the oldest queued slot is the one with the smallest id.
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(sa.String(255))
    state: Mapped[str] = mapped_column(sa.String(16))
    query_id: Mapped[str | None] = mapped_column(sa.String(128))
    #: Which gateway process holds the lease (host:pid), for operators.
    holder: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    admitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    #: A queued query's request (SQL, session headers, routing), kept with its place so
    #: whichever gateway process the client polls can submit it when its turn comes.
    request: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: A running query's CPU and bytes already added to its user's usage while it ran;
    #: its end adds only the rest.
    cpu_ms: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    bytes_scanned: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")


class QuotaUsage(Base):
    __tablename__ = "quota_usage"
    __table_args__ = (sa.Index("ix_quota_usage_day", "day"),)

    user_name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    queries: Mapped[int] = mapped_column(sa.Integer, default=0)
    cpu_ms: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bytes_scanned: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    refused: Mapped[int] = mapped_column(sa.Integer, default=0)
    cancelled: Mapped[int] = mapped_column(sa.Integer, default=0)


class QuotaRefusal(Base):
    __tablename__ = "quota_refusals"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    user_name: Mapped[str] = mapped_column(sa.String(255))
    limit_name: Mapped[str] = mapped_column(sa.String(64))
    #: "refused" at admission, "cancelled" while running.
    action: Mapped[str] = mapped_column(sa.String(16))
    message: Mapped[str] = mapped_column(sa.Text)
    query_id: Mapped[str | None] = mapped_column(sa.String(128))


class QuotaChange(Base):
    __tablename__ = "quota_changes"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(sa.String(255))
    #: "set" (create or replace a policy), "reset" (delete it), "reset-usage".
    action: Mapped[str] = mapped_column(sa.String(32))
    scope: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


TABLES = tuple(
    model.__table__
    for model in (QuotaPolicy, QuotaUser, QuotaSlot, QuotaUsage, QuotaRefusal, QuotaChange)
)
