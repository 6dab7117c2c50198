"""The audit's writer logs the events of a batch of operations in one write to the event
log (one open, write, close for the batch, not one per operation), in order, and a
failing operation in a batch loses neither the others' results nor their events."""

from __future__ import annotations

import json
import threading

import pytest

from datahub.audit.events import EventLogFile
from datahub.audit.log import AuditLog
from datahub.store import Store


class CountingLog(EventLogFile):
    def __init__(self, path) -> None:
        super().__init__(path)
        self.writes = 0

    def write(self, events) -> None:
        self.writes += 1
        super().write(events)


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield store
    store.dispose()


def test_a_batch_of_operations_is_one_write_of_their_events_in_order(store, tmp_path):
    event_log = CountingLog(tmp_path / "events.jsonl")
    audit = AuditLog(store, event_log=event_log)
    holding, release = threading.Event(), threading.Event()

    def first(_connection) -> int:
        holding.set()
        release.wait(30)
        return 0

    def fail(_connection) -> int:
        raise RuntimeError("bad record")

    def events(n: int) -> list[dict]:
        return [{"event": "op", "n": n}]

    try:
        futures = [audit.submit(first, events)]
        assert holding.wait(30)
        # These pile up while the first one holds the writer: one batch.
        for n in range(1, 11):
            futures.append(audit.submit(lambda _c, n=n: n, events))
        bad = audit.submit(fail, events)
        release.set()
        assert [f.result(30) for f in futures] == list(range(11))
        with pytest.raises(RuntimeError, match="bad record"):
            bad.result(30)
    finally:
        audit.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(11))
    assert event_log.writes == 2  # the first operation's, then the batch's
