"""The audit as the gateway's query journal (`datahub.gateway.journal.QueryJournal`).

Each write maps the query to its audit record (`records.row_of`) and its event
(`events.event`) and hands the store operation to the writer (`AuditLog`), in order.
Exactly-once lives in `records.close_query`: only the call that closes an open record
returns True. Reads run in the store's own threads (`Store.run_in_transaction`), so they
never wait behind the writer's batches.

With query events on (``query_events``: `c.KafkaEvents` has bootstrap servers), each write
also adds the query's event to the outbox (`datahub.events.outbox`) in the same
transaction as its audit record, so the two never disagree; the publisher sends it to
Kafka later (``wake`` tells it, from the writer thread). A queued query has no audit
record yet: ``queued`` only adds its event, through the same writer, so it comes before
the query's later events. Nothing here waits on Kafka.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import sqlalchemy as sa

from ..events import event as kafka_event
from ..events import outbox
from ..query import QueryRecord, QueryState
from . import events, records
from .log import AuditLog, Operation


def with_event(
    op: Operation,
    kind_of: Callable[[Any], str | None],
    fields_of: Callable[[Any], Mapping[str, Any] | None],
) -> Operation:
    """*op*, then (in its transaction) the outbox event ``kind_of(result)`` of the query
    that ``fields_of(result)`` describes; no event when either is None."""

    def apply(connection: sa.Connection) -> Any:
        result = op(connection)
        kind, fields = kind_of(result), fields_of(result)
        if kind is not None and fields is not None:
            outbox.add(connection, [kafka_event.query_event(kind, fields)])
        return result

    # Named as *op* is, for the writer's log of a failed operation.
    return functools.update_wrapper(apply, getattr(op, "func", op))


def outbox_kind_ended_early(state: str) -> str:
    """The outbox event of a query recorded already closed: refused before any cluster saw
    it, else finished (no cluster took it, or withdrawn while queued)."""
    return kafka_event.REFUSED if state == QueryState.REJECTED else kafka_event.FINISHED


def outbox_kind_closed(record: Mapping[str, Any]) -> str:
    """The outbox event of a query this call closed: lost when nobody saw it end."""
    return kafka_event.LOST if record.get("state") == QueryState.LOST else kafka_event.FINISHED


class AuditJournal:
    """Records queries in the audit store and the event log, through *log*; with
    *query_events*, also in the event outbox (then *wake*, if given, after each write)."""

    def __init__(
        self,
        log: AuditLog,
        *,
        query_events: bool = False,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        self.query_events = query_events
        self.wake = wake

    def submitted(self, query: QueryRecord) -> None:
        row = records.row_of(query)
        op: Operation = functools.partial(records.insert_submitted, row=row)
        if self.query_events:
            op = with_event(op, lambda _: kafka_event.SUBMITTED, lambda _: row)
        self._woken(self.log.submit(op, lambda _: [events.event(events.SUBMITTED, row)]))

    def queued(self, query: QueryRecord) -> None:
        # No audit record yet (it comes when the query is submitted or ends): only the
        # event, through the writer, so it stays ahead of the query's later writes.
        if self.query_events:
            event = kafka_event.query_event(kafka_event.QUEUED, records.row_of(query))
            self._woken(self.log.submit(functools.partial(outbox.add, events=[event])))

    def ended_early(self, query: QueryRecord) -> None:
        kind = events.REJECTED if query.state == QueryState.REJECTED else events.FINISHED
        op: Operation = functools.partial(records.insert_closed, row=records.row_of(query))
        if self.query_events:
            op = with_event(op, lambda rec: outbox_kind_ended_early(rec["state"]), lambda rec: rec)
        self._woken(self.log.submit(op, lambda rec: [events.event(kind, rec)]))

    def running(self, query: QueryRecord) -> None:
        self.log.submit(
            functools.partial(records.update_state, query_id=query.query_id, state=str(query.state))
        )

    async def close(self, query: QueryRecord) -> bool:
        fields, fallback = records.closing_fields(query)
        op: Operation = functools.partial(
            records.close_query, query_id=query.query_id, fields=fields, fallback=fallback
        )
        if self.query_events:
            op = with_event(
                op, lambda rec: outbox_kind_closed(rec) if rec else None, lambda rec: rec
            )
        closed = await self.log.run(
            op, lambda rec: [events.event(events.FINISHED, rec)] if rec else []
        )
        if closed is not None:
            self._wake()
        return closed is not None

    async def find(self, query_id: str) -> QueryRecord | None:
        row = await self._read(records.get_query, query_id=query_id)
        return records.record_of(row) if row is not None else None

    async def open_queries(
        self, submitted_before: dt.datetime, user: str | None = None
    ) -> list[QueryRecord]:
        rows = await self._read(records.open_queries, submitted_before=submitted_before, user=user)
        return [records.record_of(row) for row in rows]

    def _woken(self, written: Future) -> None:
        """Wake the publisher once *written* is committed (in the writer thread)."""
        if self.query_events and self.wake is not None:
            written.add_done_callback(self._wake_if_written)

    def _wake_if_written(self, written: Future) -> None:
        if not written.cancelled() and written.exception() is None:
            self._wake()

    def _wake(self) -> None:
        if self.query_events and self.wake is not None:
            self.wake()

    async def _read(self, op: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return await self.log.store.run_in_transaction(op, **kwargs)
        except Exception:
            self.log.log.exception("Audit store read %s failed", op.__name__)
            raise
