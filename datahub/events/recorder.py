"""What the query path calls: one event into the outbox, then a nudge to the publisher."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..store import Store
from . import outbox
from .event import query_event
from .publisher import EventPublisher


class QueryEvents:
    """Records query events in the store's outbox; :class:`EventPublisher` sends them.

    :meth:`record` waits for the store (one short insert, off the event loop), never for
    Kafka.
    """

    def __init__(self, store: Store, publisher: EventPublisher | None = None) -> None:
        self.store = store
        self.publisher = publisher

    async def record(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Add the ``kind`` event of the query described by ``fields``; return it."""
        event = query_event(kind, fields)
        await self.store.run_in_transaction(outbox.add, [event])
        if self.publisher is not None:
            self.publisher.wake()
        return event
