"""Which publisher sends the outbox: a lease in the store (migration ``events_0002``).

Several service processes may share one store; only the holder of the lease sends (and
prunes) the outbox, so the events go out once, in order, from one producer. The holder
renews the lease at least every third of ``ttl``; a process that stops renewing (stopped, hung,
partitioned from the store) loses it ``ttl`` seconds after its last renewal, and the
next process that asks takes it over and sends from the first unsent event. A process
that stops cleanly gives the lease up at once.

Taking and renewing are one conditional UPDATE of the lease's one row (created by the
migration), atomic on SQLite and PostgreSQL alike. Times are the processes' own UTC
clocks: keep them in sync (NTP) to well under ``ttl``.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base

#: The one lease (a row per name, should another outbox ever need one).
OUTBOX = "event_outbox"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_holder() -> str:
    """A name for a publisher, unique among processes and restarts: host, pid, random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PublisherLease(Base):
    """Who sends the outbox (``holder``), until when (``expires_at``); both null: nobody."""

    __tablename__ = "event_publisher_lease"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True
    )


_table = PublisherLease.__table__


def acquire(
    connection: sa.Connection,
    holder: str,
    ttl: float,
    *,
    now: dt.datetime | None = None,
    name: str = OUTBOX,
) -> bool:
    """Take or renew the lease for *holder* until ``now + ttl``: True if it now holds it
    (it held it, nobody did, or the last holder's lease has run out)."""
    now = now or utcnow()
    result = connection.execute(
        _table.update()
        .where(
            _table.c.name == name,
            sa.or_(
                _table.c.holder == holder,
                _table.c.holder.is_(None),
                _table.c.expires_at.is_(None),
                _table.c.expires_at < now,
            ),
        )
        .values(holder=holder, expires_at=now + dt.timedelta(seconds=ttl))
    )
    return result.rowcount == 1


def release(connection: sa.Connection, holder: str, *, name: str = OUTBOX) -> bool:
    """Give the lease up, if *holder* holds it; True if it did."""
    result = connection.execute(
        _table.update()
        .where(_table.c.name == name, _table.c.holder == holder)
        .values(holder=None, expires_at=None)
    )
    return result.rowcount == 1


def current(
    connection: sa.Connection, *, name: str = OUTBOX
) -> tuple[str | None, dt.datetime | None]:
    """The lease's holder and expiry (None, None when nobody holds it)."""
    row = connection.execute(
        sa.select(_table.c.holder, _table.c.expires_at).where(_table.c.name == name)
    ).first()
    return (row.holder, row.expires_at) if row is not None else (None, None)
