"""External tools reach the gateway over HTTPS with username + hub token, as the user."""

from __future__ import annotations

import subprocess

import requests
import trino


def https_connection(stack, username: str, token: str) -> trino.dbapi.Connection:
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
