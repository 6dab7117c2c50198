"""Reading and changing quota policies and usage in the store, for the API, pages, CLI
and spawners. Every change writes a ``quota_changes`` row (who, when, before, after) in
the same transaction as the change itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..identity import normalize_username
from ..store import Store
from .counters import (
    load_policies,
    policy_from_row,
    slots_t,
    usage_t,
    users_t,
    write_transaction,
)
from .models import QuotaChange, QuotaPolicy, QuotaRefusal
from .policy import (
    DEFAULT_NAME,
    SCOPES,
    EffectivePolicy,
    LimitValue,
    Policy,
    PolicyError,
    effective_policy,
    limits_to_json,
    parse_limits,
)

policies_t = QuotaPolicy.__table__
changes_t = QuotaChange.__table__
refusals_t = QuotaRefusal.__table__

USAGE_COLUMNS = ("queries", "cpu_ms", "bytes_scanned", "refused", "cancelled")


def subject(scope: str, name: str | None) -> tuple[str, str]:
    """Check and normalize a policy's subject: ("default", "default"), ("group", name)
    or ("user", normalized name)."""
    if scope not in SCOPES:
        raise PolicyError(f"A policy belongs to the default, a group or a user, not {scope!r}.")
    if scope == "default":
        return scope, DEFAULT_NAME
    name = (name or "").strip()
    if not name or len(name) > 255:
        raise PolicyError(f"Name the {scope} this policy is for.")
    return scope, normalize_username(name) if scope == "user" else name


def _policy_json(limits: Mapping[str, LimitValue] | None) -> dict[str, Any] | None:
    return None if limits is None else {"limits": limits_to_json(limits)}


def _audit(
    conn: sa.Connection,
    actor: str,
    action: str,
    scope: str,
    name: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: dt.datetime,
) -> None:
    conn.execute(
        changes_t.insert().values(
            at=now,
            actor=actor,
            action=action,
            scope=scope,
            name=name,
            before=before,
            after=after,
        )
    )


def _stored_limits(conn: sa.Connection, scope: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(policies_t.c.limits).where(policies_t.c.scope == scope, policies_t.c.name == name)
    ).first()
    return None if row is None else dict(row.limits)


def get_policy(store: Store, scope: str, name: str | None = None) -> Policy | None:
    """The stored policy of a subject, or None."""
    scope, name = subject(scope, name)
    with store.engine.connect() as conn:
        limits = _stored_limits(conn, scope, name)
    return None if limits is None else policy_from_row(scope, name, limits)


def list_policies(store: Store) -> list[dict[str, Any]]:
    """Every stored policy: default first, then groups, then users, by name."""
    order = sa.case({"default": 0, "group": 1, "user": 2}, value=policies_t.c.scope)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(policies_t).order_by(order, policies_t.c.name)).all()
    return [
        {
            "scope": row.scope,
            "name": row.name,
            "limits": limits_to_json(policy_from_row(row.scope, row.name, row.limits).limits),
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
        }
        for row in rows
    ]


def set_policy(
    store: Store,
    scope: str,
    name: str | None,
    limits: Mapping[str, Any],
    actor: str,
    now: dt.datetime,
    *,
    merge: bool = False,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Create or replace a policy (or, with *merge*, change only the limits given).

    Returns (before, after) as ``{"limits": …}`` (before is None for a new policy).
    Raises PolicyError for an unknown limit or a bad value.
    """
    scope, name = subject(scope, name)
    parsed = parse_limits(limits)
    with write_transaction(store) as conn:
        if not store.is_sqlite:
            # Serialise concurrent edits of one policy so the audit's "before" is exact.
            conn.execute(
                sa.select(policies_t.c.id)
                .where(policies_t.c.scope == scope, policies_t.c.name == name)
                .with_for_update()
            )
        stored = _stored_limits(conn, scope, name)
        before = None if stored is None else policy_from_row(scope, name, stored).limits
        new = {**(before or {}), **parsed} if merge else parsed
        values = {"limits": limits_to_json(new), "updated_at": now, "updated_by": actor}
        if stored is None:
            conn.execute(policies_t.insert().values(scope=scope, name=name, **values))
        else:
            conn.execute(
                policies_t.update()
                .where(policies_t.c.scope == scope, policies_t.c.name == name)
                .values(**values)
            )
        after = _policy_json(new)
        _audit(conn, actor, "set", scope, name, _policy_json(before), after, now)
    return _policy_json(before), after  # type: ignore[return-value]


def reset_policy(
    store: Store, scope: str, name: str | None, actor: str, now: dt.datetime
) -> dict[str, Any] | None:
    """Delete a policy, so its subject inherits again; returns what it was (or None,
    and nothing is audited, when there was none)."""
    scope, name = subject(scope, name)
    with write_transaction(store) as conn:
        stored = _stored_limits(conn, scope, name)
        if stored is None:
            return None
        conn.execute(
            policies_t.delete().where(policies_t.c.scope == scope, policies_t.c.name == name)
        )
        before = _policy_json(policy_from_row(scope, name, stored).limits)
        _audit(conn, actor, "reset", scope, name, before, None, now)
    return before


def reset_usage(
    store: Store, user: str, day: dt.date, actor: str, now: dt.datetime
) -> dict[str, Any]:
    """Zero *user*'s daily counters for *day* (a second chance today); returns the
    counters as they were. Audited as ``reset-usage``."""
    _, user = subject("user", user)
    with write_transaction(store) as conn:
        row = conn.execute(
            sa.select(*(usage_t.c[c] for c in USAGE_COLUMNS)).where(
                usage_t.c.user_name == user, usage_t.c.day == day
            )
        ).first()
        before = dict(row._mapping) if row else dict.fromkeys(USAGE_COLUMNS, 0)
        conn.execute(
            usage_t.update()
            .where(usage_t.c.user_name == user, usage_t.c.day == day)
            .values(queries=0, cpu_ms=0, bytes_scanned=0)
        )
        after = {**before, "queries": 0, "cpu_ms": 0, "bytes_scanned": 0}
        _audit(
            conn,
            actor,
            "reset-usage",
            "user",
            user,
            {"day": day.isoformat(), **before},
            {"day": day.isoformat(), **after},
            now,
        )
    return before


def effective_for(
    store: Store, user: str, groups: Sequence[str], configured: Mapping[str, LimitValue]
) -> EffectivePolicy:
    """The limits that apply to *user* in *groups* right now."""
    with store.engine.connect() as conn:
        policies = load_policies(conn, user, groups)
    return effective_policy(user, groups, policies, configured)


def user_groups(store: Store, user: str) -> list[str]:
    """*user*'s hub groups as the gateway last saw them ([] if never seen)."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(users_t.c.groups).where(users_t.c.name == user)).first()
    return list(row.groups) if row else []


def _usage_rows(conn: sa.Connection, day: dt.date) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        sa.select(usage_t.c.user_name, *(usage_t.c[c] for c in USAGE_COLUMNS)).where(
            usage_t.c.day == day
        )
    )
    return {row.user_name: {c: int(getattr(row, c)) for c in USAGE_COLUMNS} for row in rows}


def _slot_counts(conn: sa.Connection, now: dt.datetime) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        sa.select(slots_t.c.user_name, slots_t.c.state, sa.func.count())
        .where(slots_t.c.expires_at >= now)
        .group_by(slots_t.c.user_name, slots_t.c.state)
    )
    counts: dict[str, dict[str, int]] = {}
    for user, state, n in rows:
        counts.setdefault(user, {"running": 0, "queued": 0})[state] = int(n)
    return counts


def user_usage(store: Store, user: str, day: dt.date, now: dt.datetime) -> dict[str, int]:
    """*user*'s counters for *day* plus their running and queued queries now."""
    with store.engine.connect() as conn:
        usage = _usage_rows(conn, day).get(user, dict.fromkeys(USAGE_COLUMNS, 0))
        slots = _slot_counts(conn, now).get(user, {"running": 0, "queued": 0})
    return {**usage, **slots}


def users_overview(
    store: Store, day: dt.date, now: dt.datetime, configured: Mapping[str, LimitValue]
) -> list[dict[str, Any]]:
    """Every known user (seen by the gateway or with a policy): groups, effective limits
    (with their sources) and usage for *day*."""
    with store.engine.connect() as conn:
        known = {row.name: list(row.groups) for row in conn.execute(sa.select(users_t))}
        for (name,) in conn.execute(
            sa.select(policies_t.c.name).where(policies_t.c.scope == "user")
        ):
            known.setdefault(name, [])
        policies = [
            policy_from_row(row.scope, row.name, row.limits)
            for row in conn.execute(sa.select(policies_t))
        ]
        usage = _usage_rows(conn, day)
        slots = _slot_counts(conn, now)
    result = []
    for name in sorted(known):
        policy = effective_policy(name, known[name], policies, configured)
        result.append(
            {
                "name": name,
                "groups": known[name],
                "policy": policy.to_json(),
                "usage": {
                    **usage.get(name, dict.fromkeys(USAGE_COLUMNS, 0)),
                    **slots.get(name, {"running": 0, "queued": 0}),
                },
            }
        )
    return result


def groups_overview(store: Store, day: dt.date, now: dt.datetime) -> list[dict[str, Any]]:
    """Every known group (of a seen user or with a policy): members, its own policy, and
    the summed usage of its members for *day*."""
    with store.engine.connect() as conn:
        members: dict[str, list[str]] = {}
        for row in conn.execute(sa.select(users_t)):
            for group in row.groups:
                members.setdefault(group, []).append(row.name)
        own = {
            row.name: limits_to_json(policy_from_row("group", row.name, row.limits).limits)
            for row in conn.execute(sa.select(policies_t).where(policies_t.c.scope == "group"))
        }
        usage = _usage_rows(conn, day)
        slots = _slot_counts(conn, now)
    result = []
    for group in sorted(set(members) | set(own)):
        names = sorted(members.get(group, []))
        total = dict.fromkeys((*USAGE_COLUMNS, "running", "queued"), 0)
        for name in names:
            for key, value in {**usage.get(name, {}), **slots.get(name, {})}.items():
                total[key] += value
        result.append({"name": group, "members": names, "policy": own.get(group), "usage": total})
    return result


def usage_history(store: Store, first_day: dt.date, last_day: dt.date) -> list[dict[str, Any]]:
    """Per user and day between the two days (inclusive): every counter, plus the user's
    groups (as last seen), oldest day first."""
    with store.engine.connect() as conn:
        groups = {row.name: list(row.groups) for row in conn.execute(sa.select(users_t))}
        rows = conn.execute(
            sa.select(usage_t)
            .where(usage_t.c.day >= first_day, usage_t.c.day <= last_day)
            .order_by(usage_t.c.day, usage_t.c.user_name)
        ).all()
    return [
        {
            "day": row.day,
            "user": row.user_name,
            "groups": groups.get(row.user_name, []),
            **{c: int(getattr(row, c)) for c in USAGE_COLUMNS},
        }
        for row in rows
    ]


def recent_refusals(store: Store, limit: int = 50, user: str | None = None) -> list[dict]:
    """The newest refusals and quota cancellations, newest first."""
    query = sa.select(refusals_t).order_by(refusals_t.c.id.desc()).limit(limit)
    if user:
        query = query.where(refusals_t.c.user_name == user)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def recent_changes(store: Store, limit: int = 50) -> list[dict]:
    """The newest audited changes, newest first."""
    query = sa.select(changes_t).order_by(changes_t.c.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def seen_users(store: Store) -> dict[str, list[str]]:
    """Every user the gateway has seen, with their hub groups as last seen."""
    with store.engine.connect() as conn:
        return {row.name: list(row.groups) for row in conn.execute(sa.select(users_t))}


def all_policies(store: Store) -> list[Policy]:
    """Every stored policy as a Policy (for generating resource groups)."""
    with store.engine.connect() as conn:
        return [
            policy_from_row(row.scope, row.name, row.limits)
            for row in conn.execute(sa.select(policies_t))
        ]
