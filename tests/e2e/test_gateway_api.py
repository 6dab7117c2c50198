"""Query history, clusters and drain through the whole stack: hub tokens and sign-in, the
hub-managed DataHub service, its Trino cluster, and a user's kernel."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
import trino
from trino.auth import JWTAuthentication

from datahub.identity import INVALID_TOKEN
from datahub.stack import demo

QUERY_KEYS = {
    "query_id",
    "user",
    "acting_admin",
    "cluster",
    "state",
    "sql",
    "submitted",
    "finished",
    "elapsed_ms",
    "rows",
    "error",
    "source",
}


def api(stack, token: str, path: str, method: str = "GET", **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{stack.hub_url}/services/datahub/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kwargs,
    )


def run(stack, users, name: str, sql: str) -> str:
    """Run *sql* as *name* through the gateway with the trino client; return the query id."""
    connection = trino.dbapi.connect(
        host="127.0.0.1",
        port=stack.settings["gateway_port"],
        http_scheme="http",
        user=name,
        auth=JWTAuthentication(users.token(name)),
        allow_insecure_auth=True,
        source="e2e-tests",
    )
    cursor = connection.cursor()
    cursor.execute(sql)
    cursor.fetchall()
    return cursor.query_id


def history(stack, token: str, query: str = "user=me") -> list[dict]:
    r = api(stack, token, f"api/queries?{query}")
    assert r.status_code == 200, r.text
    return r.json()["queries"]


def wait_for_finished(stack, token: str, query_id: str, query: str = "user=me") -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [q for q in history(stack, token, query) if q["query_id"] == query_id]
        if found and found[0]["finished"]:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"query {query_id} not in the history")


def test_my_history_lists_my_queries_newest_first_in_the_agreed_shape(stack, users):
    token = users.token("alice")
    first = run(stack, users, "alice", "SELECT 1")
    second = run(stack, users, "alice", "SELECT 42 AS answer")
    entry = wait_for_finished(stack, token, second)
    wait_for_finished(stack, token, first)
    assert set(entry) == QUERY_KEYS
    assert (entry["user"], entry["cluster"], entry["state"], entry["sql"]) == (
        "alice",
        "trino",
        "FINISHED",
        "SELECT 42 AS answer",
    )
    assert (entry["rows"], entry["error"], entry["source"]) == (1, None, "e2e-tests")
    assert entry["submitted"].endswith("Z") and entry["finished"] >= entry["submitted"]
    assert isinstance(entry["elapsed_ms"], int)
    ids = [q["query_id"] for q in history(stack, token, "user=me&limit=5")]
    assert ids.index(second) < ids.index(first)
    assert all(q["user"] == "alice" for q in history(stack, token))


def test_other_peoples_history_is_for_admins_with_filters(stack, users):
    query_id = run(stack, users, "alice", "SELECT 'for carol'")
    r = api(stack, users.token("bob"), "api/queries?user=alice")
    assert r.status_code == 403
    assert r.json() == {
        "status": 403,
        "message": "Only DataHub administrators may see other users' queries; ask for user=me.",
    }
    carol = users.token("carol")
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    entry = wait_for_finished(
        stack, carol, query_id, f"user=alice&cluster=trino&state=FINISHED&since={since}"
    )
    assert entry["sql"] == "SELECT 'for carol'"
    everyone = history(stack, carol, "user=*&limit=1000")
    assert {"alice"} <= {q["user"] for q in everyone}
    r = api(stack, carol, "api/queries?since=yesterday")
    assert r.status_code == 400
    assert "since must be an ISO-8601 time like" in r.json()["message"]


def test_the_query_detail_has_every_audited_field(stack, users):
    query_id = run(stack, users, "alice", "SELECT name FROM tpch.tiny.region")
    wait_for_finished(stack, users.token("alice"), query_id)
    detail = api(stack, users.token("alice"), f"api/queries/{query_id}").json()
    assert (detail["principal"], detail["routing_reason"], detail["output_rows"]) == (
        "datahub-trino",
        "default",
        5,
    )
    assert detail["groups"] == ["analysts"] and detail["cpu_ms"] is not None
    assert api(stack, users.token("bob"), f"api/queries/{query_id}").status_code == 404


def test_clusters_api_reports_routing_group_health_and_load(stack, users):
    r = api(stack, users.token("alice"), "api/clusters")
    assert r.status_code == 200
    # (The session's PrestoDB is listed too when a test of the run uses it.)
    (cluster,) = [c for c in r.json()["clusters"] if c["name"] == "trino"]
    assert cluster.keys() == {
        "name",
        "engine",
        "routing_group",
        "healthy",
        "draining",
        "running",
        "queued",
    }
    assert (cluster["name"], cluster["engine"], cluster["routing_group"], cluster["healthy"]) == (
        "trino",
        "trino",
        "default",
        True,
    )
    assert cluster["draining"] is False


def test_admins_drain_a_cluster_for_maintenance_and_bring_it_back(stack, users):
    alice, carol = users.token("alice"), users.token("carol")
    assert api(stack, alice, "api/clusters/trino/drain", "POST").status_code == 403
    try:
        r = api(stack, carol, "api/clusters/trino/drain", "POST")
        assert r.status_code == 200 and r.json()["draining"] is True
        with pytest.raises(trino.exceptions.TrinoExternalError) as e:
            run(stack, users, "alice", "SELECT 1")
        assert e.value.message == (
            "No cluster of routing group 'default' is available right now (trino drained); "
            "try again shortly or ask an admin."
        )
    finally:
        r = api(stack, carol, "api/clusters/trino/activate", "POST")
    assert r.status_code == 200 and r.json()["draining"] is False
    run(stack, users, "alice", "SELECT 1")
    assert api(stack, carol, "api/clusters/nope/drain", "POST").status_code == 404


def routing_groups(stack) -> str:
    """The stack's routing groups, as the gateway names them: ``default`` (and
    ``presto`` when a test of the run uses the session's PrestoDB)."""
    return ", ".join(dict.fromkeys(c["routing_group"] for c in stack.settings["clusters"]))


def test_a_cell_naming_an_unknown_routing_group_gets_one_clear_line(stack, users):
    kernel = users.kernel("alice")
    out = kernel.execute("%%sql --cluster nope\nSELECT 1")
    shown = out["stderr"] + out["stdout"] + json.dumps(out["outputs"])
    assert (
        f"There is no routing group or cluster named 'nope'; use one of: {routing_groups(stack)}."
        in shown
    )
    assert "Traceback" not in shown
    ok = kernel.execute("%%sql --cluster default -o one\nSELECT 1 AS one")
    assert ok["status"] == "ok", ok


def test_history_and_cluster_pages_in_the_hubs_look(stack, users, sign_in):
    query_id = run(stack, users, "alice", "SELECT 'page' AS p")
    wait_for_finished(stack, users.token("alice"), query_id)
    alice, _ = sign_in("alice", demo.demo_password("alice"))
    page = alice.get(f"{stack.hub_url}/services/datahub/queries", timeout=30)
    assert page.status_code == 200 and query_id in page.text
    assert "/hub/static/css/style.min.css" in page.text
    assert "All queries" not in page.text
    assert alice.get(f"{stack.hub_url}/services/datahub/queries/all", timeout=30).status_code == 403
    detail = alice.get(f"{stack.hub_url}/services/datahub/queries/{query_id}", timeout=30)
    assert detail.status_code == 200 and "SELECT &#39;page&#39; AS p" in detail.text
    clusters = alice.get(f"{stack.hub_url}/services/datahub/clusters", timeout=30)
    assert clusters.status_code == 200 and 'data-cluster="trino"' in clusters.text
    assert "Drain</button>" not in clusters.text

    carol, _ = sign_in("carol", demo.demo_password("carol"))
    everyone = carol.get(f"{stack.hub_url}/services/datahub/queries/all?user=alice", timeout=30)
    assert everyone.status_code == 200 and query_id in everyone.text
    assert (
        "Drain</button>" in carol.get(f"{stack.hub_url}/services/datahub/clusters", timeout=30).text
    )


def test_metrics_and_the_event_log_see_the_queries(stack, users):
    query_id = run(stack, users, "alice", "SELECT 'metrics'")
    wait_for_finished(stack, users.token("alice"), query_id)
    metrics = requests.get(f"{stack.settings['gateway_url']}/metrics", timeout=30).text
    assert 'datahub_queries_ended_total{cluster="trino",state="FINISHED"}' in metrics
    assert 'datahub_cluster_healthy{cluster="trino"} 1.0' in metrics
    log = Path(stack.state_dir) / "logs" / "query-events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [e["event"] for e in events if e["query_id"] == query_id]
    assert mine == ["query_submitted", "query_finished"]


def test_the_clusters_page_names_the_routing_groups_the_users_quota_allows(stack, sign_in, tokens):
    quota_api = requests.Session()
    quota_api.headers["Authorization"] = f"token {tokens['carol']}"
    policy = f"{stack.hub_url}/services/datahub/api/quota/policies/user/dave"
    dave, _ = sign_in("dave", demo.demo_password("dave"))

    def allowed_on_the_page() -> str:
        page = dave.get(f"{stack.hub_url}/services/datahub/clusters", timeout=30)
        assert page.status_code == 200
        return re.search(r"Routing groups you may ask for.*?<strong>(.*?)</strong>", page.text)[1]

    assert allowed_on_the_page() == routing_groups(stack)
    r = quota_api.put(policy, json={"limits": {"routing_groups": []}}, timeout=60)
    assert r.status_code == 200, r.text
    try:
        assert allowed_on_the_page() == "none"
    finally:
        quota_api.delete(policy, timeout=60)
    assert allowed_on_the_page() == routing_groups(stack)


def test_a_prepared_customer_select_shows_in_history_as_the_select_not_execute(stack, users):
    connection = trino.dbapi.connect(
        host="127.0.0.1",
        port=stack.settings["gateway_port"],
        http_scheme="http",
        user="alice",
        auth=JWTAuthentication(users.token("alice")),
        allow_insecure_auth=True,
        legacy_prepared_statements=True,  # PREPARE, then EXECUTE with the header
    )
    cursor = connection.cursor()
    cursor.execute("SELECT name FROM tpch.tiny.customer WHERE custkey = ?", (7,))
    assert cursor.fetchall() == [["Customer#000000007"]]
    entry = wait_for_finished(stack, users.token("alice"), cursor.query_id)
    # Trino hands the client its own formatting of the prepared statement.
    assert entry["sql"].startswith("SELECT name\nFROM\n  tpch.tiny.customer\nWHERE")
    detail = api(stack, users.token("alice"), f"api/queries/{cursor.query_id}").json()
    assert detail["client_sql"].startswith("EXECUTE ") and detail["client_sql"].endswith("USING 7")


def test_a_hub_user_named_like_the_service_account_is_refused_by_the_gateway(stack, hub):
    name = stack.settings["clusters"][0]["user"]  # the stack's Trino service account
    created = hub.api("POST", f"/users/{name}")
    assert created.status_code in (201, 409), created.text
    try:
        r = hub.api(
            "POST",
            f"/users/{name}/tokens",
            json={"scopes": ["access:services!service=datahub"], "expires_in": 600},
        )
        assert r.status_code == 201, r.text
        response = requests.post(
            f"{stack.settings['gateway_url']}/v1/statement",
            data="SELECT current_user",
            headers={"Authorization": f"Bearer {r.json()['token']}"},
            timeout=30,
        )
        # Refused, never run as the account itself. In this stack the hub already refuses
        # the token (the directory has no such person: its refresh fails, 401); where the
        # directory has one, the gateway's own check answers (403, see
        # tests/integration/test_gateway_proxy.py, which proves it against Trino).
        assert response.status_code in (401, 403), response.text
        message = response.json()["error"]["message"]
        assert message in (
            INVALID_TOKEN,
            f"The DataHub user {name!r} has the name of a cluster's service account, so the "
            "gateway runs no queries for it; ask an admin.",
        )
    finally:
        hub.api("DELETE", f"/users/{name}")
