"""What a short query costs in requests through the gateway, on the test stack's Trino.

A gateway runs in-process (`BackgroundGateway`, tokens from a static map) with a quota of
one query at a time. Proves, with the unmodified ``trino`` client: pages that only say
"not yet" are followed for the client whatever protocol it asks for, so ``SELECT 1``
costs it two requests (direct protocol) or three (spooled: the answer to the POST stops
before the rows, which the client cannot read there); a query whose pages told everything (a spooled
one: its rows are counted from its segments) is closed without asking Trino for its
query info, with its output rows in the audit; and a user at their limit who runs
queries one after another is never queued and costs no questions to the cluster (the
last query's close, on its way, frees the slot).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import trino
from traitlets.config import Config

from datahub.testing import BackgroundGateway, closed_record, gateway_connection, resolver_for

SECRET = b"round-trips-test-secret-0123456789abcd"
SCOPE = "access:services!service=datahub"
TOKENS = {"alice-token": {"kind": "user", "name": "alice", "scopes": [SCOPE], "groups": []}}
#: What the ``trino`` client asks for by default, and a single encoding.
SPOOLED = ["json+zstd", "json+lz4", "json"]


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    """The gateway, with ``own_requests``: the paths it asked the cluster for itself."""
    config = Config()
    config.QuotaManager.default_limits = {"concurrent_queries": 1, "queued_queries": 5}
    running = BackgroundGateway(
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        store_url=f"sqlite:///{tmp_path_factory.mktemp('round-trips') / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        # Long enough on a busy machine: the count of round trips must not hang on timing.
        page_collapse_seconds=30,
        # The watcher's and the reconciler's rounds are not the path of a query.
        watch_interval=0,
        reconcile_interval=0,
        config=config,
    )
    upstream = running.service.upstream
    own: list[str] = []
    call = upstream.call

    async def counted(cluster, method, path, **kwargs):
        own.append(path)
        return await call(cluster, method, path, **kwargs)

    upstream.call = counted  # type: ignore[method-assign]
    running.own_requests = own  # type: ignore[attr-defined]
    yield running
    running.close()


def counting_connection(gateway, encoding: Any) -> tuple[trino.dbapi.Connection, list[str]]:
    """A ``trino`` client connection to *gateway* and the list of its requests
    (method and path)."""
    session = requests.Session()
    seen: list[str] = []
    session.hooks["response"].append(
        lambda response, *args, **kwargs: seen.append(
            f"{response.request.method} {response.request.path_url.split('?')[0]}"
        )
    )
    connection = gateway_connection(gateway, http_session=session, encoding=encoding)
    return connection, seen


def query_info_requests(gateway) -> list[str]:
    """The gateway's own requests for a query's info (health checks list queries by
    state on ``/v1/query?state=``; those are not about one query)."""
    return [p for p in gateway.own_requests if p.startswith("/v1/query/")]


def test_select_1_over_the_direct_protocol_costs_the_client_two_requests(gateway):
    connection, seen = counting_connection(gateway, None)
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [[1]]
    # The answer to the POST already has the row (queued and planning pages were followed
    # by the gateway); one GET for the end.
    assert [request.split()[0] for request in seen] == ["POST", "GET"], seen
    assert seen[1].startswith("GET /v1/dh/")


@pytest.mark.parametrize("encoding", [SPOOLED, "json"], ids=["default", "json"])
def test_select_1_spooled_costs_the_client_three_requests(gateway, encoding):
    connection, seen = counting_connection(gateway, encoding)
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [[1]]
    # Spooled pages name their encoding in a header on every page, which must not make
    # them look like news. The answer to the POST stops at the end of the queued pages
    # (the trino client cannot read spooled rows there); one GET for the row, one for
    # the end.
    assert [request.split()[0] for request in seen] == ["POST", "GET", "GET"], seen


def test_a_spooled_query_is_closed_from_its_pages_alone(gateway):
    before = len(query_info_requests(gateway))
    connection, _ = counting_connection(gateway, SPOOLED)
    cursor = connection.cursor()
    cursor.execute("SELECT * FROM (VALUES 1, 2, 3) AS t(x)")
    assert cursor.fetchall() == [[1], [2], [3]]
    rec = closed_record(gateway, cursor.query_id)
    assert (rec["state"], rec["output_rows"]) == ("FINISHED", 3)
    assert query_info_requests(gateway)[before:] == []


def test_a_direct_protocol_query_gets_its_rows_from_the_query_info(gateway):
    before = len(query_info_requests(gateway))
    connection, _ = counting_connection(gateway, None)
    cursor = connection.cursor()
    cursor.execute("SELECT * FROM (VALUES 1, 2) AS t(x)")
    assert cursor.fetchall() == [[1], [2]]
    rec = closed_record(gateway, cursor.query_id)
    assert (rec["state"], rec["output_rows"]) == ("FINISHED", 2)
    assert query_info_requests(gateway)[before:] == [f"/v1/query/{cursor.query_id}?pruned=true"]


def test_queries_one_after_another_at_the_limit_are_never_queued_nor_asked_about(gateway):
    connection, seen = counting_connection(gateway, SPOOLED)
    before = len(query_info_requests(gateway))
    ids = []
    for n in range(8):
        cursor = connection.cursor()
        cursor.execute(f"SELECT {n}")
        assert cursor.fetchall() == [[n]]
        ids.append(cursor.query_id)
    # Each query went straight to Trino: no QUEUED page from the gateway, no polls of a
    # queued URI, and no query info asked for to find the last one ended.
    assert [request.split()[0] for request in seen] == ["POST", "GET", "GET"] * 8, seen
    assert not any("/v1/dh-queued/" in request for request in seen)
    assert query_info_requests(gateway)[before:] == []
    assert [closed_record(gateway, i)["state"] for i in ids] == ["FINISHED"] * 8
