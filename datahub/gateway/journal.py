"""The record the gateway keeps of every query: the interface the tracker writes to.

The gateway core defines it; the audit implements it (`datahub.audit.journal`) and the
service wires the two together, so the gateway never imports the audit. Writes that only
record (``submitted``, ``queued``, ``ended_early``, ``running``) return at once: the
protocol path never waits for the store. ``close`` is where a query ends exactly once.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from ..query import QueryRecord


class QueryJournal(Protocol):
    """Where queries are recorded, shared by every gateway process."""

    def submitted(self, query: QueryRecord) -> None:
        """A cluster accepted *query*: record it open (with the submitted event)."""

    def queued(self, query: QueryRecord) -> None:
        """The admission put *query* in its queue, under the gateway's id: record that it
        waits (its ``query_queued`` event). Its audit record is written once it is
        submitted (under Trino's id, ``admission["queued_as"]`` naming this one) or
        ends before any cluster saw it (under this id)."""

    def ended_early(self, query: QueryRecord) -> None:
        """Record *query*, which ended before any cluster ran it (refused: REJECTED; no
        cluster took it: FAILED; withdrawn while queued: CANCELED), already closed."""

    def running(self, query: QueryRecord) -> None:
        """*query* started running (its state, for the history page)."""

    async def close(self, query: QueryRecord) -> bool:
        """Close *query* with its final state, error and statistics, if it is still open
        in every gateway process's eyes; True if this call closed it (then, and only
        then, the caller tells the listeners). A query never recorded (its submitted
        write was lost) is recorded closed."""
        ...

    async def find(self, query_id: str) -> QueryRecord | None:
        """The recorded query *query_id*, or None."""
        ...

    async def open_queries(
        self, submitted_before: dt.datetime, user: str | None = None
    ) -> list[QueryRecord]:
        """The queries not closed, submitted before *submitted_before* (of *user* only,
        if given), oldest first."""
        ...
