"""External tools reach the gateway over HTTPS with username + hub token, as the user."""

from __future__ import annotations

import subprocess

import pytest
import requests
import trino


def https_connection(stack, username: str, token: str, **kwargs) -> trino.dbapi.Connection:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify= otherwise
    session.verify = stack.settings["gateway_ca_file"]
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=stack.settings["gateway_https_port"],
        http_scheme="https",
        user=username,
        auth=trino.auth.BasicAuthentication(username, token),
        http_session=session,
        **kwargs,
    )


def test_python_client_over_https_with_username_and_hub_token(stack, users):
    cursor = https_connection(stack, "alice", users.token("alice")).cursor()
    cursor.execute("SELECT current_user, name FROM tpch.tiny.region WHERE regionkey = 0")
    assert cursor.fetchall() == [["alice", "AFRICA"]]


def test_basic_auth_with_someone_elses_token_is_refused(stack, users):
    cursor = https_connection(stack, "bob", users.token("alice")).cursor()
    try:
        cursor.execute("SELECT current_user")
        cursor.fetchall()
    except trino.exceptions.HttpError as e:
        assert "401" in str(e)
    else:
        raise AssertionError("bob's name with alice's token was accepted")


def test_trino_cli_runs_a_query_through_the_gateway_as_the_user(users, trino_cli):
    argv, env = trino_cli(
        "alice",
        users.token("alice"),
        "SELECT current_user, name FROM tpch.tiny.region WHERE regionkey = 0",
    )
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '"alice","AFRICA"'


def https_metrics(stack, token: str | None = None) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return session.get(
        f"{stack.settings['gateway_https_url']}/metrics",
        headers=headers,
        verify=stack.settings["gateway_ca_file"],
        timeout=30,
    )


def test_anonymous_metrics_on_the_external_listener_are_refused(stack, users):
    anonymous = https_metrics(stack)
    assert anonymous.status_code == 401
    assert anonymous.text == "/metrics here needs a hub token with the scope read:metrics.\n"
    assert "datahub_" not in anonymous.text
    user = https_metrics(stack, users.token("alice"))  # a user's token: no read:metrics
    assert user.status_code == 403 and "datahub_" not in user.text
    admin = https_metrics(stack, users.token("carol"))  # hub admins hold read:metrics
    assert admin.status_code == 200 and "datahub_queries_submitted_total" in admin.text
    # The internal listener (kernels, an in-network Prometheus) stays open.
    internal = requests.get(f"{stack.settings['gateway_url']}/metrics", timeout=30)
    assert internal.status_code == 200 and "datahub_cluster_healthy" in internal.text


def test_a_refused_role_over_https_is_a_clean_trino_error_not_a_stack_trace(stack, users):
    # The client sends X-Trino-Role: system=ROLE{admin}; Trino refuses it with HTTP 500
    # and a Java stack trace as plain text.
    connection = https_connection(stack, "alice", users.token("alice"), roles={"system": "admin"})
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        connection.cursor().execute("SELECT 1")
    assert raised.value.message == "Access Denied: Cannot set role admin."
    assert "at io.trino" not in str(raised.value)
