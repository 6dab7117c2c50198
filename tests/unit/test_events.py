"""Query events: the versioned schema, building an event, the outbox's order, and the
publisher's rules for marking and backing off (the broker itself: tests/integration)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import jsonschema
import pytest

from datahub.events import outbox
from datahub.events.event import (
    FIELDS,
    KINDS,
    LOST,
    SUBMITTED,
    encode,
    fields_table,
    query_event,
    schema,
)
from datahub.events.publisher import acknowledged_prefix, next_backoff
from datahub.store import Store

AT = dt.datetime(2026, 12, 2, 9, 30, 0, 123456, tzinfo=dt.UTC)
QUERY = {
    "query_id": "20261202_093000_00001_abcde",
    "user": "alice",
    "acting_admin": None,
    "principal": "svc-datahub",
    "groups": ("employees", "analysts"),
    "cluster": "trino",
    "routing_group": "default",
    "routing_reason": "default routing group",
    "source": "datahub-sql",
    "client_tags": ["nightly"],
    "sql": "SELECT 1",
    "submitted_at": AT,
    "state": "FINISHED",
    "finished_at": AT + dt.timedelta(seconds=2),
    "cpu_ms": 12,
    "output_rows": 1,
}


def validator() -> jsonschema.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema(), format_checker=cls.FORMAT_CHECKER)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_event_matches_the_published_schema(kind):
    event = query_event(kind, QUERY, time=AT)
    validator().validate(json.loads(encode(event)))
    assert event["event"] == kind and event["schema_version"] == 1
    assert set(event) == {"schema_version", "event_id", "event", "time", *FIELDS[kind]}


def test_the_schema_lists_every_field_an_event_carries():
    documented = set(schema()["properties"])
    for fields in FIELDS.values():
        assert set(fields) <= documented


def test_times_are_utc_with_milliseconds_and_tuples_become_lists():
    event = query_event(SUBMITTED, QUERY, time=AT)
    assert event["time"] == "2026-12-02T09:30:00.123Z"
    assert event["submitted_at"] == "2026-12-02T09:30:00.123Z"
    assert event["groups"] == ["employees", "analysts"]


def test_a_lost_query_event_says_lost_whatever_state_it_was_given():
    assert query_event(LOST, {**QUERY, "state": "RUNNING"})["state"] == "LOST"


def test_each_event_gets_its_own_id_unless_one_is_given():
    first, second = query_event(SUBMITTED, QUERY), query_event(SUBMITTED, QUERY)
    assert first["event_id"] != second["event_id"]
    uuid.UUID(first["event_id"])
    assert query_event(SUBMITTED, QUERY, event_id="e-1")["event_id"] == "e-1"


def test_an_unknown_kind_or_a_query_without_id_or_user_is_one_sentence():
    with pytest.raises(ValueError, match="Unknown query event 'query_started'"):
        query_event("query_started", QUERY)
    with pytest.raises(ValueError, match="needs the query's user"):
        query_event(SUBMITTED, {**QUERY, "user": ""})
    with pytest.raises(ValueError, match="needs the query's query_id"):
        query_event(SUBMITTED, {"user": "alice"})


@pytest.fixture
def sqlite_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    yield store
    store.dispose()


def test_the_outbox_gives_unsent_events_in_the_order_they_were_added(sqlite_store):
    events = [query_event(SUBMITTED, {**QUERY, "query_id": f"q{i}"}) for i in range(5)]
    seqs = sqlite_store.transaction(outbox.add, events)
    assert seqs == sorted(seqs)
    pending = sqlite_store.transaction(outbox.unsent, 3)
    assert [p.key for p in pending] == ["q0", "q1", "q2"]
    assert [json.loads(p.payload) for p in pending] == [json.loads(encode(e)) for e in events[:3]]
    sqlite_store.transaction(outbox.mark_sent, [p.seq for p in pending[:2]])
    assert [p.key for p in sqlite_store.transaction(outbox.unsent, 10)] == ["q2", "q3", "q4"]
    assert sqlite_store.transaction(outbox.backlog) == 3


def test_sent_events_are_forgotten_after_a_while_and_unsent_ones_never(sqlite_store):
    events = [query_event(SUBMITTED, {**QUERY, "query_id": f"q{i}"}) for i in range(3)]
    seqs = sqlite_store.transaction(outbox.add, events)
    sqlite_store.transaction(outbox.mark_sent, seqs[:1])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert sqlite_store.transaction(outbox.forget_sent, later) == 1
    assert [p.key for p in sqlite_store.transaction(outbox.unsent, 10)] == ["q1", "q2"]


def test_sequence_numbers_are_not_reused_after_events_are_forgotten(sqlite_store):
    (first,) = sqlite_store.transaction(outbox.add, [query_event(SUBMITTED, QUERY)])
    sqlite_store.transaction(outbox.mark_sent, [first])
    sqlite_store.transaction(outbox.forget_sent, dt.datetime.now(dt.UTC) + dt.timedelta(1))
    (second,) = sqlite_store.transaction(outbox.add, [query_event(SUBMITTED, QUERY)])
    assert second > first


def test_only_the_acknowledged_prefix_of_a_batch_counts_as_sent():
    failed = TimeoutError("no ack")
    assert acknowledged_prefix([None, None, None]) == 3
    assert acknowledged_prefix([None, failed, None]) == 1
    assert acknowledged_prefix([failed, None]) == 0
    assert acknowledged_prefix([]) == 0


def test_the_backoff_doubles_from_its_start_up_to_its_maximum():
    waits, current = [], 0.0
    for _ in range(6):
        current = next_backoff(current, initial=0.5, maximum=5)
        waits.append(current)
    assert waits == [0.5, 1.0, 2.0, 4.0, 5, 5]


def test_the_readmes_fields_table_is_the_schemas():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert fields_table() in readme, (
        "README's table of query event fields differs from the schema: paste "
        "datahub.events.event.fields_table() into its 'Query events on Kafka' section."
    )
    assert all(spec.get("description") for spec in schema()["properties"].values())
