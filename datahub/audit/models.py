"""The audit's tables: every query the gateway ran, the clusters' drain flags, and admins'
views of users' accounts.

Migrations: ``datahub/store/migrations/versions/audit_*.py`` (the ``audit`` branch).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base


class UTCDateTime(sa.TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone and hands back naive values; PostgreSQL converts to the
    session's zone. Either way the application sees aware UTC datetimes.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs timezone-aware datetimes.")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class AuditedQuery(Base):
    """The audit record of one query (`datahub.audit.records.row_of` maps a
    `datahub.query.QueryRecord` to it): its submitted event (who, where, why, what) and
    finished event (state, error, Trino's statistics). ``finished_at`` is NULL while it
    is open."""

    __tablename__ = "audit_queries"

    query_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    user: Mapped[str] = mapped_column(sa.String(255))
    groups: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    #: How the user authenticated to the gateway ("token" or "basic").
    auth_via: Mapped[str | None] = mapped_column(sa.String(16))
    #: The hub admin who ran the query as ``user`` (X-DataHub-Act-As), else NULL.
    acting_admin: Mapped[str | None] = mapped_column(sa.String(255))
    #: The principal the cluster authenticated (the DataHub service account).
    principal: Mapped[str | None] = mapped_column(sa.String(255))
    cluster: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    routing_group: Mapped[str | None] = mapped_column(sa.String(64))
    routing_reason: Mapped[str | None] = mapped_column(sa.String(255))
    #: The SQL that ran: for ``EXECUTE q`` the prepared statement q, for ``EXECUTE
    #: IMMEDIATE '…'`` the literal's text.
    sql: Mapped[str] = mapped_column(sa.Text, default="")
    #: The statement as the client sent it, when it differs from ``sql`` (else NULL).
    client_sql: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str | None] = mapped_column(sa.String(255))
    client_tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    admission_note: Mapped[str | None] = mapped_column(sa.Text)
    admission: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(32), index=True)
    error_name: Mapped[str | None] = mapped_column(sa.String(100))
    error_type: Mapped[str | None] = mapped_column(sa.String(32))
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: Why a hook stopped the query, once one did.
    stop_reason: Mapped[str | None] = mapped_column(sa.Text)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    elapsed_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    queued_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    cpu_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    wall_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    processed_rows: Mapped[int | None] = mapped_column(sa.BigInteger)
    processed_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    physical_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    peak_memory_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    output_rows: Mapped[int | None] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.Index("ix_audit_queries_user_submitted_at", "user", "submitted_at"),)


class ClusterState(Base):
    """An admin's drain flag on a cluster, shared by every gateway process."""

    __tablename__ = "gateway_cluster_states"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    draining: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    changed_by: Mapped[str | None] = mapped_column(sa.String(255))
    changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AdminAccess(Base):
    """An admin opened a user's account view (their history and quota); the user sees
    these on their own history page."""

    __tablename__ = "audit_admin_access"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    admin: Mapped[str] = mapped_column(sa.String(255))
    user: Mapped[str] = mapped_column(sa.String(255))
    #: What the admin looked at, in words for the user ("history and quota page").
    what: Mapped[str] = mapped_column(sa.String(255))

    __table_args__ = (sa.Index("ix_audit_admin_access_user_at", "user", "at"),)
