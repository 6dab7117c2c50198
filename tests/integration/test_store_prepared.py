"""Prepared statements (run on the database driver) read and write exactly what
SQLAlchemy's own execution does, on SQLite and on PostgreSQL: JSON, aware UTC datetimes,
dates, literals, RETURNING, row counts, and the transaction the connection holds."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from datahub.quotas.models import QuotaSlot, QuotaUsage
from datahub.store.prepared import Prepared

slots_t = QuotaSlot.__table__
usage_t = QuotaUsage.__table__
T0 = dt.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
COLUMNS = ("user_name", "state", "holder", "created_at", "admitted_at", "expires_at", "request")
INSERT = Prepared(
    slots_t.insert()
    .values({name: sa.bindparam(name) for name in COLUMNS})
    .values(query_id=None, cpu_ms=0, bytes_scanned=0)
    .returning(slots_t.c.id, slots_t.c.created_at)
)
SELECT = Prepared(
    sa.select(slots_t.c.id, slots_t.c.request, slots_t.c.expires_at, slots_t.c.admitted_at).where(
        slots_t.c.user_name == sa.bindparam("user"), slots_t.c.state == "running"
    )
)
DELETE = Prepared(slots_t.delete().where(slots_t.c.user_name == sa.bindparam("user")))


def slot(user: str, state: str = "running", **overrides):
    values = {
        "user_name": user,
        "state": state,
        "holder": "here",
        "created_at": T0,
        "admitted_at": None,
        "expires_at": T0.astimezone(dt.timezone(dt.timedelta(hours=2))),
        "request": {"sql": "SELECT 'ü'", "headers": [["X-Trino-Source", "a"]], "n": 1.5},
    }
    return {**values, **overrides}


def test_rows_written_and_read_on_the_driver_match_sqlalchemys(store):
    with store.engine.connect() as conn:
        made = INSERT.first(conn, slot("ann"))
        INSERT.execute(conn, slot("ann", state="queued"))
        conn.commit()
    assert made.created_at == T0 and made.created_at.tzinfo is not None
    with store.engine.connect() as conn:
        ours = SELECT.execute(conn, {"user": "ann"})
        theirs = conn.execute(SELECT.statement, {"user": "ann"}).all()
    assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    (row,) = ours
    assert row.id == made.id
    assert row.request == slot("ann")["request"]
    assert row.expires_at == T0 and row.expires_at.utcoffset() == dt.timedelta(0)
    assert row.admitted_at is None
    assert row._asdict()["id"] == made.id


def test_a_row_sqlalchemy_wrote_reads_the_same_on_the_driver(store):
    with store.engine.begin() as conn:
        conn.execute(
            usage_t.insert()
            .values(user_name="bo", day=T0.date(), queries=3, cpu_ms=10**12, bytes_scanned=0)
            .values(refused=0, cancelled=0)
        )
    today = Prepared(
        sa.select(usage_t.c.day, usage_t.c.cpu_ms).where(usage_t.c.user_name == sa.bindparam("u"))
    )
    with store.engine.connect() as conn:
        assert today.first(conn, {"u": "bo"}) == (T0.date(), 10**12)
        assert today.first(conn, {"u": "nobody"}) is None


def test_writes_on_the_driver_are_the_connections_transaction(store):
    with store.engine.connect() as conn:
        INSERT.execute(conn, slot("cy"))
        conn.rollback()
    with store.engine.connect() as conn:
        assert SELECT.execute(conn, {"user": "cy"}) == []
        INSERT.execute(conn, slot("cy"))
        INSERT.execute(conn, slot("cy"))
        conn.commit()
    with store.engine.connect() as conn:
        assert DELETE.rowcount(conn, {"user": "cy"}) == 2
        assert DELETE.rowcount(conn, {"user": "cy"}) == 0
        conn.commit()
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(slots_t)).scalar() == 0


def test_a_naive_datetime_is_refused_as_sqlalchemy_refuses_it(store):
    with store.engine.connect() as conn, pytest.raises(ValueError, match="timezone-aware"):
        INSERT.execute(conn, slot("dee", created_at=T0.replace(tzinfo=None)))


def test_expanding_parameters_are_refused():
    expanding = Prepared(
        sa.select(slots_t.c.id).where(slots_t.c.id.in_(sa.bindparam("ids", expanding=True)))
    )
    with pytest.raises(ValueError, match="expanding"):
        expanding._for(sa.create_engine("sqlite://").dialect)
