"""Crash detection on the real broker: a Trino cluster killed (SIGKILL) while alice and bob
each run a query on it shows up as one crash incident of that cluster, with exactly their
two queries and both users; on the admin page (Plotly charts and the incident list), in
the API and in /metrics; never to a non-admin; and ``datahub events watch`` finds the same
incident from the same topic.

The gateway runs in-process (`BackgroundGateway`, the real DataHubService) with
c.KafkaEvents pointing at the session's broker, in front of the stack's Trino (``a``) and the
session's second Trino (``b``, `trino_b`, the one killed; the cluster tests before these
leave it running; both modules are marked ``stops_trino_b`` and run after the modules that
only use it). Tokens are real hub tokens of the stack's hub, which the gateway and the
pages ask, as in production.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from aiokafka import AIOKafkaConsumer, TopicPartition
from traitlets.config import Config

from datahub.events import incidents
from datahub.stack import demo
from datahub.stack.trino import TrinoServer
from datahub.store import Store
from datahub.testing import BackgroundGateway, wait_for

SECRET = b"crash-watch-test-secret-0123456789"
#: Runs for minutes on one small Trino, sending nothing until it ends.
LONG = "SELECT count(*) FROM tpch.sf100.lineitem WHERE comment LIKE '%fox%'"
#: A bound against hanging, not a measure of speed.
GIVE_UP_AFTER = 180

pytestmark = pytest.mark.stops_trino_b


@pytest.fixture(scope="module")
def tokens(hub, sign_in) -> dict[str, str]:
    """Hub API tokens of alice and bob (analysts) and carol (a DataHub admin)."""
    result = {}
    for name in ("alice", "bob", "carol"):
        _, response = sign_in(name, demo.demo_password(name))
        assert response.status_code == 302
        result[name] = hub.token_for(name)
    return result


@pytest.fixture(scope="module")
def topic() -> str:
    return f"query-events-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def gateway(stack, kafka, trino_b, topic, tokens, tmp_path_factory):
    state = tmp_path_factory.mktemp("crash-watch")
    config = Config()
    config.KafkaEvents.bootstrap_servers = kafka.bootstrap_servers
    config.KafkaEvents.topic = topic
    config.KafkaEvents.poll_interval = 0.5
    config.CrashWatch.group_id = f"crash-watch-{uuid.uuid4().hex[:8]}"
    config.CrashWatch.quiet_period = 3600.0  # the incident stays ongoing during the test
    # The stack's hub answers who a token belongs to, for the gateway and the pages.
    config.HubAuth.api_url = f"{stack.hub_url}/hub/api"
    config.HubAuth.access_scopes = {"access:services!service=datahub"}
    running = BackgroundGateway(
        clusters=[
            stack.trino.cluster_entry("default", name="a"),
            trino_b.cluster_entry("crash", name="b"),
        ],
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        reconcile_interval=0,
        watch_interval=1.0,
        lost_after=3.0,
        health_check_interval=1.0,
        config=config,
    )
    yield running
    running.close()


# -------------------------------------------------------------------------- helpers


def submit(gateway: BackgroundGateway, token: str, sql: str, group: str) -> dict[str, Any]:
    """Submit *sql* over the raw protocol (the client then stops polling) to *group*."""
    r = requests.post(
        f"{gateway.url}/v1/statement",
        data=sql,
        headers={"Authorization": f"Bearer {token}", "X-DataHub-Routing-Group": group},
        timeout=60,
    )
    r.raise_for_status()
    page = r.json()
    assert "error" not in page, page["error"]
    return page


def poll(page: dict[str, Any], token: str) -> dict[str, Any]:
    r = requests.get(page["nextUri"], headers={"Authorization": f"Bearer {token}"}, timeout=60)
    r.raise_for_status()
    return r.json()


def run_to_end(gateway: BackgroundGateway, token: str, sql: str, group: str) -> str:
    page = submit(gateway, token, sql, group)
    while page.get("nextUri"):
        page = poll(page, token)
    assert "error" not in page and page["stats"]["state"] == "FINISHED", page
    return page["id"]


def trino_state(server: TrinoServer, query_id: str) -> str | None:
    with server.http_session() as session:
        r = session.get(
            f"{server.url}/v1/query/{query_id}",
            auth=(server.service_user, server.service_password),
            timeout=10,
        )
    return r.json().get("state") if r.status_code == 200 else None


def incidents_in(store: Store) -> list[incidents.Incident]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    return store.transaction(incidents.recent, since)


def incident_of(store: Store, cluster: str, queries: int) -> incidents.Incident | None:
    """The cluster's incident once it holds *queries* lost queries."""
    for incident in incidents_in(store):
        if incident.cluster == cluster and len(incident.queries) >= queries:
            return incident
    return None


# ---------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def crash(gateway, trino_b, tokens) -> dict[str, Any]:
    """Before b dies: a query of alice's that finished on b, and one on a; then alice's
    and bob's long queries running on b when it is killed."""
    finished_b = run_to_end(gateway, tokens["alice"], "SELECT 1", "crash")
    finished_a = run_to_end(gateway, tokens["bob"], "SELECT 2", "default")
    running = {}
    for name in ("alice", "bob"):
        page = submit(gateway, tokens[name], LONG, "crash")
        running[name] = page["id"]
        # Trino dispatches a query at its client's first polls; then the client goes quiet.
        deadline = time.monotonic() + GIVE_UP_AFTER
        while trino_state(trino_b, page["id"]) != "RUNNING":
            assert time.monotonic() < deadline, f"{page['id']} never ran on b"
            page = poll(page, tokens[name])
            assert "error" not in page and page.get("nextUri"), page
    os.killpg(trino_b._process.pid, signal.SIGKILL)
    incident = wait_for(
        lambda: incident_of(gateway.service.store, "b", 2), GIVE_UP_AFTER, 0.5, "an incident of b"
    )
    return {"incident": incident, "running": running, "finished": (finished_b, finished_a)}


def test_a_cluster_killed_mid_query_is_an_incident_with_its_queries_and_users(gateway, crash):
    incident = crash["incident"]
    assert incident is not None, (
        f"no incident of b with 2 queries; found {incidents_in(gateway.service.store)}"
    )
    assert incident.cluster == "b"
    assert set(incident.queries) == set(crash["running"].values())
    assert incident.users == ["alice", "bob"]
    for name, query_id in crash["running"].items():
        lost = incident.queries[query_id]
        assert (lost.user, lost.cluster, lost.marked_by) == (name, "b", "gateway")
    assert incident.ongoing  # nothing has finished on b since, and it is not quiet yet
    # The queries that finished before the crash, on b and on a, are in no incident.
    assert [i.id for i in incidents_in(gateway.service.store)] == [incident.id]
    assert not set(crash["finished"]) & set(incident.queries)


def test_the_admin_page_api_and_metrics_show_the_incident(gateway, crash, tokens):
    incident = crash["incident"]
    carol = {"Authorization": f"token {tokens['carol']}"}
    base = f"{gateway.url}/services/datahub/"

    page = requests.get(base + "admin/incidents", headers=carol, timeout=60)
    assert page.status_code == 200, page.text[:500]
    assert f'data-incident="{incident.id}" data-cluster="b"' in page.text
    for query_id in crash["running"].values():
        assert f'data-query="{query_id}"' in page.text
    assert '<td class="incident-users">alice, bob</td>' in page.text
    assert page.text.count('data-plotly-target="incidents-chart-') == 2
    assert "Lost queries per day" in page.text and "Crash incidents per day" in page.text
    assert "Incidents" in page.text  # its nav item, in the admin menu

    api = requests.get(base + "api/incidents", headers=carol, timeout=60)
    assert api.status_code == 200, api.text
    (shown,) = [i for i in api.json()["incidents"] if i["id"] == incident.id]
    assert (shown["cluster"], shown["users"], shown["ended_at"]) == ("b", ["alice", "bob"], None)
    assert {q["query_id"] for q in shown["queries"]} == set(crash["running"].values())

    metrics = requests.get(f"{gateway.url}/metrics", timeout=60).text
    assert 'datahub_lost_queries_total{cluster="b"} 2.0' in metrics
    assert 'datahub_crash_incidents_total{cluster="b"} 1.0' in metrics
    assert 'datahub_crash_incidents_ongoing{cluster="b"} 1.0' in metrics
    assert 'datahub_lost_queries_total{cluster="a"}' not in metrics


def test_the_page_draws_both_charts_and_lists_the_queries_in_a_browser(
    gateway, crash, tokens, browser, tmp_path
):
    incident = crash["incident"]
    context = browser.new_context(
        extra_http_headers={"Authorization": f"token {tokens['carol']}"},
        viewport={"width": 1200, "height": 1100},
    )
    try:
        page = context.new_page()
        page.goto(f"{gateway.url}/services/datahub/admin/incidents")
        for chart in ("#incidents-chart-1", "#incidents-chart-2"):
            page.wait_for_selector(f"{chart} .main-svg", timeout=30_000)
        assert page.locator(".js-plotly-plot").count() == 2
        # Plotly drew one bar per day and cluster: today, cluster b's, 1 incident, 2 lost.
        drawn = page.evaluate(
            """() => [1, 2].map(n => document.getElementById(`incidents-chart-${n}`).data
                .map(trace => [trace.name, trace.y.reduce((a, b) => a + b, 0)]))"""
        )
        assert drawn == [[["b", 1]], [["b", 2]]]
        assert page.locator("#incidents-chart-2 .bars .point").count() >= 1
        row = page.locator(f'tr[data-incident="{incident.id}"]')
        row.locator("summary").click()
        shown = row.locator("li[data-query]").all_inner_texts()
        for name, query_id in crash["running"].items():
            assert any(query_id in line and name in line for line in shown), shown
        page.screenshot(path=str(tmp_path / "incidents.png"), full_page=True)
    finally:
        context.close()


def test_non_admins_never_see_incidents(gateway, crash, tokens, hub):
    base = f"{gateway.url}/services/datahub/"
    # carol is an admin, but a token of hers without DataHub's admin scope (like her
    # server's) does not open the page either.
    narrow = hub.api(
        "POST",
        "/users/carol/tokens",
        json={"note": "narrow", "expires_in": 600, "scopes": ["access:services!service=datahub"]},
    )
    assert narrow.status_code == 201, narrow.text
    r = requests.get(
        base + "api/incidents",
        headers={"Authorization": f"token {narrow.json()['token']}"},
        timeout=60,
    )
    assert r.status_code == 403 and "custom:datahub:admin" in r.json()["message"]
    alice = {"Authorization": f"token {tokens['alice']}"}
    for path in ("admin/incidents", "api/incidents", "api/incidents?days=3660&cluster=b"):
        r = requests.get(base + path, headers=alice, timeout=60, allow_redirects=False)
        assert r.status_code == 403, (path, r.status_code)
        assert "Only DataHub administrators may do this." in r.text
        for query_id in crash["running"].values():
            assert query_id not in r.text
    anonymous = requests.get(base + "api/incidents", timeout=60, allow_redirects=False)
    assert anonymous.status_code == 403 and crash["incident"].id not in anonymous.text
    forged = requests.get(
        base + "api/incidents",
        headers={"Authorization": "token not-a-hub-token", "X-Forwarded-User": "carol"},
        timeout=60,
    )
    assert forged.status_code == 403


def watch_cli(kafka, topic: str, config, store_url: str, log) -> subprocess.Popen:
    """``datahub events watch`` in the background, its output in *log*."""
    return subprocess.Popen(
        [sys.executable, "-m", "datahub.cli", "events", "watch", "-f", str(config)]
        + ["--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic]
        + ["--store-url", store_url],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


def uncommitted(kafka, topic: str, group: str) -> int:
    """How many records of *topic* the consumer group *group* has not committed."""

    async def count() -> int:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            ends = await consumer.end_offsets(partitions)
            left = 0
            for tp in partitions:
                left += ends[tp] - (await consumer.committed(tp) or 0)
            return left
        finally:
            await consumer.stop()

    # In a thread of its own: the module's browser holds an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, count()).result(timeout=60)


def test_datahub_events_watch_finds_the_same_incident_and_resumes_after_a_restart(
    gateway, crash, kafka, topic, tmp_path
):
    group = f"cli-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "datahub_config.py"
    config.write_text(f"c.CrashWatch.group_id = {group!r}\nc.CrashWatch.quiet_period = 3600\n")
    store_url = f"sqlite:///{tmp_path / 'watch.sqlite'}"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    watch = watch_cli(kafka, topic, config, store_url, first_log)
    store = Store(store_url)
    try:
        found = wait_for(
            lambda: _readable(store) and incident_of(store, "b", 2),
            GIVE_UP_AFTER,
            0.5,
            lambda: f"datahub events watch finding an incident of b:\n{first_log.read_text()}",
        )
        # Offsets are committed once what the batch changed is in the store.
        wait_for(
            lambda: uncommitted(kafka, topic, group) == 0,
            GIVE_UP_AFTER,
            0.5,
            lambda: f"offsets all committed:\n{first_log.read_text()}",
        )
    finally:
        returncode = stop(watch)
    output = first_log.read_text()
    assert set(found.queries) == set(crash["incident"].queries)
    assert found.users == ["alice", "bob"]
    assert returncode == 0, output
    assert "Crash incident on cluster b" in output

    # Started again, it goes on from the store and the committed offsets: nothing new.
    again = watch_cli(kafka, topic, config, store_url, second_log)
    try:
        wait_for(
            lambda: "reads 3 partitions" in second_log.read_text(),
            GIVE_UP_AFTER,
            0.5,
            lambda: f"the watch started again reading 3 partitions:\n{second_log.read_text()}",
        )
    finally:
        returncode = stop(again)
    output = second_log.read_text()
    assert returncode == 0, output
    assert "follows 0 open queries and 1 recent incidents" in output
    assert "Crash incident" not in output
    assert [i.id for i in incidents_in(store)] == [found.id]
    store.dispose()


def _readable(store: Store) -> bool:
    try:
        return bool(store.current_heads() & store.expected_heads())
    except Exception:
        return False
