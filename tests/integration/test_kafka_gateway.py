"""Query events from the gateway on a real Kafka broker: a query alice runs through an
in-process gateway (in front of the stack's Trino) gives ``query_submitted`` then
``query_finished`` on the topic, and a refused query ``query_refused``: keyed by query
id, in order, valid against the published schema.

The gateway runs in-process (`BackgroundGateway`) with c.KafkaEvents pointing at the
session's broker; tokens come from a static map (the hub's token check: tests/e2e).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import jsonschema
import pytest
import trino
from traitlets.config import Config
from trino.auth import JWTAuthentication

from datahub.events.event import schema
from datahub.testing import BackgroundGateway, resolver_for, user_token
from datahub.wire import ROUTING_HEADER

SECRET = b"kafka-gateway-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}


@pytest.fixture(scope="module")
def topic() -> str:
    return f"query-events-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def gateway(stack, kafka, topic, tmp_path_factory):
    state = tmp_path_factory.mktemp("kafka-gateway")
    config = Config()
    config.KafkaEvents.bootstrap_servers = kafka.bootstrap_servers
    config.KafkaEvents.topic = topic
    running = BackgroundGateway(
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        reconcile_interval=0,
        config=config,
    )
    yield running
    running.close()


def connect(gateway, **kwargs: Any):
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=gateway.port,
        http_scheme="http",
        user="alice",
        auth=JWTAuthentication("alice-token"),
        allow_insecure_auth=True,
        **kwargs,
    )


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
    cursor = connect(gateway).cursor()
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
    cursor = connect(gateway, http_headers={ROUTING_HEADER: "nowhere"}).cursor()
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
