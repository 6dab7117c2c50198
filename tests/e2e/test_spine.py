"""The spine, end to end: LDAP sign-in → own JupyterLab → %%sql through the gateway →
Trino as that employee → DataFrame, table and Plotly chart."""

from __future__ import annotations

import html
import json

import pytest
import requests
import trino

from datahub.ldap import authenticator as messages
from datahub.stack import demo

PLOTLY = "application/vnd.plotly.v1+json"


# --- Sign-in --------------------------------------------------------------------------


def test_alice_signs_in_with_her_ldap_password(sign_in):
    _, response = sign_in("alice", demo.demo_password("alice"))
    assert response.status_code == 302
    assert "/login" not in response.headers["Location"]


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alice", "not-her-password", messages.INVALID_CREDENTIALS),
        ("alice", "", messages.EMPTY_PASSWORD),
        ("alice", "   ", messages.EMPTY_PASSWORD),
        ("nobody", "whatever", messages.INVALID_CREDENTIALS),
        ("eve", demo.demo_password("eve"), messages.NOT_ALLOWED),
        ("*", "x", messages.INVALID_USERNAME),
        ("alice)(uid=*", "x", messages.INVALID_USERNAME),
    ],
    ids=[
        "wrong-password",
        "empty-password",
        "blank-password",
        "unknown-user",
        "outside-allowed-group",
        "wildcard",
        "filter-injection",
    ],
)
def test_refused_sign_ins_say_why_on_the_login_page(sign_in, username, password, message):
    _, response = sign_in(username, password)
    assert response.status_code == 403
    page = html.unescape(response.content.decode())
    assert message in page
    assert "Sign in · DataHub" in page  # our branded login page


def test_login_page_is_datahub_branded(stack):
    page = requests.get(f"{stack.hub_url}/hub/login", timeout=30)
    text = page.content.decode()
    assert "Sign in · DataHub" in text
    assert "company (LDAP) account" in text


def test_admin_group_makes_hub_admins_and_ldap_groups_become_hub_groups(sign_in, hub):
    for name in ("alice", "carol"):
        _, response = sign_in(name, demo.demo_password(name))
        assert response.status_code == 302
    carol, alice = hub.user("carol"), hub.user("alice")
    assert carol["admin"] is True
    assert alice["admin"] is False
    assert set(carol["groups"]) == {"analysts", "datahub-admins"}
    assert set(alice["groups"]) == {"analysts"}


# --- Queries in alice's own kernel ------------------------------------------------------


def test_sql_cell_runs_as_the_signed_in_employee(users):
    kernel = users.kernel("alice")
    out = kernel.execute("%%sql -o me\nSELECT current_user AS who")
    assert out["status"] == "ok", out
    assert kernel.value("me['who'].tolist()") == ["alice"]


def test_aggregation_gives_typed_dataframe_table_and_plotly_chart(stack, users):
    sql = (
        "SELECT returnflag, sum(quantity) AS quantity FROM tpch.tiny.lineitem GROUP BY 1 ORDER BY 1"
    )
    kernel = users.kernel("alice")
    out = kernel.execute(f"%%sql -o flags\n{sql}")
    assert out["status"] == "ok", out
    cursor = stack.trino.connect(user="alice").cursor()
    cursor.execute(sql)
    expected = [[flag, float(qty)] for flag, qty in cursor.fetchall()]
    got = kernel.value("[[f, float(q)] for f, q in flags.itertuples(index=False)]")
    assert got == expected
    assert kernel.value("str(flags['quantity'].dtype)") in ("float64", "Float64")
    mimes = [set(o.get("data", {})) for o in out["outputs"]]
    assert any(PLOTLY in m for m in mimes), mimes
    assert any("text/html" in m for m in mimes), mimes
    figure = next(o["data"][PLOTLY] for o in out["outputs"] if PLOTLY in o.get("data", {}))
    assert figure["data"][0]["type"] in ("bar", "scatter", "scattergl")


def test_trino_rules_apply_to_the_employee_not_the_service_account(users):
    sql = "%%sql\nSELECT count(*) AS n FROM tpch.sf1.customer"
    alice = users.kernel("alice").execute(sql)
    assert alice["status"] == "ok", alice
    bob = users.kernel("bob").execute(sql)
    shown = bob["stderr"] + bob["stdout"] + json.dumps(bob["outputs"])
    assert "Access Denied" in shown
    assert "Traceback" not in shown


# --- The gateway's trust boundary --------------------------------------------------------


def gateway_connection(stack, token: str | None, **kwargs):
    host, port = stack.settings["gateway_url"].removeprefix("http://").split(":")
    return trino.dbapi.connect(
        host=host,
        port=int(port),
        http_scheme="http",
        user=kwargs.pop("user", "alice"),
        auth=trino.auth.JWTAuthentication(token) if token else None,
        allow_insecure_auth=True,
        **kwargs,
    )


def test_client_identity_headers_are_ignored(stack, users):
    token = users.token("alice")
    # The trino client sends X-Trino-User: bob; the gateway must run the query as alice.
    cursor = gateway_connection(stack, token, user="bob").cursor()
    cursor.execute("SELECT current_user")
    assert cursor.fetchall() == [["alice"]]
    # Raw protocol, with every identity header a client could try.
    response = requests.post(
        f"{stack.settings['gateway_url']}/v1/statement",
        data="SELECT current_user",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Trino-User": "bob",
            "X-Trino-Original-User": "carol",
            "X-Presto-User": "bob",
        },
        timeout=30,
    )
    rows = []
    while True:
        page = response.json()
        rows += page.get("data", [])
        assert "error" not in page, page
        if "nextUri" not in page:
            break
        response = requests.get(
            page["nextUri"], headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    assert rows == [["alice"]]


@pytest.mark.parametrize("token", [None, "not-a-real-token"], ids=["no-token", "wrong-token"])
def test_gateway_refuses_missing_or_wrong_tokens_with_trino_errors(stack, token):
    headers = {"X-Trino-User": "alice"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = requests.post(
        f"{stack.settings['gateway_url']}/v1/statement",
        data="SELECT 1",
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["errorName"]
    assert body["error"]["message"]
    assert body["stats"]["state"] == "FAILED"


def test_service_account_password_never_reaches_the_users_server(stack, users):
    password = stack.settings["clusters"][0]["password"]
    kernel = users.kernel("alice")
    environ = kernel.value("dict(__import__('os').environ)")
    assert password not in json.dumps(environ)
    assert "DATAHUB_GATEWAY_URL" in environ
    out = kernel.execute("%%sql\nSELECT current_user")
    assert password not in json.dumps(out)


# --- Isolation between employees ---------------------------------------------------------


def test_bob_cannot_read_alices_files_or_her_servers_environment(users):
    alice = users.kernel("alice")
    alice_home = alice.value("__import__('os').path.expanduser('~')")
    alice_pids = alice.value("[__import__('os').getpid(), __import__('os').getppid()]")
    alice.execute(f"open({alice_home!r} + '/secret.txt', 'w').write('only mine')")
    bob = users.kernel("bob")
    bob.execute(
        "def _can_read(path):\n"
        "    try:\n"
        "        open(path, 'rb').read(1)\n"
        "        return True\n"
        "    except PermissionError:\n"
        "        return False"
    )
    paths = [f"{alice_home}/secret.txt", f"{alice_home}/Welcome to DataHub.ipynb"]
    paths += [f"/proc/{pid}/environ" for pid in alice_pids]
    for path in paths:
        assert bob.value(f"_can_read({path!r})") is False, f"bob could read {path}"
    alice.execute(f"__import__('os').remove({alice_home!r} + '/secret.txt')")


def test_sql_quota_shows_my_own_quota_in_a_cell(users):
    out = users.kernel("alice").execute("%sql quota")
    assert out["status"] == "ok", out
    (bundle,) = [o["data"] for o in out["outputs"] if "text/plain" in o.get("data", {})]
    assert bundle["text/plain"].startswith("Quota of alice")
    assert "<table>" in bundle["text/html"]
