"""The audit's writer: store operations in order, in one thread, in batches.

The gateway never waits for the store on a query's path: it hands operations (the
functions of `records`) to `AuditLog.submit` and goes on. One thread applies them in
order, many per transaction when they pile up (one commit, one fsync on SQLite), then
writes their events to the event log. ``await AuditLog.run(op)`` waits for an
operation's result (closing a query, reading for the API).

A failing batch is retried one operation at a time, so one bad record cannot lose the
others; the failure is logged and raised to whoever awaits that operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..store import Store
from .events import EventLogFile

Operation = Callable[[sa.Connection], Any]
EventsOf = Callable[[Any], Iterable[Mapping[str, Any]]]


@dataclass
class _Item:
    op: Operation
    events: EventsOf | None
    future: Future = field(default_factory=Future)


_STOP = object()


class AuditLog:
    """Applies store operations in a background thread; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        event_log: EventLogFile | None = None,
        log: logging.Logger | None = None,
        batch_size: int = 200,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.log = log or logging.getLogger("datahub.audit")
        self.batch_size = batch_size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="datahub-audit", daemon=True
                )
                self._thread.start()

    def submit(self, op: Operation, events: EventsOf | None = None) -> Future:
        """Queue *op* (called with a connection in a transaction); *events(result)* are
        logged after the commit."""
        self.start()
        item = _Item(op, events)
        self._queue.put(item)
        return item.future

    async def run(self, op: Operation, events: EventsOf | None = None) -> Any:
        """Queue *op* and wait for its result."""
        return await asyncio.wrap_future(self.submit(op, events))

    def close(self, timeout: float = 10) -> None:
        """Apply what is queued, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        if thread.is_alive():
            self.log.error("The audit writer did not finish within %.0f s.", timeout)
        self._thread = None

    # ------------------------------------------------------------------ the thread

    def _work(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
            self._apply(batch)

    def _apply(self, batch: list[_Item]) -> None:
        store = self.store
        try:
            with store.writing(), store.engine.begin() as connection:
                results = [item.op(connection) for item in batch]
        except Exception as e:
            if len(batch) == 1:
                self._fail(batch[0], e)
                return
            done = []
            for item in batch:
                try:
                    with store.writing(), store.engine.begin() as connection:
                        done.append((item, item.op(connection)))
                except Exception as e:
                    self._fail(item, e)
            self._done(done)
            return
        self._done(list(zip(batch, results, strict=True)))

    def _done(self, done: list[tuple[_Item, Any]]) -> None:
        """Log the events of applied operations (one write for them all), then answer
        their waiters."""
        if self.event_log is not None:
            events: list[Mapping[str, Any]] = []
            for item, result in done:
                if item.events is not None:
                    try:
                        events.extend(item.events(result))
                    except Exception:
                        self.log.exception("Could not make the events of an audit operation")
            try:
                self.event_log.write(events)
            except Exception:
                self.log.exception("Could not write to the event log %s", self.event_log.path)
        # The operations are applied either way; a waiter may have been cancelled (a
        # request that ended, a service stopping), and then nobody wants the answer.
        for item, result in done:
            with contextlib.suppress(InvalidStateError):
                item.future.set_result(result)

    def _fail(self, item: _Item, error: Exception) -> None:
        op = getattr(item.op, "func", item.op)  # functools.partial
        self.log.error(
            "Audit store operation %s failed: %r",
            getattr(op, "__name__", op),
            error,
            exc_info=error,
        )
        with contextlib.suppress(InvalidStateError):
            item.future.set_exception(error)
