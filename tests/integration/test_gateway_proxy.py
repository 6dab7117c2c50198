"""The gateway in front of a real Trino, driven by the unmodified ``trino`` client.

A second gateway runs in-process (its own event loop in a thread) with a static identity
resolver, so these tests can use tokens of every kind (no scope, service tokens) without a
hub; the HubAuth path is covered end to end in tests/e2e. The Trino is the test stack's:
HTTPS, LDAP-authenticated service account, file-based rules with impersonation.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import trino
from trino.auth import BasicAuthentication, JWTAuthentication

from datahub.gateway.signing import FollowupSigner
from datahub.identity import IdentityResolver
from datahub.service.app import DataHubService
from datahub.testing import FOLLOWED_SQL, bearer

SECRET = b"integration-test-secret-0123456789"
SCOPE = "access:services!service=datahub"
TOKENS = {
    "alice-token": {"kind": "user", "name": "alice", "scopes": [SCOPE], "groups": ["analysts"]},
    "bob-token": {"kind": "user", "name": "bob", "scopes": [SCOPE], "groups": []},
    "noscope-token": {"kind": "user", "name": "carol", "scopes": ["read:users:name!user=carol"]},
    "service-token": {"kind": "service", "name": "cron", "scopes": [SCOPE]},
    # A hub user named like the cluster's service account (the stack's Trino settings).
    "lookalike-token": {"kind": "user", "name": "datahub-trino", "scopes": [SCOPE], "groups": []},
}


class StaticIdentityResolver(IdentityResolver):
    """Looks tokens up in TOKENS instead of asking a hub."""

    async def user_model(self, token: str) -> dict[str, Any] | None:
        return TOKENS.get(token)


# ----------------------------------------------------------------- the Trino under test


@pytest.fixture(scope="module")
def trino_cluster(stack) -> dict[str, Any]:
    """The c.DataHubService.clusters entry for the stack's Trino, named "test"."""
    return {**stack.settings["clusters"][0], "name": "test"}


@pytest.fixture(scope="module")
def direct_connection(stack):
    """A connection straight to Trino (bypassing the gateway) as the service account,
    impersonating ``user``; with no user, as the service account itself."""
    return lambda user="alice": stack.trino.connect(user)


# ----------------------------------------------------------------------- the gateway


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningGateway:
    """A DataHubService serving on a free port from a background event loop."""

    def __init__(self, clusters: list[dict[str, Any]], **traits: Any) -> None:
        self.port = _free_port()
        traits.setdefault("store_url", f"sqlite:///{tempfile.mkdtemp()}/gateway.sqlite")
        self.service = DataHubService(
            clusters=clusters,
            ip="127.0.0.1",
            port=self.port,
            secret=SECRET,
            identity_resolver_class=StaticIdentityResolver,
            **traits,
        )
        self.service.init()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._servers = self._loop.run_until_complete(self.service.serve())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10)

    def connect(self, token: str | None = "alice-token", **kwargs: Any) -> trino.dbapi.Connection:
        kwargs.setdefault("user", "alice")
        if token is not None:
            kwargs.setdefault("auth", JWTAuthentication(token))
        return trino.dbapi.connect(
            host="127.0.0.1",
            port=self.port,
            http_scheme="http",
            allow_insecure_auth=True,
            **kwargs,
        )

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(self._servers), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def gateway(trino_cluster: dict[str, Any]) -> Iterator[RunningGateway]:
    running = RunningGateway([trino_cluster])
    yield running
    running.close()


def submit(gateway: RunningGateway, sql: str, headers: dict[str, str]) -> dict[str, Any]:
    response = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def follow_to_end(first: dict[str, Any], headers: dict[str, str]) -> list[list[Any]]:
    page, rows = first, list(first.get("data") or [])
    while page.get("nextUri"):
        response = requests.get(page["nextUri"], headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        page = response.json()
        assert "error" not in page, page["error"]
        rows += page.get("data") or []
    return rows


# ------------------------------------------------------------------------------ tests


def test_query_runs_as_the_token_owner_whatever_user_the_client_names(gateway):
    cursor = gateway.connect(token="alice-token", user="bob").cursor()
    cursor.execute("SELECT current_user")
    assert cursor.fetchall() == [["alice"]]


def test_a_hub_user_named_like_the_service_account_cannot_act_as_it_on_trino(gateway):
    # Trino checks impersonation only when the session user differs from the account the
    # gateway signs in as: this user would run queries as the service account itself.
    response = requests.post(
        f"{gateway.url}/v1/statement",
        data="SELECT current_user",
        headers=bearer("lookalike-token"),
        timeout=30,
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "The DataHub user 'datahub-trino' has the name of a cluster's service account, so "
        "the gateway runs no queries for it; ask an admin."
    )


def test_identity_headers_from_the_client_are_ignored(gateway):
    # The trino client refuses to send these itself; a hand-made client might.
    headers = {
        **bearer("alice-token"),
        "X-Trino-User": "bob",
        "X-Trino-Original-User": "bob",
        "X-Presto-User": "bob",
    }
    rows = follow_to_end(submit(gateway, "SELECT current_user", headers), headers)
    assert rows == [["alice"]]


def test_set_session_authorization_cannot_switch_to_another_user(gateway):
    cursor = gateway.connect().cursor()
    try:
        cursor.execute("SET SESSION AUTHORIZATION bob")
        cursor.fetchall()
    except trino.exceptions.TrinoUserError:
        pass  # refused by Trino is just as good
    cursor = cursor.connection.cursor()
    cursor.execute("SELECT current_user")
    assert cursor.fetchall() == [["alice"]]


def test_session_headers_reach_trino(gateway):
    cursor = gateway.connect(catalog="tpch", schema="tiny").cursor()
    cursor.execute("SELECT count(*) FROM nation")
    assert cursor.fetchall() == [[25]]


def test_a_multi_page_result_arrives_complete_and_equal_to_a_direct_query(
    gateway, direct_connection
):
    sql = "SELECT * FROM tpch.tiny.lineitem ORDER BY orderkey, linenumber"
    through_gateway = gateway.connect().cursor()
    through_gateway.execute(sql)
    rows = through_gateway.fetchall()
    direct = direct_connection().cursor()
    direct.execute(sql)
    assert len(rows) == 60175
    assert rows == direct.fetchall()


def test_follow_up_uris_point_at_the_gateway(gateway):
    page = submit(gateway, FOLLOWED_SQL, bearer("alice-token"))
    assert page["nextUri"].startswith(f"{gateway.url}/v1/dh/test/")
    assert page["infoUri"].startswith(f"{gateway.url}/v1/dh/test/")
    follow_to_end(page, bearer("alice-token"))


def test_cancel_reaches_trino(gateway, direct_connection):
    cursor = gateway.connect().cursor()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            cursor.execute("SELECT count(*) FROM tpch.sf100.lineitem")
            outcome["rows"] = cursor.fetchall()
        except Exception as e:  # the cancelled query may surface as an error
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while cursor.query_id is None and time.monotonic() < deadline:
        time.sleep(0.05)
    query_id = cursor.query_id
    assert query_id
    probe = direct_connection(None).cursor()

    def trino_state() -> list:
        probe.execute(
            f"SELECT state, error_code FROM system.runtime.queries WHERE query_id = '{query_id}'"
        )
        return probe.fetchall()

    deadline = time.monotonic() + 60
    while trino_state() != [["RUNNING", None]]:  # cancel a query Trino is running
        assert time.monotonic() < deadline, trino_state()
        time.sleep(0.05)
    cursor.cancel()
    thread.join(30)
    assert not thread.is_alive()
    assert "rows" not in outcome

    state = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = trino_state()
        if state and state[0][0] == "FAILED":
            break
        time.sleep(0.2)
    assert state == [["FAILED", "USER_CANCELED"]]


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("not-a-token"), {"Authorization": "Negotiate abc"}],
    ids=["no token", "bad token", "unknown scheme"],
)
def test_requests_without_a_valid_token_get_a_401_in_trino_format(gateway, headers):
    response = requests.post(f"{gateway.url}/v1/statement", data="SELECT 1", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="DataHub"'
    body = response.json()
    assert body["stats"]["state"] == "FAILED"
    assert body["error"]["errorName"] == "PERMISSION_DENIED"
    assert "token" in body["error"]["message"]


def test_the_trino_client_shows_the_auth_message(gateway):
    cursor = gateway.connect(token="not-a-token").cursor()
    with pytest.raises(trino.exceptions.HttpError, match="401.*token is invalid or expired"):
        cursor.execute("SELECT 1")


@pytest.mark.parametrize(
    ("token", "message"),
    [("service-token", "service token"), ("noscope-token", "not allowed to use")],
)
def test_tokens_without_gateway_access_get_a_403(gateway, token, message):
    response = requests.post(f"{gateway.url}/v1/statement", data="SELECT 1", headers=bearer(token))
    assert response.status_code == 403
    assert message in response.json()["error"]["message"]


def test_basic_auth_with_the_token_as_password_works_for_its_owner(gateway):
    cursor = gateway.connect(token=None, auth=BasicAuthentication("Alice", "alice-token")).cursor()
    cursor.execute("SELECT current_user")
    assert cursor.fetchall() == [["alice"]]


def test_basic_auth_with_another_users_name_is_refused(gateway):
    headers = {"Authorization": requests.auth._basic_auth_str("bob", "alice-token")}
    response = requests.post(f"{gateway.url}/v1/statement", data="SELECT 1", headers=headers)
    assert response.status_code == 401
    assert "does not belong to 'bob'" in response.json()["error"]["message"]


def test_a_follow_up_uri_is_refused_with_another_users_token(gateway):
    page = submit(gateway, FOLLOWED_SQL, bearer("alice-token"))
    response = requests.get(page["nextUri"], headers=bearer("bob-token"))
    assert response.status_code == 403
    assert "not issued to you" in response.json()["error"]["message"]
    requests.delete(page["nextUri"], headers=bearer("alice-token"))


def test_a_tampered_follow_up_uri_is_refused(gateway):
    page = submit(gateway, FOLLOWED_SQL, bearer("alice-token"))
    tampered = page["nextUri"].replace("/v1/statement/", "/v1/statement/x/")
    response = requests.get(tampered, headers=bearer("alice-token"))
    assert response.status_code == 403
    requests.delete(page["nextUri"], headers=bearer("alice-token"))


def test_a_signed_follow_up_outside_v1_statement_is_refused(gateway):
    page = submit(gateway, "SELECT 1", bearer("alice-token"))
    # Even a correctly signed URI (as if the secret leaked) cannot reach /v1/query.
    signer = FollowupSigner(SECRET)
    uri = signer.gateway_uri(gateway.url, "test", "alice", f"/v1/query/{page['id']}")
    response = requests.get(uri, headers=bearer("alice-token"))
    assert response.status_code == 404
    assert "Only Trino statement URIs" in response.json()["error"]["message"]
    info = requests.get(page["infoUri"], headers=bearer("alice-token"))
    assert info.status_code == 404
    follow_to_end(page, bearer("alice-token"))


def test_a_syntax_error_is_a_user_error_with_its_location(gateway):
    cursor = gateway.connect().cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT 1\nFROM WHERE")
    assert raised.value.error_name == "SYNTAX_ERROR"
    assert raised.value.error_location == (2, 6)


def test_an_unreachable_cluster_fails_with_a_clear_error():
    gateway = RunningGateway(
        [{"name": "gone", "url": f"http://127.0.0.1:{_free_port()}"}], connect_timeout=2
    )
    try:
        cursor = gateway.connect().cursor()
        with pytest.raises(trino.exceptions.TrinoExternalError) as raised:
            cursor.execute("SELECT 1")
        # Whether the first health check or the query finds the cluster down first:
        assert raised.value.error_name == "NO_CLUSTER_AVAILABLE"
        assert raised.value.message.startswith("No cluster of routing group 'default' ")
        assert "(gone un" in raised.value.message  # "unhealthy" or "unreachable"
        assert raised.value.message.endswith("; try again shortly or ask an admin.")
    finally:
        gateway.close()


def test_info_answers_like_a_ready_trino(gateway):
    info = requests.get(f"{gateway.url}/v1/info").json()
    assert info["starting"] is False
    assert info["coordinator"] is True


def test_health_is_served_under_the_service_prefix(gateway):
    response = requests.get(f"{gateway.url}{gateway.service.service_prefix}api/health")
    assert response.json() == {"status": "ok", "clusters": ["test"]}


def test_other_paths_get_a_trino_format_404(gateway):
    response = requests.get(f"{gateway.url}/v1/query", headers=bearer("alice-token"))
    assert response.status_code == 404
    assert "not a DataHub gateway endpoint" in response.json()["error"]["message"]


def test_pages_that_only_say_not_yet_are_followed_for_the_client(trino_cluster):
    gateway = RunningGateway([trino_cluster], page_collapse_seconds=30)
    try:
        headers = bearer("alice-token")
        first = submit(gateway, "SELECT 1 AS one", headers)
        # Queued and planning pages were followed by the gateway: the answer to the POST
        # already has the columns (and usually the data).
        assert first["columns"][0]["name"] == "one"
        assert follow_to_end(first, headers) == [[1]]
    finally:
        gateway.close()


def test_without_collapsing_the_client_sees_every_page(trino_cluster):
    gateway = RunningGateway([trino_cluster], page_collapse_seconds=0)
    try:
        first = submit(gateway, "SELECT 1 AS one", bearer("alice-token"))
        assert first["stats"]["state"] == "QUEUED" and "columns" not in first
    finally:
        gateway.close()
