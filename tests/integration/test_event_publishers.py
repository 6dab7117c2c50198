"""Several service processes on one store (SQLite and PostgreSQL): one publisher at a time
sends the outbox, in order, each event once; when it stops another takes over at once, and
when it stops renewing its lease (killed, hung) another takes over once the lease has run
out. The lease itself holds under a race. Kafka is stood in for by a producer that
acknowledges at once (the broker: test_kafka_events.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

from datahub.events import lease
from datahub.events.event import SUBMITTED
from datahub.events.publisher import EventPublisher
from datahub.events.recorder import QueryEvents
from datahub.store import Store

#: A bound on waiting for the publishers' tasks, not a measure of their speed.
GIVE_UP_AFTER = 60
T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


class Producer:
    """Acknowledges every record at once, noting (name, key) in the shared ``taken``."""

    def __init__(self, name: str, taken: list) -> None:
        self.name, self.taken = name, taken

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future:
        self.taken.append((self.name, key.decode()))
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery


def process(url: str, name: str, taken: list, lease_seconds: float = 30.0):
    """A service process's store (its own engine) and publisher."""
    store = Store(url)
    publisher = EventPublisher(
        store,
        bootstrap_servers="kafka.invalid:9092",
        topic="events",
        poll_interval=0.05,
        lease_seconds=lease_seconds,
        make_producer=lambda: Producer(name, taken),
    )
    return store, publisher


async def until(condition, what: str) -> None:
    try:
        async with asyncio.timeout(GIVE_UP_AFTER):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pass
    assert condition(), what


async def record(store, publisher, query_ids) -> None:
    events = QueryEvents(store, publisher)
    for query_id in query_ids:
        await events.record(SUBMITTED, {"query_id": query_id, "user": "alice"})


def test_the_lease_goes_to_one_holder_on_both_stores(store):
    def acquire(holder: str, seconds: float) -> bool:
        return store.transaction(lease.acquire, holder, 30, now=T0 + dt.timedelta(seconds=seconds))

    assert acquire("a", 0) and not acquire("b", 10) and acquire("a", 20)
    assert not acquire("b", 49) and acquire("b", 51) and not acquire("a", 52)
    assert store.transaction(lease.release, "b") and acquire("a", 53)


def test_of_many_processes_asking_at_once_exactly_one_gets_the_lease(store):
    start = threading.Barrier(8)

    def ask(holder: str) -> bool:
        start.wait()
        return store.transaction(lease.acquire, holder, 30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, [f"p{i}" for i in range(8)]))
    assert answers.count(True) == 1
    assert store.transaction(lease.current)[0] == f"p{answers.index(True)}"


def test_two_publishers_send_each_event_once_in_order_and_the_second_takes_over(store):
    taken: list = []
    first_ids = [f"q{i:03d}" for i in range(40)]
    later_ids = [f"q{i:03d}" for i in range(40, 80)]

    async def scenario():
        # A standby looks every lease_seconds / 3 whether the lease is free: 2 s here.
        store_a, a = process(store.url, "a", taken, lease_seconds=6.0)
        store_b, b = process(store.url, "b", taken, lease_seconds=6.0)
        a.start()
        await until(lambda: a.holds_lease, "the first publisher did not take the lease")
        b.start()
        try:
            # Both processes record events; only the holder sends them.
            await asyncio.gather(
                record(store_a, a, first_ids[::2]), record(store_b, b, first_ids[1::2])
            )
            await until(lambda: len(taken) >= 40, "the first events were not sent")
            assert not b.holds_lease
            # The holder stops: it gives the lease up and the other one sends on.
            await a.stop()
            await record(store_b, b, later_ids)
            await until(lambda: len(taken) >= 80, "the standby did not take over")
            assert b.holds_lease
        finally:
            await a.stop()
            await b.stop()
            store_a.dispose()
            store_b.dispose()

    asyncio.run(scenario())
    sent_keys = [key for _, key in taken]
    # Each event once; each process's events in the order it wrote them (events two
    # processes write at the same moment may go either way: on PostgreSQL a later
    # sequence number can commit first).
    assert sorted(sent_keys) == first_ids + later_ids
    assert [key for key in sent_keys if key in first_ids[::2]] == first_ids[::2]
    assert [key for key in sent_keys if key not in first_ids[::2]] == first_ids[1::2] + later_ids
    assert [name for name, _ in taken] == ["a"] * 40 + ["b"] * 40
    assert [key for name, key in taken if name == "b"] == later_ids


def test_a_publisher_that_stops_renewing_its_lease_is_taken_over_once_it_runs_out(store):
    taken: list = []

    async def scenario():
        store_a, a = process(store.url, "a", taken, lease_seconds=1.0)
        store_b, b = process(store.url, "b", taken, lease_seconds=1.0)
        a.start()
        await until(lambda: a.holds_lease, "the first publisher did not take the lease")
        b.start()
        try:
            await record(store_a, a, ["before"])
            await until(lambda: len(taken) == 1, "the first event was not sent")
            # a hangs (its task ends without giving the lease up, as when killed).
            a._task.cancel()
            await asyncio.sleep(0)
            holder, _ = store.transaction(lease.current)
            assert holder == a.holder and not b.holds_lease
            await record(store_b, b, ["after"])
            await until(lambda: b.holds_lease, "nobody took over the lapsed lease")
            await until(lambda: len(taken) == 2, "the event after the takeover was not sent")
        finally:
            await b.stop()
            a.holds_lease = False  # as if killed: nothing given up
            await a.stop()
            store_a.dispose()
            store_b.dispose()

    asyncio.run(scenario())
    assert taken == [("a", "before"), ("b", "after")]
