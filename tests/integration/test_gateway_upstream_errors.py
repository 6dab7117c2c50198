"""A cluster's failures reach users as one-sentence Trino errors, never as stack traces.

The stack's real Trino answers a refused ``X-Trino-Role`` with HTTP 500 and a Java stack
trace as plain text; a gateway in front of it must turn that into a Trino-format error.
Failed queries' pages lose Trino's Java stack frames, however long the user made the
message, with spooling on or off.
Follow-up GETs and DELETEs are covered against a small cluster stand-in (a real HTTP
server) that answers them the way Trino answers its own internal failures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import trino

from datahub.gateway import rewrite
from datahub.testing import (
    BackgroundGateway,
    cluster_api,
    gateway_connection,
    resolver_for,
    user_token,
)

SECRET = b"upstream-errors-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}
BEARER = {"Authorization": "Bearer alice-token"}
STACK_TRACE = (
    "java.lang.IllegalStateException: Query 20261202_1 state machine at "
    "trino-worker-7.internal.example.com:8443 failed\n"
    "\tat io.trino.execution.QueryStateMachine.fail(QueryStateMachine.java:1234)\n"
    "\tat io.trino.server.protocol.Query.getNextResult(Query.java:456)\n"
)


def assert_one_sentence_trino_error(response: requests.Response) -> dict[str, Any]:
    """The body is a Trino QueryResults error of one line, with no trace or internals."""
    assert "at io.trino" not in response.text and "Exception" not in response.text
    assert "internal.example.com" not in response.text
    page = response.json()
    assert page["stats"]["state"] == "FAILED"
    error = page["error"]
    assert {"message", "errorCode", "errorName", "errorType"} <= error.keys()
    assert "\n" not in error["message"] and error["message"].endswith(".")
    return error


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=tmp_path_factory.mktemp("upstream-errors"),
        secret=SECRET,
    )
    yield running
    running.close()


def test_a_refused_role_is_a_one_sentence_error_not_trinos_stack_trace(gateway):
    response = requests.post(
        f"{gateway.url}/v1/statement",
        data="SELECT 1",
        headers={**BEARER, "X-Trino-Role": "system=ROLE{admin}"},
        timeout=30,
    )
    assert response.status_code == 200
    error = assert_one_sentence_trino_error(response)
    assert (error["message"], error["errorName"]) == (
        "Access Denied: Cannot set role admin.",
        "PERMISSION_DENIED",
    )


def test_the_trino_client_shows_the_refused_role_as_a_clean_error(gateway):
    connection = gateway_connection(gateway, roles={"system": "admin"})
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        connection.cursor().execute("SELECT 1")
    assert raised.value.message == "Access Denied: Cannot set role admin."
    assert "at io.trino" not in str(raised.value)


@pytest.mark.parametrize(
    "sql",
    ["SELEC 1", "SELECT * FROM tpch.tiny.no_such_table", "SELECT CAST('x' AS integer)"],
)
def test_a_failed_querys_page_carries_no_java_stack_frames(gateway, sql):
    """Trino puts its Java stack frames in every failed query's failureInfo; they stay at
    the gateway, the message and the error location reach the client."""
    response = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=BEARER, timeout=30)
    page = response.json()
    while "error" not in page and page.get("nextUri"):
        response = requests.get(page["nextUri"], headers=BEARER, timeout=30)
        page = response.json()
    assert ".java:" not in response.text
    failure = page["error"]["failureInfo"]
    assert failure["stack"] == [] and failure["message"]
    assert page["error"]["message"] and page["stats"]["state"] == "FAILED"


#: A query the user makes fail with a message as long as they like: Trino's failed page,
#: frames and all, is then larger than the pages the gateway reads whole at first.
LONG_FAILURE = "SELECT fail(lpad('', 100000, 'x'))"


@pytest.fixture(scope="module")
def direct_gateway(stack, tmp_path_factory):
    """The module's gateway with the spooling protocol off."""
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=tmp_path_factory.mktemp("upstream-errors-direct"),
        secret=SECRET,
        allow_spooling=False,
    )
    yield running
    running.close()


def last_page(post: Callable[..., requests.Response], get, url: str, **kwargs) -> requests.Response:
    response = post(f"{url}/v1/statement", data=LONG_FAILURE, timeout=60, **kwargs)
    while "error" not in response.json() and response.json().get("nextUri"):
        response = get(response.json()["nextUri"], timeout=60, **kwargs)
    return response


def test_trinos_own_page_for_a_long_failure_is_large_and_carries_frames(stack):
    session = cluster_api(stack.trino)
    response = last_page(session.post, session.get, stack.trino.url)
    assert len(response.content) > rewrite.WHOLE_PAGE and ".java:" in response.text


@pytest.mark.parametrize("which", ["gateway", "direct_gateway"])
def test_a_long_failure_message_reaches_the_user_without_trinos_stack_frames(request, which):
    url = request.getfixturevalue(which).url
    # Spooled where the gateway allows it (the failed page is the same).
    headers = {**BEARER, "X-Trino-Query-Data-Encoding": "json"}
    response = last_page(requests.post, requests.get, url, headers=headers)
    assert ".java:" not in response.text and "io.trino.operator" not in response.text
    error = response.json()["error"]
    assert error["message"] == "x" * 100000 and error["errorName"] == "GENERIC_USER_ERROR"
    assert error["failureInfo"]["stack"] == []


# ------------------------------------------------- follow-ups against a failing cluster


class FailingCluster(BaseHTTPRequestHandler):
    """Takes a query like Trino, then fails every follow-up with a stack trace."""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        host = f"http://127.0.0.1:{self.server.server_port}"
        page = {
            "id": "20261202_000000_00001_aaaaa",
            "infoUri": f"{host}/ui/query.html?20261202_000000_00001_aaaaa",
            "nextUri": f"{host}/v1/statement/executing/20261202_000000_00001_aaaaa/y1/1",
            "stats": {"state": "QUEUED", "queued": True, "scheduled": False},
        }
        self._answer(200, json.dumps(page), "application/json")

    def do_GET(self) -> None:
        if self.path == "/v1/info":
            self._answer(200, '{"starting": false}', "application/json")
        elif self.path.startswith("/v1/query"):
            self._answer(200, "[]", "application/json")
        else:
            self._answer(500, STACK_TRACE, "text/plain")

    def do_DELETE(self) -> None:
        self._answer(500, STACK_TRACE, "text/plain")


@pytest.fixture(scope="module")
def failing_gateway(tmp_path_factory):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingCluster)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state = tmp_path_factory.mktemp("failing-cluster")
    running = BackgroundGateway(
        clusters=[{"name": "flaky", "url": f"http://127.0.0.1:{server.server_port}"}],
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        page_collapse_seconds=0,
    )
    yield running
    running.close()
    server.shutdown()


def first_page(gateway) -> dict[str, Any]:
    response = requests.post(
        f"{gateway.url}/v1/statement", data="SELECT 1", headers=BEARER, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_follow_up_failing_with_a_stack_trace_is_a_one_sentence_error(failing_gateway):
    page = first_page(failing_gateway)
    response = requests.get(page["nextUri"], headers=BEARER, timeout=30)
    assert response.status_code == 200
    error = assert_one_sentence_trino_error(response)
    assert error["message"].startswith("Cluster flaky failed on this request (HTTP 500)")


def test_a_cancel_failing_with_a_stack_trace_keeps_its_status_not_the_trace(failing_gateway):
    page = first_page(failing_gateway)
    response = requests.delete(page["nextUri"], headers=BEARER, timeout=30)
    assert response.status_code == 500
    assert_one_sentence_trino_error(response)
