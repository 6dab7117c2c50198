"""Query events from the gateway on a real Kafka broker: a query alice runs through an
in-process gateway (in front of the stack's Trino) gives ``query_submitted`` then
``query_finished`` on the topic, a refused query ``query_refused``, a query the quota
queues ``query_queued`` then (under Trino's id, naming the queued one) submitted and
finished: keyed by query id, in order, valid against the published schema. With Kafka
stopped, users' queries run on and their events wait in the outbox, across a gateway
restart too; once Kafka is back every one arrives, in order.

The gateway runs in-process (`BackgroundGateway`) with c.KafkaEvents pointing at the
session's broker; tokens come from a static map (the hub's token check: tests/e2e).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
import trino
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from traitlets.config import Config

from datahub.events import outbox
from datahub.events.event import schema
from datahub.testing import (
    BackgroundGateway,
    gateway_connection,
    resolver_for,
    user_token,
    wait_for,
)

SECRET = b"kafka-gateway-test-secret-0123456789"
TOKENS = {
    "alice-token": user_token("alice", "analysts"),
    "bob-token": user_token("bob", "analysts"),
}
#: Holds a concurrent query slot: far more rows than Trino's buffers hold, so it stays
#: RUNNING until its client reads on or cancels (as in tests/e2e/test_quota_gateway.py).
HOLDING_QUERY = "SELECT a.orderkey, b.custkey FROM tpch.tiny.orders a CROSS JOIN tpch.tiny.orders b"
#: A bound on waiting for what must happen, not a measure of speed.
GIVE_UP_AFTER = 120


def new_topic(kafka, partitions: int | None = None) -> str:
    """A fresh topic (created with *partitions*, else on first use with the broker's 3)."""
    name = f"query-events-{uuid.uuid4().hex[:12]}"
    if partitions is not None:

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(name, partitions, 1)])
            finally:
                await admin.close()

        asyncio.run(create())
    return name


def start_gateway(stack, kafka, topic: str, store: Path, config: Config | None = None):
    """An in-process gateway on the stack's Trino with query events to *topic*."""
    config = config or Config()
    config.KafkaEvents.bootstrap_servers = kafka.bootstrap_servers
    config.KafkaEvents.topic = topic
    config.KafkaEvents.poll_interval = 0.5
    config.KafkaEvents.max_backoff = 1.0  # back soon after Kafka is
    return BackgroundGateway(
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        store_url=f"sqlite:///{store}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        reconcile_interval=0,
        config=config,
    )


@pytest.fixture(scope="module")
def topic(kafka) -> str:
    return new_topic(kafka)


@pytest.fixture(scope="module")
def gateway(stack, kafka, topic, tmp_path_factory):
    running = start_gateway(
        stack, kafka, topic, tmp_path_factory.mktemp("kafka-gateway") / "datahub.sqlite"
    )
    yield running
    running.close()


def run(gateway, sql: str, user: str = "alice") -> tuple[str, list]:
    """Run *sql* as *user*: its query id and rows."""
    cursor = gateway_connection(gateway, user).cursor()
    cursor.execute(sql)
    rows = cursor.fetchall()
    return cursor.query_id, rows


def backlog(gateway) -> int:
    return gateway.service.store.transaction(outbox.backlog)


def outbox_events(gateway) -> list[dict[str, Any]]:
    """Every event the gateway's outbox holds (sent or not), in its order."""
    table = outbox.OutboxEvent.__table__
    rows = gateway.service.store.transaction(
        lambda c: c.execute(sa.select(table.c.payload).order_by(table.c.seq)).scalars().all()
    )
    return [json.loads(payload) for payload in rows]


def of_query(records: list, query_id: str) -> list:
    """The records keyed by *query_id*, in their partition's order."""
    return [r for r in records if r.key.decode() == query_id]


def validated(record) -> dict[str, Any]:
    event = json.loads(record.value)
    cls = jsonschema.validators.validator_for(schema())
    cls(schema(), format_checker=cls.FORMAT_CHECKER).validate(event)
    assert record.key.decode() == event["query_id"]
    return event


def test_a_query_through_the_gateway_gives_its_submitted_then_finished_event(
    gateway, read_topic, topic
):
    assert gateway.service.event_publisher.running
    cursor = gateway_connection(gateway).cursor()
    cursor.execute("SELECT count(*) FROM tpch.tiny.nation")
    assert cursor.fetchall() == [[25]]
    query_id = cursor.query_id

    records = of_query(
        asyncio.run(read_topic(topic, lambda rs: len(of_query(rs, query_id)) >= 2)), query_id
    )

    submitted, finished = (validated(record) for record in records)
    assert (submitted["event"], finished["event"]) == ("query_submitted", "query_finished")
    for event in (submitted, finished):
        assert (event["user"], event["groups"], event["cluster"]) == ("alice", ["analysts"], "main")
        assert event["query_id"] == query_id
    assert submitted["sql"] == "SELECT count(*) FROM tpch.tiny.nation"
    assert (finished["state"], finished["error_name"]) == ("FINISHED", None)
    assert finished["output_rows"] == 1
    assert finished["submitted_at"] == submitted["submitted_at"]


def test_a_refused_query_gives_a_refused_event(gateway, read_topic, topic):
    cursor = gateway_connection(gateway, hint="nowhere").cursor()
    with pytest.raises(trino.exceptions.TrinoQueryError) as refused:
        cursor.execute("SELECT 1")
    query_id = refused.value.query_id
    assert query_id and "nowhere" in refused.value.message

    records = of_query(
        asyncio.run(read_topic(topic, lambda rs: len(of_query(rs, query_id)) >= 1)), query_id
    )

    [event] = (validated(record) for record in records)
    assert (event["event"], event["user"], event["state"]) == ("query_refused", "alice", "REJECTED")
    assert event["error_name"] == refused.value.error_name
    assert event["error"] == refused.value.message
    assert event["cluster"] is None


def test_a_queued_query_gives_queued_then_submitted_then_finished_in_order(
    stack, kafka, read_topic, tmp_path
):
    # One partition: the order of the waiting query's events under its two ids (the
    # gateway's while it waits, Trino's once it runs) is then the topic's order too.
    topic = new_topic(kafka, partitions=1)
    config = Config()
    config.QuotaManager.default_limits = {"concurrent_queries": 1, "queued_queries": 5}
    with start_gateway(stack, kafka, topic, tmp_path / "datahub.sqlite", config) as gateway:
        holder = gateway_connection(gateway, "bob").cursor()
        holder.execute(HOLDING_QUERY)  # holds bob's only slot
        waiter = gateway_connection(gateway, "bob").cursor()

        def wait_and_run() -> list:
            waiter.execute("SELECT 2")
            return waiter.fetchall()

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(wait_and_run)
            wait_for(
                lambda: any(e["event"] == "query_queued" for e in outbox_events(gateway)),
                GIVE_UP_AFTER,
                what="the second query queued",
            )
            assert not waiting.done()
            holder.cancel()  # the first query ends: the queued one takes its slot
            assert waiting.result(timeout=GIVE_UP_AFTER) == [[2]]
        # The client keeps the first id it was given: the gateway's, while it waited.
        queued_id = waiter.query_id

        def enough(records: list) -> bool:
            return sum(json.loads(r.value)["event"] == "query_finished" for r in records) >= 2

        records = asyncio.run(read_topic(topic, enough))

    events = [validated(record) for record in records]
    (queued,) = [e for e in events if e["event"] == "query_queued"]
    (submitted,) = [e for e in events if e["event"] == "query_submitted" and e["queued_as"]]
    waited = [e for e in events if e["query_id"] in (queued_id, submitted["query_id"])]
    assert [e["event"] for e in waited] == ["query_queued", "query_submitted", "query_finished"]
    queued, submitted, finished = waited
    assert queued["query_id"] == queued_id and queued_id.startswith("datahub_")
    assert (queued["user"], queued["state"], queued["cluster"]) == ("bob", "QUEUED", None)
    assert "concurrent query slot" in queued["admission_note"]
    assert submitted["queued_as"] == finished["queued_as"] == queued_id
    assert submitted["query_id"] != queued_id and submitted["cluster"] == "main"
    assert (finished["state"], finished["output_rows"]) == ("FINISHED", 1)
    # The holder's end came first: it freed the slot the waiting query took.
    (holder_end,) = [e for e in events if e["event"] == "query_finished" and e is not finished]
    assert holder_end["state"] == "CANCELED" and holder_end["queued_as"] is None
    assert events.index(holder_end) < events.index(submitted)


def test_queries_run_on_while_kafka_is_down_and_after_a_gateway_restart_every_event_arrives(
    stack, kafka, read_topic, tmp_path
):
    topic = new_topic(kafka, partitions=3)
    store = tmp_path / "datahub.sqlite"
    gateway = start_gateway(stack, kafka, topic, store)
    try:
        run(gateway, "SELECT 1")
        wait_for(
            lambda: backlog(gateway) == 0 and len(outbox_events(gateway)) == 2,
            GIVE_UP_AFTER,
            what="the first query's events sent",
        )
        publisher = gateway.service.event_publisher
        sent_before = publisher.sent
        kafka.stop()
        try:
            # alice and bob run queries at once while Kafka is down: each succeeds.
            jobs = [(user, n) for n in range(4) for user in ("alice", "bob")]
            with ThreadPoolExecutor(4) as pool:
                results = list(pool.map(lambda job: run(gateway, f"SELECT {job[1]}", job[0]), jobs))
            assert [rows for _, rows in results] == [[[n]] for _, n in jobs]
            # They ran without Kafka: nothing was sent, their events all wait.
            wait_for(
                lambda: backlog(gateway) == 2 * len(jobs),
                GIVE_UP_AFTER,
                what="every event in the outbox",
            )
            assert publisher.sent == sent_before and not kafka.running
            # The gateway restarts with those events in its outbox, Kafka still down.
            gateway.close()
            gateway = start_gateway(stack, kafka, topic, store)
            results.append(run(gateway, "SELECT 'after restart'", "bob"))
            wait_for(
                lambda: backlog(gateway) == 2 * len(results),
                GIVE_UP_AFTER,
                what="every event in the outbox after the restart",
            )
            assert gateway.service.event_publisher.sent == 0
        finally:
            kafka.start()
        query_ids = {query_id for query_id, _ in results}
        wait_for(
            lambda: backlog(gateway) == 0, GIVE_UP_AFTER, what="the outbox sent once Kafka was back"
        )
        recorded = outbox_events(gateway)

        def enough(records: list) -> bool:
            return {e["event_id"] for e in recorded} <= {
                json.loads(r.value)["event_id"] for r in records
            }

        records = asyncio.run(read_topic(topic, enough))
    finally:
        gateway.close()

    # None lost: every event the outbox recorded is on the topic, with the same bytes.
    on_topic = {json.loads(r.value)["event_id"]: r.value.decode() for r in records}
    assert {e["event_id"] for e in recorded} <= set(on_topic)
    # In order: each query's events (first occurrences; a resent one keeps its id) in
    # the order the outbox recorded them: submitted, then finished.
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_key[record.key.decode()].append(json.loads(record.value)["event_id"])
    expected: dict[str, list[str]] = defaultdict(list)
    for event in recorded:
        expected[event["query_id"]].append(event["event_id"])
    for query_id in query_ids:
        assert list(dict.fromkeys(by_key[query_id])) == expected[query_id]
        kinds = [json.loads(on_topic[i])["event"] for i in expected[query_id]]
        assert kinds == ["query_submitted", "query_finished"]
