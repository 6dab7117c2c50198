"""Query events from queries on a PrestoDB cluster, on the real Kafka broker: the same
events, in the same shape (valid against the published schema), as a Trino cluster's
(tests/integration/test_kafka_gateway.py): ``query_submitted`` then ``query_finished``
naming cluster ``presto``, a query PrestoDB refuses ``query_finished`` as FAILED with
its error, a query the gateway refuses for Presto ``query_refused``.

The event schema (v1) has no engine field: the cluster's name says where a query ran,
and the cluster's engine is in the service's configuration (``GET api/clusters``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import jsonschema
import pytest
import requests
import trino
from traitlets.config import Config

from datahub.events.event import schema
from datahub.testing import BackgroundGateway, gateway_connection, resolver_for, user_token

SECRET = b"presto-events-test-secret-0123456789"
TOKENS = {
    "alice-token": user_token("alice", "analysts"),
    "bob-token": user_token("bob", "analysts"),
}


@pytest.fixture(scope="module")
def topic() -> str:
    return f"query-events-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def gateway(presto, kafka, topic, tmp_path_factory):
    """An in-process gateway whose only routing group (``lake``) is the Presto cluster,
    with its query events to *topic*."""
    config = Config()
    config.KafkaEvents.bootstrap_servers = kafka.bootstrap_servers
    config.KafkaEvents.topic = topic
    config.KafkaEvents.poll_interval = 0.5
    running = BackgroundGateway(
        clusters=[presto.cluster_entry(routing_group="lake")],
        default_routing_group="lake",
        store_url=f"sqlite:///{tmp_path_factory.mktemp('presto-events') / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        reconcile_interval=0,
        config=config,
    )
    yield running
    running.close()


def events_of(read_topic, topic: str, query_id: str, count: int) -> list[dict[str, Any]]:
    """The query's events (at least *count* of them, or what came before the wait gave
    up), in order, each checked against the published schema and keyed by its query."""

    def mine(records: list) -> list:
        return [r for r in records if r.key.decode() == query_id]

    records = mine(asyncio.run(read_topic(topic, lambda rs: len(mine(rs)) >= count)))
    validator = jsonschema.validators.validator_for(schema())
    events = []
    for record in records:
        event = json.loads(record.value)
        validator(schema(), format_checker=validator.FORMAT_CHECKER).validate(event)
        assert event["query_id"] == query_id
        events.append(event)
    return events


def test_a_query_on_presto_gives_submitted_then_finished_naming_the_cluster(
    gateway, read_topic, topic
):
    cursor = gateway_connection(gateway).cursor()
    cursor.execute("SELECT count(*) FROM tpch.tiny.nation")
    assert cursor.fetchall() == [[25]]

    submitted, finished = events_of(read_topic, topic, cursor.query_id, 2)
    assert (submitted["event"], finished["event"]) == ("query_submitted", "query_finished")
    for event in (submitted, finished):
        assert (event["user"], event["groups"]) == ("alice", ["analysts"])
        assert (event["cluster"], event["routing_group"]) == ("presto", "lake")
    assert submitted["sql"] == "SELECT count(*) FROM tpch.tiny.nation"
    assert (finished["state"], finished["error_name"]) == ("FINISHED", None)
    # PrestoDB's statistics, read as Trino's.
    assert finished["output_rows"] == 1 and finished["processed_rows"] == 25
    assert finished["submitted_at"] == submitted["submitted_at"]


def test_a_query_presto_refuses_gives_finished_failed_with_prestos_error(
    gateway, read_topic, topic
):
    cursor = gateway_connection(gateway, "bob").cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        cursor.execute("SELECT count(*) FROM tpch.tiny.nation")
        cursor.fetchall()

    submitted, finished = events_of(read_topic, topic, e.value.query_id, 2)
    assert (submitted["event"], finished["event"]) == ("query_submitted", "query_finished")
    assert (finished["user"], finished["cluster"]) == ("bob", "presto")
    assert (finished["state"], finished["error_name"], finished["error_type"]) == (
        "FAILED",
        "PERMISSION_DENIED",
        "USER_ERROR",
    )
    assert finished["error"] == "Access Denied: Cannot access catalog tpch"


def test_a_query_the_gateway_refuses_for_presto_gives_a_refused_event(gateway, read_topic, topic):
    # Presto has no SQL path: the gateway refuses such a query before any cluster sees it.
    r = requests.post(
        f"{gateway.url}/v1/statement",
        data="SELECT 1",
        headers={"Authorization": "Bearer alice-token", "X-Trino-Path": "tpch.tiny"},
        timeout=30,
    )
    page = r.json()
    assert page["error"]["message"].startswith("Presto clusters have no SQL path;")

    [event] = events_of(read_topic, topic, page["id"], 1)
    assert (event["event"], event["user"], event["state"]) == ("query_refused", "alice", "REJECTED")
    assert event["routing_group"] == "lake" and event["cluster"] is None
    assert event["error"] == page["error"]["message"]
