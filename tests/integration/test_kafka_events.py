"""Query events on a real Kafka broker: the outbox's events arrive in order keyed by query
id, none is lost while Kafka is down or the publisher is restarted, and a repeated event
keeps its event id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from datahub.events import outbox
from datahub.events.event import FINISHED, SUBMITTED
from datahub.events.publisher import EventPublisher
from datahub.events.recorder import QueryEvents

#: How long to wait for the outbox to empty before asserting it did (a bound, not a speed).
GIVE_UP_AFTER = 120


def new_topic() -> str:
    return f"query-events-{uuid.uuid4().hex[:12]}"


def publisher_for(store, kafka, topic: str) -> EventPublisher:
    return EventPublisher(
        store,
        bootstrap_servers=kafka.bootstrap_servers,
        topic=topic,
        poll_interval=0.2,
        initial_backoff=0.2,
        max_backoff=1.0,
    )


def fields(query_id: str, user: str = "alice") -> dict:
    return {"query_id": query_id, "user": user, "cluster": "trino", "state": "RUNNING"}


def has_events(recorded: list[dict], at_least: int = 0) -> Callable[[list], bool]:
    """Whether the records read hold every one of the ``recorded`` events and at least
    ``at_least`` records."""
    event_ids = {e["event_id"] for e in recorded}

    def enough(records: list) -> bool:
        seen = {json.loads(r.value)["event_id"] for r in records}
        return event_ids <= seen and len(records) >= at_least

    return enough


def by_key(records) -> dict[str, list[str]]:
    """Each key's event ids in the order its partition holds them."""
    keys: dict[str, list[str]] = defaultdict(list)
    for record in records:
        keys[record.key.decode()].append(json.loads(record.value)["event_id"])
    return dict(keys)


def first_arrivals(records) -> dict[str, list[str]]:
    """:func:`by_key` without the repeats of a resent event: each key's event ids in the
    order they first arrived."""
    return {key: list(dict.fromkeys(ids)) for key, ids in by_key(records).items()}


def recorded_by_key(recorded: list[dict]) -> dict[str, list[str]]:
    """Each query's event ids in the order they were recorded."""
    expected: dict[str, list[str]] = defaultdict(list)
    for event in recorded:
        expected[event["query_id"]].append(event["event_id"])
    return dict(expected)


@contextlib.asynccontextmanager
async def publishing(store, kafka, topic: str) -> AsyncIterator[QueryEvents]:
    """Query events recorded in ``store`` and sent to ``topic`` by a started publisher
    (:func:`publisher_for`), which stops when the block ends."""
    publisher = publisher_for(store, kafka, topic)
    publisher.start()
    try:
        yield QueryEvents(store, publisher)
    finally:
        await publisher.stop()


@contextlib.asynccontextmanager
async def kafka_down(kafka) -> AsyncIterator[None]:
    """Kafka stopped for the block and started again (same ports, same data) after it."""
    await asyncio.to_thread(kafka.stop)
    try:
        yield
    finally:
        await asyncio.to_thread(kafka.start)


async def wait_until_sent(store) -> None:
    """Wait for the publisher to empty the outbox (GIVE_UP_AFTER at most), and assert it did."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(GIVE_UP_AFTER):
            while await store.run_in_transaction(outbox.backlog):
                await asyncio.sleep(0.1)
    assert not await store.run_in_transaction(outbox.backlog), "the outbox was not sent"


def test_the_publisher_sends_each_querys_events_in_order_keyed_by_query_id(
    store, kafka, read_topic
):
    topic = new_topic()

    async def scenario():
        async with publishing(store, kafka, topic) as events:
            recorded = [
                await events.record(SUBMITTED, fields("q1")),
                await events.record(SUBMITTED, fields("q2", "bob")),
                await events.record(FINISHED, {**fields("q1"), "state": "FINISHED"}),
                await events.record(SUBMITTED, fields("q3")),
                await events.record(FINISHED, {**fields("q2", "bob"), "state": "FAILED"}),
                await events.record(FINISHED, {**fields("q3"), "state": "CANCELED"}),
            ]
            await wait_until_sent(store)
        return recorded, await read_topic(topic, has_events(recorded))

    recorded, records = asyncio.run(scenario())
    assert by_key(records) == recorded_by_key(recorded)
    values = [json.loads(r.value) for r in records]
    assert sorted(v["event_id"] for v in values) == sorted(e["event_id"] for e in recorded)
    assert {(v["query_id"], v["event"], v["user"]) for v in values} == {
        (e["query_id"], e["event"], e["user"]) for e in recorded
    }


def test_events_recorded_while_kafka_is_down_all_arrive_in_order_once_it_is_back(
    store, kafka, read_topic
):
    topic = new_topic()

    async def scenario():
        async with publishing(store, kafka, topic) as events:
            recorded = [await events.record(SUBMITTED, fields("before"))]
            await wait_until_sent(store)
            async with kafka_down(kafka):
                # The query path goes on: each record returns with Kafka down.
                for i in range(20):
                    recorded.append(await events.record(SUBMITTED, fields(f"q{i % 4}")))
                    recorded.append(await events.record(FINISHED, fields(f"q{i % 4}")))
                assert await store.run_in_transaction(outbox.backlog) == 40
            await wait_until_sent(store)
        return recorded, await read_topic(topic, has_events(recorded))

    recorded, records = asyncio.run(scenario())
    # Every event arrived; a resent one may repeat, but the first arrivals keep the order.
    assert first_arrivals(records) == recorded_by_key(recorded)


def test_a_gateway_restarted_while_kafka_is_down_loses_nothing(store, kafka, read_topic):
    topic = new_topic()

    async def scenario():
        first = publisher_for(store, kafka, topic)
        events = QueryEvents(store, first)
        first.start()
        recorded = [await events.record(SUBMITTED, fields("before"))]
        await wait_until_sent(store)
        async with kafka_down(kafka):
            for i in range(6):
                recorded.append(await events.record(SUBMITTED, fields(f"q{i % 3}")))
            # The gateway stops while its producer holds events Kafka never took.
            await first.stop()
            assert await store.run_in_transaction(outbox.backlog) == 6
            second = publisher_for(store, kafka, topic)
            second.start()
            while not second.backoff:  # it cannot reach Kafka and waits
                await asyncio.sleep(0.1)
        try:
            await wait_until_sent(store)
        finally:
            await second.stop()
        return recorded, await read_topic(topic, has_events(recorded))

    recorded, records = asyncio.run(scenario())
    assert first_arrivals(records) == recorded_by_key(recorded)


def test_a_new_publisher_sends_what_the_last_one_left_and_repeats_keep_their_event_id(
    store, kafka, read_topic
):
    topic = new_topic()

    async def scenario():
        # The gateway wrote events and stopped before sending them.
        recorded = [
            await QueryEvents(store).record(kind, fields(f"q{i}"))
            for i in range(3)
            for kind in (SUBMITTED, FINISHED)
        ]
        async with publishing(store, kafka, topic):
            await wait_until_sent(store)
        # A crash between Kafka's acknowledgement and marking them sent: they are unsent.
        with store.engine.begin() as connection:
            connection.execute(outbox.OutboxEvent.__table__.update().values(sent_at=None))
        async with publishing(store, kafka, topic):
            await wait_until_sent(store)
        return recorded, await read_topic(topic, has_events(recorded, at_least=2 * len(recorded)))

    recorded, records = asyncio.run(scenario())
    expected = [e["event_id"] for e in recorded]
    values = [json.loads(r.value) for r in records]
    assert sorted(v["event_id"] for v in values) == sorted(expected * 2)
    # Each copy is the same record: same key, same bytes.
    copies: dict[str, set[tuple[bytes, bytes]]] = defaultdict(set)
    for record in records:
        copies[json.loads(record.value)["event_id"]].add((record.key, record.value))
    assert all(len(variants) == 1 for variants in copies.values())
    for key, ids in by_key(records).items():
        own = [e["event_id"] for e in recorded if e["query_id"] == key]
        assert ids == own + own
