"""Reading and writing audit records: synchronous functions over a store connection.

They run in the audit's writer thread (`AuditLog`), never on the event loop. Records
leave this module as plain dicts, safe to hand to another thread. `row_of` and
`record_of` are the one mapping between a query (`datahub.query.QueryRecord`) and its
audit record.

Closing is the one place exactly-once lives: ``close_query`` updates only an open
record (``finished_at IS NULL``), so when several gateway processes (or the reconciler
and a handler) close the same query, exactly one of them wins and tells the listeners.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..identity import Identity
from ..query import STATS_FIELDS, QueryRecord
from .models import AdminAccess, AuditedQuery, ClusterState

QUERIES = AuditedQuery.__table__
CLUSTER_STATES = ClusterState.__table__
ADMIN_ACCESS = AdminAccess.__table__
COLUMNS = tuple(c.key for c in QUERIES.columns)

#: A session or a connection: these functions use SQLAlchemy Core only (the audit writes a
#: few records per query, and the ORM would cost more than the query's proxying).
Executor = Session | sa.Connection

#: Fields of the submitted event: what a late submitted event may fill into a record that
#: a follow-up (or the finished event) created first.
SUBMITTED_FIELDS = (
    "user",
    "groups",
    "admin",
    "auth_via",
    "acting_admin",
    "principal",
    "cluster",
    "routing_group",
    "routing_reason",
    "sql",
    "client_sql",
    "source",
    "client_tags",
    "admission_note",
    "admission",
)

#: Fields set when a query ends.
FINISHED_FIELDS = (
    "state",
    "error_name",
    "error_type",
    "error",
    "stop_reason",
    "finished_at",
    *STATS_FIELDS,
)

#: What the record of a query closed without one says of how it was routed.
LOST_ROUTING_REASON = "unknown (submitted event lost)"

_EMPTY = (None, "", [], {})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_record(**fields: Any) -> dict[str, Any]:
    """A complete record dict: *fields* over empty defaults."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(groups=[], admin=False, sql="", client_tags=[], admission={})
    row.update(fields)
    return row


def identity_fields(identity: Identity) -> dict[str, Any]:
    """The fields of a record that say who ran the query (and which admin, if one acted)."""
    return {
        "user": identity.name,
        "groups": list(identity.groups),
        "admin": identity.admin,
        "auth_via": identity.via,
        "acting_admin": identity.acting_admin,
    }


def identity_of(record: Mapping[str, Any]) -> Identity:
    """The Identity a record's query ran as (the inverse of `identity_fields`)."""
    return Identity(
        name=record["user"],
        groups=tuple(record.get("groups") or ()),
        admin=bool(record.get("admin")),
        via=record.get("auth_via") or "token",
        acting_admin=record.get("acting_admin"),
    )


def row_of(query: QueryRecord) -> dict[str, Any]:
    """The audit record of *query* (a complete dict of the table's columns): the one
    mapping from `QueryRecord` to the audit."""
    stats = query.stats
    return new_record(
        query_id=query.query_id,
        **identity_fields(query.identity),
        principal=query.principal,
        cluster=query.cluster,
        routing_group=query.routing_group,
        routing_reason=query.routing_reason,
        sql=query.sql,
        client_sql=query.client_sql,
        source=query.source,
        client_tags=list(query.client_tags),
        admission_note=query.admission_note,
        admission=dict(query.admission),
        state=str(query.state),
        error_name=query.error_name,
        error_type=query.error_type,
        error=query.error,
        stop_reason=query.stop_reason,
        submitted_at=query.submitted_at,
        finished_at=query.finished_at,
        **({name: getattr(stats, name) for name in STATS_FIELDS} if stats else {}),
    )


def record_of(row: Mapping[str, Any], identity: Identity | None = None) -> QueryRecord:
    """The `QueryRecord` of an audit record (the inverse of `row_of`, without Trino's
    statistics); run by *identity* when given, else by the one recorded."""
    return QueryRecord(
        identity=identity or identity_of(row),
        query_id=row["query_id"],
        cluster=row.get("cluster"),
        principal=row.get("principal"),
        routing_group=row.get("routing_group"),
        routing_reason=row.get("routing_reason"),
        sql=row.get("sql") or "",
        client_sql=row.get("client_sql"),
        source=row.get("source"),
        client_tags=tuple(row.get("client_tags") or ()),
        admission_note=row.get("admission_note"),
        admission=row.get("admission") or {},
        state=row.get("state") or "QUEUED",
        error_name=row.get("error_name"),
        error_type=row.get("error_type"),
        error=row.get("error"),
        stop_reason=row.get("stop_reason"),
        submitted_at=row.get("submitted_at") or utcnow(),
        finished_at=row.get("finished_at"),
        closed=row.get("finished_at") is not None,
    )


def closing_fields(query: QueryRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The *fields* and *fallback* of `close_query` for *query*, which has ended: its
    finished fields (and what it knows of its SQL, to fill gaps), and the record to
    insert if its submitted event was lost."""
    row = row_of(query)
    fields = {name: row[name] for name in (*FINISHED_FIELDS, *_KNOWN_LATE)}
    fallback = {
        name: row[name]
        for name in ("query_id", *identity_fields(query.identity), "principal", "cluster")
    }
    fallback.update(
        cluster=row["cluster"] or None,
        routing_group=row["routing_group"],
        routing_reason=LOST_ROUTING_REASON,
        submitted_at=row["submitted_at"],
    )
    return fields, fallback


#: Submitted fields a query may learn only at its end (from Trino's query info).
_KNOWN_LATE = ("sql", "client_sql", "source", "client_tags")


def _row(result_row: Any) -> dict[str, Any]:
    return dict(result_row._mapping)


# Statements built once with bound parameters: SQLAlchemy compiles each once and the
# writer only binds values (literal values would be re-keyed for the cache every time).
_OPEN = sa.and_(QUERIES.c.query_id == sa.bindparam("q_id"), QUERIES.c.finished_at.is_(None))
_INSERT = sa.insert(QUERIES)
_SELECT_ONE = sa.select(QUERIES).where(QUERIES.c.query_id == sa.bindparam("q_id"))
_CLOSE = (
    sa.update(QUERIES)
    .where(_OPEN)
    .values({name: sa.bindparam(f"v_{name}") for name in FINISHED_FIELDS})
    .returning(*QUERIES.c)
)
_SET_STATE = sa.update(QUERIES).where(_OPEN).values(state=sa.bindparam("v_state"))
_INSERT_NEW: dict[str, Any] = {}


def _insert_new(db: Executor) -> Any:
    """INSERT that skips a record already there (ON CONFLICT DO NOTHING), per dialect."""
    bind = db.get_bind() if isinstance(db, Session) else db
    dialect = bind.dialect.name
    if dialect not in _INSERT_NEW:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        _INSERT_NEW[dialect] = insert(QUERIES).on_conflict_do_nothing(index_elements=["query_id"])
    return _INSERT_NEW[dialect]


def _fill_gaps(db: Executor, record: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """Set the submitted fields *record* lacks from *values*; returns what was set."""
    gaps = {
        key: values[key]
        for key in SUBMITTED_FIELDS
        if key in values and record.get(key) in _EMPTY and values[key] not in _EMPTY
    }
    if gaps:
        db.execute(
            sa.update(QUERIES).where(QUERIES.c.query_id == record["query_id"]).values(**gaps)
        )
    return gaps


def insert_submitted(db: Executor, row: Mapping[str, Any]) -> None:
    """Record a submitted query. If a record is already there (its follow-up or finished
    event got to the store first), fill in what it lacks and leave its state alone."""
    if db.execute(_insert_new(db), [new_record(**row)]).rowcount == 1:
        return
    existing = get_query(db, row["query_id"])
    if existing is not None:
        _fill_gaps(db, existing, row)


def insert_closed(db: Executor, row: Mapping[str, Any]) -> dict[str, Any]:
    """Record a query that ended before reaching a cluster (rejected or failed)."""
    record = new_record(**row)
    db.execute(_INSERT, [record])
    return record


def update_state(db: Executor, query_id: str, state: str) -> bool:
    """Set the state of an open record (it started running); False if none is open."""
    return db.execute(_SET_STATE, {"q_id": query_id, "v_state": state}).rowcount == 1


def close_query(
    db: Executor,
    query_id: str,
    fields: Mapping[str, Any],
    fallback: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Close the open record of *query_id* with *fields* (the finished event).

    Returns the closed record if this call closed it, None if it was already closed.
    Without any record (its submitted event was lost in a gateway crash), inserts
    *fallback* updated with *fields*, so the query still appears in the audit. Submitted
    fields among *fields* (the SQL from Trino) only fill gaps.
    """
    if fields.get("finished_at") is None:
        fields = {**fields, "finished_at": utcnow()}
    params = {f"v_{name}": fields.get(name) for name in FINISHED_FIELDS}
    closed = db.execute(_CLOSE, {"q_id": query_id, **params}).first()
    if closed is not None:
        record = dict(closed._mapping)
        record.update(_fill_gaps(db, record, fields))
        return record
    if get_query(db, query_id) is not None:
        return None
    return insert_closed(db, {**fallback, **fields, "query_id": query_id})


def get_query(db: Executor, query_id: str) -> dict[str, Any] | None:
    found = db.execute(_SELECT_ONE, {"q_id": query_id}).first()
    return _row(found) if found is not None else None


@dataclass(frozen=True)
class QueryFilter:
    """What ``list_queries`` selects; None means any."""

    user: str | None = None
    cluster: str | None = None
    state: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 50


def list_queries(db: Executor, where: QueryFilter) -> list[dict[str, Any]]:
    """Records matching *where*, newest first."""
    statement = sa.select(QUERIES)
    if where.user is not None:
        statement = statement.where(QUERIES.c.user == where.user)
    if where.cluster is not None:
        statement = statement.where(QUERIES.c.cluster == where.cluster)
    if where.state is not None:
        statement = statement.where(QUERIES.c.state == where.state)
    if where.since is not None:
        statement = statement.where(QUERIES.c.submitted_at >= where.since)
    if where.until is not None:
        statement = statement.where(QUERIES.c.submitted_at < where.until)
    statement = statement.order_by(QUERIES.c.submitted_at.desc(), QUERIES.c.query_id.desc()).limit(
        where.limit
    )
    return [_row(r) for r in db.execute(statement)]


def open_queries(
    db: Executor, submitted_before: dt.datetime, limit: int = 500, user: str | None = None
) -> list[dict[str, Any]]:
    """Records without a finished event, submitted before *submitted_before* (of *user*
    only, if given), oldest first."""
    statement = (
        sa.select(QUERIES)
        .where(QUERIES.c.finished_at.is_(None), QUERIES.c.submitted_at < submitted_before)
        .order_by(QUERIES.c.submitted_at)
        .limit(limit)
    )
    if user is not None:
        statement = statement.where(QUERIES.c.user == user)
    return [_row(r) for r in db.execute(statement)]


def set_draining(db: Executor, name: str, draining: bool, by: str) -> None:
    """Set a cluster's drain flag (shared by all gateway processes)."""
    values = {"draining": draining, "changed_by": by, "changed_at": utcnow()}
    updated = db.execute(
        sa.update(CLUSTER_STATES).where(CLUSTER_STATES.c.name == name).values(**values)
    )
    if updated.rowcount == 0:
        db.execute(sa.insert(CLUSTER_STATES).values(name=name, **values))


def draining_clusters(db: Executor) -> set[str]:
    """Names of the clusters an admin drained."""
    statement = sa.select(CLUSTER_STATES.c.name).where(CLUSTER_STATES.c.draining.is_(True))
    return set(db.execute(statement).scalars())


# ------------------------------------------------------------- admins' views of users


def record_admin_access(
    db: Executor, admin: str, user: str, what: str, at: dt.datetime | None = None
) -> None:
    """Record that *admin* looked at *user*'s account (*what*, in words for the user)."""
    db.execute(sa.insert(ADMIN_ACCESS).values(at=at or utcnow(), admin=admin, user=user, what=what))


def admin_accesses(db: Executor, user: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest records of admins looking at *user*'s account."""
    statement = (
        sa.select(ADMIN_ACCESS)
        .where(ADMIN_ACCESS.c.user == user)
        .order_by(ADMIN_ACCESS.c.at.desc(), ADMIN_ACCESS.c.id.desc())
        .limit(limit)
    )
    return [_row(r) for r in db.execute(statement)]
