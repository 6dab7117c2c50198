"""The audit's journal feeds the query events' outbox in the transactions of its own
writes (when query events are on): one event per recorded point of a query (a queued one
too, which has no audit record yet), valid against the published schema, keyed by query
id (the broker itself: tests/integration)."""

from __future__ import annotations

import asyncio
import json
import threading

import jsonschema
import pytest

from datahub.audit import records
from datahub.audit.journal import AuditJournal
from datahub.audit.log import AuditLog
from datahub.events import outbox
from datahub.events.event import schema
from datahub.identity import Identity
from datahub.query import QUEUED_AS, QueryRecord, QueryState, QueryStats
from datahub.store import Store

ALICE = Identity("alice", ("analysts",), acting_admin="carol")


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    yield store
    store.dispose()


def query(query_id: str, **fields) -> QueryRecord:
    return QueryRecord(
        ALICE,
        query_id=query_id,
        sql="SELECT 1",
        routing_group="default",
        routing_reason="default routing group",
        **fields,
    )


def record_a_day(journal: AuditJournal, log: AuditLog) -> tuple[bool, bool, bool]:
    """Queued, then submitted and finished; refused; failed before a cluster; lost;
    closed twice."""

    async def scenario():
        waiting = query("datahub_waiting", admission_note="Queued: one query ahead of you.")
        journal.queued(waiting)
        ran = query(
            "q-ran", cluster="trino-1", principal="svc", admission={QUEUED_AS: "datahub_waiting"}
        )
        journal.submitted(ran)
        refused = query("q-refused")
        refused.end(QueryState.REJECTED, error=("NO_ROUTE", "USER_ERROR", "No such group."))
        journal.ended_early(refused)
        failed = query("q-failed")
        failed.end(QueryState.FAILED, error=("CLUSTER_UNREACHABLE", "EXTERNAL", "Down."))
        journal.ended_early(failed)
        lost = query("q-lost", cluster="trino-1", principal="svc")
        journal.submitted(lost)
        ran.end(QueryState.FINISHED, stats=QueryStats("FINISHED", output_rows=2))
        first = await journal.close(ran)
        again = await journal.close(ran)
        lost.end(QueryState.LOST)
        return first, again, await journal.close(lost)

    try:
        return asyncio.run(scenario())
    finally:
        log.close()


def test_each_recorded_point_of_a_query_adds_its_event_to_the_outbox(store):
    woken = []
    log = AuditLog(store)
    journal = AuditJournal(
        log, query_events=True, wake=lambda: woken.append(threading.current_thread().name)
    )

    assert record_a_day(journal, log) == (True, False, True)

    pending = store.transaction(outbox.unsent, 100)
    events = [json.loads(p.payload) for p in pending]
    assert [(p.key, e["event"]) for p, e in zip(pending, events, strict=True)] == [
        ("datahub_waiting", "query_queued"),
        ("q-ran", "query_submitted"),
        ("q-refused", "query_refused"),
        ("q-failed", "query_finished"),
        ("q-lost", "query_submitted"),
        ("q-ran", "query_finished"),
        ("q-lost", "query_lost"),
    ]
    cls = jsonschema.validators.validator_for(schema())
    validate = cls(schema(), format_checker=cls.FORMAT_CHECKER).validate
    for event in events:
        validate(event)
        assert (event["user"], event["acting_admin"], event["groups"]) == (
            "alice",
            "carol",
            ["analysts"],
        )
    waiting, submitted, refused, failed, _, finished, lost = events
    assert (waiting["state"], waiting["admission_note"], waiting["cluster"]) == (
        "QUEUED",
        "Queued: one query ahead of you.",
        None,
    )
    # The submitted query and its end name the id it waited under; the others none.
    assert submitted["queued_as"] == finished["queued_as"] == "datahub_waiting"
    assert failed["queued_as"] is None and lost["queued_as"] is None
    # The waiting query has no audit record of its own (only the submitted one has).
    assert store.transaction(records.get_query, "datahub_waiting") is None
    assert (submitted["cluster"], submitted["sql"], submitted["state"]) == (
        "trino-1",
        "SELECT 1",
        "QUEUED",
    )
    assert (refused["state"], refused["error_name"], refused["cluster"]) == (
        "REJECTED",
        "NO_ROUTE",
        None,
    )
    assert (failed["state"], failed["error_name"]) == ("FAILED", "CLUSTER_UNREACHABLE")
    assert (finished["state"], finished["output_rows"], finished["cluster"]) == (
        "FINISHED",
        2,
        "trino-1",
    )
    assert lost["state"] == "LOST"
    # Woken once per event written: the five writes from the writer thread after their
    # commits, the two closes on the loop once their results were back.
    assert sorted(woken) == sorted(["datahub-audit"] * 5 + ["MainThread"] * 2)


def test_without_query_events_the_outbox_stays_empty(store):
    log = AuditLog(store)
    journal = AuditJournal(log, wake=lambda: pytest.fail("woken without query events"))

    assert record_a_day(journal, log) == (True, False, True)
    assert store.transaction(outbox.backlog) == 0
