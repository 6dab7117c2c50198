"""What a short query costs in requests through the gateway, on the test stack's Trino.

A gateway runs in-process (`BackgroundGateway`, tokens from a static map) with a quota of
one query at a time. Proves, with the unmodified ``trino`` client: pages that only say
"not yet" are followed for the client whatever protocol it asks for, and a short query's
rows are carried to its last page (``carry.py``), so ``SELECT 1`` costs it one request,
direct or spooled; rows that cannot wait (more rows come, the carry's time is up) reach
the client at once and it loses none, Trino giving the page the gateway fetched last
again; a query whose pages told everything (a spooled one: its rows are counted from
its segments) is closed without asking Trino for its query info, with its output rows in
the audit; and a user at their limit who runs queries one after another is never queued
and costs no questions to the cluster (the last query's close, on its way, frees the
slot).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import requests
import trino
from traitlets.config import Config

from datahub.testing import BackgroundGateway, closed_record, gateway_connection

SECRET = b"round-trips-test-secret-0123456789abcd"
SCOPE = "access:services!service=datahub"
TOKENS = {"alice-token": {"kind": "user", "name": "alice", "scopes": [SCOPE], "groups": []}}
#: What the ``trino`` client asks for by default, and a single encoding.
SPOOLED = ["json+zstd", "json+lz4", "json"]


def start_gateway(stack, state_dir, carry_seconds: float) -> BackgroundGateway:
    """A gateway to the stack's Trino holding rows for up to *carry_seconds*, with
    ``own_requests`` (the paths it asked the cluster for itself) and ``sent`` (every
    request of its to the cluster, its own and its clients')."""
    config = Config()
    config.QuotaManager.default_limits = {"concurrent_queries": 1, "queued_queries": 5}
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=state_dir,
        secret=SECRET,
        # Long enough on a busy machine: the count of round trips must not hang on timing.
        page_collapse_seconds=30,
        page_carry_seconds=carry_seconds,
        # The watcher's and the reconciler's rounds are not the path of a query.
        watch_interval=0,
        reconcile_interval=0,
        config=config,
    )
    upstream = running.service.upstream
    own: list[str] = []
    sent: list[str] = []
    call, send = upstream.call, upstream.send

    async def counted(cluster, method, path, **kwargs):
        own.append(path)
        return await call(cluster, method, path, **kwargs)

    async def recorded(cluster, method, path, *args, **kwargs):
        sent.append(f"{method} {path}")
        return await send(cluster, method, path, *args, **kwargs)

    upstream.call = counted  # type: ignore[method-assign]
    upstream.send = recorded  # type: ignore[method-assign]
    running.own_requests = own  # type: ignore[attr-defined]
    running.sent = sent  # type: ignore[attr-defined]
    return running


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    """The gateway, holding rows as long as it takes (the count of requests must not
    hang on timing)."""
    running = start_gateway(stack, tmp_path_factory.mktemp("round-trips"), 30)
    yield running
    running.close()


@pytest.fixture(scope="module")
def hasty(stack, tmp_path_factory):
    """A gateway that holds rows for a millisecond at most."""
    running = start_gateway(stack, tmp_path_factory.mktemp("round-trips-hasty"), 0.001)
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


def test_select_1_over_the_direct_protocol_costs_the_client_one_request(gateway):
    connection, seen = counting_connection(gateway, None)
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [[1]]
    # The answer to the POST is the query's last page, with the row: the gateway followed
    # the queued and planning pages, then the pages after the row.
    assert seen == ["POST /v1/statement"], seen
    rec = closed_record(gateway, cursor.query_id)
    assert (rec["state"], rec["output_rows"]) == ("FINISHED", 1)
    # It asked Trino for each page after the row's with a short wait, not for those before.
    executing = [p for p in gateway.sent if cursor.query_id in p and "/executing/" in p]
    waits = ["maxWait=" in p for p in executing]
    assert waits[-1] and not waits[0] and waits == sorted(waits), executing


@pytest.mark.parametrize("encoding", [SPOOLED, "json"], ids=["default", "json"])
def test_select_1_spooled_costs_the_client_one_request(gateway, encoding):
    connection, seen = counting_connection(gateway, encoding)
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [[1]]
    # Spooled pages name their encoding in a header on every page, which must not make
    # them look like news. The answer to the POST has the row (as a direct-protocol row,
    # which is what the trino client reads there) on the query's last page.
    assert seen == ["POST /v1/statement"], seen


@pytest.mark.parametrize("encoding", [None, SPOOLED], ids=["direct", "spooled"])
def test_rows_held_past_their_time_reach_the_client_at_once_and_none_is_lost(hasty, encoding):
    # The row usually comes tens of milliseconds before the query's end (the other branch
    # scans tiny.lineitem and finds nothing), far more than the millisecond the gateway
    # holds it: the row goes on its own, leading to the page fetched last, which Trino
    # gives again. Whether Trino sends the row before its last page is its timing (once in
    # a few hundred runs, on a busy machine, the row and the end come together), so the
    # query runs until one run has sent the row on its own; every run reads its row.
    for _ in range(5):
        connection, seen = counting_connection(hasty, encoding)
        cursor = connection.cursor()
        cursor.execute(
            "SELECT 1 UNION ALL SELECT 0 FROM tpch.tiny.lineitem WHERE comment = 'never said'"
        )
        assert cursor.fetchall() == [[1]]
        assert seen[0] == "POST /v1/statement", seen
        rec = closed_record(hasty, cursor.query_id)
        assert (rec["state"], rec["output_rows"]) == ("FINISHED", 1)
        if len(seen) >= 2:
            return
    raise AssertionError(f"the row never went on its own in 5 runs; the last run: {seen}")


def all_orders(gateway, encoding: Any) -> tuple[list[str], str]:
    """Read tpch.tiny.orders' keys through *gateway*, check them all there and the query
    closed with them all; the client's requests and the query's id."""
    connection, seen = counting_connection(gateway, encoding)
    cursor = connection.cursor()
    cursor.execute("SELECT orderkey FROM tpch.tiny.orders")
    rows = cursor.fetchall()
    assert len(rows) == 15000 and len({row[0] for row in rows}) == 15000
    assert seen[0] == "POST /v1/statement", seen
    rec = closed_record(gateway, cursor.query_id)
    assert (rec["state"], rec["output_rows"]) == ("FINISHED", 15000)
    return seen, cursor.query_id


def test_rows_that_more_rows_follow_reach_the_client_and_none_is_lost(gateway):
    # Over the direct protocol Trino sends tiny.orders in several pages: the first, if
    # small, is held, and goes to the client as soon as the next page with rows comes;
    # the client then asks for that page, which Trino gives again. Whether the first page
    # is small is Trino's timing (once in a few dozen runs it is not), so the query runs
    # until one run has held a page; every run reads every row (`all_orders`).
    for _ in range(5):
        seen, query_id = all_orders(gateway, None)
        assert len(seen) >= 2, seen
        # Some page was fetched twice: once looking ahead, once for the client.
        mine = [p.split("?")[0] for p in gateway.sent if query_id in p]
        if len(mine) > len(set(mine)):
            return
    raise AssertionError(f"no page was held in 5 runs; the last run fetched {mine}")


#: One row of many types, small enough to come inline.
TYPES = (
    "SELECT 1 AS a, 'x' AS b, DATE '2020-01-02' AS c, CAST(1.5 AS DECIMAL(3,1)) AS d, "
    "ARRAY[1,2] AS e, MAP(ARRAY['k'], ARRAY[2]) AS f, ROW(1, 'z') AS g, "
    "TIMESTAMP '2020-01-02 03:04:05.123' AS h, X'0102' AS i, nan() AS j, REAL '1.5' AS k, "
    "TIME '01:02:03' AS l, TIMESTAMP '2020-01-02 03:04:05 UTC' AS m, INTERVAL '1' DAY AS n, "
    "JSON '{\"a\":1}' AS o, UUID '12151fd2-7586-11e9-8f9e-2a86e4085a59' AS p, "
    "IPADDRESS '10.0.0.1' AS q, CAST(NULL AS BIGINT) AS r, 'é ✓' AS s, 1e300 AS t"
)


def test_the_rows_in_the_answer_to_a_spooled_post_are_the_direct_protocols(gateway):
    def post(**encoding: str) -> dict[str, Any]:
        headers = {"Authorization": "Bearer alice-token", **encoding}
        response = requests.post(f"{gateway.url}/v1/statement", data=TYPES, headers=headers)
        assert response.status_code == 200
        page = response.json()
        # The query's last page: its one row was carried there.
        assert "nextUri" not in page and page["stats"]["state"] == "FINISHED"
        return page

    direct = post()
    for encoding in ("json+zstd", "json"):
        spooled = post(**{"X-Trino-Query-Data-Encoding": encoding})
        assert spooled["data"] == direct["data"]
        assert spooled["columns"] == direct["columns"]
    assert direct["data"][0][:2] == [1, "x"]
    # And as the trino client types them.
    rows = {}
    for encoding in (SPOOLED, None):
        cursor = counting_connection(gateway, encoding)[0].cursor()
        cursor.execute(TYPES)
        rows[str(encoding)] = cursor.fetchall()
        assert len(rows[str(encoding)]) == 1
    assert repr(rows[str(SPOOLED)]) == repr(rows["None"])  # repr: NaN is not NaN


def test_a_result_too_large_for_the_answer_to_the_post_comes_whole_on_the_next_get(gateway):
    # Trino puts tiny.orders inline in two compressed segments: not rows for the POST.
    # Its answer is then the page before, leading to the page the gateway held back,
    # which Trino gives again.
    seen, _ = all_orders(gateway, SPOOLED)
    assert len(seen) >= 3, seen


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
    assert seen == ["POST /v1/statement"] * 8, seen
    assert not any("/v1/dh-queued/" in request for request in seen)
    assert query_info_requests(gateway)[before:] == []
    assert [closed_record(gateway, i)["state"] for i in ids] == ["FINISHED"] * 8


def test_a_query_after_one_whose_release_is_slow_is_admitted_at_once(gateway):
    # The client's next query comes while the last one's close is still on its way (the
    # quota's release of its slot held back for a second here): the gateway tells the
    # quota that query has ended, so the next is neither queued in the store nor made to
    # wait for that close.
    store = gateway.service.quotas.controller.store
    calls: list[str] = []
    run = store.run

    async def slow_release(fn, *args, **kwargs):
        calls.append(fn.__name__)
        if fn.__name__ == "release":
            await asyncio.sleep(1.0)
        return await run(fn, *args, **kwargs)

    store.run = slow_release
    try:
        connection, seen = counting_connection(gateway, SPOOLED)
        for n in range(3):
            cursor = connection.cursor()
            cursor.execute(f"SELECT {n}")
            assert cursor.fetchall() == [[n]]
    finally:
        del store.run
    assert seen == ["POST /v1/statement"] * 3, seen
    assert [c for c in calls if c in ("enqueue", "poll")] == ["enqueue"] * 3


def test_sqlalchemy_reads_a_small_spooled_result(gateway):
    # SQLAlchemy's trino dialect (what JupySQL connects with) runs on the trino client,
    # asking for spooling by default, and so gets rows in the answer to its POST.
    import sqlalchemy as sa

    url = f"trino://alice@127.0.0.1:{gateway.port}/tpch/tiny"
    args = {
        "http_scheme": "http",
        "auth": trino.auth.JWTAuthentication("alice-token"),
        "allow_insecure_auth": True,
        "encoding": SPOOLED,
    }
    engine = sa.create_engine(url, connect_args=args)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT name FROM nation WHERE nationkey < 3"))
            assert sorted(r[0] for r in rows) == ["ALGERIA", "ARGENTINA", "BRAZIL"]
            one = connection.execute(sa.text("SELECT 1 AS one, DATE '2020-01-02' AS d"))
            assert [tuple(r) for r in one] == [(1, dt.date(2020, 1, 2))]
    finally:
        engine.dispose()
