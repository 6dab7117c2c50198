"""The quota feature's gateway hooks: admission, per-query limits, accounting.

Registered in ``DataHubService.init`` (``service.query_hooks.append(QuotaHooks(...))``).
The ticket of an admitted query travels in ``Admission.data["quota"]``, so any gateway
process can check and release it.
"""

from __future__ import annotations

from typing import Any

from ..gateway.hooks import (
    REJECTED,
    Admission,
    QueryHooks,
    QueryInfo,
    QueryRefused,
    QueryStats,
    Submission,
)
from ..identity import Identity, normalize_username
from .admission import QuotaRefused, QuotaUnavailable, Ticket
from .manager import QuotaManager

#: Error of a query the quota store could not admit: the store is the gateway's
#: dependency, so EXTERNAL, in the gateway's own code range.
QUOTA_UNAVAILABLE = ("QUOTA_UNAVAILABLE", "EXTERNAL", 0x0100_DA10)


class QuotaHooks(QueryHooks):
    """Admits each query against its user's quota; stops those passing a per-query
    limit; counts CPU and bytes of finished ones."""

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
            )
        except QuotaRefused as refusal:
            raise QueryRefused(refusal.message) from None
        except QuotaUnavailable as e:
            name, kind, code = QUOTA_UNAVAILABLE
            raise QueryRefused(str(e), name, kind, code) from None
        note = f"quota: waited {ticket.waited:.1f} s" if ticket.waited >= 0.05 else None
        return Admission(note=note, data={"quota": ticket.to_data()})

    async def on_progress(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        data = query.admission.get("quota")
        if not data:
            return None
        return await self.manager.controller.progress(
            Ticket.from_data(data),
            cpu_ms=stats.cpu_ms,
            bytes_scanned=stats.processed_bytes,
            elapsed_ms=stats.elapsed_ms,
            query_id=query.query_id or None,
        )

    async def finished(
        self, identity: Identity, query: QueryInfo, final_state: str, stats: QueryStats
    ) -> None:
        data = query.admission.get("quota")
        if not data:
            return
        await self.manager.controller.finish(
            Ticket.from_data(data),
            cpu_ms=stats.cpu_ms,
            bytes_scanned=stats.processed_bytes,
            ran=final_state != REJECTED,
        )
