"""Hooks around every query the gateway runs: admission, progress, and the end.

Other features (quotas first) plug into the gateway here, without touching its handlers.
A hook is a `QueryHooks` subclass; the service calls the instances in
``DataHubService.query_hooks`` in order (register one with
``service.query_hooks.append(MyHooks(...))`` in ``DataHubService.init``, or
``c.DataHubService.query_hooks`` in the configuration)::

    class QuotaHooks(QueryHooks):
        async def admit(self, identity, submission):
            ticket = await controller.admit(identity.name, identity.groups,
                                            routing_group=submission.routing_group)
            return Admission(note=f"waited {ticket.waited:.1f} s",
                             data={"quota_slot": ticket.slot_id})

        async def on_progress(self, identity, query, stats):
            if stats.cpu_ms > 600_000:
                return "it used more than 10 minutes of CPU (your per-query limit)"
            return None

        async def finished(self, identity, query, final_state, stats):
            await controller.release(query.admission["quota_slot"], stats)

The three calls, for one query:

``admit(identity, submission) -> Admission | None``
    Before the query reaches a cluster, after routing (``submission.routing_group`` is
    the group chosen, ``submission.cluster`` a cluster the user pinned). It may wait
    (queue the query) and it may raise `QueryRefused`, which the client receives as a
    Trino query error with the hook's message and error name. Returning None admits
    without data. ``Admission.data`` (JSON-able, namespace your keys) is stored with the
    query and handed back as ``query.admission`` in the later calls, in whichever gateway
    process serves them.

``on_progress(identity, query, stats) -> str | None``
    After every result page the client receives, with Trino's statistics so far. A
    returned reason stops the query: the gateway cancels it on Trino at once, records it
    FAILED with error ``QUOTA_EXCEEDED``, and answers the client's next request with a
    Trino-format error naming the reason (``DataHub stopped query …: <reason>.``).

``finished(identity, query, final_state, stats)``
    Exactly once for every ``admit`` that returned (across all gateway processes: the
    audit store decides which process closes a query), whatever the end: ``FINISHED``,
    ``FAILED`` (including queries no cluster accepted), ``CANCELED`` (by the client or a
    stop reason), ``LOST`` (the cluster died, or the query vanished and was found by the
    reconciler), or ``REJECTED`` (a later hook refused the query this hook admitted).
    ``stats`` are Trino's final statistics (output rows when Trino still had them).
    ``identity`` is rebuilt from the audit record when the query is closed by the
    reconciler, so it has the name, groups and admin flag recorded at submission.

Exceptions from ``on_progress`` and ``finished`` are logged and ignored: a broken hook
must neither kill queries nor leave them unaccounted for by the other hooks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..identity import Identity

#: Final states of a query, as hooks, the audit and the API name them.
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELED = "CANCELED"
LOST = "LOST"
REJECTED = "REJECTED"
FINAL_STATES = frozenset({FINISHED, FAILED, CANCELED, LOST, REJECTED})


@dataclass(frozen=True)
class Submission:
    """A new query, after routing and before admission."""

    sql: str
    source: str | None
    client_tags: tuple[str, ...]
    catalog: str | None
    schema: str | None
    #: What the client asked for (``X-DataHub-Routing-Group``), if anything.
    routing_hint: str | None
    #: The routing group chosen, and why (``rule:<name>``, ``hint``, ``hook``, ``default``).
    routing_group: str
    routing_reason: str
    #: A cluster the user pinned with the hint (its name instead of a group's), else None.
    cluster: str | None = None


@dataclass(frozen=True)
class Admission:
    """What ``admit`` returns: a note for the audit and data for the later calls."""

    note: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class QueryRefused(Exception):
    """Raised by ``admit``: the query may not run. ``message`` is the user's sentence."""

    def __init__(
        self,
        message: str,
        error_name: str = "QUOTA_EXCEEDED",
        error_type: str = "USER_ERROR",
        error_code: int = 0xDA10,  # in Trino's USER_ERROR range, like the gateway's own
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = error_name
        self.error_type = error_type
        self.error_code = error_code


@dataclass(frozen=True)
class QueryInfo:
    """An admitted query, as the later hook calls see it."""

    query_id: str
    user: str
    cluster: str | None
    routing_group: str | None
    sql: str
    source: str | None
    client_tags: tuple[str, ...]
    submitted_at: dt.datetime
    #: The merged ``Admission.data`` of the hooks.
    admission: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryStats:
    """Trino's statistics of a query (so far, or final), in plain numbers.

    ``output_rows`` is known only at the end (from Trino's query info); ``raw`` is the
    ``stats`` object of the last result page as Trino sent it.
    """

    state: str
    elapsed_ms: int = 0
    queued_ms: int = 0
    cpu_ms: int = 0
    wall_ms: int = 0
    processed_rows: int = 0
    processed_bytes: int = 0
    physical_bytes: int = 0
    peak_memory_bytes: int = 0
    output_rows: int | None = None
    error_name: str | None = None
    error_type: str | None = None
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


class QueryHooks:
    """Base class of query hooks; every method is a no-op. See the module docstring."""

    async def admit(self, identity: Identity, submission: Submission) -> Admission | None:
        return None

    async def on_progress(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        return None

    async def finished(
        self, identity: Identity, query: QueryInfo, final_state: str, stats: QueryStats
    ) -> None:
        return None


class HookChain:
    """Calls a list of hooks in order, with the contract of the module docstring."""

    def __init__(self, hooks: Sequence[QueryHooks], log: logging.Logger) -> None:
        self.hooks = hooks
        self.log = log

    async def admit(self, identity: Identity, submission: Submission) -> Admission:
        """Admit through every hook; the notes and data of all are merged.

        If a hook refuses, the hooks that had already admitted get ``finished`` with
        ``REJECTED`` (each admit that returned gets exactly one finished), then the
        refusal propagates.
        """
        notes: list[str] = []
        data: dict[str, Any] = {}
        admitted: list[QueryHooks] = []
        for hook in self.hooks:
            try:
                admission = await hook.admit(identity, submission)
            except QueryRefused as refusal:
                if admitted:
                    query = QueryInfo(
                        query_id="",
                        user=identity.name,
                        cluster=None,
                        routing_group=submission.routing_group,
                        sql=submission.sql,
                        source=submission.source,
                        client_tags=submission.client_tags,
                        submitted_at=dt.datetime.now(dt.UTC),
                        admission=data,
                    )
                    stats = QueryStats(
                        REJECTED, error_name=refusal.error_name, error=refusal.message
                    )
                    await self._finished(admitted, identity, query, REJECTED, stats)
                raise
            admitted.append(hook)
            if admission is not None:
                if admission.note:
                    notes.append(admission.note)
                data.update(admission.data)
        return Admission(note="; ".join(notes) or None, data=data)

    async def on_progress(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        """The first stop reason a hook gives, or None."""
        for hook in self.hooks:
            try:
                reason = await hook.on_progress(identity, query, stats)
            except Exception:
                self.log.exception(
                    "Query hook %s failed in on_progress of %s", type(hook).__name__, query.query_id
                )
                continue
            if reason:
                return reason
        return None

    async def finished(
        self, identity: Identity, query: QueryInfo, final_state: str, stats: QueryStats
    ) -> None:
        """Tell every hook the query ended."""
        await self._finished(self.hooks, identity, query, final_state, stats)

    async def _finished(
        self,
        hooks: Sequence[QueryHooks],
        identity: Identity,
        query: QueryInfo,
        final_state: str,
        stats: QueryStats,
    ) -> None:
        for hook in hooks:
            try:
                await hook.finished(identity, query, final_state, stats)
            except Exception:
                self.log.exception(
                    "Query hook %s failed in finished of %s", type(hook).__name__, query.query_id
                )
