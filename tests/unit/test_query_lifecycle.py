"""One query's life: the record and its views (audit row, queued data, quota ticket), the
admission seam, the listeners' contract, and the tracker's exactly-once close."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest

from datahub.audit import events, records
from datahub.gateway.admission import (
    Admitted,
    Listeners,
    QueryAdmission,
    QueryListener,
    QueryQueued,
    QueryRefused,
)
from datahub.gateway.engine_limits import EngineLimits
from datahub.identity import Identity
from datahub.query import FINAL_STATES, QueryRecord, QueryState, QueryStats
from datahub.quotas.admission import Ticket
from datahub.quotas.hooks import ticket_of
from datahub.testing import memory_tracker

LOG = logging.getLogger("tests")
ALICE = Identity("alice", ("analysts",), acting_admin="carol")


def run(coroutine):
    return asyncio.run(coroutine)


def routed(**fields) -> QueryRecord:
    values = {
        "sql": "SELECT 1",
        "client_sql": "EXECUTE q",
        "source": "datahub-sql",
        "client_tags": ("nightly",),
        "catalog": "tpch",
        "schema": "tiny",
        "routing_hint": "etl",
        "routing_group": "etl",
        "routing_reason": "hint",
        "pinned_cluster": "b",
        "headers": (("X-Trino-Session", "a=1"),),
        **fields,
    }
    return QueryRecord(ALICE, **values)


def test_query_states_are_the_strings_the_audit_stores():
    assert QueryState.REJECTED == "REJECTED" and str(QueryState.LOST) == "LOST"
    assert "RUNNING" not in FINAL_STATES and "CANCELED" in FINAL_STATES


def test_a_queued_query_keeps_what_it_needs_to_be_submitted_later():
    query = routed()
    kept = QueryRecord.from_queued_data(ALICE, query.queued_data())
    for name in ("sql", "client_sql", "source", "client_tags", "catalog", "schema", "headers"):
        assert getattr(kept, name) == getattr(query, name)
    assert (kept.routing_group, kept.routing_reason, kept.pinned_cluster) == ("etl", "hint", "b")
    assert kept.statement == "EXECUTE q"


def test_a_place_queued_before_the_upgrade_still_resumes():
    # What the quota store kept for a queued query before QueryRecord (Submission.to_data).
    old = {
        "sql": "SELECT 2",
        "source": None,
        "client_tags": ["x"],
        "catalog": None,
        "schema": None,
        "routing_hint": None,
        "routing_group": "default",
        "routing_reason": "default",
        "cluster": None,
        "headers": [["X-Trino-Catalog", "tpch"]],
        "earlier": {},
        "client_sql": None,
    }
    kept = QueryRecord.from_queued_data(ALICE, old)
    assert (kept.sql, kept.client_tags, kept.headers) == (
        "SELECT 2",
        ("x",),
        (("X-Trino-Catalog", "tpch"),),
    )


def test_the_audit_row_and_the_record_map_both_ways():
    query = routed(query_id="q1", cluster="a", principal="svc", admission={"quota": {"slot": 1}})
    query.stats = QueryStats("RUNNING", cpu_ms=7)
    row = records.row_of(query)
    assert set(row) == set(records.COLUMNS)
    assert (row["user"], row["acting_admin"], row["client_tags"], row["cpu_ms"]) == (
        "alice",
        "carol",
        ["nightly"],
        7,
    )
    back = records.record_of(row)
    assert (back.identity, back.query_id, back.cluster, back.admission) == (
        ALICE,
        "q1",
        "a",
        {"quota": {"slot": 1}},
    )
    assert not back.closed


def test_a_closed_query_without_a_record_says_its_routing_is_unknown():
    query = routed(query_id="q1", cluster="a")
    query.end(QueryState.FINISHED, stats=QueryStats("FINISHED", output_rows=3))
    fields, fallback = records.closing_fields(query)
    assert (fields["state"], fields["output_rows"], fields["sql"]) == ("FINISHED", 3, "SELECT 1")
    assert fallback["routing_reason"] == records.LOST_ROUTING_REASON
    assert fallback["user"] == "alice" and "state" not in fallback


def test_the_finished_event_has_the_times_and_every_finished_field():
    query = routed(query_id="q1")
    query.end(QueryState.CANCELED)
    event = events.event(events.FINISHED, records.row_of(query))
    assert (event["event"], event["state"], event["query_id"]) == (
        "query_finished",
        "CANCELED",
        "q1",
    )
    assert event["finished_at"].endswith("Z")


def test_the_quota_ticket_is_read_from_the_admission_data():
    ticket = Ticket("alice", 4, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), {"query_cpu_seconds": 2})
    assert ticket_of(routed(admission={"quota": ticket.to_data()})) == ticket
    assert ticket_of(routed()) is None


# ----------------------------------------------------------------- the listeners


class Recorder(QueryListener):
    def __init__(self, name, calls, *, stop=None, fail=False):
        self.name, self.calls, self.stop, self.fail = name, calls, stop, fail

    async def on_progress(self, query, stats):
        self.calls.append((self.name, "progress"))
        if self.fail:
            raise RuntimeError("broken listener")
        return self.stop

    async def on_finished(self, query):
        self.calls.append((self.name, "finished", str(query.state)))
        if self.fail:
            raise RuntimeError("broken listener")


def test_the_first_stop_reason_wins_and_a_broken_listener_is_skipped():
    calls = []
    listeners = Listeners(
        [Recorder("broken", calls, fail=True), Recorder("a", calls, stop="big")], LOG
    )
    assert run(listeners.on_progress(routed(), QueryStats("RUNNING"))) == "big"
    assert calls == [("broken", "progress"), ("a", "progress")]


def test_every_listener_hears_the_end_even_after_one_fails():
    calls = []
    listeners = Listeners([Recorder("broken", calls, fail=True), Recorder("a", calls)], LOG)
    query = routed()
    query.end(QueryState.FINISHED)
    run(listeners.on_finished(query))
    assert calls == [("broken", "finished", "FINISHED"), ("a", "finished", "FINISHED")]


def test_the_base_admission_admits_and_knows_no_queued_place():
    admission = QueryAdmission()
    assert run(admission.admit(routed())) == Admitted()
    with pytest.raises(QueryRefused, match="unknown to DataHub"):
        run(admission.recheck(ALICE, "7"))
    assert run(admission.withdraw(ALICE, "7")) is None


def test_a_queued_place_travels_in_a_uri_so_it_is_checked():
    with pytest.raises(ValueError, match="1-80 letters"):
        QueryQueued("waiting", "a/b")


# ------------------------------------------------------------------- the tracker


class Queueing(QueryAdmission):
    """Queues every query once, keeping it with its place; admits on recheck."""

    def __init__(self):
        self.kept = {}

    async def admit(self, query, ending=()):
        self.kept["7"] = query.queued_data()
        raise QueryQueued("Queued: one ahead of you.", "7", waited=0.5)

    async def recheck(self, identity, place):
        query = QueryRecord.from_queued_data(identity, self.kept.pop(place))
        return query, Admitted("waited", {"queue": place}, EngineLimits(cpu_seconds=2))


def test_a_refused_query_is_recorded_closed_and_no_listener_hears_of_it():
    calls = []
    t = memory_tracker(listeners=[Recorder("a", calls)])
    query = routed()
    query_id = t.rejected(
        query, message="No.", error=("QUOTA_EXCEEDED", "USER_ERROR", 1), reason="quota"
    )
    (early,) = t.journal.early
    assert early is query and query_id.startswith("datahub_")
    assert (early.state, early.error_name, early.error) == ("REJECTED", "QUOTA_EXCEEDED", "No.")
    assert early.finished_at == early.submitted_at
    assert calls == []


def test_a_query_admitted_after_queueing_carries_the_admissions_note_and_data():
    t = memory_tracker(admission=Queueing())
    query = routed()
    with pytest.raises(QueryQueued) as queued:
        run(t.admit(query))
    kept, admitted = run(t.recheck(ALICE, queued.value.place))
    assert (kept.sql, kept.pinned_cluster) == ("SELECT 1", "b")
    assert (kept.admission_note, kept.admission) == ("waited", {"queue": "7"})
    assert admitted.engine_limits == EngineLimits(cpu_seconds=2)


def test_a_queued_query_gets_the_gateways_id_and_is_recorded_waiting():
    t = memory_tracker(admission=Queueing())
    query = routed()
    with pytest.raises(QueryQueued) as queued:
        run(t.admit(query))
    query_id = t.queued(query, queued.value)
    (waiting,) = t.journal.waiting
    assert waiting is query and query_id == query.query_id and query_id.startswith("datahub_")
    assert (waiting.state, waiting.admission_note) == ("QUEUED", "Queued: one ahead of you.")
    assert waiting.submitted_at is not None
    # Only its waiting is recorded: its audit record comes when it runs or ends.
    assert t.journal.rows == {} and t.journal.early == []


def test_an_admitted_query_no_cluster_took_is_failed_and_heard_once():
    calls = []
    t = memory_tracker(listeners=[Recorder("a", calls)])
    query = routed()
    run(t.admit(query))
    run(t.failed(query, None, "No cluster.", ("NO_CLUSTER_AVAILABLE", "EXTERNAL", 1)))
    (early,) = t.journal.early
    assert (early.state, early.cluster, early.error) == ("FAILED", None, "No cluster.")
    assert calls == [("a", "finished", "FAILED")]


def test_a_query_is_closed_once_whoever_closes_it():
    calls = []
    t = memory_tracker(listeners=[Recorder("a", calls)])

    async def scenario():
        query = routed(query_id="q1", cluster="a")
        t.journal.submitted(query)
        # Two followers of the same query (two processes, or a handler and the reconciler).
        other = await t.journal.find("q1")
        first = await t.close(query, state=QueryState.CANCELED)
        second = await t.close(other, state=QueryState.LOST)
        return first, second

    assert run(scenario()) == (True, False)
    assert calls == [("a", "finished", "CANCELED")]
    assert t.journal.rows["q1"]["state"] == "CANCELED"


# ------------------------------------------------------------ the audit's journal


def test_the_audit_journal_records_a_query_and_closes_it_once(tmp_path):
    from datahub.audit.events import EventLogFile
    from datahub.audit.journal import AuditJournal
    from datahub.audit.log import AuditLog
    from datahub.store import Store

    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    log = AuditLog(store, event_log=EventLogFile(tmp_path / "events.jsonl"))
    journal = AuditJournal(log)

    async def scenario():
        query = routed(query_id="q1", cluster="a", principal="svc")
        journal.submitted(query)
        refused = routed(query_id="r1")
        refused.end(QueryState.REJECTED, error=("QUOTA_EXCEEDED", "USER_ERROR", "No."))
        journal.ended_early(refused)
        await asyncio.wrap_future(log.submit(lambda db: None))  # the writes are applied
        found = await journal.find("q1")
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        still_open = [q.query_id for q in await journal.open_queries(later, user="alice")]
        query.end(QueryState.FINISHED, stats=QueryStats("FINISHED", output_rows=2))
        found.end(QueryState.LOST)
        return found, still_open, await journal.close(query), await journal.close(found)

    try:
        found, still_open, first, second = run(scenario())
    finally:
        log.close()
        store.dispose()
    assert (found.identity, found.sql, found.routing_reason) == (ALICE, "SELECT 1", "hint")
    assert still_open == ["q1"] and (first, second) == (True, False)
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["event"] for line in lines]
    assert kinds == ["query_submitted", "query_rejected", "query_finished"]
    assert json.loads(lines[-1])["output_rows"] == 2


def test_the_quota_reads_its_slot_from_a_place_also_as_queued_before_the_upgrade():
    from datahub.quotas.hooks import _slot

    assert _slot("12") == 12 and _slot("0-12") == 12
    for place in ("1-12", "x", "0-"):
        with pytest.raises(QueryRefused, match="unknown to DataHub"):
            _slot(place)
