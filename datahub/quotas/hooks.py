"""The quota feature's gateway hooks: admission, per-query limits (set as Trino's own
session limits on every query), accounting while queries run and when they end.

Registered in ``DataHubService.init`` (``service.query_hooks.append(QuotaHooks(...))``).
The ticket of an admitted query travels in ``Admission.data["quota"]``, so any gateway
process can check and release it. A query that must wait keeps its submission with its
queued slot in the store; its place is the slot id.
"""

from __future__ import annotations

from typing import Any

from ..gateway.engine_limits import EngineLimits
from ..gateway.hooks import (
    REJECTED,
    Admission,
    QueryHooks,
    QueryInfo,
    QueryQueued,
    QueryRefused,
    QueryStats,
    Resumed,
    Submission,
)
from ..identity import Identity, normalize_username
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


def _unavailable(e: QuotaUnavailable) -> QueryRefused:
    name, kind, code = QUOTA_UNAVAILABLE
    return QueryRefused(str(e), name, kind, code)


def _slot(place: str) -> int:
    if not place.isdigit():
        raise QueryRefused("This queued query is unknown to DataHub; run it again.")
    return int(place)


class QuotaHooks(QueryHooks):
    """Admits each query against its user's quota, with its per-query limits for Trino
    to enforce; counts CPU and bytes while queries run and when they end, and stops
    those taking their user past a daily limit."""

    def __init__(self, manager: QuotaManager) -> None:
        self.manager = manager

    @classmethod
    def for_service(cls, service: Any) -> QuotaHooks:
        """The hooks of a DataHubService, on its quota manager."""
        return cls(QuotaManager.for_service(service))

    async def admit(self, identity: Identity, submission: Submission) -> Admission:
        controller = self.manager.controller
        try:
            ticket = await controller.admit(
                normalize_username(identity.name),
                identity.groups,
                routing_group=submission.routing_group,
                request=submission.to_data(),
            )
        except QuotaQueued as queued:
            raise QueryQueued(queued.message, str(queued.slot_id), queued.waited) from None
        except QuotaRefused as refusal:
            raise QueryRefused(refusal.message) from None
        except QuotaUnavailable as e:
            raise _unavailable(e) from None
        return self._admission(ticket)

    async def recheck(self, identity: Identity, place: str) -> Resumed:
        controller = self.manager.controller
        try:
            ticket, request = await controller.recheck(
                normalize_username(identity.name), identity.groups, _slot(place)
            )
        except QuotaQueued as queued:
            raise QueryQueued(queued.message, str(queued.slot_id), queued.waited) from None
        except QuotaRefused as refusal:
            stored = Submission.from_data(refusal.request) if refusal.request else None
            raise QueryRefused(refusal.message, submission=stored) from None
        except QuotaPlaceLost as lost:
            raise QueryRefused(lost.message, *QUEUED_QUERY_EXPIRED) from None
        except QuotaUnavailable as e:
            raise _unavailable(e) from None
        return Resumed(Submission.from_data(request), self._admission(ticket))

    async def withdraw(self, identity: Identity, place: str) -> Submission | None:
        try:
            request = await self.manager.controller.withdraw(
                normalize_username(identity.name), _slot(place)
            )
        except QuotaUnavailable as e:
            raise _unavailable(e) from None
        return Submission.from_data(request) if request else None

    def _admission(self, ticket: Ticket) -> Admission:
        note = f"quota: waited {ticket.waited:.1f} s" if ticket.waited >= 0.05 else None
        return Admission(
            note=note,
            data={"quota": ticket.to_data()},
            engine_limits=engine_limits(ticket),
            limit_messages=limit_messages(ticket, self.manager.admin_contact),
        )

    async def on_progress(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        data = query.admission.get("quota")
        if not data:
            return None
        return await self.manager.controller.progress(
            Ticket.from_data(data), query_id=query.query_id or None
        )

    async def on_running(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        data = query.admission.get("quota")
        if not data:
            return None
        return await self.manager.controller.count_running(
            Ticket.from_data(data),
            cpu_ms=stats.cpu_ms,
            bytes_scanned=stats.processed_bytes,
            query_id=query.query_id or None,
        )

    async def finished(
        self, identity: Identity, query: QueryInfo, final_state: str, stats: QueryStats
    ) -> None:
        data = query.admission.get("quota")
        if not data:
            return
        controller = self.manager.controller
        ticket = Ticket.from_data(data)
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
            ran=final_state != REJECTED,
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
