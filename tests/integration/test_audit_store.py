"""The audit's records on SQLite and PostgreSQL: migrations match the models, a query
closes exactly once, filters, open queries, drain flags, and the batching writer."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from datahub.audit import events, records
from datahub.audit.log import AuditLog
from datahub.audit.models import AdminAccess, AuditedQuery, ClusterState
from datahub.store import Base

T0 = dt.datetime(2025, 1, 31, 9, 0, tzinfo=dt.UTC)
MY_TABLES = {AuditedQuery.__tablename__, ClusterState.__tablename__, AdminAccess.__tablename__}


def submitted(query_id: str, user: str = "alice", minutes: int = 0, **fields) -> dict:
    defaults = {
        "groups": ["analysts"],
        "cluster": "a",
        "routing_group": "default",
        "routing_reason": "default",
        "sql": "SELECT 1",
        "source": "datahub-sql",
        "client_tags": ["t"],
        "state": "QUEUED",
        "submitted_at": T0 + dt.timedelta(minutes=minutes),
    }
    return records.new_record(query_id=query_id, user=user, **{**defaults, **fields})


def finished(**fields) -> dict:
    return {"state": "FINISHED", "elapsed_ms": 10, "output_rows": 1, **fields}


def test_the_migrations_create_exactly_the_audit_models(store):
    with store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    def table_of(diff):
        item = diff[0] if isinstance(diff, list) else diff
        for part in item[1:]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if isinstance(part, str):
                return part
            if name:
                return name
        return None

    mine = [d for d in diffs if table_of(d) in MY_TABLES]
    assert mine == []


def test_a_query_is_closed_exactly_once_with_its_timestamps_in_utc(store):
    with store.session() as session:
        records.insert_submitted(session, submitted("q1"))
    with store.session() as session:
        first = records.close_query(session, "q1", finished(), fallback={})
        second = records.close_query(session, "q1", finished(state="FAILED"), fallback={})
    assert first["state"] == "FINISHED" and second is None
    with store.session() as session:
        record = records.get_query(session, "q1")
    assert record["state"] == "FINISHED"
    assert record["submitted_at"] == T0 and record["submitted_at"].tzinfo is not None
    assert record["finished_at"].tzinfo is not None
    assert (record["sql"], record["client_tags"], record["groups"]) == (
        "SELECT 1",
        ["t"],
        ["analysts"],
    )


def test_closing_a_query_whose_submitted_event_was_lost_records_it_anyway(store):
    fallback = {"user": "bob", "cluster": "b", "submitted_at": T0, "routing_reason": "unknown"}
    with store.session() as session:
        closed = records.close_query(
            session, "q2", finished(sql="SELECT 2", source="trino-cli"), fallback=fallback
        )
    assert (closed["user"], closed["cluster"], closed["sql"], closed["state"]) == (
        "bob",
        "b",
        "SELECT 2",
        "FINISHED",
    )
    # A late submitted event fills gaps and leaves the final state alone.
    with store.session() as session:
        records.insert_submitted(session, submitted("q2", user="bob", principal="datahub-trino"))
        record = records.get_query(session, "q2")
    assert (record["state"], record["principal"], record["sql"]) == (
        "FINISHED",
        "datahub-trino",
        "SELECT 2",
    )


def test_queries_are_listed_newest_first_with_filters(store):
    with store.session() as session:
        for i, (user, cluster) in enumerate([("alice", "a"), ("bob", "b"), ("alice", "b")]):
            records.insert_submitted(
                session, submitted(f"q{i}", user=user, minutes=i, cluster=cluster)
            )
        records.close_query(session, "q0", finished(), fallback={})

    def ids(**where):
        with store.session() as session:
            return [
                r["query_id"] for r in records.list_queries(session, records.QueryFilter(**where))
            ]

    assert ids() == ["q2", "q1", "q0"]
    assert ids(user="alice") == ["q2", "q0"]
    assert ids(cluster="b") == ["q2", "q1"]
    assert ids(state="FINISHED") == ["q0"]
    assert ids(since=T0 + dt.timedelta(minutes=1)) == ["q2", "q1"]
    assert ids(until=T0 + dt.timedelta(minutes=1)) == ["q0"]
    assert ids(limit=1) == ["q2"]


def test_open_queries_are_those_without_a_finished_event(store):
    with store.session() as session:
        records.insert_submitted(session, submitted("old", minutes=0))
        records.insert_submitted(session, submitted("new", minutes=30))
        records.insert_submitted(session, submitted("done", minutes=0))
        records.close_query(session, "done", finished(), fallback={})
        assert records.update_state(session, "old", "RUNNING")
        assert not records.update_state(session, "done", "RUNNING")
    with store.session() as session:
        open_ones = records.open_queries(session, submitted_before=T0 + dt.timedelta(minutes=10))
    assert [(r["query_id"], r["state"]) for r in open_ones] == [("old", "RUNNING")]


def test_drain_flags_are_kept_per_cluster(store):
    with store.session() as session:
        records.set_draining(session, "a", True, "carol")
        records.set_draining(session, "b", True, "carol")
        records.set_draining(session, "b", False, "carol")
    with store.session() as session:
        assert records.draining_clusters(session) == {"a"}


def test_the_writer_applies_operations_in_order_and_writes_events_after_commit(store, tmp_path):
    log = AuditLog(store, event_log=events.EventLogFile(tmp_path / "events.jsonl"))
    row = submitted("w1")
    futures = [
        log.submit(
            functools.partial(records.insert_submitted, row=row),
            lambda _: [events.event(events.SUBMITTED, row)],
        )
    ]
    futures.append(
        log.submit(
            functools.partial(records.close_query, query_id="w1", fields=finished(), fallback={}),
            lambda rec: [events.event(events.FINISHED, rec)] if rec else [],
        )
    )
    # A bad operation fails alone; the batch around it is applied.
    futures.append(log.submit(functools.partial(records.insert_closed, row=submitted("w1"))))
    futures.append(log.submit(functools.partial(records.insert_submitted, row=submitted("w2"))))
    assert futures[0].result(10) is None
    assert futures[1].result(10)["state"] == "FINISHED"
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        futures[2].result(10)
    futures[3].result(10)
    log.close()
    kinds = [
        json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()
    ]
    assert kinds == ["query_submitted", "query_finished"]
    with store.session() as session:
        assert records.get_query(session, "w2") is not None


def test_an_operation_whose_waiter_gave_up_is_applied_and_the_writer_carries_on(store):
    log = AuditLog(store)
    release = threading.Event()
    errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        blocker = log.submit(lambda _connection: release.wait(10))
        abandoned = log.submit(functools.partial(records.insert_submitted, row=submitted("gone")))
        assert abandoned.cancel()  # its request ended before the writer reached it
        release.set()
        blocker.result(10)
        after = log.submit(functools.partial(records.insert_submitted, row=submitted("after")))
        after.result(10)
        log.close()
    finally:
        threading.excepthook = previous_hook
    assert errors == []
    with store.session() as session:
        assert records.get_query(session, "gone") is not None
        assert records.get_query(session, "after") is not None


def test_concurrent_closers_close_a_query_once(store):
    with store.session() as session:
        records.insert_submitted(session, submitted("race"))
    results = []

    def close():
        with store.session() as session:
            results.append(records.close_query(session, "race", finished(), fallback={}))

    threads = [threading.Thread(target=close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
