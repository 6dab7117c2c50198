"""The audit of every query through a gateway in front of the stack's real Trino: every
field for finished, failed, cancelled and stopped queries, the event log, the admission's
and the listeners' contract, the reconciler, and the metrics.

Gateways run in-process (`BackgroundGateway`) with tokens from a static map; the hub's
token check is covered by tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
import requests
import trino

from datahub.audit import records
from datahub.gateway.admission import Admitted, QueryAdmission, QueryListener, QueryRefused
from datahub.testing import (
    BackgroundGateway,
    closed_record,
    free_port,
    gateway_connection,
    resolver_for,
    user_token,
    wait_for,
)

SECRET = b"audit-gateway-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts"), "bob-token": user_token("bob")}
ENDLESS = "SELECT * FROM tpch.sf100.lineitem"
FINITE = "SELECT * FROM tpch.tiny.orders"


class RecordingHooks(QueryAdmission, QueryListener):
    """The admission and a listener: refuses SQL saying 'refuse me', stops SQL saying
    'stop me' once it read rows, and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.lock = threading.Lock()

    def add(self, *call: Any) -> None:
        with self.lock:
            self.calls.append(call)

    async def admit(self, query, ending=()):
        self.add("admit", query)
        if "refuse me" in query.sql:
            raise QueryRefused("You have used 50 of 50 queries today; resets 00:00 UTC.")
        return Admitted(note="slot 7", data={"test_slot": 7})

    async def on_progress(self, query, stats):
        self.add("progress", query.query_id, stats)
        if "stop me" in query.sql and stats.processed_rows > 0:
            return "it read more rows than your per-query limit allows"
        return None

    async def on_finished(self, query):
        self.add("finished", query, query.state, query.stats)

    def finished_calls(self, query_id: str) -> list[tuple]:
        with self.lock:
            return [c for c in self.calls if c[0] == "finished" and c[1].query_id == query_id]

    def heard_finished(self, query_id: str) -> list[tuple]:
        """The finished calls of *query_id*, once there is one: the listeners hear a
        query's end just after its record is closed, so a test that saw the closed record
        may ask a moment before they do."""
        return wait_for(
            lambda: self.finished_calls(query_id), 30, what=f"on_finished of {query_id}"
        )


@pytest.fixture(scope="module")
def cluster(stack) -> dict[str, Any]:
    return {**stack.settings["clusters"][0], "name": "main"}


@pytest.fixture(scope="module")
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture(scope="module")
def gateway(cluster, hooks, tmp_path_factory):
    state = tmp_path_factory.mktemp("audit-gateway")
    running = BackgroundGateway(
        clusters=[cluster],
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        event_log_file=str(state / "events.jsonl"),
        admission=hooks,
        query_listeners=[hooks],
        reconcile_interval=1,
        lost_after=1,
    )
    yield running
    running.close()


def events_of(gateway, query_id: str) -> list[dict[str, Any]]:
    path = gateway.service.event_log_file
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    return [e for e in lines if e["query_id"] == query_id]


SUBMITTED_FIELDS = {
    "user": "alice",
    "groups": ["analysts"],
    "auth_via": "token",
    "principal": "datahub-trino",
    "cluster": "main",
    "routing_group": "default",
    "routing_reason": "default",
    "source": "audit-tests",
    "client_tags": ["nightly", "team-a"],
}


def assert_submitted_fields(rec: dict[str, Any], sql: str) -> None:
    assert {key: rec[key] for key in SUBMITTED_FIELDS} == SUBMITTED_FIELDS
    # This test's admission replaces the quotas'.
    assert rec["admission_note"] == "slot 7"
    assert rec["sql"] == sql
    assert rec["submitted_at"] <= rec["finished_at"]


# ---------------------------------------------------------------------------- tests


def test_a_finished_query_has_every_field_and_both_events(gateway, hooks):
    sql = (
        "SELECT n.name, r.name FROM tpch.tiny.nation n "
        "JOIN tpch.tiny.region r ON n.regionkey = r.regionkey"
    )
    cursor = gateway_connection(
        gateway, source="audit-tests", client_tags=["team-a", "nightly"]
    ).cursor()
    cursor.execute(sql)
    assert len(cursor.fetchall()) == 25
    rec = closed_record(gateway, cursor.query_id, 30)
    assert_submitted_fields(rec, sql)
    assert (rec["state"], rec["error"], rec["output_rows"]) == ("FINISHED", None, 25)
    assert rec["processed_rows"] >= 30  # the nations and regions read
    for key in ("elapsed_ms", "queued_ms", "cpu_ms", "wall_ms", "peak_memory_bytes"):
        assert rec[key] is not None and rec[key] >= 0, key
    # Trino's statistics were recorded (a missing one would be None or 0).
    assert [key for key in ("elapsed_ms", "cpu_ms", "peak_memory_bytes") if not rec[key]] == []
    assert rec["physical_bytes"] is not None and rec["processed_bytes"] is not None

    kinds = [
        e["event"]
        for e in wait_for(
            lambda: (
                len(events_of(gateway, cursor.query_id)) == 2
                and events_of(gateway, cursor.query_id)
            ),
            30,
        )
    ]
    assert kinds == ["query_submitted", "query_finished"]
    finished = events_of(gateway, cursor.query_id)[1]
    assert (finished["state"], finished["output_rows"], finished["cluster"]) == (
        "FINISHED",
        25,
        "main",
    )

    (call,) = hooks.heard_finished(cursor.query_id)
    _, query, final_state, stats = call
    assert (final_state, stats.output_rows, query.admission["test_slot"]) == ("FINISHED", 25, 7)
    assert (query.user, query.cluster, query.routing_group, query.source) == (
        "alice",
        "main",
        "default",
        "audit-tests",
    )


def test_a_failed_query_records_trinos_error(gateway, hooks):
    cursor = gateway_connection(
        gateway, source="audit-tests", client_tags=["nightly", "team-a"]
    ).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        cursor.execute("SELECT * FROM tpch.tiny.no_such_table")
        cursor.fetchall()
    rec = closed_record(gateway, e.value.query_id, 30)
    assert_submitted_fields(rec, "SELECT * FROM tpch.tiny.no_such_table")
    assert (rec["state"], rec["error_name"], rec["error_type"]) == (
        "FAILED",
        "TABLE_NOT_FOUND",
        "USER_ERROR",
    )
    assert "no_such_table" in rec["error"]
    assert [c[2] for c in hooks.heard_finished(e.value.query_id)] == ["FAILED"]


def test_a_cancelled_query_is_canceled_with_its_stats(gateway, hooks, trino_query_info):
    cursor = gateway_connection(
        gateway, source="audit-tests", client_tags=["nightly", "team-a"]
    ).cursor()
    cursor.execute(ENDLESS)
    assert cursor.fetchone() is not None
    cursor.cancel()
    rec = closed_record(gateway, cursor.query_id, 30)
    assert_submitted_fields(rec, ENDLESS)
    assert (rec["state"], rec["error_name"]) == ("CANCELED", "USER_CANCELED")
    assert rec["elapsed_ms"], "Trino's elapsed time was not recorded"
    assert trino_query_info(cursor.query_id)["errorCode"]["name"] == "USER_CANCELED"
    assert [c[2] for c in hooks.heard_finished(cursor.query_id)] == ["CANCELED"]


def test_a_refusing_hook_gives_the_client_its_sentence_and_nothing_reaches_trino(gateway, hooks):
    cursor = gateway_connection(gateway).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        cursor.execute("SELECT 1 -- refuse me")
    assert e.value.error_name == "QUOTA_EXCEEDED"
    assert e.value.message == "You have used 50 of 50 queries today; resets 00:00 UTC."
    rec = closed_record(gateway, e.value.query_id, 30)
    assert (rec["state"], rec["cluster"], rec["error"]) == (
        "REJECTED",
        None,
        "You have used 50 of 50 queries today; resets 00:00 UTC.",
    )
    assert hooks.finished_calls(e.value.query_id) == []  # never admitted
    rejected = wait_for(lambda: events_of(gateway, e.value.query_id), 30)
    assert [event["event"] for event in rejected] == ["query_rejected"]


def test_a_stop_reason_cancels_the_query_on_trino_and_names_the_reason(
    gateway, hooks, trino_query_info
):
    cursor = gateway_connection(gateway).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        cursor.execute("SELECT * FROM tpch.sf1.lineitem -- stop me")
        cursor.fetchall()
    query_id = cursor.query_id
    assert e.value.error_name == "QUOTA_EXCEEDED"
    assert e.value.message == (
        f"DataHub stopped query {query_id}: it read more rows than your per-query limit allows."
    )
    assert trino_query_info(query_id)["state"] == "FAILED"
    rec = closed_record(gateway, query_id, 30)
    assert (rec["state"], rec["error_name"], rec["stop_reason"]) == (
        "FAILED",
        "QUOTA_EXCEEDED",
        "it read more rows than your per-query limit allows",
    )
    assert [c[2] for c in hooks.heard_finished(query_id)] == ["FAILED"]
    progress = [c for c in hooks.calls if c[0] == "progress" and c[1] == query_id]
    assert progress and all(c[2].state for c in progress)


def test_the_reconciler_closes_a_query_nobody_follows_with_trinos_final_state(
    gateway, hooks, stack
):
    headers = {"Authorization": "Bearer alice-token"}
    page = requests.post(f"{gateway.url}/v1/statement", data=ENDLESS, headers=headers, timeout=30)
    query_id = page.json()["id"]
    # Trino starts a query on its first follow-up; then the client vanishes.
    requests.get(page.json()["nextUri"], headers=headers, timeout=30).raise_for_status()
    # An operator kills the query on Trino, behind the gateway's back.
    session = stack.trino.http_session()
    session.auth = (stack.trino.service_user, stack.trino.service_password)
    killed = session.put(
        f"{stack.trino.url}/v1/query/{query_id}/killed", data="maintenance", timeout=30
    )
    assert killed.status_code == 202
    rec = closed_record(gateway, query_id, 30)
    assert (rec["state"], rec["user"], rec["sql"]) == ("FAILED", "alice", ENDLESS)
    assert (rec["error_name"], rec["error"]) == (
        "ADMINISTRATIVELY_KILLED",
        "Query killed. Message: maintenance",
    )
    assert [c[2] for c in hooks.heard_finished(query_id)] == ["FAILED"]


def test_the_reconciler_closes_a_query_its_cluster_no_longer_knows_as_lost(gateway, hooks):
    query_id = "20200101_000000_00000_zzzzz"
    row = records.new_record(
        query_id=query_id,
        user="bob",
        cluster="main",
        routing_group="default",
        sql="SELECT 1",
        state="RUNNING",
        submitted_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
    )
    with gateway.service.store.session() as session:
        records.insert_submitted(session, row)
    rec = closed_record(gateway, query_id, 30)
    assert (rec["state"], rec["error_name"]) == ("LOST", "QUERY_LOST")
    assert "no longer knows the query" in rec["error"]
    ((_, query, state, _stats),) = hooks.heard_finished(query_id)
    assert (state, query.user) == ("LOST", "bob")


def test_a_query_whose_submitted_event_was_lost_is_still_recorded(cluster, tmp_path):
    port = free_port()
    common = {
        "clusters": [cluster],
        "secret": SECRET,
        "identity_resolver_class": resolver_for(TOKENS),
    }
    first = BackgroundGateway(port=port, store_url=f"sqlite:///{tmp_path / 'a.sqlite'}", **common)
    headers = {"Authorization": "Bearer alice-token"}
    page = requests.post(
        f"{first.url}/v1/statement", data=FINITE, headers=headers, timeout=30
    ).json()
    first.close()
    # Another process, with no record of it (as after a crash before the audit write).
    second = BackgroundGateway(port=port, store_url=f"sqlite:///{tmp_path / 'b.sqlite'}", **common)
    try:
        rows = len(page.get("data") or [])
        while page.get("nextUri"):
            page = requests.get(page["nextUri"], headers=headers, timeout=30).json()
            rows += len(page.get("data") or [])
        assert rows == 15000
        rec = closed_record(second, page["id"], 30)
        assert (rec["state"], rec["user"], rec["sql"], rec["cluster"], rec["output_rows"]) == (
            "FINISHED",
            "alice",
            FINITE,
            "main",
            15000,
        )
        assert rec["routing_reason"] == "unknown (submitted event lost)"
    finally:
        second.close()


def test_an_admitted_query_no_cluster_takes_fails_clearly_and_finishes_its_hooks(tmp_path):
    hooks = RecordingHooks()
    down = {"name": "down", "url": f"http://127.0.0.1:{free_port()}"}
    gateway = BackgroundGateway(
        clusters=[down],
        store_url=f"sqlite:///{tmp_path / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        admission=hooks,
        query_listeners=[hooks],
        health_check_interval=3600,
    )
    try:
        wait_for(lambda: gateway.service.monitor.statuses["down"].healthy is False, 30)
        gateway.service.monitor.statuses["down"].record_success(0, 0, time.monotonic())
        with pytest.raises(trino.exceptions.TrinoExternalError) as e:
            gateway_connection(gateway).cursor().execute("SELECT 1")
        assert e.value.error_name == "NO_CLUSTER_AVAILABLE"
        assert e.value.message == (
            "No cluster of routing group 'default' could take the query (down unreachable); "
            "try again shortly or ask an admin."
        )
        rec = closed_record(gateway, e.value.query_id, 30)
        assert (rec["state"], rec["cluster"]) == ("FAILED", None)
        assert [c[2] for c in hooks.heard_finished(e.value.query_id)] == ["FAILED"]
        # The next one is refused at once: the cluster is known to be down.
        with pytest.raises(trino.exceptions.TrinoExternalError) as e:
            gateway_connection(gateway).cursor().execute("SELECT 1")
        assert e.value.message == (
            "No cluster of routing group 'default' is available right now (down unhealthy); "
            "try again shortly or ask an admin."
        )
    finally:
        gateway.close()


def test_metrics_count_queries_by_cluster_and_state_and_rejections(gateway):
    text = requests.get(f"{gateway.url}/metrics", timeout=30).text
    assert 'datahub_queries_ended_total{cluster="main",state="FINISHED"}' in text
    assert 'datahub_queries_ended_total{cluster="main",state="CANCELED"}' in text
    assert 'datahub_queries_rejected_total{reason="quota"} 1.0' in text
    assert 'datahub_query_duration_seconds_bucket{cluster="main",le="+Inf"}' in text
    assert 'datahub_gateway_request_duration_seconds_count{kind="submit"}' in text
    assert 'datahub_cluster_healthy{cluster="main"} 1.0' in text
    assert "alice" not in text
