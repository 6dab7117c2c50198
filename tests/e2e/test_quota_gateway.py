"""Quotas enforced by the real gateway on real Trino queries: every limit, the race, the
refusal text, cancels that Trino confirms, and slots given back.

Policies are set the way an admin sets them, through the REST API with carol's token,
and removed after each test. Most tests run as bob (an analyst whose quota nothing else
in the suite changes).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import trino

from datahub.stack import demo

pytestmark = pytest.mark.e2e

ADMINS = "your DataHub admin (datahub-admins)"
# Long enough that a tiny per-query limit stops it (Trino generates the data); it reads
# the memory table first, so the bytes Trino reports grow early (tpch reads none).
BIG_QUERY = "SELECT count(*) FROM tpch.sf100.lineitem l JOIN {table} t ON l.orderkey = t.orderkey"
# Several result pages, so a query stays open while the client reads slowly.
PAGED_QUERY = "SELECT orderkey, partkey, suppkey FROM tpch.tiny.lineitem"
# 5,000 rows that cost Trino and the client little, so that twenty of them, three at a
# time, stay well within the time the gateway holds a queued query (25 s), even on a busy
# machine.
RACE_QUERY = "SELECT n FROM UNNEST(sequence(1, 5000)) AS t(n)"


def service_url(stack, path: str = "") -> str:
    return f"{stack.hub_url}/services/datahub/{path}"


class QuotaApi:
    """The quota REST API as one user."""

    def __init__(self, stack, token: str):
        self.base = service_url(stack, "api/quota/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=60, **kwargs)

    def ok(self, method: str, path: str, **kwargs) -> dict:
        r = self(method, path, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def tokens(hub, sign_in):
    """Hub API tokens of carol (an admin), bob and dave, signed in through the form."""
    result = {}
    for name in ("carol", "bob", "dave"):
        _, response = sign_in(name, demo.demo_password(name))
        assert response.status_code == 302
        result[name] = hub.token_for(name)
    return result


@pytest.fixture(scope="module")
def admin(stack, tokens) -> QuotaApi:
    return QuotaApi(stack, tokens["carol"])


@pytest.fixture
def policy(admin):
    """``policy(scope, name, **limits)`` sets a policy for the test, removed afterwards."""
    subjects = []

    def set_policy(scope: str, name: str | None, **limits) -> None:
        path = "policies/default" if scope == "default" else f"policies/{scope}/{name}"
        admin.ok("PUT", path, json={"limits": limits})
        subjects.append(path)

    yield set_policy
    for path in subjects:
        admin("DELETE", path)


def connect(stack, token: str, **kwargs) -> trino.dbapi.Connection:
    host, port = stack.settings["gateway_url"].removeprefix("http://").split(":")
    return trino.dbapi.connect(
        host=host,
        port=int(port),
        http_scheme="http",
        auth=trino.auth.JWTAuthentication(token),
        allow_insecure_auth=True,
        **kwargs,
    )


def run(stack, token: str, sql: str = "SELECT 1") -> list:
    cursor = connect(stack, token).cursor()
    cursor.execute(sql)
    return cursor.fetchall()


def refusal(stack, token: str, sql: str = "SELECT 1") -> trino.exceptions.TrinoQueryError:
    with pytest.raises(trino.exceptions.TrinoQueryError) as info:
        run(stack, token, sql)
    return info.value


def usage(admin: QuotaApi, user: str) -> dict:
    return admin.ok("GET", f"users/{user}")["usage"]


def settled_usage(admin: QuotaApi, user: str, ready=lambda u: u["running"] == 0) -> dict:
    """The user's usage once *ready* holds: the gateway closes a query (frees its slot,
    counts its CPU and bytes) just after the client has its last page."""
    deadline = time.monotonic() + 15
    while True:
        current = usage(admin, user)
        if ready(current):
            return current
        assert time.monotonic() < deadline, current
        time.sleep(0.1)


def recorded_cancel(admin: QuotaApi, user: str, query_id: str) -> dict:
    """The refusal log's entry for a cancelled query (recorded just after the gateway
    stops it)."""
    deadline = time.monotonic() + 15
    while True:
        rows = admin.ok("GET", "refusals", params={"user": user})["refusals"]
        found = [row for row in rows if row["query_id"] == query_id]
        if found:
            return found[0]
        assert time.monotonic() < deadline, rows[:3]
        time.sleep(0.2)


@pytest.fixture(scope="module")
def scanned_table(stack, tokens):
    """A table in Trino's memory catalog (which, unlike tpch, reports bytes read)."""
    name = f"memory.default.quota_scan_{uuid.uuid4().hex[:8]}"
    run(stack, tokens["bob"], f"CREATE TABLE {name} AS SELECT * FROM tpch.tiny.lineitem")
    yield name
    run(stack, tokens["bob"], f"DROP TABLE {name}")


# ------------------------------------------------------------------ concurrency


def test_twenty_parallel_queries_against_a_limit_of_three_run_three_at_a_time(
    stack, tokens, admin, policy, trino_query_info
):
    policy("user", "bob", concurrent_queries=3, queued_queries=20)
    before = usage(admin, "bob")["queries"]
    peak_seen = 0
    sampling = True

    def sample() -> None:
        # The gateway's own counters, as the admin API shows them, while the race runs.
        nonlocal peak_seen
        while sampling:
            peak_seen = max(peak_seen, usage(admin, "bob")["running"])
            time.sleep(0.2)

    def one_query(i: int) -> tuple[str, int]:
        cursor = connect(stack, tokens["bob"]).cursor()
        cursor.execute(RACE_QUERY)
        time.sleep(0.2)  # a slow reader keeps the query (and its slot) open
        return cursor.query_id, len(cursor.fetchall())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(one_query, range(20)))
    finally:
        sampling = False
        sampler.join()

    # Nothing lost: every query ran to the end with every row.
    assert len({query_id for query_id, _ in results}) == 20
    assert {rows for _, rows in results} == {5000}
    after = settled_usage(admin, "bob")
    assert after["queries"] - before == 20
    assert (after["running"], after["queued"]) == (0, 0)
    assert peak_seen <= 3
    # Trino's own record: never more than three of them alive at once, and three were.
    spans = []
    for query_id, _ in results:
        stats = trino_query_info(query_id)["queryStats"]
        spans.append((stats["createTime"], stats["endTime"]))
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    alive, peak = 0, 0
    for _, delta in events:
        alive += delta
        peak = max(peak, alive)
    assert peak == 3


def test_a_full_queue_is_refused_with_the_counts_and_a_cancel_frees_the_slot(
    stack, tokens, admin, policy
):
    policy("user", "bob", concurrent_queries=1, queued_queries=0)
    holder = connect(stack, tokens["bob"]).cursor()
    holder.execute(PAGED_QUERY)  # open, first page read, the rest not yet
    error = refusal(stack, tokens["bob"])
    assert error.error_name == "QUOTA_EXCEEDED"
    assert error.message == (
        "QuotaExceeded: 1 of 1 concurrent queries running and no queueing allowed; "
        f"wait for one to finish, or ask {ADMINS} for more."
    )
    assert usage(admin, "bob")["running"] == 1
    holder.cancel()
    settled_usage(admin, "bob")
    assert run(stack, tokens["bob"]) == [[1]]


def test_queued_queries_wait_for_a_slot_instead_of_failing(stack, tokens, admin, policy):
    policy("user", "bob", concurrent_queries=1, queued_queries=5)
    holder = connect(stack, tokens["bob"]).cursor()
    holder.execute(PAGED_QUERY)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(run, stack, tokens["bob"], "SELECT 2")
        deadline = time.monotonic() + 30
        while usage(admin, "bob")["queued"] != 1:
            assert time.monotonic() < deadline, "the second query never showed as queued"
            time.sleep(0.1)
        assert not waiting.done()
        holder.fetchall()  # the first query ends: the queued one takes its slot
        assert waiting.result(timeout=60) == [[2]]


# ------------------------------------------------------------------ daily limits


def test_queries_per_day_refuse_with_usage_reset_time_and_whom_to_ask(stack, tokens, admin, policy):
    used = usage(admin, "bob")["queries"]
    policy("user", "bob", queries_per_day=used + 1)
    assert run(stack, tokens["bob"]) == [[1]]
    error = refusal(stack, tokens["bob"])
    assert error.error_name == "QUOTA_EXCEEDED"
    assert error.error_type == "USER_ERROR"
    assert error.message == (
        f"QuotaExceeded: {used + 1} of {used + 1} queries used today; resets 00:00 UTC; "
        f"ask {ADMINS} for more."
    )
    refusals = admin.ok("GET", "refusals", params={"user": "bob"})["refusals"]
    assert refusals[0]["limit_name"] == "queries_per_day"
    assert refusals[0]["message"] == error.message


def test_cpu_seconds_and_bytes_per_day_count_what_trino_reports(
    stack, tokens, admin, policy, scanned_table
):
    before = settled_usage(admin, "bob")
    run(stack, tokens["bob"], f"SELECT count(*), sum(quantity) FROM {scanned_table}")
    today = settled_usage(admin, "bob", lambda u: u["bytes_scanned"] > before["bytes_scanned"])
    assert today["cpu_ms"] >= before["cpu_ms"] > 0
    policy("user", "bob", cpu_seconds_per_day=today["cpu_ms"] / 1000)
    error = refusal(stack, tokens["bob"])
    assert error.error_name == "QUOTA_EXCEEDED"
    assert "CPU seconds used today; resets 00:00 UTC" in error.message
    policy("user", "bob", bytes_scanned_per_day=today["bytes_scanned"])
    error = refusal(stack, tokens["bob"])
    assert " scanned today; resets 00:00 UTC" in error.message


# ------------------------------------------------------------------ per-query limits


@pytest.mark.parametrize(
    ("limit", "value", "text"),
    [
        ("query_cpu_seconds", 1, "of CPU, over your limit of 1 s per query"),
        ("query_runtime_seconds", 2, "this query ran"),
        ("query_bytes_scanned", "100kB", "over your limit of 100 kB per query"),
    ],
)
def test_a_query_past_a_per_query_limit_is_cancelled_on_trino(
    stack, tokens, admin, policy, trino_query_info, scanned_table, limit, value, text
):
    policy("user", "bob", **{limit: value})
    cursor = connect(stack, tokens["bob"]).cursor()
    with pytest.raises(trino.exceptions.TrinoQueryError) as info:
        cursor.execute(BIG_QUERY.format(table=scanned_table))
        cursor.fetchall()
    error = info.value
    assert error.error_name == "QUOTA_EXCEEDED"
    assert "QuotaExceeded: " in error.message and text in error.message
    assert f"ask {ADMINS} for more" in error.message
    cancel = recorded_cancel(admin, "bob", error.query_id)
    assert (cancel["action"], cancel["limit_name"]) == ("cancelled", limit)
    # Trino confirms: the query was cancelled, not finished.
    trino_side = trino_query_info(cancel["query_id"])
    assert trino_side["state"] == "FAILED"
    assert trino_side["errorCode"]["name"] == "USER_CANCELED"


# ------------------------------------------------------------------ routing and precedence


def test_routing_groups_outside_the_quota_are_refused(stack, tokens, policy):
    policy("user", "bob", routing_groups=["adhoc"])
    error = refusal(stack, tokens["bob"])
    assert error.message == (
        "QuotaExceeded: routing group 'default' is not in your quota (yours: adhoc); "
        f"ask {ADMINS} for access."
    )


def test_the_users_policy_then_the_most_generous_group_then_the_default(stack, tokens, policy):
    me = QuotaApi(stack, tokens["dave"])  # dave: analysts and contractors
    policy("default", None, queries_per_day=50, concurrent_queries=2)
    policy("group", "analysts", queries_per_day=100)
    policy("group", "contractors", queries_per_day=200, concurrent_queries=1, queued_queries=0)
    mine = me.ok("GET", "me")
    assert (mine["limits"]["queries_per_day"], mine["sources"]["queries_per_day"]) == (
        200,
        "group contractors",
    )
    assert (mine["limits"]["concurrent_queries"], mine["sources"]["concurrent_queries"]) == (
        1,
        "group contractors",
    )
    # The gateway enforces the same answer: dave may run one query at a time.
    holder = connect(stack, tokens["dave"]).cursor()
    holder.execute(PAGED_QUERY)
    try:
        assert "1 of 1 concurrent queries running" in refusal(stack, tokens["dave"]).message
    finally:
        holder.cancel()
    policy("user", "dave", queries_per_day=5)
    mine = me.ok("GET", "me")
    assert (mine["limits"]["queries_per_day"], mine["sources"]["queries_per_day"]) == (
        5,
        "user dave",
    )
