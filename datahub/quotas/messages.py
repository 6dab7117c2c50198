"""What a user reads when a quota stops a query: one sentence that says which limit,
the usage, when it resets (or what to do) and whom to ask.

``QuotaExceeded: 50 of 50 queries used today; resets 00:00 UTC; ask your DataHub admin
(datahub-admins) for more.``
"""

from __future__ import annotations

from .policy import LimitValue, format_bytes, format_limit, format_seconds

PREFIX = "QuotaExceeded: "


def _used_today(limit: str, used: float, allowed: LimitValue) -> str:
    if limit == "queries_per_day":
        return f"{int(used):,} of {allowed:,} queries used today"
    if limit == "cpu_seconds_per_day":
        return f"{used:,.0f} of {allowed:,.0f} CPU seconds used today"
    return f"{format_bytes(used)} of {format_limit(limit, allowed)} scanned today"


def daily_limit_reached(
    limit: str, used: float, allowed: LimitValue, resets: str, contact: str
) -> str:
    """A daily limit is used up: queries, CPU seconds or bytes scanned today."""
    return f"{PREFIX}{_used_today(limit, used, allowed)}; resets {resets}; ask {contact} for more."


def daily_limit_passed(
    limit: str, used: float, allowed: LimitValue, resets: str, contact: str
) -> str:
    """A running query took its user past a daily limit (CPU seconds or bytes scanned)."""
    return (
        f"{PREFIX}{_used_today(limit, used, allowed)}, so this query was cancelled; "
        f"resets {resets}; ask {contact} for more."
    )


def queue_full(running: int, concurrent: int, queued: int, max_queued: int, contact: str) -> str:
    """Every slot is taken and the queue is full (or queueing is off)."""
    if concurrent == 0:
        return f"{PREFIX}your quota allows no queries (0 concurrent queries); ask {contact}."
    slots = f"{running} of {concurrent} concurrent queries running"
    queue = "no queueing allowed" if max_queued == 0 else f"{queued} of {max_queued} queued"
    return f"{PREFIX}{slots} and {queue}; wait for one to finish, or ask {contact} for more."


def waiting(position: int, running: int, concurrent: int) -> str:
    """Why a queued query waits (shown while it waits, not an error)."""
    if concurrent == 1:
        slots = "your only concurrent query slot"
    else:
        slots = f"one of your {concurrent} concurrent query slots"
    ahead = position - 1
    queue = "yours is next" if ahead <= 0 else f"{ahead} of your queries ahead of it"
    return f"Queued: waiting for {slots} ({running} in use); {queue}."


def queue_wait_too_long(running: int, concurrent: int, waited: float, contact: str) -> str:
    """A queued query waited ``max_queue_wait`` seconds."""
    return (
        f"{PREFIX}{running} of {concurrent} concurrent queries still running after this one "
        f"waited {waited:.0f} s in your queue; run it again when one finishes, or ask "
        f"{contact} for more."
    )


def place_lost(queue_lease: float) -> str:
    """A queued query's client stopped asking for it, so its place went to the next one."""
    return (
        f"This query lost its place in your queue: its client did not ask for it for "
        f"{queue_lease:.0f} s; run it again."
    )


def per_query_limit_passed(limit: str, value: float, allowed: LimitValue, contact: str) -> str:
    """A running query passed a per-query limit and is being cancelled."""
    if limit == "query_runtime_seconds":
        what = f"this query ran {format_seconds(value)}"
    elif limit == "query_cpu_seconds":
        what = f"this query used {format_seconds(value)} of CPU"
    else:
        what = f"this query scanned {format_bytes(value)}"
    return (
        f"{PREFIX}{what}, over your limit of {format_limit(limit, allowed)} per query, "
        f"so it was cancelled; ask {contact} for more."
    )


def per_query_limit_stopped(limit: str, allowed: LimitValue, contact: str) -> str:
    """The engine (Trino or PrestoDB) stopped a query at a per-query limit the gateway set
    from the quota (the sentence the client reads instead of the engine's own message)."""
    what = {
        "query_runtime_seconds": "of run time",
        "query_cpu_seconds": "of CPU",
        "query_bytes_scanned": "scanned",
    }[limit]
    return (
        f"{PREFIX}this query went over your limit of {format_limit(limit, allowed)} {what} "
        f"per query, so the cluster stopped it; ask {contact} for more."
    )


def routing_group_not_allowed(group: str, allowed: tuple[str, ...], contact: str) -> str:
    """The query asked for a routing group the user's quota does not include."""
    yours = ", ".join(allowed) if allowed else "none"
    return (
        f"{PREFIX}routing group {group!r} is not in your quota (yours: {yours}); "
        f"ask {contact} for access."
    )
