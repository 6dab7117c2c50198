"""PrestoDB through the whole stack: ``%%sql --cluster presto`` in a user's spawned
kernel, the trino client on the gateway's HTTPS listener, the Trino CLI (by the client tag
``presto``) and an admin's drain reach the session's PrestoDB, the stack's cluster
``presto`` in routing group ``presto`` (the ``stack_presto`` fixture, tests/conftest.py),
as the user, as the same cells and clients reach Trino (tests/e2e/test_sql_cells.py,
test_external_clients.py, test_gateway_api.py)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import requests
import trino

from datahub.testing import assert_cancelled, cluster_api, interrupted
from datahub.wire import ROUTING_HEADER

#: Runs for many minutes on PrestoDB and sends nothing until it ends.
LONG = "SELECT count(*) FROM tpch.sf1000.lineitem WHERE comment LIKE '%fox%'"


def ended_query_info(presto, query_id: str, timeout: float = 60) -> dict:
    """PrestoDB's own record of a query, once it has ended (or the wait gave up)."""
    api = cluster_api(presto)
    deadline = time.monotonic() + timeout
    while True:
        info = api.get(f"{presto.url}/v1/query/{query_id}", timeout=30).json()
        if info["state"] in ("FINISHED", "FAILED") or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def audited(stack, token: str, query_id: str, timeout: float = 30) -> dict:
    """The service's audit record of a query (its detail API), once it has ended."""
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(
            f"{stack.hub_url}/services/datahub/api/queries/{query_id}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        if r.status_code == 200 and r.json().get("finished") or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.2)


def shown(out: dict) -> str:
    return out["stderr"] + out["stdout"] + json.dumps(out["outputs"])


def test_a_presto_cell_gives_alice_a_typed_frame_as_herself(stack_presto, stack, users):
    kernel = users.kernel("alice")
    out = kernel.execute(
        "%%sql --cluster presto -o frame\n"
        "SELECT current_user AS me, nationkey, name, TIMESTAMP '2024-01-02 03:04:05.123' AS ts, "
        "DECIMAL '1.50' AS price FROM tpch.tiny.nation WHERE nationkey IN (7, 8) "
        "ORDER BY nationkey"
    )
    assert out["status"] == "ok", out
    summaries = [
        o["data"]["text/plain"]
        for o in out["outputs"]
        if o["type"] in ("display_data", "update_display_data")
        and "datahub-sql-progress" in o["data"].get("text/html", "")
    ]
    assert summaries[-1].startswith("✔ 2 rows · ") and " · cluster presto · query " in summaries[-1]
    assert kernel.value("frame.to_dict('list')") == {
        "me": ["alice", "alice"],
        "nationkey": [7, 8],
        "name": ["GERMANY", "INDIA"],
        "ts": ["2024-01-02 03:04:05.123000", "2024-01-02 03:04:05.123000"],
        "price": ["1.50", "1.50"],
    }
    assert kernel.value("{c: str(t) for c, t in frame.dtypes.items()}") == {
        "me": "string",
        "nationkey": "Int64",
        "name": "string",
        "ts": "datetime64[us]",
        "price": "object",
    }
    # PrestoDB ran it as alice; the gateway audited it on cluster presto.
    query_id = re.search(r" · query (\S+)", summaries[-1])[1]
    assert ended_query_info(stack_presto, query_id)["session"]["user"] == "alice"
    detail = audited(stack, users.token("alice"), query_id)
    assert (detail["user"], detail["cluster"], detail["routing_group"]) == (
        "alice",
        "presto",
        "presto",
    )
    assert (detail["state"], detail["output_rows"]) == ("FINISHED", 2)


def test_bob_is_denied_on_presto_in_one_sentence(stack_presto, users):
    out = users.kernel("bob").execute(
        "%%sql --cluster presto\nSELECT count(*) FROM tpch.tiny.nation"
    )
    assert out["status"] == "error"
    text = shown(out)
    assert "Access Denied: Cannot access catalog tpch" in text
    assert "Traceback" not in text and "com.facebook" not in text


def test_interrupting_the_kernel_cancels_the_query_on_presto(stack_presto, users):
    kernel = users.kernel("alice")
    out, query_id = interrupted(kernel, stack_presto, f"%%sql --cluster presto\n{LONG}")
    assert_cancelled(out)
    info = ended_query_info(stack_presto, query_id)
    assert info["session"]["user"] == "alice"
    assert info["state"] == "FAILED" and info["errorCode"]["name"] == "USER_CANCELED"
    assert kernel.execute("%%sql --cluster presto\nSELECT 1")["status"] == "ok"


def test_the_trino_client_over_https_reaches_presto_with_a_hub_token(stack_presto, stack, users):
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify= otherwise
    session.verify = stack.settings["gateway_ca_file"]
    connection = trino.dbapi.connect(
        host="127.0.0.1",
        port=stack.settings["gateway_https_port"],
        http_scheme="https",
        user="alice",
        auth=trino.auth.BasicAuthentication("alice", users.token("alice")),
        http_session=session,
        http_headers={ROUTING_HEADER: "presto"},
    )
    cursor = connection.cursor()
    cursor.execute("SELECT current_user, name FROM tpch.tiny.region WHERE regionkey = 0")
    assert cursor.fetchall() == [["alice", "AFRICA"]]
    # PrestoDB ran it (the query id is PrestoDB's), as alice.
    assert ended_query_info(stack_presto, cursor.query_id)["session"]["user"] == "alice"


def test_the_trino_cli_reaches_presto_with_the_client_tag(stack_presto, users, trino_cli):
    """The Trino CLI cannot send the routing hint; the stack's routing rule sends its
    client tag ``presto`` to the Presto cluster (jupyterhub_config.py)."""
    argv, env = trino_cli(
        "alice",
        users.token("alice"),
        "SELECT current_user, name, TIMESTAMP '2024-01-02 03:04:05.123' "
        "FROM tpch.tiny.region WHERE regionkey = 0",
    )
    at = argv.index("--execute")
    argv[at:at] = ["--client-tags", "presto", "--source", "e2e-presto-cli"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '"alice","AFRICA","2024-01-02 03:04:05.123"'
    # PrestoDB ran it (its own list of queries has it), as alice.
    api = cluster_api(stack_presto)
    ran = [
        q
        for q in api.get(f"{stack_presto.url}/v1/query", timeout=30).json()
        # Queries of other tests in the session may have no source.
        if q["session"].get("source") == "e2e-presto-cli"
    ]
    assert ran and all(q["session"]["user"] == "alice" for q in ran)


def service_api(stack, token: str, path: str, method: str = "GET") -> requests.Response:
    return requests.request(
        method,
        f"{stack.hub_url}/services/datahub/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )


def test_an_admin_drains_the_presto_cluster_and_trino_goes_on(stack_presto, stack, users):
    alice, carol, kernel = users.token("alice"), users.token("carol"), users.kernel("alice")
    listed = service_api(stack, alice, "api/clusters").json()["clusters"]
    (cluster,) = [c for c in listed if c["name"] == "presto"]
    assert (cluster["engine"], cluster["routing_group"], cluster["healthy"]) == (
        "presto",
        "presto",
        True,
    )
    assert service_api(stack, alice, "api/clusters/presto/drain", "POST").status_code == 403
    try:
        r = service_api(stack, carol, "api/clusters/presto/drain", "POST")
        assert r.status_code == 200, r.text
        assert (r.json()["engine"], r.json()["draining"]) == ("presto", True)
        out = kernel.execute("%%sql --cluster presto\nSELECT 1")
        assert out["status"] == "error"
        assert (
            "No cluster of routing group 'presto' is available right now (presto drained); "
            "try again shortly or ask an admin."
        ) in shown(out)
        assert "Traceback" not in shown(out)
        # Trino's routing group is another engine's: the drain does not touch it.
        assert kernel.execute("%%sql\nSELECT 1")["status"] == "ok"
    finally:
        r = service_api(stack, carol, "api/clusters/presto/activate", "POST")
    assert r.status_code == 200 and r.json()["draining"] is False
    assert kernel.execute("%%sql --cluster presto\nSELECT 1")["status"] == "ok"
