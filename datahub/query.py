"""One query, from its submission (or its refusal before routing) to its close.

`QueryRecord` is the one shape of a query inside DataHub: the gateway builds it from the
client's request, the admission decides on it, the tracker follows it while it runs and
closes it. Every other shape is a view of it, mapped in one place each: the audit row
(`datahub.audit.records.row_of`), the event (`datahub.audit.events.event`), the quota
ticket (`datahub.quotas.hooks.ticket_of`) and what a queued query keeps with its place
(`QueryRecord.queued_data`).

Neutral on purpose: it imports nothing from the gateway or the features, so each of them
may import it.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .identity import Identity


class QueryState(enum.StrEnum):
    """DataHub's states of a query, as the audit stores them and the API names them.

    While a query runs its state is Trino's (``QUEUED``, ``PLANNING``, ``RUNNING``…); once
    it ends, one of the final states. The values are the strings stored in the audit.
    """

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    #: Cancelled by its client (or while queued).
    CANCELED = "CANCELED"
    #: Its cluster died, forgot it, or stayed unreachable: its outcome is unknown.
    LOST = "LOST"
    #: Refused before it reached a cluster (routing, the admission, a bad request).
    REJECTED = "REJECTED"


FINAL_STATES = frozenset(
    {
        QueryState.FINISHED,
        QueryState.FAILED,
        QueryState.CANCELED,
        QueryState.LOST,
        QueryState.REJECTED,
    }
)


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


#: The counters of `QueryStats` that records and events keep, in this order.
STATS_FIELDS = (
    "elapsed_ms",
    "queued_ms",
    "cpu_ms",
    "wall_ms",
    "processed_rows",
    "processed_bytes",
    "physical_bytes",
    "peak_memory_bytes",
    "output_rows",
)


#: Key of `QueryRecord.admission` holding the client's messages for the per-query limits
#: the gateway set (kept with the admission data, so every gateway process has them).
LIMIT_MESSAGES = "limit_messages"

#: Key of `QueryRecord.admission` holding the gateway's id a query had while it waited in
#: the admission's queue (the ``query_id`` of its ``query_queued`` event).
QUEUED_AS = "queued_as"

#: The fields a queued query keeps with its place (`QueryRecord.queued_data`): what the
#: gateway needs to submit it later, from any process.
_QUEUED_FIELDS = (
    "sql",
    "client_sql",
    "source",
    "catalog",
    "schema",
    "routing_hint",
    "routing_group",
    "routing_reason",
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(eq=False)
class QueryRecord:
    """A query, from its submission to its close; see the module docstring.

    Before routing only who and what are known; routing sets the routing group; the
    admission its note and data; the cluster that takes it its ``query_id``; its pages
    and Trino's query info its state and statistics; the close its final state.
    """

    #: Who runs it (and which admin, when one acts as the user).
    identity: Identity
    #: The SQL that runs: for ``EXECUTE q`` the prepared statement q (routing and the
    #: audit see this one); ``client_sql`` is the statement as sent when it differs.
    sql: str = ""
    client_sql: str | None = None
    source: str | None = None
    client_tags: tuple[str, ...] = ()
    catalog: str | None = None
    schema: str | None = None
    #: What the client asked for (``X-DataHub-Routing-Group``), if anything.
    routing_hint: str | None = None
    #: The routing group chosen, and why (``rule:<name>``, ``hint``, ``hook``, ``default``).
    routing_group: str | None = None
    routing_reason: str | None = None
    #: A cluster the user pinned with the hint (its name instead of a group's), else None.
    pinned_cluster: str | None = None
    #: The client's headers that reach the cluster with the query (session, catalog,
    #: client tags... never identity; see `protocol.session_headers`), as (name, value).
    headers: tuple[tuple[str, str], ...] = ()
    #: Trino's query id once a cluster took it; the gateway's own for one that never
    #: reached a cluster.
    query_id: str = ""
    #: The cluster that took it, and the principal it authenticated there.
    cluster: str | None = None
    principal: str | None = None
    #: The admission's note (for the audit) and data (for its later calls, in whichever
    #: gateway process serves them; JSON-able).
    admission_note: str | None = None
    admission: Mapping[str, Any] = field(default_factory=dict)
    #: Trino's state while it runs, then a final `QueryState`.
    state: str = QueryState.QUEUED
    stats: QueryStats | None = None
    error_name: str | None = None
    error_type: str | None = None
    error: str | None = None
    #: Why DataHub stopped it (a listener's reason), once it did.
    stop_reason: str | None = None
    submitted_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    #: This process's bookkeeping: closed here (or found closed), last heard of.
    closed: bool = False
    last_seen: float = field(default_factory=time.monotonic, repr=False)

    @property
    def user(self) -> str:
        return self.identity.name

    @property
    def statement(self) -> str:
        """The statement to send to the cluster (as the client sent it)."""
        return self.client_sql or self.sql

    @property
    def limit_messages(self) -> Mapping[str, str]:
        """The client's error message by Trino error name for the per-query limits the
        gateway set on the forwarded query."""
        return self.admission.get(LIMIT_MESSAGES, {})

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def queued_data(self) -> dict[str, Any]:
        """What a queued query keeps with its place (JSON-able), for `from_queued_data`.

        The keys are those the quota store has always kept (``cluster`` is the pinned
        cluster), so places queued before an upgrade still resume.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in _QUEUED_FIELDS}
        data["client_tags"] = list(self.client_tags)
        data["cluster"] = self.pinned_cluster
        data["headers"] = [list(pair) for pair in self.headers]
        return data

    @classmethod
    def from_queued_data(cls, identity: Identity, data: Mapping[str, Any]) -> QueryRecord:
        """The query a queued place kept (`queued_data`), run by *identity*."""
        values = {name: data.get(name) for name in _QUEUED_FIELDS}
        values["sql"] = values["sql"] or ""
        return cls(
            identity=identity,
            client_tags=tuple(data.get("client_tags") or ()),
            pinned_cluster=data.get("cluster"),
            headers=tuple((str(n), str(v)) for n, v in data.get("headers") or ()),
            **values,
        )

    def end(
        self,
        state: str,
        *,
        error: tuple[str | None, str | None, str | None] = (None, None, None),
        stats: QueryStats | None = None,
    ) -> None:
        """Set the final *state* (with Trino's *error* name, type and message, and the
        final *stats*) and the time it ended."""
        self.state = state
        self.error_name, self.error_type, self.error = error
        if stats is not None:
            self.stats = stats
        self.finished_at = utcnow()
