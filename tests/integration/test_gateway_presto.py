"""A real PrestoDB 0.296 behind the gateway, reached with Trino's clients: the `trino`
Python client and ``%%sql`` as alice, through an in-process gateway whose cluster
``presto`` has ``engine = "presto"``. Identity, access rules, session properties,
prepared statements, errors, cancel, every type of the ``%%sql`` conversion, and the
audit: what a Trino cluster gives, a Presto cluster gives too (the differences are the
README's table "Trino and Presto clusters")."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output
from traitlets.config import Config
from trino.exceptions import TrinoQueryError, TrinoUserError
from trino.transaction import IsolationLevel

from datahub.stack.tls import write_self_signed_certificate
from datahub.stack.trino import ensure_trino_cli, find_java
from datahub.testing import (
    BackgroundGateway,
    assert_value_and_null,
    closed_record,
    free_port,
    gateway_connection,
    resolver_for,
    user_token,
    wait_for,
)

SECRET = b"presto-gateway-test-secret-0123456789"
TOKENS = {
    "alice-token": user_token("alice", "analysts"),
    "bob-token": user_token("bob", "analysts"),
}
#: A query that runs for minutes and sends nothing until it ends.
LONG = "SELECT count(*) FROM tpch.sf100.lineitem WHERE comment LIKE '%fox%'"


def start_gateway(presto, state, config: Config | None = None, **traits) -> BackgroundGateway:
    """A gateway in front of the Presto cluster (routing group ``lake``), once healthy."""
    running = BackgroundGateway(
        **traits,
        clusters=[presto.cluster_entry(routing_group="lake")],
        default_routing_group="lake",
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        health_check_interval=0.5,
        reconcile_interval=0,
        config=config or Config(),
    )
    wait_for(lambda: running.service.monitor.statuses["presto"].healthy)
    return running


@pytest.fixture(scope="module")
def gateway(presto, tmp_path_factory):
    running = start_gateway(presto, tmp_path_factory.mktemp("presto-gateway"))
    yield running
    running.close()


@pytest.fixture
def limited_gateway(presto, tmp_path):
    """``limited_gateway(limits)``: a gateway whose default quota policy is *limits*."""
    running: list[BackgroundGateway] = []

    def start(limits: dict[str, Any]) -> BackgroundGateway:
        config = Config()
        config.QuotaManager.default_limits = limits
        running.append(start_gateway(presto, tmp_path, config))
        return running[-1]

    yield start
    for each in running:
        each.close()


def connect(gateway: BackgroundGateway, token: str = "alice-token", **kwargs: Any):
    return gateway_connection(
        gateway, TOKENS[token]["name"], token, catalog="tpch", schema="tiny", **kwargs
    )


def presto_state(presto, query_id: str) -> str | None:
    r = presto.http_session().get(
        f"{presto.url}/v1/query/{query_id}",
        auth=(presto.service_user, presto.service_password),
        timeout=10,
    )
    return r.json().get("state") if r.status_code == 200 else None


# ------------------------------------------------------------------ the trino client


def test_alice_queries_presto_as_herself_and_the_audit_has_it(gateway):
    cursor = connect(gateway).cursor()
    cursor.execute("SELECT current_user AS me, name FROM nation WHERE nationkey = 7")
    assert cursor.fetchall() == [["alice", "GERMANY"]]
    assert [d[0] for d in cursor.description] == ["me", "name"]
    rec = closed_record(gateway, cursor.query_id)
    assert (rec["user"], rec["cluster"], rec["state"]) == ("alice", "presto", "FINISHED")
    assert rec["routing_group"] == "lake"
    # Final statistics from Presto's query info, read as Trino's.
    assert rec["output_rows"] == 1 and rec["processed_rows"] == 25


def test_bob_is_denied_by_prestos_rules_in_one_sentence(gateway):
    cursor = connect(gateway, "bob-token").cursor()
    with pytest.raises(TrinoUserError) as e:
        cursor.execute("SELECT count(*) FROM nation")
        cursor.fetchall()
    assert e.value.error_name == "PERMISSION_DENIED"
    assert e.value.message == "Access Denied: Cannot access catalog tpch"
    assert not e.value.error_exception.startswith("io.trino")
    assert "at com.facebook" not in str(e.value)  # no stack frames
    rec = closed_record(gateway, e.value.query_id)
    assert (rec["user"], rec["state"], rec["error_name"]) == ("bob", "FAILED", "PERMISSION_DENIED")


def test_a_failing_query_gives_prestos_error_with_its_location(gateway):
    cursor = connect(gateway).cursor()
    with pytest.raises(TrinoUserError) as e:
        cursor.execute("SELECT nope FROM nation")
        cursor.fetchall()
    # Presto names every analysis error SYNTAX_ERROR (Trino: COLUMN_NOT_FOUND).
    assert e.value.error_name == "SYNTAX_ERROR"
    assert e.value.message == "line 1:8: Column 'nope' cannot be resolved"
    assert e.value.error_location == (1, 8)
    assert closed_record(gateway, e.value.query_id)["error_name"] == "SYNTAX_ERROR"


def test_session_properties_set_by_sql_reach_the_next_query(gateway):
    conn = connect(gateway)
    cursor = conn.cursor()
    cursor.execute("SET SESSION query_max_run_time = '7h'")
    cursor.fetchall()
    assert conn._client_session.properties == {"query_max_run_time": "7h"}
    cursor = conn.cursor()
    cursor.execute("SHOW SESSION LIKE 'query_max_run_time'")
    (row,) = cursor.fetchall()
    assert row[:2] == ["query_max_run_time", "7h"]
    cursor.execute("RESET SESSION query_max_run_time")
    cursor.fetchall()
    assert conn._client_session.properties == {}


def test_use_changes_the_clients_schema(gateway):
    conn = connect(gateway)
    cursor = conn.cursor()
    cursor.execute("USE tpch.sf1")
    cursor.fetchall()
    assert (conn._client_session.catalog, conn._client_session.schema) == ("tpch", "sf1")
    cursor = conn.cursor()
    cursor.execute("SELECT count(*) FROM region")
    assert cursor.fetchall() == [[5]]


@pytest.mark.parametrize("legacy", [False, True], ids=["execute-immediate", "prepare"])
def test_prepared_statements_with_parameters(gateway, legacy):
    """The client's parameters: EXECUTE IMMEDIATE (which the gateway runs on Presto as a
    prepared statement), or PREPARE, EXECUTE and DEALLOCATE (the legacy way)."""
    cursor = connect(gateway, legacy_prepared_statements=legacy).cursor()
    cursor.execute("SELECT name FROM nation WHERE nationkey = ? AND regionkey = ?", (7, 3))
    assert cursor.fetchall() == [["GERMANY"]]
    rec = closed_record(gateway, cursor.query_id)
    # The audit records the statement that ran (PREPARE: as Presto formats it back).
    expected = "SELECT name FROM nation WHERE nationkey = ? AND regionkey = ?"
    if legacy:
        expected = "SELECT name\nFROM\n  nation\nWHERE ((nationkey = ?) AND (regionkey = ?))\n"
    assert rec["sql"] == expected


def test_a_transaction_spans_statements(gateway):
    conn = connect(gateway, isolation_level=IsolationLevel.REPEATABLE_READ)
    cursor = conn.cursor()  # starts the transaction (START TRANSACTION, its id back)
    transaction = conn.transaction.id
    assert transaction and transaction != "NONE"
    cursor.execute("SELECT count(*) FROM region")
    assert cursor.fetchall() == [[5]]
    conn.commit()
    assert conn.transaction is None


def test_sql_cell_parameters_run_on_presto(gateway):
    shell = sql_shell(gateway)
    shell.user_ns["key"] = 7
    with capture_output() as out:
        result = shell.run_cell(
            "%%sql --chart none --cluster presto\n"
            "SELECT name FROM tpch.tiny.nation WHERE nationkey = {{ key }}"
        )
    assert result.error_in_exec is None, out.stdout
    assert result.result["name"].tolist() == ["GERMANY"]


def test_a_sql_path_is_refused_in_one_sentence(gateway):
    r = requests.post(
        f"{gateway.url}/v1/statement",
        data="SELECT 1",
        headers={"Authorization": "Bearer alice-token", "X-Trino-Path": "tpch.tiny"},
        timeout=30,
    )
    error = r.json()["error"]
    assert error["message"].startswith("Presto clusters have no SQL path;")


def test_a_cancelled_query_stops_on_presto_and_is_audited_cancelled(gateway, presto):
    headers = {"Authorization": "Bearer alice-token", "X-Trino-Source": "tests"}
    page = requests.post(f"{gateway.url}/v1/statement", data=LONG, headers=headers, timeout=30)
    page = page.json()
    query_id = page["id"]
    wait_for(lambda: presto_state(presto, query_id) == "RUNNING")
    r = requests.delete(page["nextUri"], headers=headers, timeout=30)
    assert r.status_code == 204
    assert wait_for(lambda: presto_state(presto, query_id) == "FAILED")
    assert closed_record(gateway, query_id)["state"] == "CANCELED"


def test_the_health_check_sees_prestos_load(gateway, presto):
    status = gateway.service.monitor.statuses["presto"]
    assert status.healthy and status.last_error is None
    headers = {"Authorization": "Bearer alice-token"}
    page = requests.post(f"{gateway.url}/v1/statement", data=LONG, headers=headers, timeout=30)
    page = page.json()
    try:
        wait_for(lambda: status.running >= 1)  # counted from Presto's own query list
    finally:
        requests.delete(page["nextUri"], headers=headers, timeout=30)
    wait_for(lambda: status.running == 0)


def test_the_trino_cli_runs_on_presto_through_the_gateway(presto, tmp_path):
    """The Trino CLI jar over the gateway's HTTPS listener, alice's token as password."""
    pem, ca = tmp_path / "gateway.pem", tmp_path / "ca.pem"
    write_self_signed_certificate(pem, ca, "DataHub gateway")
    port = free_port()
    gateway = start_gateway(presto, tmp_path, https_port=port, certfile=str(pem), keyfile=str(pem))
    try:
        sql = (
            "SELECT current_user, name, TIMESTAMP '2024-01-02 03:04:05.123', ARRAY[1, 2], "
            "CAST(ROW(1, 'x') AS ROW(a integer, b varchar)) FROM tpch.tiny.region "
            "WHERE regionkey = 0"
        )
        argv = [
            str(find_java() / "bin" / "java"), "-jar", str(ensure_trino_cli()),
            "--server", f"https://127.0.0.1:{port}",
            "--user", "alice", "--password",
            "--truststore-path", str(ca),
            "--output-format", "CSV",
            "--execute", sql,
        ]  # fmt: skip
        env = {**os.environ, "TRINO_PASSWORD": "alice-token"}
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            '"alice","AFRICA","2024-01-02 03:04:05.123","[1, 2]","{a=1, b=x}"'
        )
    finally:
        gateway.close()


@pytest.fixture(scope="module")
def carrying(presto, tmp_path_factory):
    """A gateway that holds a short query's rows as long as Presto takes to end it, with
    ``sent``: its requests to Presto."""
    running = start_gateway(
        presto,
        tmp_path_factory.mktemp("presto-carry"),
        page_collapse_seconds=30,
        page_carry_seconds=30,
    )
    sent: list[str] = []
    send = running.service.upstream.send

    async def recorded(cluster, method, path, *args, **kwargs):
        sent.append(f"{method} {path}")
        return await send(cluster, method, path, *args, **kwargs)

    running.service.upstream.send = recorded  # type: ignore[method-assign]
    running.sent = sent  # type: ignore[attr-defined]
    yield running
    running.close()


def test_rows_are_carried_to_prestos_last_page_and_none_is_lost(carrying):
    session = requests.Session()
    seen: list[str] = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request.method))
    cursor = connect(carrying, http_session=session).cursor()
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [[1]]
    # Presto's row came on its last page: one request.
    assert seen == ["POST"], seen
    # More rows than a page held: the rows go on, and the client asks again for the page
    # the gateway fetched last, which Presto gives again.
    seen.clear()
    cursor = connect(carrying, http_session=session).cursor()
    cursor.execute("SELECT orderkey FROM orders")
    rows = cursor.fetchall()
    assert len(rows) == 15000 and len({row[0] for row in rows}) == 15000
    rec = closed_record(carrying, cursor.query_id)
    assert (rec["state"], rec["output_rows"]) == ("FINISHED", 15000)
    mine = [p.split("?")[0] for p in carrying.sent if cursor.query_id in p]
    assert len(mine) > len(set(mine)), mine


# ------------------------------------------------------------------------ quotas


def test_a_busy_quota_refuses_a_second_query_in_its_sentence(limited_gateway, presto):
    gateway = limited_gateway({"concurrent_queries": 1, "queued_queries": 0})
    headers = {"Authorization": "Bearer alice-token"}
    held = requests.post(f"{gateway.url}/v1/statement", data=LONG, headers=headers, timeout=30)
    held = held.json()
    try:
        with pytest.raises(TrinoQueryError) as e:
            connect(gateway).cursor().execute("SELECT 1")
        assert "1 of 1 concurrent queries running and no queueing allowed" in e.value.message
    finally:
        requests.delete(held["nextUri"], headers=headers, timeout=30)
    assert closed_record(gateway, held["id"])["state"] == "CANCELED"
    cursor = connect(gateway).cursor()  # the slot is free again
    cursor.execute("SELECT 1")
    assert cursor.fetchall() == [[1]]


def test_presto_stops_a_query_at_the_quotas_cpu_limit_in_the_quotas_words(limited_gateway):
    gateway = limited_gateway({"query_cpu_seconds": 1})
    cursor = connect(gateway).cursor()
    with pytest.raises(TrinoQueryError) as e:
        cursor.execute(LONG)
        cursor.fetchall()
    assert e.value.error_name == "EXCEEDED_CPU_LIMIT"
    assert "this query went over your limit of 1 s of CPU per query" in e.value.message
    rec = closed_record(gateway, e.value.query_id)
    assert (rec["state"], rec["error_name"]) == ("FAILED", "EXCEEDED_CPU_LIMIT")


# ------------------------------------------------------------------------- types

NA, NAT = pd.NA, pd.NaT

#: (column, Presto literal, Presto type for the NULL, Trino type it reads as, dtype,
#: value, NULL): every type of tests/integration/test_sql_types.py that Presto has
#: (no timestamp(9): Presto's date-times are milliseconds).
TYPES = [
    ("c_tinyint", "TINYINT '-128'", "tinyint", "tinyint", "Int8", -128, NA),
    ("c_smallint", "SMALLINT '32767'", "smallint", "smallint", "Int16", 32767, NA),
    ("c_integer", "2147483647", "integer", "integer", "Int32", 2147483647, NA),
    ("c_bigint", "BIGINT '-9223372036854775808'", "bigint", "bigint", "Int64", -(2**63), NA),
    ("c_real", "REAL '1.5'", "real", "real", "float32", 1.5, np.nan),
    ("c_double", "DOUBLE '2.5e300'", "double", "double", "float64", 2.5e300, np.nan),
    ("c_nan", "nan()", "double", "double", "float64", np.nan, np.nan),
    ("c_inf", "-infinity()", "double", "double", "float64", -np.inf, np.nan),
    (
        "c_decimal",
        "DECIMAL '12345678901234567890123456789.123456789'",
        "decimal(38,9)",
        "decimal(38,9)",
        "object",
        Decimal("12345678901234567890123456789.123456789"),
        None,
    ),
    ("c_varchar", "CAST('ünï ✓' AS varchar)", "varchar", "varchar", "string", "ünï ✓", NA),
    ("c_char", "CAST('ab' AS char(4))", "char(4)", "char(4)", "string", "ab  ", NA),
    ("c_boolean", "true", "boolean", "boolean", "boolean", True, NA),
    (
        "c_date",
        "DATE '2024-02-29'",
        "date",
        "date",
        "datetime64[s]",
        pd.Timestamp("2024-02-29"),
        NAT,
    ),
    (
        "c_old_date",
        "DATE '0001-01-01'",
        "date",
        "date",
        "datetime64[s]",
        pd.Timestamp("0001-01-01"),
        NAT,
    ),
    ("c_time", "TIME '01:02:03.456'", "time", "time(3)", "object", dt.time(1, 2, 3, 456000), None),
    (
        "c_time_tz",
        "TIME '01:02:03.456 +05:30'",
        "time with time zone",
        "time(3) with time zone",
        "object",
        dt.time(1, 2, 3, 456000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        None,
    ),
    (
        "c_timestamp",
        "TIMESTAMP '2024-01-02 03:04:05.123'",
        "timestamp",
        "timestamp(3)",
        "datetime64[us]",
        pd.Timestamp("2024-01-02 03:04:05.123"),
        NAT,
    ),
    (
        "c_timestamp_tz",
        "TIMESTAMP '2024-06-01 12:00:00.000 Europe/Berlin'",
        "timestamp with time zone",
        "timestamp(3) with time zone",
        "datetime64[us, Europe/Berlin]",
        pd.Timestamp("2024-06-01 12:00", tz="Europe/Berlin"),
        NAT,
    ),
    (
        "c_interval_ds",
        "INTERVAL '2 03:04:05.678' DAY TO SECOND",
        "interval day to second",
        "interval day to second",
        "timedelta64[ns]",
        pd.Timedelta(days=2, hours=3, minutes=4, seconds=5.678),
        NAT,
    ),
    (
        "c_interval_ym",
        "INTERVAL '1-2' YEAR TO MONTH",
        "interval year to month",
        "interval year to month",
        "string",
        "1-2",
        NA,
    ),
    ("c_json", """JSON '{"a":[1,2]}'""", "json", "json", "string", '{"a":[1,2]}', NA),
    (
        "c_uuid",
        "CAST('12151fd2-7586-11e9-8f9e-2a86e4085a59' AS uuid)",
        "uuid",
        "uuid",
        "string",
        "12151fd2-7586-11e9-8f9e-2a86e4085a59",
        NA,
    ),
    ("c_ipaddress", "IPADDRESS '10.0.0.1'", "ipaddress", "ipaddress", "string", "10.0.0.1", NA),
    ("c_varbinary", "X'00ff'", "varbinary", "varbinary", "object", b"\x00\xff", None),
    (
        "c_array",
        "ARRAY[1, NULL, 3]",
        "array(integer)",
        "array(integer)",
        "object",
        [1, None, 3],
        None,
    ),
    (
        "c_map",
        "MAP(ARRAY[CAST('a' AS varchar)], ARRAY[DECIMAL '1.5'])",
        "map(varchar, decimal(2,1))",
        "map(varchar, decimal(2,1))",
        "object",
        {"a": Decimal("1.5")},
        None,
    ),
    (
        "c_row",
        "CAST(ROW(1, 'x') AS ROW(a integer, b varchar))",
        "row(a integer, b varchar)",
        "row(a integer, b varchar)",
        "object",
        {"a": 1, "b": "x"},
        None,
    ),
    (
        "c_nested",
        "ARRAY[CAST(ROW(1, ARRAY[DATE '2024-01-01', NULL], MAP(ARRAY[CAST('t' AS varchar)], "
        "ARRAY[TIMESTAMP '2024-01-01 00:00:00.000'])) "
        "AS ROW(k integer, ds array(date), m map(varchar, timestamp)))]",
        "array(row(k integer, ds array(date), m map(varchar, timestamp)))",
        "array(row(k integer, ds array(date), m map(varchar, timestamp(3))))",
        "object",
        [{"k": 1, "ds": [dt.date(2024, 1, 1), None], "m": {"t": pd.Timestamp("2024-01-01")}}],
        None,
    ),
]


def sql_shell(gateway: BackgroundGateway):
    """The process's IPython shell with the %%sql extension, as alice through *gateway*."""
    globalipapp.start_ipython()  # once per process; later calls return None
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    for name, value in (("gateway_url", gateway.url), ("token", "alice-token"), ("user", "alice")):
        shell.run_line_magic("config", f"SqlMagic.{name} = {value!r}")
    return shell


@pytest.fixture(scope="module")
def frame_and_types(gateway):
    """One %%sql cell, as alice through the gateway: a row of values, a row of NULLs."""
    shell = sql_shell(gateway)
    values = ", ".join(literal for _, literal, *_ in TYPES)
    nulls = ", ".join(f"CAST(NULL AS {presto_type})" for _, _, presto_type, *_ in TYPES)
    names = ", ".join(name for name, *_ in TYPES)
    sql = f"SELECT * FROM (VALUES ({values}), ({nulls})) AS t({names})"
    with capture_output() as out:
        result = shell.run_cell(f"%%sql --chart none --cluster presto\n{sql}")
    assert result.error_in_exec is None, out.stdout
    cursor = connect(gateway).cursor()
    cursor.execute(sql)
    cursor.fetchall()
    return result.result, {d[0]: d[1] for d in cursor.description}


@pytest.mark.parametrize(
    ("name", "trino_type", "dtype", "value", "null"),
    [
        (name, trino_type, dtype, value, null)
        for name, _, _, trino_type, dtype, value, null in TYPES
    ],
    ids=[name.removeprefix("c_") for name, *_ in TYPES],
)
def test_a_presto_type_has_trinos_name_dtype_value_and_null(
    frame_and_types, name, trino_type, dtype, value, null
):
    frame, types = frame_and_types
    assert types[name] == trino_type
    assert_value_and_null(frame[name], dtype, value, null)


# ------------------------------------------------------------------------ errors


def raw_pages(url: str, sql: str, headers: dict[str, str], session=None) -> list[str]:
    """Every page of *sql* at *url* (a gateway's or PrestoDB's ``/v1/statement``), as
    sent, to the last."""
    session = session or requests.Session()
    r = session.post(url, data=sql, headers=headers, timeout=60)
    bodies = [r.text]
    while r.status_code == 200 and r.json().get("nextUri"):
        r = session.get(r.json()["nextUri"], headers=headers, timeout=60)
        bodies.append(r.text)
    return bodies


def failure_stacks(failure: Any) -> list[list[str]]:
    """The ``stack`` of a ``failureInfo`` and of every cause and suppressed one in it."""
    if not isinstance(failure, dict):
        return []
    found = [failure.get("stack", [])]
    found += failure_stacks(failure.get("cause"))
    for suppressed in failure.get("suppressed") or []:
        found += failure_stacks(suppressed)
    return found


#: (user, SQL, PrestoDB's error name): a syntax error, a function failing on a worker
#: while the query runs, and PrestoDB's internal error (0.296 cannot list no catalogs).
FAILING = [
    ("alice", "SELEC 1", "SYNTAX_ERROR"),
    ("alice", "SELECT 1 / (nationkey - nationkey) FROM tpch.tiny.nation", "DIVISION_BY_ZERO"),
    ("bob", "SHOW CATALOGS", "GENERIC_INTERNAL_ERROR"),
]


@pytest.mark.parametrize(("user", "sql", "name"), FAILING, ids=["syntax", "function", "internal"])
def test_prestos_errors_reach_clients_as_one_message_without_java_frames(
    gateway, presto, user, sql, name
):
    # PrestoDB's own pages carry Java stack frames (its internals) in failureInfo...
    presto_headers = {"X-Presto-User": user}
    session = presto.http_session()
    session.auth = (presto.service_user, presto.service_password)
    direct = raw_pages(f"{presto.url}/v1/statement", sql, presto_headers, session)
    assert ".java:" in direct[-1]
    # ...which never pass the gateway, at any level of the failure.
    headers = {"Authorization": f"Bearer {user}-token"}
    bodies = raw_pages(f"{gateway.url}/v1/statement", sql, headers)
    assert not any(".java:" in body or "\tat " in body for body in bodies)
    error = json.loads(bodies[-1])["error"]
    assert error["errorName"] == name
    assert all(stack == [] for stack in failure_stacks(error["failureInfo"]))
    assert error["message"] and "\n" not in error["message"]
    # The trino client shows the same one message.
    cursor = connect(gateway, f"{user}-token").cursor()
    with pytest.raises(TrinoQueryError) as e:
        cursor.execute(sql)
        cursor.fetchall()
    assert (e.value.error_name, e.value.message) == (name, error["message"])
    assert ".java:" not in str(e.value) and ".java:" not in json.dumps(e.value.failure_info)


def test_presto_keeps_milliseconds_only(gateway):
    """Presto's date-times are milliseconds: the digits beyond are dropped from a literal
    or a cast, Trino's ``timestamp(p)`` is an unknown type, and the current time has
    milliseconds (README's table)."""
    cursor = connect(gateway).cursor()
    cursor.execute(
        "SELECT TIMESTAMP '2024-01-02 03:04:05.123999', "
        "CAST('2024-01-02 03:04:05.123999999' AS timestamp), localtimestamp"
    )
    ((literal, cast, now),) = cursor.fetchall()
    assert literal == cast == dt.datetime(2024, 1, 2, 3, 4, 5, 123000)
    assert now.microsecond % 1000 == 0
    assert [d[1] for d in cursor.description] == ["timestamp(3)"] * 3
    with pytest.raises(TrinoUserError) as e:
        cursor.execute("SELECT CAST(TIMESTAMP '2024-01-02 03:04:05.123' AS timestamp(6))")
        cursor.fetchall()
    assert (e.value.error_name, e.value.message) == (
        "SYNTAX_ERROR",
        "line 1:8: Unknown type: timestamp(6)",
    )
