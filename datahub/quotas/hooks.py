"""The quota feature at the gateway: its admission (run, queue or refuse each query, with
per-query limits set as Trino's own session limits) and its listener (accounting while
queries run and when they end, stopping those taking their user past a daily limit).

The service configures them (``DataHubService.admission`` and ``query_listeners``). The
ticket of an admitted query travels in its admission data (``query.admission["quota"]``,
mapped in `ticket_of`), so any gateway process can check and release it. A query that
must wait keeps its `QueryRecord.queued_data` with its queued slot in the store; its
place is the slot id.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..gateway.admission import (
    Admitted,
    QueryAdmission,
    QueryListener,
    QueryQueued,
    QueryRefused,
    unknown_place,
)
from ..gateway.engine_limits import EngineLimits
from ..identity import Identity, normalize_username
from ..query import QueryRecord, QueryState, QueryStats
from . import messages
from .admission import (
    ENGINE_LIMIT_ERRORS,
    QuotaPlaceLost,
    QuotaQueued,
    QuotaRefused,
    QuotaUnavailable,
    Ticket,
)
from .manager import QuotaManager

#: Error of a query the quota store could not admit: the store is the gateway's
#: dependency, so EXTERNAL, in the gateway's own code range.
QUOTA_UNAVAILABLE = ("QUOTA_UNAVAILABLE", "EXTERNAL", 0x0100_DA10)
#: Error of a queued query whose client stopped asking for it and so lost its place.
QUEUED_QUERY_EXPIRED = ("QUEUED_QUERY_EXPIRED", "USER_ERROR", 0xDA13)

#: Key of the admission data holding the quota ticket.
TICKET = "quota"


def ticket_of(query: QueryRecord) -> Ticket | None:
    """The quota ticket of *query* (None if the quota did not admit it): the one mapping
    from a query to the quota's view of it."""
    data = query.admission.get(TICKET)
    return Ticket.from_data(data) if data else None


def _unavailable(e: QuotaUnavailable) -> QueryRefused:
    name, kind, code = QUOTA_UNAVAILABLE
    return QueryRefused(str(e), name, kind, code)


def _slot(place: str) -> int:
    # "0-<slot>": a place given while the quota was the first of a chain of hooks, in a
    # queued URI a client may still hold across the upgrade.
    place = place.removeprefix("0-")
    if not place.isdigit():
        raise unknown_place()
    return int(place)


class QuotaAdmission(QueryAdmission):
    """Admits each query against its user's quota, with its per-query limits for Trino
    to enforce."""

    def __init__(self, manager: QuotaManager) -> None:
        self.manager = manager

    async def admit(self, query: QueryRecord, ending: Sequence[QueryRecord] = ()) -> Admitted:
        identity = query.identity
        user = normalize_username(identity.name)
        # The slots of the user's queries that have ended, whose release is on its way.
        ended = [t.slot_id for t in map(ticket_of, ending) if t is not None and t.user == user]
        try:
            ticket = await self.manager.controller.admit(
                user,
                identity.groups,
                routing_group=query.routing_group,
                request=query.queued_data(),
                ended=ended,
            )
        except QuotaQueued as queued:
            raise QueryQueued(queued.message, str(queued.slot_id), queued.waited) from None
        except QuotaRefused as refusal:
            raise QueryRefused(refusal.message) from None
        except QuotaUnavailable as e:
            raise _unavailable(e) from None
        return self._admitted(ticket)

    async def recheck(self, identity: Identity, place: str) -> tuple[QueryRecord, Admitted]:
        controller = self.manager.controller
        try:
            ticket, request = await controller.recheck(
                normalize_username(identity.name), identity.groups, _slot(place)
            )
        except QuotaQueued as queued:
            raise QueryQueued(queued.message, str(queued.slot_id), queued.waited) from None
        except QuotaRefused as refusal:
            kept = refusal.request and QueryRecord.from_queued_data(identity, refusal.request)
            raise QueryRefused(refusal.message, query=kept or None) from None
        except QuotaPlaceLost as lost:
            raise QueryRefused(lost.message, *QUEUED_QUERY_EXPIRED) from None
        except QuotaUnavailable as e:
            raise _unavailable(e) from None
        return QueryRecord.from_queued_data(identity, request), self._admitted(ticket)

    async def withdraw(self, identity: Identity, place: str) -> QueryRecord | None:
        try:
            request = await self.manager.controller.withdraw(
                normalize_username(identity.name), _slot(place)
            )
        except QuotaUnavailable as e:
            raise _unavailable(e) from None
        return QueryRecord.from_queued_data(identity, request) if request else None

    def _admitted(self, ticket: Ticket) -> Admitted:
        note = f"quota: waited {ticket.waited:.1f} s" if ticket.waited >= 0.05 else None
        return Admitted(
            note=note,
            data={TICKET: ticket.to_data()},
            engine_limits=engine_limits(ticket),
            limit_messages=limit_messages(ticket, self.manager.admin_contact),
        )


class QuotaListener(QueryListener):
    """Counts CPU and bytes while queries run and when they end (freeing their slot),
    and stops those taking their user past a daily limit."""

    def __init__(self, manager: QuotaManager) -> None:
        self.manager = manager

    async def on_progress(self, query: QueryRecord, stats: QueryStats) -> str | None:
        ticket = ticket_of(query)
        if ticket is None:
            return None
        return await self.manager.controller.progress(ticket, query_id=query.query_id or None)

    async def on_running(self, query: QueryRecord, stats: QueryStats) -> str | None:
        ticket = ticket_of(query)
        if ticket is None:
            return None
        return await self.manager.controller.count_running(
            ticket,
            cpu_ms=stats.cpu_ms,
            bytes_scanned=stats.processed_bytes,
            query_id=query.query_id or None,
        )

    async def on_finished(self, query: QueryRecord) -> None:
        ticket = ticket_of(query)
        if ticket is None:
            return
        controller = self.manager.controller
        stats = query.stats or QueryStats(query.state)
        limit = ENGINE_LIMIT_ERRORS.get(stats.error_name or "")
        if limit is not None:
            used = {
                "query_cpu_seconds": stats.cpu_ms / 1000,
                "query_runtime_seconds": stats.elapsed_ms / 1000,
                "query_bytes_scanned": stats.physical_bytes,
            }
            controller.stopped_by_engine(ticket, limit, used[limit], query.query_id or None)
        await controller.finish(
            ticket,
            cpu_ms=stats.cpu_ms,
            bytes_scanned=stats.processed_bytes,
            ran=query.state != QueryState.REJECTED,
        )


def limit_messages(ticket: Ticket, contact: str) -> dict[str, str]:
    """What the client reads when Trino stops a query at one of *ticket*'s per-query
    limits, by Trino's error name."""
    return {
        error: messages.per_query_limit_stopped(limit, ticket.limits[limit], contact)
        for error, limit in ENGINE_LIMIT_ERRORS.items()
        if ticket.limits.get(limit) is not None
    }


def engine_limits(ticket: Ticket) -> EngineLimits:
    """The per-query limits of *ticket* for Trino to enforce."""
    limits = ticket.limits
    return EngineLimits(
        cpu_seconds=limits.get("query_cpu_seconds"),  # type: ignore[arg-type]
        run_seconds=limits.get("query_runtime_seconds"),  # type: ignore[arg-type]
        scan_bytes=limits.get("query_bytes_scanned"),  # type: ignore[arg-type]
    )
