"""Admission counters in the store: slots (leases) and daily usage, exact across processes.

Every admission decision for a user runs in one transaction that first takes that user's
lock: ``SELECT … FOR UPDATE`` on the user's ``quota_users`` row on PostgreSQL, and
``BEGIN IMMEDIATE`` (one writer at a time) on SQLite. Inside it the decision reads the
user's policy, running and queued slots and today's usage, and writes the outcome, so two
gateway processes can never both take the last slot.

Slots are *leases*: a running slot expires ``lease`` after its last renewal, a queued one
after ``queue_lease``. The gateway renews them while a query makes progress (or waits)
and deletes them when it ends; expiry only matters when a gateway process died.

All functions here are synchronous (SQLAlchemy); `admission.AdmissionController` runs
them in worker threads.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..store import Store
from . import messages
from .days import UsageDays
from .models import QuotaPolicy, QuotaRefusal, QuotaSlot, QuotaUsage, QuotaUser
from .policy import EffectivePolicy, LimitValue, Policy, effective_policy

policies_t = QuotaPolicy.__table__
users_t = QuotaUser.__table__
slots_t = QuotaSlot.__table__
usage_t = QuotaUsage.__table__
refusals_t = QuotaRefusal.__table__

HOLDER = f"{socket.gethostname()}:{os.getpid()}"[:255]

#: Daily limits, the usage column each is checked against, and the column's unit.
DAILY = (
    ("queries_per_day", "queries", 1),
    ("cpu_seconds_per_day", "cpu_ms", 1000),
    ("bytes_scanned_per_day", "bytes_scanned", 1),
)


@dataclass(frozen=True)
class Rules:
    """What admission needs besides the store: the calendar, the configured defaults,
    whom to ask, and the lease lengths."""

    days: UsageDays
    configured: Mapping[str, LimitValue]
    contact: str
    lease: dt.timedelta = dt.timedelta(minutes=6)
    queue_lease: dt.timedelta = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class Decision:
    """The outcome of an admission step for one query."""

    status: Literal["running", "queued", "refused"]
    policy: EffectivePolicy
    slot_id: int | None = None
    #: 1-based place in the user's queue while queued, and the user's running queries.
    position: int = 0
    running: int = 0
    #: The limit that refused the query, and the sentence for the user.
    limit: str | None = None
    message: str | None = None


def _insert(conn: sa.Connection, table: sa.Table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@contextmanager
def write_transaction(store: Store) -> Iterator[sa.Connection]:
    """A transaction that will write; commits on success, rolls back on error.

    On SQLite it takes the write lock at the start (``BEGIN IMMEDIATE``): a transaction
    that reads first and writes later could otherwise fail at once with "database is
    locked" when another process wrote in between, instead of waiting its turn.
    """
    with store.engine.connect() as conn:
        if store.is_sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn
        conn.commit()


@contextmanager
def user_lock(
    store: Store, user: str, groups: Sequence[str], now: dt.datetime
) -> Iterator[sa.Connection]:
    """A transaction holding *user*'s admission lock; commits on success.

    Also records the user's current hub groups (used for group usage).
    """
    with write_transaction(store) as conn:
        upsert = _insert(conn, users_t).values(name=user, groups=list(groups), last_seen=now)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[users_t.c.name],
                set_={"groups": upsert.excluded.groups, "last_seen": upsert.excluded.last_seen},
            )
        )
        if not store.is_sqlite:
            conn.execute(sa.select(users_t.c.name).where(users_t.c.name == user).with_for_update())
        yield conn


def load_policies(conn: sa.Connection, user: str, groups: Sequence[str]) -> list[Policy]:
    """The stored policies that can apply to *user*: the default, their groups', theirs."""
    rows = conn.execute(
        sa.select(policies_t.c.scope, policies_t.c.name, policies_t.c.limits).where(
            sa.or_(
                policies_t.c.scope == "default",
                sa.and_(policies_t.c.scope == "user", policies_t.c.name == user),
                sa.and_(policies_t.c.scope == "group", policies_t.c.name.in_(list(groups))),
            )
        )
    )
    return [policy_from_row(scope, name, limits) for scope, name, limits in rows]


def policy_from_row(scope: str, name: str, limits: Mapping) -> Policy:
    """A stored row as a Policy (values were validated when written)."""
    return Policy(
        scope=scope,  # type: ignore[arg-type]
        name=name,
        limits={k: tuple(v) if isinstance(v, list) else v for k, v in limits.items()},
    )


def today_usage(conn: sa.Connection, user: str, day: dt.date) -> dict[str, int]:
    row = conn.execute(
        sa.select(usage_t.c.queries, usage_t.c.cpu_ms, usage_t.c.bytes_scanned).where(
            usage_t.c.user_name == user, usage_t.c.day == day
        )
    ).first()
    if row is None:
        return {"queries": 0, "cpu_ms": 0, "bytes_scanned": 0}
    return dict(row._mapping)


def add_usage(conn: sa.Connection, user: str, day: dt.date, **amounts: int) -> None:
    """Add *amounts* (queries=1, cpu_ms=…, …) to *user*'s counters of *day*, atomically."""
    row = {
        "user_name": user,
        "day": day,
        "queries": 0,
        "cpu_ms": 0,
        "bytes_scanned": 0,
        "refused": 0,
        "cancelled": 0,
    }
    row.update(amounts)
    upsert = _insert(conn, usage_t).values(**row)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[usage_t.c.user_name, usage_t.c.day],
            set_={name: usage_t.c[name] + upsert.excluded[name] for name in amounts},
        )
    )


def _daily_refusal(
    policy: EffectivePolicy, usage: Mapping[str, int], rules: Rules, now: dt.datetime
) -> tuple[str, str] | None:
    for limit, column, unit in DAILY:
        allowed = policy[limit]
        if allowed is not None and usage[column] >= allowed * unit:
            message = messages.daily_limit_reached(
                limit,
                usage[column] / unit,
                allowed,
                rules.days.describe_reset(now),
                rules.contact,
            )
            return limit, message
    return None


def _record_refusal(
    conn: sa.Connection,
    user: str,
    limit: str,
    message: str,
    now: dt.datetime,
    rules: Rules,
    *,
    action: str = "refused",
    query_id: str | None = None,
) -> None:
    conn.execute(
        refusals_t.insert().values(
            at=now,
            user_name=user,
            limit_name=limit,
            action=action,
            message=message,
            query_id=query_id,
        )
    )
    counter = "refused" if action == "refused" else "cancelled"
    add_usage(conn, user, rules.days.day_of(now), **{counter: 1})


def _live_slots(conn: sa.Connection, user: str, now: dt.datetime) -> list[tuple[int, str]]:
    """(id, state) of the user's unexpired slots, oldest first; deletes expired ones."""
    conn.execute(slots_t.delete().where(slots_t.c.user_name == user, slots_t.c.expires_at < now))
    rows = conn.execute(
        sa.select(slots_t.c.id, slots_t.c.state)
        .where(slots_t.c.user_name == user)
        .order_by(slots_t.c.id)
    )
    return [(row.id, row.state) for row in rows]


def enqueue(
    store: Store,
    user: str,
    groups: Sequence[str],
    rules: Rules,
    now: dt.datetime,
    *,
    routing_group: str | None = None,
) -> Decision:
    """Admit a new query of *user*: run it now, queue it, or refuse it (with the reason).

    A query runs at once only if nobody is queued ahead of it, so queued queries keep
    their order.
    """
    day = rules.days.day_of(now)
    with user_lock(store, user, groups, now) as conn:
        policy = effective_policy(user, groups, load_policies(conn, user, groups), rules.configured)
        allowed_groups = policy["routing_groups"]
        if routing_group and allowed_groups is not None and routing_group not in allowed_groups:
            message = messages.routing_group_not_allowed(
                routing_group,
                allowed_groups,  # type: ignore[arg-type]
                rules.contact,
            )
            _record_refusal(conn, user, "routing_groups", message, now, rules)
            return Decision("refused", policy, limit="routing_groups", message=message)
        refusal = _daily_refusal(policy, today_usage(conn, user, day), rules, now)
        if refusal:
            _record_refusal(conn, user, *refusal, now, rules)
            return Decision("refused", policy, limit=refusal[0], message=refusal[1])
        slots = _live_slots(conn, user, now)
        running = sum(1 for _, state in slots if state == "running")
        queued = len(slots) - running
        concurrent = policy["concurrent_queries"]
        max_queued = policy["queued_queries"]
        if (concurrent is None or running < concurrent) and queued == 0:
            slot_id = _insert_slot(conn, user, "running", now, rules)
            add_usage(conn, user, day, queries=1)
            return Decision("running", policy, slot_id=slot_id)
        if concurrent != 0 and (max_queued is None or queued < max_queued):
            slot_id = _insert_slot(conn, user, "queued", now, rules)
            return Decision("queued", policy, slot_id=slot_id, position=queued + 1, running=running)
        message = messages.queue_full(
            running,
            int(concurrent),  # type: ignore[arg-type]
            queued,
            int(max_queued or 0),
            rules.contact,
        )
        limit = "concurrent_queries" if concurrent == 0 else "queued_queries"
        _record_refusal(conn, user, limit, message, now, rules)
        return Decision("refused", policy, limit=limit, message=message)


def _insert_slot(conn: sa.Connection, user: str, state: str, now: dt.datetime, rules: Rules) -> int:
    lease = rules.lease if state == "running" else rules.queue_lease
    result = conn.execute(
        slots_t.insert()
        .values(
            user_name=user,
            state=state,
            holder=HOLDER,
            created_at=now,
            admitted_at=now if state == "running" else None,
            expires_at=now + lease,
        )
        .returning(slots_t.c.id)
    )
    return int(result.scalar_one())


def poll(
    store: Store,
    user: str,
    groups: Sequence[str],
    slot_id: int,
    rules: Rules,
    now: dt.datetime,
) -> Decision:
    """Move queued slot *slot_id* to running if a slot is free and every older queued
    query of the user has had its turn; otherwise renew its lease and report its place.

    The daily limits are checked again on admission (they may have run out meanwhile).
    """
    day = rules.days.day_of(now)
    with user_lock(store, user, groups, now) as conn:
        policy = effective_policy(user, groups, load_policies(conn, user, groups), rules.configured)
        slots = _live_slots(conn, user, now)
        mine = next((state for sid, state in slots if sid == slot_id), None)
        if mine == "running":
            return Decision("running", policy, slot_id=slot_id)
        if mine is None:
            # Only an expired lease gets here: the waiting request stalled for longer
            # than queue_lease. Queue it again at the end rather than lose it.
            slot_id = _insert_slot(conn, user, "queued", now, rules)
            slots.append((slot_id, "queued"))
        running = sum(1 for _, state in slots if state == "running")
        ahead = sum(1 for sid, state in slots if state == "queued" and sid < slot_id)
        concurrent = policy["concurrent_queries"]
        if concurrent is None or running + ahead < concurrent:
            refusal = _daily_refusal(policy, today_usage(conn, user, day), rules, now)
            if refusal:
                conn.execute(slots_t.delete().where(slots_t.c.id == slot_id))
                _record_refusal(conn, user, *refusal, now, rules)
                return Decision("refused", policy, limit=refusal[0], message=refusal[1])
            conn.execute(
                slots_t.update()
                .where(slots_t.c.id == slot_id)
                .values(state="running", admitted_at=now, expires_at=now + rules.lease)
            )
            add_usage(conn, user, day, queries=1)
            return Decision("running", policy, slot_id=slot_id)
        conn.execute(
            slots_t.update()
            .where(slots_t.c.id == slot_id)
            .values(expires_at=now + rules.queue_lease)
        )
        return Decision("queued", policy, slot_id=slot_id, position=ahead + 1, running=running)


def renew(store: Store, slot_id: int, query_id: str | None, rules: Rules, now: dt.datetime) -> None:
    """Extend a running slot's lease (and note its Trino query id once known)."""
    values: dict = {"expires_at": now + rules.lease}
    if query_id:
        values["query_id"] = query_id
    with write_transaction(store) as conn:
        conn.execute(slots_t.update().where(slots_t.c.id == slot_id).values(**values))


def release(
    store: Store,
    user: str,
    slot_id: int,
    rules: Rules,
    now: dt.datetime,
    *,
    cpu_ms: int = 0,
    bytes_scanned: int = 0,
    uncount: bool = False,
) -> None:
    """Free a slot (running or queued) and add the query's CPU and bytes to today.

    *uncount* takes the query back out of today's count (it was admitted but never ran).
    """
    with write_transaction(store) as conn:
        deleted = conn.execute(slots_t.delete().where(slots_t.c.id == slot_id)).rowcount
        amounts = {"cpu_ms": max(0, int(cpu_ms)), "bytes_scanned": max(0, int(bytes_scanned))}
        if uncount and deleted:
            amounts["queries"] = -1
        if any(amounts.values()):
            add_usage(conn, user, rules.days.day_of(now), **amounts)


def give_up(
    store: Store,
    user: str,
    slot_id: int,
    limit: str,
    message: str,
    rules: Rules,
    now: dt.datetime,
) -> None:
    """Take a queued query out of the queue and record why it was refused."""
    with write_transaction(store) as conn:
        conn.execute(slots_t.delete().where(slots_t.c.id == slot_id))
        _record_refusal(conn, user, limit, message, now, rules)


def record_cancel(
    store: Store,
    user: str,
    limit: str,
    message: str,
    query_id: str | None,
    rules: Rules,
    now: dt.datetime,
) -> None:
    """Log that a running query was cancelled for passing a per-query limit."""
    with write_transaction(store) as conn:
        _record_refusal(
            conn, user, limit, message, now, rules, action="cancelled", query_id=query_id
        )
