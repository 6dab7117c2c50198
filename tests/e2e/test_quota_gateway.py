"""Quotas enforced by the real gateway on real Trino queries: every limit, the race, the
refusal text, cancels that Trino confirms, slots given back, and queued queries shown as
QUEUED (with the reason) until they run, are cancelled, or give up.

Policies are set the way an admin sets them, through the REST API with carol's token,
and removed after each test. Most tests run as bob (an analyst whose quota nothing else
in the suite changes). The tests of the queue's timeouts run a second gateway on the
same Trino with short timeouts (the stack's are minutes long).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import trino
from traitlets.config import Config

from datahub.audit import records
from datahub.gateway.protocol import QUEUE_REASON_KEY
from datahub.quotas import storage
from datahub.testing import BackgroundGateway, resolver_for, user_token

pytestmark = pytest.mark.e2e

ADMINS = "your DataHub admin (datahub-admins)"
# Long enough that a tiny per-query limit stops it (Trino generates the data); it reads
# the memory table first, so the bytes Trino reports grow early (tpch reads none).
BIG_QUERY = "SELECT count(*) FROM tpch.sf100.lineitem l JOIN {table} t ON l.orderkey = t.orderkey"
# Holds a concurrent query slot: 225 million rows (of tpch.tiny, which everyone may read),
# far more than Trino's output buffers hold, so Trino keeps the query RUNNING until its
# client reads on or cancels (a smaller result would be FINISHED on Trino at once, and
# its slot rightly freed).
HOLDING_QUERY = "SELECT a.orderkey, b.custkey FROM tpch.tiny.orders a CROSS JOIN tpch.tiny.orders b"
# 5,000 rows that cost Trino and the client little; the marker finds them on Trino.
RACE_QUERY = "SELECT n FROM UNNEST(sequence(1, 5000)) AS t(n) -- race {marker}"


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


def run(stack, token: str, sql: str = "SELECT 1", **kwargs) -> list:
    cursor = connect(stack, token, **kwargs).cursor()
    cursor.execute(sql)
    return cursor.fetchall()


def refusal(stack, token: str, sql: str = "SELECT 1", **kwargs) -> trino.exceptions.TrinoQueryError:
    with pytest.raises(trino.exceptions.TrinoQueryError) as info:
        run(stack, token, sql, **kwargs)
    return info.value


def submit(gateway_url: str, token: str, sql: str = "SELECT 1", **headers: str) -> dict:
    """POST a statement the way every Trino client does (with *headers*, ``_`` for
    ``-`` in their names); the first page."""
    r = requests.post(
        f"{gateway_url}/v1/statement",
        data=sql,
        headers={
            "Authorization": f"Bearer {token}",
            "X-Trino-Source": "quota-tests",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()


def follow(page: dict, token: str) -> list[dict]:
    """Follow *page*'s nextUri to the end, as a client that polls; the pages after it."""
    pages = []
    while page.get("nextUri"):
        r = requests.get(page["nextUri"], headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page)
    return pages


def audited(stack, token: str, query_id: str) -> dict:
    """The audit record of *query_id* (written just after the gateway answers)."""
    deadline = time.monotonic() + 15
    while True:
        r = requests.get(
            service_url(stack, f"api/queries/{query_id}"),
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        if r.status_code == 200:
            return r.json()
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)


def trino_queries_marked(stack, marker: str) -> list[dict]:
    """Trino's own list of the queries whose SQL holds *marker* (as the service account)."""
    session = stack.trino.http_session()
    session.auth = (stack.trino.service_user, stack.trino.service_password)
    r = session.get(f"{stack.trino.url}/v1/query", timeout=30)
    r.raise_for_status()
    return [q for q in r.json() if marker in q["query"] and "system.runtime" not in q["query"]]


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

    marker = uuid.uuid4().hex
    sql = RACE_QUERY.format(marker=marker)

    def one_query(i: int) -> tuple[str, int]:
        cursor = connect(stack, tokens["bob"]).cursor()
        cursor.execute(sql)
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
    # Trino's own record: twenty ran, all finished, never more than three of them alive
    # at once, and three were. (A queued query's client keeps the gateway's id of its
    # wait, so the queries are found on Trino by their SQL.)
    on_trino = trino_queries_marked(stack, marker)
    assert len(on_trino) == 20
    spans = []
    for query in on_trino:
        stats = trino_query_info(query["queryId"])["queryStats"]
        assert trino_query_info(query["queryId"])["state"] == "FINISHED"
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
    holder.execute(HOLDING_QUERY)  # open, first page read, the rest not yet
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


def test_a_queued_query_shows_queued_with_the_reason_then_runs(stack, tokens, admin, policy):
    policy("user", "bob", concurrent_queries=1, queued_queries=5)
    holder = connect(stack, tokens["bob"]).cursor()
    holder.execute(HOLDING_QUERY)
    seen: list[dict] = []
    waiter = connect(stack, tokens["bob"]).cursor(stats_callback=seen.append)

    def wait_and_run() -> list:
        waiter.execute("SELECT 2")
        return waiter.fetchall()

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(wait_and_run)
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "the second query never showed as queued"
            time.sleep(0.1)
        assert usage(admin, "bob")["queued"] == 1
        assert not waiting.done()
        holder.cancel()  # the first query ends: the queued one takes its slot
        assert waiting.result(timeout=60) == [[2]]
    # What the client saw (the trino client, as the %%sql magic uses it): QUEUED with
    # the reason while it waited, then Trino's own pages.
    assert seen[0]["state"] == "QUEUED" and seen[0]["queued"] is True
    assert seen[0][QUEUE_REASON_KEY] == (
        "Queued: waiting for your only concurrent query slot (1 in use); yours is next."
    )
    assert seen[-1]["state"] == "FINISHED"
    settled_usage(admin, "bob")


def test_the_trino_cli_waits_through_queued_pages_then_prints_the_result(
    stack, tokens, admin, policy, trino_cli
):
    policy("user", "bob", concurrent_queries=1, queued_queries=5)
    holder = connect(stack, tokens["bob"]).cursor()
    holder.execute(HOLDING_QUERY)
    command, env = trino_cli("bob", tokens["bob"], "SELECT 'the cli waited'")
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as cli:
        try:
            deadline = time.monotonic() + 60
            while usage(admin, "bob")["queued"] != 1:
                assert cli.poll() is None, cli.stderr.read()
                assert time.monotonic() < deadline, "the CLI's query never showed as queued"
                time.sleep(0.2)
            holder.cancel()  # the first query ends: the CLI's takes its slot
            out, err = cli.communicate(timeout=120)
        finally:
            if cli.poll() is None:
                cli.kill()
    assert cli.returncode == 0, err
    assert out.decode().strip() == '"the cli waited"'
    settled_usage(admin, "bob")


def test_cancelling_a_queued_query_frees_its_place_and_is_audited(stack, tokens, admin, policy):
    policy("user", "bob", concurrent_queries=1, queued_queries=1)
    gateway = stack.settings["gateway_url"]
    holder = connect(stack, tokens["bob"]).cursor()
    holder.execute(HOLDING_QUERY)
    try:
        page = submit(gateway, tokens["bob"], "SELECT 'queued then cancelled'")
        assert page["stats"]["state"] == "QUEUED"
        assert page["nextUri"].startswith(f"{gateway}/v1/dh-queued/{page['id']}/")
        # The queue (one place) is full...
        assert "and 1 of 1 queued" in refusal(stack, tokens["bob"]).message
        # ...until the client cancels the queued query, as every Trino client does.
        r = requests.delete(
            page["nextUri"], headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=30
        )
        assert r.status_code == 204
        assert usage(admin, "bob")["queued"] == 0
        record = audited(stack, tokens["bob"], page["id"])
        assert (record["state"], record["sql"]) == ("CANCELED", "SELECT 'queued then cancelled'")
        # Its place is free: the next query queues rather than being refused.
        again = submit(gateway, tokens["bob"])
        assert again["stats"]["state"] == "QUEUED"
        requests.delete(
            again["nextUri"], headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=30
        )
        # The wait URI is bob's alone.
        r = requests.get(
            again["nextUri"], headers={"Authorization": f"Bearer {tokens['dave']}"}, timeout=30
        )
        assert r.status_code == 403
    finally:
        holder.cancel()
    settled_usage(admin, "bob")


@pytest.fixture
def quick_queue(stack, tmp_path):
    """A second gateway on the stack's Trino whose queue gives up quickly: a queued query
    loses its place after 2 s without a poll and is refused after 3 s of waiting."""
    config = Config()
    config.QuotaManager.queue_lease_seconds = 2
    config.QuotaManager.max_queue_wait = 3
    config.QuotaManager.poll_interval = 0.5
    gateway = BackgroundGateway(
        config=config,
        clusters=[{**stack.settings["clusters"][0], "name": "quick"}],
        store_url=f"sqlite:///{tmp_path / 'quick.sqlite'}",
        secret="ab" * 16,
        identity_resolver_class=resolver_for({"bob-token": user_token("bob", "analysts")}),
        reconcile_interval=0,
    )
    limits = {"concurrent_queries": 1, "queued_queries": 1}
    storage.set_policy(
        gateway.service.store, "user", "bob", limits, "tests", dt.datetime.now(dt.UTC)
    )
    deadline = time.monotonic() + 30
    while not all(s.healthy for s in gateway.service.monitor.statuses.values()):
        assert time.monotonic() < deadline, "the second gateway never saw Trino healthy"
        time.sleep(0.1)
    yield gateway
    gateway.close()


def test_a_queued_query_whose_client_goes_away_loses_its_place(stack, quick_queue):
    holder = connect_to(quick_queue).cursor()
    holder.execute(HOLDING_QUERY)
    try:
        abandoned = submit(quick_queue.url, "bob-token", "SELECT 'abandoned'")
        assert abandoned["stats"]["state"] == "QUEUED"
        # The queue is full while the abandoned query holds its place...
        assert "and 1 of 1 queued" in queue_refusal(quick_queue)
        # ...and free once its client has not asked for it for the queue lease (2 s).
        time.sleep(2.5)
        newcomer = submit(quick_queue.url, "bob-token")
        assert newcomer["stats"]["state"] == "QUEUED"
        # The client that went away hears why when it comes back.
        r = requests.get(
            abandoned["nextUri"], headers={"Authorization": "Bearer bob-token"}, timeout=30
        )
        error = r.json()["error"]
        assert error["errorName"] == "QUEUED_QUERY_EXPIRED"
        assert error["message"] == (
            "This query lost its place in your queue: its client did not ask for it for "
            "2 s; run it again."
        )
        requests.delete(
            newcomer["nextUri"], headers={"Authorization": "Bearer bob-token"}, timeout=30
        )
    finally:
        holder.cancel()


def test_a_queued_query_is_refused_after_max_queue_wait_with_the_message(stack, quick_queue):
    holder = connect_to(quick_queue).cursor()
    holder.execute(HOLDING_QUERY)
    try:
        cursor = connect_to(quick_queue).cursor()
        with pytest.raises(trino.exceptions.TrinoQueryError) as info:
            cursor.execute("SELECT 'too patient'")
    finally:
        holder.cancel()
    error = info.value
    assert error.error_name == "QUOTA_EXCEEDED"
    assert error.message.startswith(
        "QuotaExceeded: 1 of 1 concurrent queries still running after this one waited "
    )
    assert error.message.endswith(
        " s in your queue; run it again when one finishes, or ask your DataHub admin for more."
    )
    deadline = time.monotonic() + 15
    while True:
        record = quick_queue.call(
            quick_queue.service.audit.run(lambda db: records.get_query(db, error.query_id))
        )
        if record is not None:
            break
        assert time.monotonic() < deadline, "the refusal was never audited"
        time.sleep(0.2)
    assert (record["state"], record["sql"]) == ("REJECTED", "SELECT 'too patient'")


def connect_to(gateway: BackgroundGateway) -> trino.dbapi.Connection:
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=gateway.port,
        http_scheme="http",
        auth=trino.auth.JWTAuthentication("bob-token"),
        allow_insecure_auth=True,
    )


def queue_refusal(gateway: BackgroundGateway) -> str:
    with pytest.raises(trino.exceptions.TrinoQueryError) as info:
        connect_to(gateway).cursor().execute("SELECT 1")
    return info.value.message


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
    ("limit", "value", "error_name", "text", "quota"),
    [
        (
            "query_cpu_seconds",
            1,
            "EXCEEDED_CPU_LIMIT",
            "of CPU, over your limit of 1 s per query",
            "1 s of CPU",
        ),
        ("query_runtime_seconds", 2, "EXCEEDED_TIME_LIMIT", "this query ran", "2 s of run time"),
        (
            "query_bytes_scanned",
            "100kB",
            "EXCEEDED_SCAN_LIMIT",
            "over your limit of 100 kB",
            "100 kB scanned",
        ),
    ],
)
def test_a_query_past_a_per_query_limit_is_stopped_by_trino_and_logged(
    stack,
    tokens,
    admin,
    policy,
    trino_query_info,
    scanned_table,
    limit,
    value,
    error_name,
    text,
    quota,
):
    policy("user", "bob", **{limit: value})
    cursor = connect(stack, tokens["bob"]).cursor()
    with pytest.raises(trino.exceptions.TrinoQueryError) as info:
        cursor.execute(BIG_QUERY.format(table=scanned_table))
        cursor.fetchall()
    error = info.value
    # Trino enforced the limit (set as its session limit); the client reads it as its
    # quota's limit, with whom to ask, under Trino's error name.
    assert error.error_name == error_name
    assert error.message.startswith(f"QuotaExceeded: this query went over your limit of {quota}")
    assert error.message.endswith(f" per query, so the cluster stopped it; ask {ADMINS} for more.")
    trino_side = trino_query_info(error.query_id)
    assert trino_side["state"] == "FAILED"
    assert trino_side["errorCode"]["name"] == error_name
    # The refusal log shows it like the gateway's own cancels, in the quota's words.
    cancel = recorded_cancel(admin, "bob", error.query_id)
    assert (cancel["action"], cancel["limit_name"]) == ("cancelled", limit)
    assert text in cancel["message"] and f"ask {ADMINS} for more" in cancel["message"]


def test_a_query_past_a_per_query_limit_the_client_lowered_itself_gets_trinos_message(
    stack, tokens, policy, trino_query_info, scanned_table
):
    policy("user", "bob", query_cpu_seconds=600)
    connection = connect(stack, tokens["bob"], session_properties={"query_max_cpu_time": "1s"})
    cursor = connection.cursor()
    with pytest.raises(trino.exceptions.TrinoQueryError) as info:
        cursor.execute(BIG_QUERY.format(table=scanned_table))
        cursor.fetchall()
    error = info.value
    assert error.error_name == "EXCEEDED_CPU_LIMIT"
    trino_side = trino_query_info(error.query_id)
    assert trino_side["session"]["systemProperties"]["query_max_cpu_time"] == "1000ms"
    assert error.message == trino_side["failureInfo"]["message"]
    assert "QuotaExceeded" not in error.message


# ------------------------------------------------- limits enforced while nobody polls

# Minutes of CPU on this machine (Trino generates the rows), and one row of output: it
# runs on without anyone reading it.
CPU_HEAVY_QUERY = "SELECT count(*), sum(extendedprice * discount) FROM tpch.sf100.lineitem -- {}"


@pytest.fixture
def unpolled(stack, tokens):
    """``unpolled(**headers) -> first page``: bob submits CPU_HEAVY_QUERY by raw HTTP and
    never follows its nextUri. Whatever still runs at the end is killed on Trino."""
    session = stack.trino.http_session()
    session.auth = (stack.trino.service_user, stack.trino.service_password)
    submitted: list[str] = []

    def start(**headers: str) -> dict:
        page = submit(
            stack.settings["gateway_url"],
            tokens["bob"],
            CPU_HEAVY_QUERY.format(uuid.uuid4().hex),
            **headers,
        )
        assert "error" not in page, page
        submitted.append(page["id"])
        return page

    yield start
    for query_id in submitted:
        session.delete(f"{stack.trino.url}/v1/query/{query_id}", timeout=30)


def test_a_query_over_its_cpu_limit_that_nobody_polls_is_killed_by_trino_with_no_rows(
    stack, tokens, policy, trino_query_info, unpolled
):
    policy("user", "bob", query_cpu_seconds=2)
    first = unpolled()
    # Nobody polls, yet Trino stops it at 2 s of CPU.
    trino_side = trino_query_info(first["id"], timeout=120)
    assert trino_side["state"] == "FAILED"
    assert trino_side["errorCode"]["name"] == "EXCEEDED_CPU_LIMIT"
    assert trino_side["session"]["systemProperties"]["query_max_cpu_time"] == "2000ms"
    # The client that comes back gets the error, and never a row.
    pages = [first, *follow(first, tokens["bob"])]
    assert not [page for page in pages if page.get("data")]
    assert pages[-1]["error"]["errorName"] == "EXCEEDED_CPU_LIMIT"


def test_a_client_session_value_cannot_raise_its_cpu_limit_but_may_lower_it(
    stack, tokens, policy, trino_query_info, unpolled
):
    policy("user", "bob", query_cpu_seconds=2, query_runtime_seconds=600)
    first = unpolled(
        X_Trino_Session="query_max_cpu_time=1h,query_max_run_time=100d,query_max_execution_time=1d"
    )
    trino_side = trino_query_info(first["id"], timeout=120)
    assert trino_side["state"] == "FAILED"
    assert trino_side["errorCode"]["name"] == "EXCEEDED_CPU_LIMIT"
    properties = trino_side["session"]["systemProperties"]
    assert properties["query_max_cpu_time"] == "2000ms"
    assert properties["query_max_run_time"] == properties["query_max_execution_time"] == "600000ms"
    # Lower is allowed, and other session properties pass as sent.
    page = submit(
        stack.settings["gateway_url"],
        tokens["bob"],
        "SELECT 1",
        X_Trino_Session="query_max_cpu_time=1500ms, join_distribution_type=BROADCAST",
    )
    follow(page, tokens["bob"])
    properties = trino_query_info(page["id"])["session"]["systemProperties"]
    assert properties["query_max_cpu_time"] == "1500ms"
    assert properties["join_distribution_type"] == "BROADCAST"


def test_a_running_querys_cpu_counts_in_todays_usage_before_it_ends(
    stack, tokens, admin, policy, unpolled
):
    before = settled_usage(admin, "bob")["cpu_ms"]
    first = unpolled()
    deadline = time.monotonic() + 60
    while usage(admin, "bob")["cpu_ms"] <= before:
        assert time.monotonic() < deadline, "the running query's CPU was never counted"
        time.sleep(0.5)
    # Counted while Trino still runs it.
    session = stack.trino.http_session()
    session.auth = (stack.trino.service_user, stack.trino.service_password)
    state = session.get(f"{stack.trino.url}/v1/query/{first['id']}", timeout=30).json()["state"]
    assert state == "RUNNING"


def test_a_query_that_takes_its_user_past_a_daily_cpu_limit_is_cancelled_though_nobody_polls(
    stack, tokens, admin, policy, trino_query_info, unpolled
):
    used = settled_usage(admin, "bob")["cpu_ms"] / 1000
    policy("user", "bob", cpu_seconds_per_day=used + 3)
    first = unpolled()
    trino_side = trino_query_info(first["id"], timeout=120)
    assert trino_side["state"] == "FAILED"
    assert trino_side["errorCode"]["name"] == "USER_CANCELED"
    pages = [first, *follow(first, tokens["bob"])]
    assert not [page for page in pages if page.get("data")]
    error = pages[-1]["error"]
    assert error["errorName"] == "QUOTA_EXCEEDED"
    assert "CPU seconds used today, so this query was cancelled; resets " in error["message"]
    cancel = recorded_cancel(admin, "bob", first["id"])
    assert (cancel["action"], cancel["limit_name"]) == ("cancelled", "cpu_seconds_per_day")


# ------------------------------------------------------------------ slots of ended queries


def test_a_client_that_stops_after_the_first_data_page_does_not_keep_its_slot(
    stack, tokens, admin, policy, trino_query_info
):
    # Like the trino client's EXECUTE IMMEDIATE probe: read the page with the data, and
    # never ask for the (empty) rest. The gateway carries a short query's rows to its
    # last page (``carry.py``) when that page comes soon: this query's row comes seconds
    # before its end (the scan of the other branch finds nothing), so it cannot wait.
    policy("user", "bob", concurrent_queries=1, queued_queries=5)
    gateway = stack.settings["gateway_url"]
    sql = "SELECT 1 UNION ALL SELECT 0 FROM tpch.sf1.orders WHERE comment = 'never said'"
    page = submit(
        gateway, tokens["bob"], f"EXECUTE IMMEDIATE '{sql.replace(chr(39), chr(39) * 2)}'"
    )
    while not page.get("data"):
        page = requests.get(
            page["nextUri"], headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=60
        ).json()
    assert page["data"] == [[1]] and page.get("nextUri"), "the page with the data was the last"
    # Once Trino has ended it (unasked), the next query goes to Trino at once: the probe
    # holds no slot.
    assert trino_query_info(page["id"], timeout=120)["state"] == "FINISHED"
    second = submit(gateway, tokens["bob"], "SELECT 2")
    assert QUEUE_REASON_KEY not in second["stats"], second["stats"]
    pages = [second, *follow(second, tokens["bob"])]
    assert [row for p in pages for row in p.get("data") or []] == [[2]]


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
    holder.execute(HOLDING_QUERY)
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
