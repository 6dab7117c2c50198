"""Health, drain and failover for PrestoDB clusters, through the real gateway: what
tests/integration/test_gateway_clusters.py shows for two Trino clusters, for a routing
group of Presto clusters, and never across engines.

There is one PrestoDB (the session's, ~40 s and 1.2 GB to start): a routing group's second
Presto entry points at the same server under another name, or at a port nobody listens
on. The stack's Trino is the other engine, in routing group ``default``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import trino

from datahub.audit import records
from datahub.testing import (
    BackgroundGateway,
    free_port,
    gateway_connection,
    resolver_for,
    user_token,
    wait_for,
)

SECRET = b"presto-clusters-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}


def presto_entry(presto, name: str, *, dead: bool = False) -> dict[str, Any]:
    """The session's PrestoDB as cluster *name* of routing group ``lake``; with *dead*,
    a cluster of the same kind where nobody listens."""
    entry = {**presto.cluster_entry(routing_group="lake"), "name": name}
    if dead:
        entry["url"] = f"https://127.0.0.1:{free_port()}"
    return entry


def trino_entry(stack) -> dict[str, Any]:
    return {**stack.settings["clusters"][0], "name": "trino", "routing_group": "default"}


@pytest.fixture
def start_gateway(tmp_path):
    """``start_gateway(clusters, **traits)``: a gateway on its own store, stopped after,
    returned once every cluster has had a health check."""
    running: list[BackgroundGateway] = []

    def start(clusters: list[dict[str, Any]], **traits: Any) -> BackgroundGateway:
        traits.setdefault("health_check_interval", 0.5)
        gateway = BackgroundGateway(
            clusters=clusters,
            store_url=f"sqlite:///{tmp_path / 'datahub.sqlite'}",
            secret=SECRET,
            identity_resolver_class=resolver_for(TOKENS),
            reconcile_interval=0,
            **traits,
        )
        running.append(gateway)
        statuses = gateway.service.monitor.statuses.values()
        wait_for(lambda: all(s.healthy is not None for s in statuses))
        return gateway

    yield start
    for gateway in running:
        gateway.close()


def run(gateway: BackgroundGateway, sql: str, hint: str | None = "lake") -> tuple[list, str]:
    """Run *sql* as alice with routing hint *hint*; the rows and the query id."""
    cursor = gateway_connection(gateway, hint=hint).cursor()
    cursor.execute(sql)
    return cursor.fetchall(), cursor.query_id


def cluster_of(gateway: BackgroundGateway, query_id: str) -> str:
    def get():
        with gateway.service.store.session() as session:
            rec = records.get_query(session, query_id)
        return rec["cluster"] if rec else None

    return wait_for(get)


def test_a_dead_presto_cluster_is_taken_out_and_its_queries_go_to_the_live_one(
    presto, start_gateway
):
    gateway = start_gateway(
        [presto_entry(presto, "lake-dead", dead=True), presto_entry(presto, "lake-live")],
        health_check_interval=3600,
    )
    dead = gateway.service.monitor.statuses["lake-dead"]
    assert dead.healthy is False and "Cannot connect" in dead.last_error
    # Believed healthy (as between two checks): the query fails over within the group.
    dead.record_success(0, 0, time.monotonic())
    rows, query_id = run(gateway, "SELECT current_user")
    assert rows == [["alice"]]
    assert cluster_of(gateway, query_id) == "lake-live"
    assert dead.healthy is False
    metrics = requests.get(f"{gateway.url}/metrics", timeout=30).text
    assert 'datahub_failovers_total{cluster="lake-dead"} 1.0' in metrics
    assert 'datahub_cluster_healthy{cluster="lake-live"} 1.0' in metrics
    _, query_id = run(gateway, "SELECT 1")
    assert cluster_of(gateway, query_id) == "lake-live"


def test_a_drained_presto_cluster_takes_no_new_queries(presto, start_gateway):
    gateway = start_gateway([presto_entry(presto, "lake-a"), presto_entry(presto, "lake-b")])
    wait_for(lambda: all(s.healthy for s in gateway.service.monitor.statuses.values()))
    gateway.call(gateway.service.set_draining("lake-a", True, "carol"))
    try:
        for _ in range(3):
            _, query_id = run(gateway, "SELECT 1")
            assert cluster_of(gateway, query_id) == "lake-b"
        with pytest.raises(trino.exceptions.TrinoExternalError) as e:
            run(gateway, "SELECT 1", hint="lake-a")
        assert e.value.message == (
            "Cluster lake-a is drained for maintenance; run the query without naming it, "
            "or try again later."
        )
    finally:
        gateway.call(gateway.service.set_draining("lake-a", False, "carol"))
    _, query_id = run(gateway, "SELECT 1", hint="lake-a")
    assert cluster_of(gateway, query_id) == "lake-a"


def test_a_presto_group_with_no_live_cluster_says_so_and_never_uses_trino(
    presto, stack, start_gateway
):
    gateway = start_gateway(
        [trino_entry(stack), presto_entry(presto, "lake-a"), presto_entry(presto, "lake-b")],
        default_routing_group="default",
    )
    wait_for(lambda: all(s.healthy for s in gateway.service.monitor.statuses.values()))
    gateway.call(gateway.service.set_draining("lake-a", True, "carol"))
    gateway.call(gateway.service.set_draining("lake-b", True, "carol"))
    try:
        for hint in ("lake", "presto"):  # the routing group, or the engine
            with pytest.raises(trino.exceptions.TrinoExternalError) as e:
                run(gateway, "SELECT 1", hint=hint)
            assert e.value.message == (
                "No cluster of routing group 'lake' is available right now "
                "(lake-a drained, lake-b drained); try again shortly or ask an admin."
            )
            with gateway.service.store.session() as session:
                rec = records.get_query(session, e.value.query_id)
            assert rec is None or rec["cluster"] is None  # Trino never saw it
        rows, query_id = run(gateway, "SELECT 1", hint=None)  # Trino's group works on
        assert rows == [[1]] and cluster_of(gateway, query_id) == "trino"
    finally:
        gateway.call(gateway.service.set_draining("lake-a", False, "carol"))
        gateway.call(gateway.service.set_draining("lake-b", False, "carol"))


def test_a_presto_group_whose_clusters_are_all_down_fails_in_one_sentence(
    presto, stack, start_gateway
):
    gateway = start_gateway(
        [trino_entry(stack), presto_entry(presto, "lake-x", dead=True)],
        default_routing_group="default",
        health_check_interval=3600,
    )
    status = gateway.service.monitor.statuses["lake-x"]
    assert status.healthy is False
    with pytest.raises(trino.exceptions.TrinoExternalError) as e:
        run(gateway, "SELECT 1", hint="presto")
    assert e.value.message == (
        "No cluster of routing group 'lake' is available right now (lake-x unhealthy); "
        "try again shortly or ask an admin."
    )
    # Believed healthy, it is tried, refuses the connection, and nothing else is tried.
    status.record_success(0, 0, time.monotonic())
    with pytest.raises(trino.exceptions.TrinoExternalError) as e:
        run(gateway, "SELECT 1", hint="lake")
    assert e.value.message.startswith("No cluster of routing group 'lake' could take the query (")
    assert "trino" not in e.value.message.removeprefix("No cluster of routing group 'lake'")
    assert "Traceback" not in e.value.message and "java" not in e.value.message.lower()
