"""The gateway in front of TWO real Trino clusters: routing rules, load, drain, failover,
a cluster killed mid-query, and a gateway restarted mid-query.

Cluster ``a`` is the test stack's Trino; cluster ``b`` the session's second Trino
(`trino_b`, against the stack's LDAP directory), which these tests leave running for the
crash watch's (test_gateway_crash_watch.py), which kill it. Both modules are marked
``stops_trino_b``: they run after the other modules using ``b`` (tests/integration/
conftest.py), which thus find it running.
Gateways run in-process (`BackgroundGateway`) with tokens from a static map, so each test
configures the routing it needs. The tests that stop or kill ``b`` come last, in order.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

import pytest
import requests
import trino
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from datahub.audit import records
from datahub.extensions.sql import SqlError
from datahub.stack.trino import TrinoServer
from datahub.testing import (
    BackgroundGateway,
    closed_record,
    gateway_connection,
    resolver_for,
    user_token,
    wait_for,
)

SECRET = b"two-clusters-test-secret-0123456789"
TOKENS = {
    "alice-token": user_token("alice", "analysts"),
    "bob-token": user_token("bob", "analysts"),
    "dave-token": user_token("dave", "analysts", "contractors"),
}
#: Held queries: one that finishes when read to the end (15 000 rows, buffered in Trino
#: and counted as running until read), one that stays running while nobody reads it, and
#: one that runs for minutes and sends nothing until it ends.
FINITE = "SELECT * FROM tpch.tiny.orders"
BUSY = "SELECT * FROM tpch.sf1.orders"
LONG = "SELECT count(*) FROM tpch.sf100.lineitem WHERE comment LIKE '%fox%'"

pytestmark = pytest.mark.stops_trino_b


# ------------------------------------------------------------------------- clusters


@pytest.fixture
def start_gateway(tmp_path):
    """``start_gateway(clusters, **traits)``: a gateway on its own store; stopped after."""
    running: list[BackgroundGateway] = []

    def start(clusters: list[dict[str, Any]], **traits: Any) -> BackgroundGateway:
        traits.setdefault("store_url", f"sqlite:///{tmp_path / 'datahub.sqlite'}")
        traits.setdefault("secret", SECRET)
        traits.setdefault("identity_resolver_class", resolver_for(TOKENS))
        traits.setdefault("health_check_interval", 0.5)
        traits.setdefault("reconcile_interval", 0)
        gateway = BackgroundGateway(clusters=clusters, **traits)
        running.append(gateway)
        wait_for(
            lambda: all(s.healthy is not None for s in gateway.service.monitor.statuses.values()),
            30,
        )
        return gateway

    yield start
    for gateway in running:
        gateway.close()


# -------------------------------------------------------------------------- helpers


def run(gateway: BackgroundGateway, sql: str, **kwargs) -> tuple[list[list[Any]], str]:
    cursor = gateway_connection(gateway, **kwargs).cursor()
    cursor.execute(sql)
    return cursor.fetchall(), cursor.query_id


def cluster_of(gateway: BackgroundGateway, sql: str = "SELECT 1", **kwargs) -> str:
    """The cluster the query went to, as its audit record says once it is there."""
    _, query_id = run(gateway, sql, **kwargs)

    def get() -> dict[str, Any] | None:
        with gateway.service.store.session() as session:
            return records.get_query(session, query_id)

    return wait_for(get, 30, what=f"query {query_id} in the audit")["cluster"]


class HeldQuery:
    """A query driven page by page over the raw protocol, so a test decides its pace."""

    def __init__(self, gateway: BackgroundGateway, sql: str, token="alice-token", hint=None):
        self.headers = {"Authorization": f"Bearer {token}", "X-Trino-Source": "tests"}
        headers = {**self.headers, **({"X-DataHub-Routing-Group": hint} if hint else {})}
        r = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=headers, timeout=30)
        r.raise_for_status()
        self.page = r.json()
        assert "error" not in self.page, self.page["error"]
        self.id = self.page["id"]
        self.rows = len(self.page.get("data") or [])

    def next(self) -> dict[str, Any]:
        r = requests.get(self.page["nextUri"], headers=self.headers, timeout=30)
        r.raise_for_status()
        self.page = r.json()
        self.rows += len(self.page.get("data") or [])
        return self.page

    def until_data(self) -> HeldQuery:
        while not self.page.get("data"):
            assert "error" not in self.next()
        return self

    def to_end(self) -> dict[str, Any]:
        while self.page.get("nextUri"):
            self.next()
        return self.page

    def cancel(self) -> None:
        if self.page.get("nextUri"):
            requests.delete(self.page["nextUri"], headers=self.headers, timeout=30)


class StallingRelay:
    """A TCP relay in front of a real cluster that can stop passing bytes on, like a
    cluster too busy to answer: connections stay open, nothing comes back."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self.flowing.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        for sock in (source, sink):
            sock.close()

    def close(self) -> None:
        self.flowing.set()
        for sock in self.sockets:
            sock.close()


# ---------------------------------------------------------------------------- tests


def test_rules_route_by_source_group_catalog_and_hint(stack, trino_b, start_gateway):
    gateway = start_gateway(
        [stack.trino.cluster_entry("adhoc", name="a"), trino_b.cluster_entry("etl", name="b")],
        default_routing_group="adhoc",
        routing_rules=[
            {"name": "jobs", "source": "airflow", "routing_group": "etl"},
            {"name": "contractors", "groups": ["contractors"], "routing_group": "etl"},
            {"name": "scratch", "catalogs": ["memory"], "routing_group": "etl"},
        ],
        # Rules do not grant access: dave (a contractor) may use etl too.
        routing_group_access={"etl": {"users": ["alice"], "groups": ["contractors"]}},
    )
    assert cluster_of(gateway) == "a"
    assert cluster_of(gateway, source="airflow") == "b"
    assert cluster_of(gateway, user="dave") == "b"
    assert cluster_of(gateway, sql="SELECT count(*) FROM memory.information_schema.tables") == "b"
    assert cluster_of(gateway, hint="etl") == "b"
    assert cluster_of(gateway, hint="b") == "b"
    assert cluster_of(gateway, hint="adhoc", user="bob") == "a"

    rows, query_id = run(gateway, "SELECT current_user", source="airflow")
    assert rows == [["alice"]]
    rec = closed_record(gateway, query_id, 30)
    assert (rec["routing_group"], rec["routing_reason"], rec["source"]) == (
        "etl",
        "rule:jobs",
        "airflow",
    )
    # Trino b ran it, as alice, authenticated as the service account.
    session = trino_b.http_session()
    session.auth = (trino_b.service_user, trino_b.service_password)
    info = session.get(f"{trino_b.url}/v1/query/{query_id}", timeout=30).json()
    assert (info["session"]["user"], info["session"]["principal"]) == ("alice", "datahub-trino")

    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        run(gateway, "SELECT 1", user="bob", hint="etl")
    # The quota policy decides (routing_group_access is its configured default).
    assert e.value.error_name == "QUOTA_EXCEEDED"
    assert e.value.message == (
        "QuotaExceeded: routing group 'etl' is not in your quota (yours: adhoc); "
        "ask your DataHub admin for access."
    )
    rejected = closed_record(gateway, e.value.query_id, 30)
    assert (rejected["state"], rejected["user"], rejected["cluster"]) == ("REJECTED", "bob", None)


def test_load_picks_the_idle_cluster(stack, trino_b, start_gateway):
    gateway = start_gateway(
        [stack.trino.cluster_entry("default", name="a"), trino_b.cluster_entry("default", name="b")]
    )
    held = HeldQuery(gateway, BUSY, hint="a").until_data()
    try:
        monitor = gateway.service.monitor
        wait_for(
            lambda: monitor.statuses["a"].running > monitor.statuses["b"].running,
            60,
            what=lambda: f"load {monitor.statuses}",
        )
        assert cluster_of(gateway) == "b"
    finally:
        held.cancel()
    held_b = HeldQuery(gateway, BUSY, hint="b").until_data()
    try:
        wait_for(
            lambda: monitor.statuses["b"].running > monitor.statuses["a"].running,
            60,
            what=lambda: f"load {monitor.statuses}",
        )
        assert cluster_of(gateway) == "a"
    finally:
        held_b.cancel()


def test_a_drained_cluster_takes_no_new_queries_while_its_running_one_finishes(
    stack, trino_b, start_gateway
):
    gateway = start_gateway(
        [stack.trino.cluster_entry("default", name="a"), trino_b.cluster_entry("default", name="b")]
    )
    held = HeldQuery(gateway, FINITE, hint="a").until_data()
    gateway.call(gateway.service.set_draining("a", True, "carol"))
    try:
        assert {cluster_of(gateway) for _ in range(3)} == {"b"}
        with pytest.raises(trino.exceptions.TrinoExternalError) as e:
            run(gateway, "SELECT 1", hint="a")
        assert "Cluster a is drained for maintenance" in e.value.message
        last = held.to_end()
        assert last["stats"]["state"] == "FINISHED" and held.rows == 15000
        rec = closed_record(gateway, held.id, 30)
        assert (rec["cluster"], rec["state"], rec["output_rows"]) == ("a", "FINISHED", 15000)
    finally:
        gateway.call(gateway.service.set_draining("a", False, "carol"))
    assert cluster_of(gateway, hint="a") == "a"


def test_a_drain_reaches_every_gateway_process_through_the_store(stack, trino_b, start_gateway):
    clusters = [
        stack.trino.cluster_entry("default", name="a"),
        trino_b.cluster_entry("default", name="b"),
    ]
    first = start_gateway(clusters)
    second = start_gateway(clusters)  # same store, another process's view
    first.call(first.service.set_draining("b", True, "carol"))
    try:
        wait_for(lambda: second.service.monitor.statuses["b"].draining, 30)
        assert {cluster_of(second) for _ in range(2)} == {"a"}
    finally:
        first.call(first.service.set_draining("b", False, "carol"))
    wait_for(lambda: not second.service.monitor.statuses["b"].draining, 30)


def test_one_slow_answer_does_not_take_the_only_cluster_out_but_a_stall_does(stack, start_gateway):
    relay = StallingRelay(stack.trino.host, stack.trino.https_port)
    try:
        entry = {**stack.trino.cluster_entry("default", name="a")}
        entry["url"] = f"https://{stack.trino.host}:{relay.port}"
        gateway = start_gateway(
            [entry], health_check_interval=3600, health_check_timeout=1, health_check_failures=2
        )
        status = gateway.service.monitor.statuses["a"]
        assert status.healthy is True

        # One check finds the cluster too busy to answer: it stays in routing, so the
        # next query runs instead of being told no cluster is available.
        relay.flowing.clear()
        gateway.call(gateway.service.monitor.check_all())
        assert (status.healthy, status.failures) == (True, 1)
        assert "Timeout" in status.last_error
        relay.flowing.set()
        assert run(gateway, "SELECT 1")[0] == [[1]]
        gateway.call(gateway.service.monitor.check_all())  # passes: the count starts over
        assert (status.healthy, status.failures) == (True, 0)

        # Two in a row: out of routing, with one sentence for the user, until a check passes.
        relay.flowing.clear()
        gateway.call(gateway.service.monitor.check_all())
        assert status.healthy is True
        gateway.call(gateway.service.monitor.check_all())
        assert status.healthy is False
        relay.flowing.set()
        with pytest.raises(trino.exceptions.TrinoQueryError) as refused:
            run(gateway, "SELECT 1")
        assert refused.value.message == (
            "No cluster of routing group 'default' is available right now (a unhealthy); "
            "try again shortly or ask an admin."
        )
        gateway.call(gateway.service.monitor.check_all())
        assert status.healthy is True
        assert run(gateway, "SELECT 1")[0] == [[1]]
    finally:
        relay.close()


def test_a_restarted_gateway_lets_a_running_query_finish(stack, trino_b, start_gateway):
    clusters = [stack.trino.cluster_entry("default", name="a")]
    first = start_gateway(clusters)
    held = HeldQuery(first, FINITE).until_data()
    port = first.port
    first.close()  # a restart: nothing of the query is left in memory
    second = start_gateway(clusters, port=port)
    last = held.to_end()
    assert last["stats"]["state"] == "FINISHED" and held.rows == 15000
    rec = closed_record(second, held.id, 30)
    assert (rec["state"], rec["sql"], rec["output_rows"], rec["user"]) == (
        "FINISHED",
        FINITE,
        15000,
        "alice",
    )


def sql_shell(gateway: BackgroundGateway):
    """The process's IPython shell with the %%sql extension, as alice through *gateway*."""
    globalipapp.start_ipython()  # once per process; later calls return None
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    for name, value in (("gateway_url", gateway.url), ("token", "alice-token"), ("user", "alice")):
        shell.run_line_magic("config", f"SqlMagic.{name} = {value!r}")
    return shell


def trino_state(server: TrinoServer, query_id: str) -> str | None:
    """The query's state as *server* (a cluster) reports it, asked as the service account."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override the pinned CA
    r = session.get(
        f"{server.url}/v1/query/{query_id}",
        auth=(server.service_user, server.service_password),
        verify=str(server.ca_file),
        timeout=10,
    )
    return r.json().get("state") if r.status_code == 200 else None


def test_killing_a_cluster_mid_query_gives_a_clear_error_in_the_cell_and_a_lost_record(
    stack, trino_b, start_gateway
):
    gateway = start_gateway(
        [
            stack.trino.cluster_entry("default", name="a"),
            trino_b.cluster_entry("default", name="b"),
        ],
        # No periodic check comes before the end of the test: b leaves routing because
        # the gateway checks a cluster at once when a request to it breaks off.
        health_check_interval=3600,
    )
    shell = sql_shell(gateway)
    outcome: dict[str, Any] = {}

    def run_cell() -> None:
        with capture_output() as captured:
            outcome["result"] = shell.run_cell(f"%%sql --cluster b\n{LONG}")
        outcome["output"] = captured

    cell = threading.Thread(target=run_cell, daemon=True)
    cell.start()
    # The cell's query runs on b...
    query_id = wait_for(lambda: latest_query_id(gateway, "b"), 30, what="a query on b")
    wait_for(lambda: trino_state(trino_b, query_id) == "RUNNING", timeout=60)
    # ...when b dies.
    os.killpg(trino_b._process.pid, signal.SIGKILL)
    cell.join(timeout=60)
    assert not cell.is_alive(), "the cell hung after its cluster died"
    result, output = outcome["result"], outcome["output"]
    message = (
        "Cluster b became unreachable while your query ran; its outcome is unknown. Run it again."
    )
    assert isinstance(result.error_in_exec, SqlError)
    assert result.error_in_exec.message == message
    # The cell shows that one sentence, and no traceback.
    assert output.stdout.strip().splitlines()[-1] == message
    assert "Traceback" not in output.stdout + output.stderr
    rec = closed_record(gateway, query_id, 30)
    assert (rec["state"], rec["cluster"], rec["error_name"], rec["user"], rec["sql"]) == (
        "LOST",
        "b",
        "QUERY_LOST",
        "alice",
        LONG,
    )
    assert rec["finished_at"] is not None and rec["error"] == message
    b = gateway.service.monitor.statuses["b"]
    wait_for(lambda: b.healthy is False, 30, what=lambda: f"b out of routing: {b}")
    assert "Connect" in b.last_error  # the check found it refusing connections


def latest_query_id(gateway: BackgroundGateway, cluster: str) -> str | None:
    """The id of the newest query *gateway* sent to *cluster*, if any."""
    with gateway.service.store.session() as session:
        recent = records.list_queries(session, records.QueryFilter(cluster=cluster, limit=1))
    return recent[0]["query_id"] if recent else None


def test_a_stopped_cluster_is_taken_out_and_its_queries_fail_over(stack, trino_b, start_gateway):
    # b is down since the previous test; this gateway has not noticed yet (no checks).
    trino_b.stop()
    gateway = start_gateway(
        [
            trino_b.cluster_entry("default", name="b"),
            stack.trino.cluster_entry("default", name="a"),
        ],
        health_check_interval=3600,
    )
    gateway.service.monitor.statuses["b"].record_success(0, 0, time.monotonic())
    rows, query_id = run(gateway, "SELECT current_user")
    assert rows == [["alice"]]
    assert closed_record(gateway, query_id, 30)["cluster"] == "a"
    status = gateway.service.monitor.statuses["b"]
    assert status.healthy is False and "Cannot connect" in status.last_error
    metrics = requests.get(f"{gateway.url}/metrics", timeout=30).text
    assert 'datahub_failovers_total{cluster="b"} 1.0' in metrics
    assert 'datahub_cluster_healthy{cluster="b"} 0.0' in metrics
    assert cluster_of(gateway) == "a"  # straight there now

    # When b comes back, a health check brings it back into routing.
    trino_b.start()
    gateway.call(gateway.service.monitor.check_all())
    assert status.healthy is True
    assert cluster_of(gateway, hint="b") == "b"
