"""Admission at the gateway: run, queue or refuse each new query (with the per-query
limits Trino is to enforce); count what queries use while they run and when they end;
stop queries that take their user past a daily limit.

`AdmissionController` is the asynchronous face of `counters` (whose transactions make the
decisions exact across gateway processes). ``admit`` answers at once: run (a `Ticket`),
refused, or queued (`QuotaQueued`, with its place in the store). The client then asks
again and again (``recheck``, which waits up to ``poll_interval`` for its turn: it is
woken as soon as a slot of the same user is freed in this process, and the store is asked
again for slots freed by other processes), or gives its place up (``withdraw``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store import Store
from . import counters, messages
from .counters import Decision, Rules
from .policy import LimitValue

log = logging.getLogger("datahub.quotas")

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class QuotaRefused(Exception):
    """The query may not run; ``message`` is the sentence for the user. ``request`` is
    what a queued query had kept with its place (None for a new query)."""

    def __init__(self, limit: str, message: str, request: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message
        self.request = request


class QuotaQueued(Exception):
    """The query waits in its user's queue; ``message`` says why, ``slot_id`` is its place."""

    def __init__(self, slot_id: int, message: str, waited: float = 0.0) -> None:
        super().__init__(message)
        self.slot_id = slot_id
        self.message = message
        self.waited = waited


class QuotaPlaceLost(Exception):
    """A queued query's place is gone: its client stopped asking for it (the lease
    expired), or the query already left the queue through another request."""

    def __init__(self, message: str, request: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class QuotaUnavailable(Exception):
    """The quota store could not be asked; the query is not admitted."""

    message = (
        "DataHub cannot check your quota right now (its database is unreachable); "
        "try again shortly or ask an admin."
    )


#: The per-query limits. Trino enforces them itself, as session limits set on every query
#: (see `datahub.gateway.engine_limits`), whether or not the client polls; the gateway
#: leaves them to it, so a query past one has one outcome, Trino's.
PER_QUERY_LIMITS = ("query_runtime_seconds", "query_cpu_seconds", "query_bytes_scanned")
#: Daily limits a running query's usage so far is checked against.
RUNNING_DAILY_LIMITS = ("cpu_seconds_per_day", "bytes_scanned_per_day")
#: Trino's error for a query it stopped at a per-query limit, and that limit.
ENGINE_LIMIT_ERRORS = {
    "EXCEEDED_CPU_LIMIT": "query_cpu_seconds",
    "EXCEEDED_TIME_LIMIT": "query_runtime_seconds",
    "EXCEEDED_SCAN_LIMIT": "query_bytes_scanned",
}


@dataclass
class Ticket:
    """An admitted query: whose, its slot, and the limits it runs under (per query, and
    the daily ones its running usage is checked against).

    It travels with the query as plain data (`to_data`/`from_data`), so whichever gateway
    process serves the query's later pages can check and release it.
    """

    user: str
    slot_id: int
    admitted_at: dt.datetime
    limits: Mapping[str, LimitValue] = field(default_factory=dict)
    #: Seconds spent in the quota queue before admission.
    waited: float = 0.0

    def to_data(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "slot": self.slot_id,
            "admitted_at": self.admitted_at.isoformat(),
            "limits": dict(self.limits),
            "waited": round(self.waited, 3),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Ticket:
        return cls(
            user=data["user"],
            slot_id=int(data["slot"]),
            admitted_at=dt.datetime.fromisoformat(data["admitted_at"]),
            limits=dict(data.get("limits") or {}),
            waited=float(data.get("waited") or 0),
        )


class AdmissionController:
    """Admits queries against the store's policies and counters.

    ``clock`` returns the current aware time (tests inject one to cross day boundaries).
    """

    def __init__(
        self,
        store: Store,
        rules: Rules,
        *,
        clock: Clock = utcnow,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock
        self.poll_interval = poll_interval
        self._waiters: dict[str, set[asyncio.Event]] = {}
        # Per slot: when this process last renewed its lease, what it last counted of
        # its usage (CPU ms, bytes), and why it was stopped.
        self._renewed: dict[int, dt.datetime] = {}
        self._counted: dict[int, tuple[int, int]] = {}
        self._cancelled: dict[int, str] = {}
        self._tasks: set[asyncio.Future] = set()

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A counters call in the store's pool (`Store.run`), its failure as QuotaUnavailable."""
        try:
            return await self.store.run(fn, *args, **kwargs)
        except Exception as e:
            log.exception("Quota store failure in %s", fn.__name__)
            raise QuotaUnavailable(QuotaUnavailable.message) from e

    def _background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # QuotaUnavailable is already logged by _run.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _wake(self, user: str) -> None:
        for event in self._waiters.get(user, ()):
            event.set()

    async def _sleep_until_woken(self, user: str, timeout: float) -> None:
        event = asyncio.Event()
        self._waiters.setdefault(user, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        except TimeoutError:
            pass
        finally:
            self._waiters[user].discard(event)
            if not self._waiters[user]:
                del self._waiters[user]

    async def admit(
        self,
        user: str,
        groups: tuple[str, ...] | list[str],
        *,
        routing_group: str | None = None,
        request: Mapping[str, Any] | None = None,
        ended: Collection[int] = (),
    ) -> Ticket:
        """Admit a new query of *user* now; return its Ticket. *ended* are slots of the
        user's queries that have ended on their cluster, whose release is on its way:
        they no longer count as running.

        Raises QuotaQueued (it must wait: *request* is kept with its place, for
        `recheck`), QuotaRefused (a limit says no: daily limit used up, queue full,
        routing group not allowed) or QuotaUnavailable.
        """
        decision: Decision = await self._run(
            counters.enqueue,
            self.store,
            user,
            tuple(groups),
            self.rules,
            self.clock(),
            routing_group=routing_group,
            request=request,
            ended=frozenset(ended),
        )
        return self._outcome(user, decision)

    async def recheck(
        self, user: str, groups: tuple[str, ...] | list[str], slot_id: int
    ) -> tuple[Ticket, dict[str, Any]]:
        """Ask whether queued query *slot_id* may run, waiting up to ``poll_interval``
        for its turn; return its Ticket and the request kept with its place.

        Raises QuotaQueued (still waiting), QuotaRefused (it waited
        ``rules.max_queue_wait``, or a daily limit ran out), QuotaPlaceLost or
        QuotaUnavailable.
        """
        groups = tuple(groups)
        deadline = time.monotonic() + self.poll_interval
        while True:
            decision: Decision = await self._run(
                counters.poll, self.store, user, groups, slot_id, self.rules, self.clock()
            )
            if decision.status != "queued" or time.monotonic() >= deadline:
                break
            await self._sleep_until_woken(user, deadline - time.monotonic())
        if decision.status == "gone":
            message = messages.place_lost(self.rules.queue_lease.total_seconds())
            raise QuotaPlaceLost(message)
        ticket = self._outcome(user, decision)
        return ticket, dict(decision.request or {})

    def _outcome(self, user: str, decision: Decision) -> Ticket:
        if decision.status == "refused":
            log.info("Refused a query of %s: %s", user, decision.message)
            raise QuotaRefused(decision.limit or "", decision.message or "", decision.request)
        if decision.status == "queued":
            message = messages.waiting(
                decision.position,
                decision.running,
                int(decision.policy["concurrent_queries"] or 0),
            )
            raise QuotaQueued(int(decision.slot_id or 0), message, decision.waited)
        return Ticket(
            user=user,
            slot_id=int(decision.slot_id),  # type: ignore[arg-type]
            admitted_at=self.clock(),
            limits={
                name: decision.policy[name] for name in (*PER_QUERY_LIMITS, *RUNNING_DAILY_LIMITS)
            },
            waited=decision.waited,
        )

    async def withdraw(self, user: str, slot_id: int) -> dict[str, Any] | None:
        """Give queued query *slot_id*'s place up; returns the request kept with it, or
        None if it was no longer queued."""
        try:
            return await self._run(counters.withdraw, self.store, user, slot_id)
        finally:
            self._wake(user)

    async def progress(self, ticket: Ticket, *, query_id: str | None = None) -> str | None:
        """After a result page: the reason the query must stop (a daily limit it took its
        user past, found by `count_running`), or None. Renews the slot's lease every
        quarter lease (in the background, noting the Trino query id for operators).

        Per-query limits are not checked here: Trino enforces them itself (see
        `ENGINE_LIMIT_ERRORS`), whether or not the client polls.
        """
        now = self.clock()
        if ticket.slot_id in self._cancelled:
            return self._cancelled[ticket.slot_id]
        renewed = self._renewed.get(ticket.slot_id, ticket.admitted_at)
        if now - renewed >= self.rules.lease / 4:
            # In the background: a page never waits for the store; a renewal that fails
            # is logged, and the next one (or the lease's length) covers it.
            self._renewed[ticket.slot_id] = now
            self._background(
                self._run(counters.renew, self.store, ticket.slot_id, query_id, self.rules, now)
            )
        return None

    def _stop(
        self, ticket: Ticket, limit: str, reason: str, query_id: str | None, now: dt.datetime
    ) -> str:
        """Note that the query of *ticket* must stop for *reason*; returns the reason."""
        self._cancelled[ticket.slot_id] = reason
        log.info("Stopping query %s of %s: %s", query_id, ticket.user, reason)
        # Recorded in the background: the gateway should cancel the query at once.
        self._record_cancel(ticket.user, limit, reason, query_id, now)
        return reason

    def _record_cancel(
        self, user: str, limit: str, reason: str, query_id: str | None, now: dt.datetime
    ) -> None:
        self._background(
            self._run(
                counters.record_cancel, self.store, user, limit, reason, query_id, self.rules, now
            )
        )

    async def count_running(
        self, ticket: Ticket, *, cpu_ms: float, bytes_scanned: float, query_id: str | None
    ) -> str | None:
        """Count what a running query used so far in its user's usage today (server-side,
        whether or not its client polls; this renews its slot's lease too); return the
        reason to cancel it if that took the user past a daily limit, else None.

        A query that used nothing since this process last counted it (one waiting in its
        cluster's queue, most often) takes its user past no limit: the store is not asked
        until it uses more or its lease is due for renewal (every quarter lease).
        """
        if ticket.slot_id in self._cancelled:
            return self._cancelled[ticket.slot_id]
        now = self.clock()
        used = (int(cpu_ms), int(bytes_scanned))
        renewed = self._renewed.get(ticket.slot_id, ticket.admitted_at)
        if (
            self._counted.get(ticket.slot_id, (0, 0)) == used
            and now - renewed < self.rules.lease / 4
        ):
            return None
        usage = await self._run(
            counters.count_running,
            self.store,
            ticket.user,
            ticket.slot_id,
            self.rules,
            now,
            cpu_ms=int(cpu_ms),
            bytes_scanned=int(bytes_scanned),
            query_id=query_id,
        )
        if usage is None:
            return None
        self._renewed[ticket.slot_id] = now
        self._counted[ticket.slot_id] = used
        daily = {k: v for k, v in ticket.limits.items() if k in RUNNING_DAILY_LIMITS}
        hit = counters.daily_limit_hit(daily, usage, passed=True)
        if hit is None:
            return None
        limit, used = hit
        reason = messages.daily_limit_passed(
            limit,
            used,
            ticket.limits[limit],
            self.rules.days.describe_reset(now),
            self.rules.contact,
        )
        return self._stop(ticket, limit, reason, query_id, now)

    def stopped_by_engine(
        self, ticket: Ticket, limit: str, value: float, query_id: str | None
    ) -> None:
        """Log, like the gateway's own cancels, a query Trino stopped at per-query
        *limit* (*value*: what the query used of it, in its unit)."""
        if ticket.limits.get(limit) is None:
            return
        reason = messages.per_query_limit_passed(
            limit, value, ticket.limits[limit], self.rules.contact
        )
        self._record_cancel(ticket.user, limit, reason, query_id, self.clock())

    async def finish(
        self, ticket: Ticket, *, cpu_ms: float = 0, bytes_scanned: float = 0, ran: bool = True
    ) -> None:
        """Free the query's slot and count its CPU and bytes. *ran* False (the query was
        rejected after admission and never reached a cluster) also takes back its count
        in today's queries."""
        self._renewed.pop(ticket.slot_id, None)
        self._counted.pop(ticket.slot_id, None)
        self._cancelled.pop(ticket.slot_id, None)
        try:
            await self._run(
                counters.release,
                self.store,
                ticket.user,
                ticket.slot_id,
                self.rules,
                self.clock(),
                cpu_ms=int(cpu_ms),
                bytes_scanned=int(bytes_scanned),
                uncount=not ran,
            )
        finally:
            self._wake(ticket.user)

    def close(self) -> None:
        """Nothing of its own to stop: its store calls run in the store's pool."""
