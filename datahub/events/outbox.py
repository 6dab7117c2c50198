"""The durable outbox of query events, in the store (migrations: ``events_*.py``, branch
``events``).

The query path adds events here (one short transaction, through ``Store.run``) and goes
on; the publisher reads the unsent ones in ``seq`` order, sends them and marks them sent.
``seq`` is never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so an event
written after another was committed is sent after it: a query's events, and each
process's, go out in the order they were written. Events two processes write at the same
moment may go out in either order (on PostgreSQL a later ``seq`` can commit first; it is
sent when it is visible, never skipped), as records of different keys may on Kafka.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base
from .event import encode


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxEvent(Base):
    """One event waiting for Kafka (``sent_at`` null) or already sent."""

    __tablename__ = "event_outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    #: The record's key on Kafka.
    query_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    #: The event as sent (``event.encode``): a resent record is byte for byte the same.
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True, index=True
    )


_table = OutboxEvent.__table__


@dataclass(frozen=True)
class Pending:
    """An unsent event, as the publisher sends it."""

    seq: int
    event_id: str
    key: str
    payload: str


def add(connection: sa.Connection, events: Iterable[Mapping[str, Any]]) -> list[int]:
    """Add ``events`` (from ``event.query_event``) in this order; return their ``seq``."""
    now = utcnow()
    seqs = []
    for event in events:
        result = connection.execute(
            _table.insert().values(
                event_id=event["event_id"],
                query_id=event["query_id"],
                payload=encode(event),
                created_at=now,
                sent_at=None,
            )
        )
        seqs.append(result.inserted_primary_key[0])
    return seqs


def unsent(connection: sa.Connection, limit: int) -> list[Pending]:
    """The first ``limit`` unsent events, oldest first."""
    rows = connection.execute(
        sa.select(_table.c.seq, _table.c.event_id, _table.c.query_id, _table.c.payload)
        .where(_table.c.sent_at.is_(None))
        .order_by(_table.c.seq)
        .limit(limit)
    )
    return [Pending(row.seq, row.event_id, row.query_id, row.payload) for row in rows]


def mark_sent(connection: sa.Connection, seqs: Sequence[int]) -> None:
    """Mark the events ``seqs`` as sent (now)."""
    if seqs:
        connection.execute(
            _table.update().where(_table.c.seq.in_(list(seqs))).values(sent_at=utcnow())
        )


def backlog(connection: sa.Connection) -> int:
    """How many events wait for Kafka."""
    return connection.execute(
        sa.select(sa.func.count()).select_from(_table).where(_table.c.sent_at.is_(None))
    ).scalar_one()


def forget_sent(connection: sa.Connection, before: dt.datetime) -> int:
    """Delete events sent before ``before``; return how many."""
    result = connection.execute(
        _table.delete().where(_table.c.sent_at.is_not(None), _table.c.sent_at < before)
    )
    return result.rowcount or 0
