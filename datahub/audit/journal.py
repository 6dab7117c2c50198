"""The audit as the gateway's query journal (`datahub.gateway.journal.QueryJournal`).

Each write maps the query to its audit record (`records.row_of`) and its event
(`events.event`) and hands the store operation to the writer (`AuditLog`), in order.
Exactly-once lives in `records.close_query`: only the call that closes an open record
returns True. Reads run in the store's own threads (`Store.run_in_transaction`), so they
never wait behind the writer's batches.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from ..query import QueryRecord, QueryState
from . import events, records
from .log import AuditLog


class AuditJournal:
    """Records queries in the audit store and the event log, through *log*."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def submitted(self, query: QueryRecord) -> None:
        row = records.row_of(query)
        self.log.submit(
            functools.partial(records.insert_submitted, row=row),
            lambda _: [events.event(events.SUBMITTED, row)],
        )

    def ended_early(self, query: QueryRecord) -> None:
        kind = events.REJECTED if query.state == QueryState.REJECTED else events.FINISHED
        self.log.submit(
            functools.partial(records.insert_closed, row=records.row_of(query)),
            lambda rec: [events.event(kind, rec)],
        )

    def running(self, query: QueryRecord) -> None:
        self.log.submit(
            functools.partial(records.update_state, query_id=query.query_id, state=str(query.state))
        )

    async def close(self, query: QueryRecord) -> bool:
        fields, fallback = records.closing_fields(query)
        closed = await self.log.run(
            functools.partial(
                records.close_query, query_id=query.query_id, fields=fields, fallback=fallback
            ),
            lambda rec: [events.event(events.FINISHED, rec)] if rec else [],
        )
        return closed is not None

    async def find(self, query_id: str) -> QueryRecord | None:
        row = await self._read(records.get_query, query_id=query_id)
        return records.record_of(row) if row is not None else None

    async def open_queries(
        self, submitted_before: dt.datetime, user: str | None = None
    ) -> list[QueryRecord]:
        rows = await self._read(records.open_queries, submitted_before=submitted_before, user=user)
        return [records.record_of(row) for row in rows]

    async def _read(self, op: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return await self.log.store.run_in_transaction(op, **kwargs)
        except Exception:
            self.log.log.exception("Audit store read %s failed", op.__name__)
            raise
