"""Admission counters in the store: slots (leases) and daily usage, exact across processes.

Every admission decision for a user runs in one transaction that first takes that user's
lock: ``SELECT … FOR UPDATE`` on the user's ``quota_users`` row on PostgreSQL, and
``BEGIN IMMEDIATE`` (one writer at a time) on SQLite. Inside it the decision reads the
user's policy, running and queued slots and today's usage, and writes the outcome, so two
gateway processes can never both take the last slot.

Slots are *leases*: a running slot expires ``lease`` after its last renewal, a queued one
after ``queue_lease``. The gateway renews a running slot while its query makes progress
and deletes it when the query ends (expiry only matters when a gateway process died); a
queued slot is renewed each time its client asks whether its turn has come, so a client
that went away loses its place after ``queue_lease``. A queued slot keeps the query's
request (`QueryRecord.queued_data`: SQL, session headers, routing) so any gateway process
can submit it.

All functions here are synchronous (SQLAlchemy); `admission.AdmissionController` runs
them in worker threads.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..store import Store
from ..store.prepared import Prepared
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
    #: How long a query may wait in its user's queue before it is refused (None: no limit).
    max_queue_wait: dt.timedelta | None = None
    #: The configured routing groups of a user (``c.DataHubService.routing_group_access``):
    #: (user, groups) -> names, or None when ``configured`` alone says.
    routing_access: Callable[[str, Sequence[str]], Sequence[str]] | None = None

    def configured_for(self, user: str, groups: Sequence[str]) -> Mapping[str, LimitValue]:
        """The configured layer of *user*'s policy (below every stored policy)."""
        if self.routing_access is None:
            return self.configured
        allowed = tuple(sorted(self.routing_access(user, groups)))
        return {**self.configured, "routing_groups": allowed}


@dataclass(frozen=True)
class Decision:
    """The outcome of an admission step for one query."""

    #: "gone": the queued slot no longer exists (its lease expired, it was withdrawn,
    #: or it already left the queue through another request).
    status: Literal["running", "queued", "refused", "gone"]
    policy: EffectivePolicy
    slot_id: int | None = None
    #: 1-based place in the user's queue while queued, and the user's running queries.
    position: int = 0
    running: int = 0
    #: The limit that refused the query, and the sentence for the user.
    limit: str | None = None
    message: str | None = None
    #: The request kept with a queued slot, when the query leaves the queue.
    request: dict[str, Any] | None = None
    #: Seconds the query has spent in the queue.
    waited: float = 0.0


# The statements on every query's path (admission, release), built once with bind
# parameters and run on the driver (`Prepared`): SQLAlchemy's own execution of each costs
# several times what SQLite takes to run it.
_USAGE_COLUMNS = ("queries", "cpu_ms", "bytes_scanned", "refused", "cancelled")
_SEEN_QUERY = sa.select(users_t.c.groups, users_t.c.last_seen).where(
    users_t.c.name == sa.bindparam("user")
)
_SEEN = Prepared(_SEEN_QUERY)
_SEEN_LOCKED = Prepared(_SEEN_QUERY.with_for_update())
_TODAY = Prepared(
    sa.select(usage_t.c.queries, usage_t.c.cpu_ms, usage_t.c.bytes_scanned).where(
        usage_t.c.user_name == sa.bindparam("user"), usage_t.c.day == sa.bindparam("day")
    )
)
_SLOTS = Prepared(
    sa.select(slots_t.c.id, slots_t.c.state, slots_t.c.expires_at)
    .where(slots_t.c.user_name == sa.bindparam("user"))
    .order_by(slots_t.c.id)
)
_SLOT_COLUMNS = (
    "user_name",
    "state",
    "holder",
    "created_at",
    "admitted_at",
    "expires_at",
    "request",
    "query_id",
    "cpu_ms",
    "bytes_scanned",
)
_NEW_SLOT = Prepared(
    slots_t.insert()
    .values({name: sa.bindparam(name) for name in _SLOT_COLUMNS})
    .returning(slots_t.c.id)
)
_DELETE_SLOT = Prepared(slots_t.delete().where(slots_t.c.id == sa.bindparam("slot")))


@functools.cache
def _policies(groups: int) -> Prepared:
    """The stored policies that can apply to a user in *groups* groups (parameters
    ``user``, ``group0``, ``group1``, …): the default, their groups', theirs."""
    applies = [
        policies_t.c.scope == "default",
        sa.and_(policies_t.c.scope == "user", policies_t.c.name == sa.bindparam("user")),
    ]
    if groups:
        names = [sa.bindparam(f"group{i}") for i in range(groups)]
        applies.append(sa.and_(policies_t.c.scope == "group", policies_t.c.name.in_(names)))
    columns = (policies_t.c.scope, policies_t.c.name, policies_t.c.limits)
    return Prepared(sa.select(*columns).where(sa.or_(*applies)))


@functools.cache
def _upserts(dialect: str) -> tuple[Prepared, Prepared]:
    """(user upsert, usage upsert) for *dialect*: each adds or replaces one row."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    user = insert(users_t).values(
        {name: sa.bindparam(name) for name in ("name", "groups", "last_seen")}
    )
    user = user.on_conflict_do_update(
        index_elements=[users_t.c.name],
        set_={"groups": user.excluded.groups, "last_seen": user.excluded.last_seen},
    )
    usage = insert(usage_t).values(
        {name: sa.bindparam(name) for name in ("user_name", "day", *_USAGE_COLUMNS)}
    )
    usage = usage.on_conflict_do_update(
        index_elements=[usage_t.c.user_name, usage_t.c.day],
        set_={name: usage_t.c[name] + usage.excluded[name] for name in _USAGE_COLUMNS},
    )
    return Prepared(user), Prepared(usage)


@contextmanager
def write_transaction(store: Store) -> Iterator[sa.Connection]:
    """A transaction that will write; commits on success, rolls back on error.

    On SQLite it takes the write lock at the start (``BEGIN IMMEDIATE``): a transaction
    that reads first and writes later could otherwise fail at once with "database is
    locked" when another process wrote in between, instead of waiting its turn.
    """
    with store.writing(), store.engine.connect() as conn:
        if store.is_sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn
        conn.commit()


#: How often admission refreshes a user's ``last_seen`` when their groups are unchanged
#: (a write per admission would cost every query for a date nobody needs to the second).
SEEN_EVERY = dt.timedelta(hours=1)


@contextmanager
def user_lock(
    store: Store, user: str, groups: Sequence[str], now: dt.datetime
) -> Iterator[sa.Connection]:
    """A transaction holding *user*'s admission lock; commits on success.

    Also records the user's current hub groups (used for group usage), when they changed.
    On PostgreSQL the lock is the user's row (``FOR UPDATE``, or the upsert that creates
    or changes it); SQLite's ``BEGIN IMMEDIATE`` already admits one writer at a time.
    """
    with write_transaction(store) as conn:
        row = (_SEEN if store.is_sqlite else _SEEN_LOCKED).first(conn, {"user": user})
        if row is None or list(row.groups) != list(groups) or now - row.last_seen >= SEEN_EVERY:
            upsert, _ = _upserts(conn.dialect.name)
            upsert.execute(conn, {"name": user, "groups": list(groups), "last_seen": now})
        yield conn


def load_policies(conn: sa.Connection, user: str, groups: Sequence[str]) -> list[Policy]:
    """The stored policies that can apply to *user*: the default, their groups', theirs."""
    names = sorted(set(groups))
    params = {"user": user, **{f"group{i}": name for i, name in enumerate(names)}}
    rows = _policies(len(names)).execute(conn, params)
    return [policy_from_row(scope, name, limits) for scope, name, limits in rows]


def policy_from_row(scope: str, name: str, limits: Mapping) -> Policy:
    """A stored row as a Policy (values were validated when written)."""
    return Policy(
        scope=scope,  # type: ignore[arg-type]
        name=name,
        limits={k: tuple(v) if isinstance(v, list) else v for k, v in limits.items()},
    )


def today_usage(conn: sa.Connection, user: str, day: dt.date) -> dict[str, int]:
    row = _TODAY.first(conn, {"user": user, "day": day})
    if row is None:
        return {"queries": 0, "cpu_ms": 0, "bytes_scanned": 0}
    return row._asdict()


def add_usage(conn: sa.Connection, user: str, day: dt.date, **amounts: int) -> None:
    """Add *amounts* (queries=1, cpu_ms=…, …) to *user*'s counters of *day*, atomically."""
    row: dict[str, Any] = dict.fromkeys(_USAGE_COLUMNS, 0)
    row.update(amounts, user_name=user, day=day)
    _upserts(conn.dialect.name)[1].execute(conn, row)


def daily_limit_hit(
    limits: Mapping[str, LimitValue], usage: Mapping[str, int], *, passed: bool = False
) -> tuple[str, float] | None:
    """The first daily limit *usage* has reached (used up: no new query may start) or,
    with *passed*, gone over (a running query must stop), with today's use in the
    limit's unit; None while within all."""
    for limit, column, unit in DAILY:
        allowed = limits.get(limit)
        if allowed is None:
            continue
        used = usage[column] / unit
        if used > allowed or (not passed and used >= allowed):  # type: ignore[operator]
            return limit, used
    return None


def _daily_refusal(
    policy: EffectivePolicy, usage: Mapping[str, int], rules: Rules, now: dt.datetime
) -> tuple[str, str] | None:
    hit = daily_limit_hit(policy.limits, usage)
    if hit is None:
        return None
    limit, used = hit
    message = messages.daily_limit_reached(
        limit, used, policy[limit], rules.days.describe_reset(now), rules.contact
    )
    return limit, message


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
    rows = _SLOTS.execute(conn, {"user": user})
    expired = [row.id for row in rows if row.expires_at < now]
    if expired:  # only after a gateway process died, or a queued client went away
        conn.execute(slots_t.delete().where(slots_t.c.id.in_(expired)))
    return [(row.id, row.state) for row in rows if row.expires_at >= now]


def enqueue(
    store: Store,
    user: str,
    groups: Sequence[str],
    rules: Rules,
    now: dt.datetime,
    *,
    routing_group: str | None = None,
    request: Mapping[str, Any] | None = None,
    ended: Collection[int] = (),
) -> Decision:
    """Admit a new query of *user*: run it now, queue it, or refuse it (with the reason).

    A query runs at once only if nobody is queued ahead of it, so queued queries keep
    their order. *request* (JSON-able) is kept with a queued slot and handed back by
    `poll` when the query leaves the queue. *ended* are running slots of the user whose
    queries have ended on their cluster (their `release` is on its way): they do not
    count against the concurrency limit.
    """
    day = rules.days.day_of(now)
    with user_lock(store, user, groups, now) as conn:
        policy = effective_policy(
            user, groups, load_policies(conn, user, groups), rules.configured_for(user, groups)
        )
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
        running -= sum(1 for slot, state in slots if state == "running" and slot in ended)
        concurrent = policy["concurrent_queries"]
        max_queued = policy["queued_queries"]
        if (concurrent is None or running < concurrent) and queued == 0:
            slot_id = _insert_slot(conn, user, "running", now, rules)
            add_usage(conn, user, day, queries=1)
            return Decision("running", policy, slot_id=slot_id)
        if concurrent != 0 and (max_queued is None or queued < max_queued):
            slot_id = _insert_slot(conn, user, "queued", now, rules, request)
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


def _insert_slot(
    conn: sa.Connection,
    user: str,
    state: str,
    now: dt.datetime,
    rules: Rules,
    request: Mapping[str, Any] | None = None,
) -> int:
    lease = rules.lease if state == "running" else rules.queue_lease
    values = {
        "user_name": user,
        "state": state,
        "holder": HOLDER,
        "created_at": now,
        "admitted_at": now if state == "running" else None,
        "expires_at": now + lease,
        "request": dict(request) if request is not None else None,
        "query_id": None,
        "cpu_ms": 0,
        "bytes_scanned": 0,
    }
    return int(_NEW_SLOT.first(conn, values).id)


def poll(
    store: Store,
    user: str,
    groups: Sequence[str],
    slot_id: int,
    rules: Rules,
    now: dt.datetime,
) -> Decision:
    """Ask for queued slot *slot_id* whether its turn has come.

    It moves to running (status "running", with its request) if a slot is free and
    every older queued query of the user has had its turn; the daily limits are checked
    again then (they may have run out meanwhile). Otherwise it is refused once it has
    waited ``rules.max_queue_wait``, or stays queued with its lease renewed and its place
    reported. Only one call ever sees "running" for a slot: any later one (and any call
    for a slot whose lease expired) gets "gone".
    """
    day = rules.days.day_of(now)
    with user_lock(store, user, groups, now) as conn:
        policy = effective_policy(
            user, groups, load_policies(conn, user, groups), rules.configured_for(user, groups)
        )
        slots = _live_slots(conn, user, now)
        mine = conn.execute(
            sa.select(slots_t.c.state, slots_t.c.created_at, slots_t.c.request).where(
                slots_t.c.id == slot_id, slots_t.c.user_name == user
            )
        ).first()
        if mine is None or mine.state != "queued":
            return Decision("gone", policy, slot_id=slot_id)
        request = mine.request
        waited = max(0.0, (now - mine.created_at).total_seconds())
        running = sum(1 for _, state in slots if state == "running")
        ahead = sum(1 for sid, state in slots if state == "queued" and sid < slot_id)
        concurrent = policy["concurrent_queries"]
        if concurrent is None or running + ahead < concurrent:
            refusal = _daily_refusal(policy, today_usage(conn, user, day), rules, now)
            if refusal:
                conn.execute(slots_t.delete().where(slots_t.c.id == slot_id))
                _record_refusal(conn, user, *refusal, now, rules)
                return Decision(
                    "refused", policy, limit=refusal[0], message=refusal[1], request=request
                )
            conn.execute(
                slots_t.update()
                .where(slots_t.c.id == slot_id)
                .values(
                    state="running",
                    holder=HOLDER,
                    admitted_at=now,
                    expires_at=now + rules.lease,
                    request=None,
                )
            )
            add_usage(conn, user, day, queries=1)
            return Decision("running", policy, slot_id=slot_id, request=request, waited=waited)
        max_wait = rules.max_queue_wait
        if max_wait is not None and waited >= max_wait.total_seconds():
            message = messages.queue_wait_too_long(
                running, int(concurrent or 0), waited, rules.contact
            )
            conn.execute(slots_t.delete().where(slots_t.c.id == slot_id))
            _record_refusal(conn, user, "concurrent_queries", message, now, rules)
            return Decision(
                "refused", policy, limit="concurrent_queries", message=message, request=request
            )
        conn.execute(
            slots_t.update()
            .where(slots_t.c.id == slot_id)
            .values(holder=HOLDER, expires_at=now + rules.queue_lease)
        )
        return Decision(
            "queued",
            policy,
            slot_id=slot_id,
            position=ahead + 1,
            running=running,
            waited=waited,
        )


def withdraw(store: Store, user: str, slot_id: int) -> dict[str, Any] | None:
    """Take queued slot *slot_id* out of the queue; returns its request, or None if it
    was no longer queued (it left the queue, or its lease expired)."""
    with write_transaction(store) as conn:
        row = conn.execute(
            sa.select(slots_t.c.request).where(
                slots_t.c.id == slot_id,
                slots_t.c.user_name == user,
                slots_t.c.state == "queued",
            )
        ).first()
        if row is None:
            return None
        conn.execute(slots_t.delete().where(slots_t.c.id == slot_id))
        return row.request or {}


def renew(store: Store, slot_id: int, query_id: str | None, rules: Rules, now: dt.datetime) -> None:
    """Extend a running slot's lease (and note its Trino query id once known)."""
    values: dict = {"expires_at": now + rules.lease}
    if query_id:
        values["query_id"] = query_id
    with write_transaction(store) as conn:
        conn.execute(slots_t.update().where(slots_t.c.id == slot_id).values(**values))


_COUNTED = Prepared(
    sa.select(slots_t.c.cpu_ms, slots_t.c.bytes_scanned).where(slots_t.c.id == sa.bindparam("slot"))
)


def uncounted(total: Mapping[str, int], counted: Mapping[str, int]) -> dict[str, int]:
    """What of a query's *total* CPU and bytes is not yet in its user's usage, given
    what was *counted* while it ran (Trino's numbers only grow; never negative)."""
    return {
        name: max(0, int(total[name]) - int(counted[name])) for name in ("cpu_ms", "bytes_scanned")
    }


def count_running(
    store: Store,
    user: str,
    slot_id: int,
    rules: Rules,
    now: dt.datetime,
    *,
    cpu_ms: int,
    bytes_scanned: int,
    query_id: str | None = None,
) -> dict[str, int] | None:
    """Add what a running query used since it was last counted to today's usage, and
    renew its slot's lease; returns the user's usage today (None if the slot is gone:
    the query ended meanwhile, and its end counted it)."""
    total = {"cpu_ms": cpu_ms, "bytes_scanned": bytes_scanned}
    day = rules.days.day_of(now)
    with write_transaction(store) as conn:
        row = _COUNTED.first(conn, {"slot": slot_id})
        if row is None:
            return None
        amounts = uncounted(total, row._asdict())
        values: dict[str, Any] = {"expires_at": now + rules.lease}
        if query_id:
            values["query_id"] = query_id
        if any(amounts.values()):
            values.update(
                cpu_ms=row.cpu_ms + amounts["cpu_ms"],
                bytes_scanned=row.bytes_scanned + amounts["bytes_scanned"],
            )
            add_usage(conn, user, day, **amounts)
        conn.execute(slots_t.update().where(slots_t.c.id == slot_id).values(**values))
        return today_usage(conn, user, day)


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
    """Free a slot (running or queued) and add the query's CPU and bytes to today, less
    what was counted while it ran.

    *uncount* takes the query back out of today's count (it was admitted but never ran).
    """
    total = {"cpu_ms": cpu_ms, "bytes_scanned": bytes_scanned}
    with write_transaction(store) as conn:
        row = _COUNTED.first(conn, {"slot": slot_id})
        deleted = _DELETE_SLOT.rowcount(conn, {"slot": slot_id})
        counted = row._asdict() if row is not None else {"cpu_ms": 0, "bytes_scanned": 0}
        amounts = uncounted(total, counted)
        if uncount and deleted:
            amounts["queries"] = -1
        if any(amounts.values()):
            add_usage(conn, user, rules.days.day_of(now), **amounts)


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
