"""The event publisher's housekeeping on a store (SQLite; PostgreSQL and two publishers:
tests/integration/test_event_publishers.py): sent events are forgotten after the
retention, unsent ones never; the publisher lease's rules (the broker itself:
tests/integration/test_kafka_events.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from datahub.events import lease, outbox
from datahub.events.event import SUBMITTED
from datahub.events.publisher import EventPublisher
from datahub.events.recorder import QueryEvents
from datahub.store import Store

#: A bound on waiting for the publisher's task, not a measure of its speed.
GIVE_UP_AFTER = 30
T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


class Producer:
    """Stands in for aiokafka's producer: acknowledges every record (or, ``down``, fails
    every one), keeping what it took in ``taken``."""

    def __init__(self, taken: list, *, down: bool = False) -> None:
        self.taken = taken
        self.down = down

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future:
        delivery = asyncio.get_running_loop().create_future()
        if self.down:
            delivery.set_exception(ConnectionError("Kafka is down"))
        else:
            self.taken.append(key.decode())
            delivery.set_result(None)
        return delivery


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    yield store
    store.dispose()


def publisher(store, producer: Producer, **options) -> EventPublisher:
    return EventPublisher(
        store,
        bootstrap_servers="kafka.invalid:9092",
        topic="events",
        poll_interval=0.05,
        initial_backoff=0.05,
        max_backoff=0.1,
        make_producer=lambda: producer,
        **options,
    )


def rows(store) -> int:
    table = outbox.OutboxEvent.__table__
    return store.transaction(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    )


async def until(condition, what: str) -> None:
    """Wait (GIVE_UP_AFTER at most) until ``condition()``; then assert it."""
    try:
        async with asyncio.timeout(GIVE_UP_AFTER):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pass
    assert condition(), what


async def record(store, publisher: EventPublisher, *query_ids: str) -> None:
    events = QueryEvents(store, publisher)
    for query_id in query_ids:
        await events.record(SUBMITTED, {"query_id": query_id, "user": "alice"})


def test_the_publisher_forgets_events_once_sent_longer_than_the_retention(store):
    taken: list = []

    async def scenario():
        running = publisher(store, Producer(taken), sent_retention=0, prune_interval=0.05)
        running.start()
        try:
            await record(store, running, "q1", "q2", "q3")
            await until(lambda: running.pruned == 3, "the sent events were not forgotten")
        finally:
            await running.stop()

    asyncio.run(scenario())
    assert taken == ["q1", "q2", "q3"]
    assert rows(store) == 0


def test_sent_events_stay_for_the_retention_and_unsent_ones_are_never_forgotten(store):
    taken: list = []

    async def scenario():
        keeping = publisher(store, Producer(taken), prune_interval=0.05)  # a day
        keeping.start()
        try:
            await record(store, keeping, "q1", "q2")
            await until(lambda: keeping.sent == 2, "the events were not sent")
        finally:
            await keeping.stop()
        assert (keeping.pruned, rows(store)) == (0, 2)

        # Kafka down: a publisher that forgets at once sends nothing, so forgets nothing.
        down = publisher(store, Producer(taken, down=True), sent_retention=0, prune_interval=0)
        await record(store, None, "q3")
        with pytest.raises(ConnectionError):
            await down.publish_pending()
        assert await down.prune_if_due() == 2
        await down.stop()

    asyncio.run(scenario())
    assert taken == ["q1", "q2"]
    assert store.transaction(outbox.backlog) == 1 and rows(store) == 1


def test_the_lease_goes_to_one_holder_until_it_runs_out_or_is_given_up(store):
    def acquire(holder: str, seconds: float) -> bool:
        return store.transaction(lease.acquire, holder, 30, now=T0 + dt.timedelta(seconds=seconds))

    assert store.transaction(lease.current) == (None, None)
    assert acquire("a", 0)
    assert not acquire("b", 10)  # a holds it until 30
    assert acquire("a", 20)  # renewed until 50
    assert not acquire("b", 40)
    assert acquire("b", 51)  # a stopped renewing: b takes over
    assert not acquire("a", 52)
    assert store.transaction(lease.current)[0] == "b"
    assert not store.transaction(lease.release, "a")  # only its holder gives it up
    assert store.transaction(lease.release, "b")
    assert store.transaction(lease.current) == (None, None)
    assert acquire("a", 53)


def test_a_lease_or_retention_out_of_range_is_one_sentence(store):
    with pytest.raises(ValueError, match="lease must be positive"):
        publisher(store, Producer([]), lease_seconds=0)
    with pytest.raises(ValueError, match="retention not negative"):
        publisher(store, Producer([]), sent_retention=-1)
