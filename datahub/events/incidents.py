"""Crash incidents in the store (migration ``events_0003``, branch ``events``): what the
crash watcher found (incidents and their lost queries) and the queries it follows, so a
restarted watcher resumes where the last one stopped.

The watcher writes a batch's :class:`~datahub.events.crashes.Changes` in one transaction
(:func:`save`) before it commits its Kafka offsets; the admin page and API read
:func:`recent` and :func:`daily_counts`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base
from .crashes import MEMORY, Changes, Incident, LostQuery, OpenQuery


class CrashOpenQuery(Base):
    """A query submitted to a cluster that the watcher has not seen ending."""

    __tablename__ = "crash_open_queries"

    query_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    cluster: Mapped[str] = mapped_column(sa.String(255))
    user: Mapped[str] = mapped_column(sa.String(255))
    submitted_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))


class CrashIncident(Base):
    """Queries one cluster lost together."""

    __tablename__ = "crash_incidents"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    cluster: Mapped[str] = mapped_column(sa.String(255), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    last_lost_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    #: "recovered" (the cluster finished a new query) or "quiet" (no loss for a while).
    end_reason: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)


class CrashLostQuery(Base):
    """A query nobody saw end, in its incident."""

    __tablename__ = "crash_lost_queries"

    query_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("crash_incidents.id", ondelete="CASCADE"), index=True
    )
    cluster: Mapped[str] = mapped_column(sa.String(255))
    user: Mapped[str] = mapped_column(sa.String(255))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True
    )
    lost_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    #: "gateway" (a query_lost event) or "detector" (the watcher's own rules).
    marked_by: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


_open = CrashOpenQuery.__table__
_incidents = CrashIncident.__table__
_lost = CrashLostQuery.__table__


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """The store's datetimes as aware UTC (SQLite gives them back naive)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _upsert(connection: sa.Connection, table: sa.Table, key: str, rows: list[dict]) -> None:
    """Update each row by ``key``, or insert it (never delete first: an incident's lost
    queries go with it)."""
    column = table.c[key]
    for row in rows:
        updated = connection.execute(table.update().where(column == row[key]).values(row))
        if not updated.rowcount:
            connection.execute(table.insert().values(row))


def save(connection: sa.Connection, changes: Changes) -> None:
    """Write what the detector changed (one transaction, by the caller)."""
    if changes.lost_gone:
        connection.execute(_lost.delete().where(_lost.c.query_id.in_(changes.lost_gone)))
    if changes.incidents_gone:
        gone = changes.incidents_gone
        connection.execute(_lost.delete().where(_lost.c.incident_id.in_(gone)))
        connection.execute(_incidents.delete().where(_incidents.c.id.in_(gone)))
    if changes.open_gone:
        connection.execute(_open.delete().where(_open.c.query_id.in_(changes.open_gone)))
    _upsert(
        connection,
        _incidents,
        "id",
        [
            {
                "id": i.id,
                "cluster": i.cluster,
                "started_at": i.started_at,
                "last_lost_at": i.last_lost_at,
                "ended_at": i.ended_at,
                "end_reason": i.end_reason,
            }
            for i in changes.incidents
        ],
    )
    _upsert(
        connection,
        _lost,
        "query_id",
        [
            {
                "query_id": q.query_id,
                "incident_id": q.incident_id,
                "cluster": q.cluster,
                "user": q.user,
                "submitted_at": q.submitted_at,
                "lost_at": q.lost_at,
                "marked_by": q.marked_by,
                "reason": q.reason,
            }
            for q in changes.lost
        ],
    )
    _upsert(
        connection,
        _open,
        "query_id",
        [
            {
                "query_id": q.query_id,
                "cluster": q.cluster,
                "user": q.user,
                "submitted_at": q.submitted_at,
            }
            for q in changes.open_queries
        ],
    )


def _incident_of(row: Any) -> Incident:
    return Incident(
        row.id,
        row.cluster,
        _utc(row.started_at),
        _utc(row.last_lost_at),
        _utc(row.ended_at),
        row.end_reason,
    )


def _lost_of(row: Any) -> LostQuery:
    return LostQuery(
        row.query_id,
        row.cluster,
        row.user,
        _utc(row.submitted_at),
        _utc(row.lost_at),
        row.incident_id,
        row.marked_by,
        row.reason,
    )


def _with_queries(connection: sa.Connection, incidents: list[Incident]) -> list[Incident]:
    by_id = {i.id: i for i in incidents}
    if by_id:
        rows = connection.execute(
            sa.select(_lost).where(_lost.c.incident_id.in_(list(by_id))).order_by(_lost.c.lost_at)
        )
        for row in rows:
            lost = _lost_of(row)
            by_id[lost.incident_id].queries[lost.query_id] = lost
    return incidents


def load(connection: sa.Connection, now: dt.datetime) -> tuple[list[OpenQuery], list[Incident]]:
    """What a watcher resumes from: the open queries, and the incidents ongoing or ended
    within the detector's memory (with their lost queries)."""
    open_queries = [
        OpenQuery(row.query_id, row.cluster, row.user, _utc(row.submitted_at))
        for row in connection.execute(sa.select(_open))
    ]
    since = now - dt.timedelta(seconds=MEMORY)
    rows = connection.execute(
        sa.select(_incidents).where(
            sa.or_(_incidents.c.ended_at.is_(None), _incidents.c.ended_at >= since)
        )
    )
    return open_queries, _with_queries(connection, [_incident_of(row) for row in rows])


def recent(
    connection: sa.Connection, since: dt.datetime, cluster: str | None = None, limit: int = 200
) -> list[Incident]:
    """Incidents that began since ``since`` or are still ongoing, newest first, with
    their lost queries."""
    where = sa.or_(_incidents.c.started_at >= since, _incidents.c.ended_at.is_(None))
    if cluster:
        where = sa.and_(where, _incidents.c.cluster == cluster)
    rows = connection.execute(
        sa.select(_incidents).where(where).order_by(_incidents.c.started_at.desc()).limit(limit)
    )
    return _with_queries(connection, [_incident_of(row) for row in rows])


def lost_since(connection: sa.Connection, since: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(cluster, lost at) of every query lost since ``since``."""
    rows = connection.execute(
        sa.select(_lost.c.cluster, _lost.c.lost_at).where(_lost.c.lost_at >= since)
    )
    return [(row.cluster, _utc(row.lost_at)) for row in rows]


def incident_json(incident: Incident) -> dict[str, Any]:
    """An incident as the API shows it."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": incident.id,
        "cluster": incident.cluster,
        "started_at": iso(incident.started_at),
        "last_lost_at": iso(incident.last_lost_at),
        "ended_at": iso(incident.ended_at),
        "end_reason": incident.end_reason,
        "users": incident.users,
        "queries": [
            {
                "query_id": q.query_id,
                "user": q.user,
                "submitted_at": iso(q.submitted_at),
                "lost_at": iso(q.lost_at),
                "marked_by": q.marked_by,
                "reason": q.reason,
            }
            for q in incident.queries.values()
        ],
    }
