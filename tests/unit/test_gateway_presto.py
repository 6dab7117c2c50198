"""The translation between the clients' Trino protocol and a PrestoDB cluster's."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from multidict import CIMultiDict
from trino.mapper import RowMapperFactory

from datahub.gateway import presto
from datahub.gateway.clusters import Cluster
from datahub.gateway.presto_types import trino_type
from datahub.gateway.protocol import upstream_request_headers
from datahub.gateway.statements import parse_prepared_statements
from datahub.gateway.upstream import PrestoResponse

# ------------------------------------------------------------------ request headers


def test_every_session_header_presto_has_goes_out_under_its_presto_name():
    client = [
        ("X-Trino-Source", "datahub-sql"),
        ("X-Trino-Catalog", "tpch"),
        ("X-Trino-Schema", "tiny"),
        ("X-Trino-Time-Zone", "Europe/Berlin"),
        ("X-Trino-Language", "de-DE"),
        ("X-Trino-Session", "query_max_run_time=1h"),
        ("X-Trino-Role", "system=ROLE{analyst}"),
        ("X-Trino-Client-Tags", "a,b"),
        ("X-Trino-Client-Info", "notebook"),
        ("X-Trino-Prepared-Statement", "q1=SELECT+1"),
        ("X-Trino-Transaction-Id", "NONE"),
        ("X-Trino-Trace-Token", "t-1"),
        ("X-Trino-Resource-Estimate", "EXECUTION_TIME=1m"),
    ]
    out = presto.request_headers(client)
    assert out == [(name.replace("X-Trino-", "X-Presto-"), value) for name, value in client]


def test_the_user_is_the_gateways_never_the_clients():
    headers = upstream_request_headers(
        [("X-Trino-User", "mallory"), ("X-Presto-User", "root"), ("X-Trino-Catalog", "tpch")],
        "alice",
        "Basic c2VydmljZQ==",
    )
    out = presto.request_headers(headers)
    users = [value for name, value in out if name.lower() in ("x-presto-user", "x-trino-user")]
    assert users == ["alice"]
    assert ("X-Presto-Catalog", "tpch") in out
    assert ("Authorization", "Basic c2VydmljZQ==") in out


def test_a_client_presto_header_never_passes_even_if_handed_over():
    out = presto.request_headers([("X-Presto-User", "root"), ("X-Trino-User", "alice")])
    assert out == [("X-Presto-User", "alice")]


def test_headers_presto_lacks_are_dropped_and_plain_ones_kept():
    out = presto.request_headers(
        [
            ("X-Trino-Client-Capabilities", "PATH,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION"),
            ("X-Trino-Query-Data-Encoding", "json+zstd"),
            ("X-Trino-Original-User", "root"),
            ("Content-Type", "text/plain"),
            ("Accept-Encoding", "identity"),
        ]
    )
    assert out == [("Content-Type", "text/plain"), ("Accept-Encoding", "identity")]


def test_a_sql_path_is_refused_with_one_sentence():
    message = presto.unsupported_request([("X-Trino-Path", "hive.default")])
    assert message is not None
    assert "Presto clusters have no SQL path" in message
    assert message.count(".") == 1 and message.endswith(".")
    assert presto.unsupported_request([("X-Trino-Path", " ")]) is None
    assert presto.unsupported_request([("X-Trino-Catalog", "tpch")]) is None


# ----------------------------------------------------------------- response headers


def test_session_changes_come_back_under_trinos_names():
    upstream = [
        ("X-Presto-Set-Catalog", "tpch"),
        ("X-Presto-Set-Schema", "tiny"),
        ("X-Presto-Set-Session", "query_max_run_time=1h"),
        ("X-Presto-Clear-Session", "join_distribution_type"),
        ("X-Presto-Set-Role", "hive=ROLE{admin}"),
        ("X-Presto-Added-Prepare", "q1=SELECT+1"),
        ("X-Presto-Deallocated-Prepare", "q0"),
        ("X-Presto-Started-Transaction-Id", "abc"),
        ("X-Presto-Clear-Transaction-Id", "true"),
        ("Content-Type", "application/json"),
    ]
    out = presto.response_headers(upstream)
    assert out[:-1] == [(n.replace("X-Presto-", "X-Trino-"), v) for n, v in upstream[:-1]]
    assert out[-1] == ("Content-Type", "application/json")


def test_presto_only_response_headers_are_dropped():
    out = presto.response_headers(
        [
            ("X-Presto-Added-Session-Functions", "f=..."),
            ("X-Presto-Removed-Session-Function", "g"),
            ("X-Trino-Set-Authorization-User", "root"),
        ]
    )
    assert out == []


# -------------------------------------------------------------------------- types


def sig(raw, *arguments):
    return {"rawType": raw, "arguments": list(arguments)}


def long(value):
    return {"kind": "LONG", "value": value}


def typ(signature):
    return {"kind": "TYPE", "value": signature}


def field(name, signature):
    if name is None:
        return {"kind": "NAMED_TYPE", "value": {"typeSignature": signature}}
    return {
        "kind": "NAMED_TYPE",
        "value": {"fieldName": {"name": name}, "typeSignature": signature},
    }


VARCHAR = sig("varchar", long(2147483647))


@pytest.mark.parametrize(
    ("presto_type", "trino_name", "signature"),
    [
        ("boolean", "boolean", sig("boolean")),
        ("tinyint", "tinyint", sig("tinyint")),
        ("bigint", "bigint", sig("bigint")),
        ("double", "double", sig("double")),
        ("real", "real", sig("real")),
        ("decimal(38,9)", "decimal(38,9)", sig("decimal", long(38), long(9))),
        ("varchar", "varchar", VARCHAR),
        ("varchar(5)", "varchar(5)", sig("varchar", long(5))),
        ("char(4)", "char(4)", sig("char", long(4))),
        ("varbinary", "varbinary", sig("varbinary")),
        ("date", "date", sig("date")),
        ("time", "time(3)", sig("time", long(3))),
        ("time with time zone", "time(3) with time zone", sig("time with time zone", long(3))),
        ("timestamp", "timestamp(3)", sig("timestamp", long(3))),
        (
            "timestamp with time zone",
            "timestamp(3) with time zone",
            sig("timestamp with time zone", long(3)),
        ),
        ("interval day to second", "interval day to second", sig("interval day to second")),
        ("interval year to month", "interval year to month", sig("interval year to month")),
        ("json", "json", sig("json")),
        ("uuid", "uuid", sig("uuid")),
        ("ipaddress", "ipaddress", sig("ipaddress")),
        ("array(integer)", "array(integer)", sig("array", typ(sig("integer")))),
        (
            "map(varchar, decimal(2,1))",
            "map(varchar, decimal(2,1))",
            sig("map", typ(VARCHAR), typ(sig("decimal", long(2), long(1)))),
        ),
        (
            "row(a integer, b varchar)",
            "row(a integer, b varchar)",
            sig("row", field("a", sig("integer")), field("b", VARCHAR)),
        ),
        (
            "row(integer, varchar)",
            "row(integer, varchar)",
            sig("row", field(None, sig("integer")), field(None, VARCHAR)),
        ),
        (
            'row("first name" varchar, time timestamp)',
            'row("first name" varchar, time timestamp(3))',
            sig("row", field("first name", VARCHAR), field("time", sig("timestamp", long(3)))),
        ),
        (
            "array(row(k integer, ds array(date), m map(varchar, timestamp)))",
            "array(row(k integer, ds array(date), m map(varchar, timestamp(3))))",
            sig(
                "array",
                typ(
                    sig(
                        "row",
                        field("k", sig("integer")),
                        field("ds", sig("array", typ(sig("date")))),
                        field("m", sig("map", typ(VARCHAR), typ(sig("timestamp", long(3))))),
                    )
                ),
            ),
        ),
        ("HyperLogLog", "HyperLogLog", sig("HyperLogLog")),
        ("qdigest(bigint)", "qdigest(bigint)", sig("qdigest", typ(sig("bigint")))),
    ],
)
def test_a_presto_type_gets_trinos_name_and_signature(presto_type, trino_name, signature):
    assert trino_type(presto_type) == (trino_name, signature)


@pytest.mark.parametrize("odd", ["weird<x>", "array(", "row(a integer", "map(varchar,,x)"])
def test_a_type_string_it_cannot_read_passes_as_a_raw_type(odd):
    assert trino_type(odd) == (odd, {"rawType": odd, "arguments": []})


# -------------------------------------------------------------------------- pages


def presto_page(**extra):
    page = {
        "id": "20261202_120000_00001_abcde",
        "infoUri": "http://presto:8080/ui/query.html?20261202_120000_00001_abcde",
        "nextUri": "http://presto:8080/v1/statement/executing/20261202_120000_00001_abcde/x/1",
    }
    page.update(extra)
    return page


PRESTO_STATS = {
    "state": "RUNNING",
    "waitingForPrerequisites": False,
    "queued": False,
    "scheduled": True,
    "nodes": 1,
    "totalSplits": 4,
    "queuedSplits": 0,
    "runningSplits": 1,
    "completedSplits": 3,
    "cpuTimeMillis": 12,
    "wallTimeMillis": 30,
    "waitingForPrerequisitesTimeMillis": 0,
    "queuedTimeMillis": 2,
    "elapsedTimeMillis": 80,
    "processedRows": 25,
    "processedBytes": 2048,
    "peakMemoryBytes": 100,
    "peakTotalMemoryBytes": 200,
    "peakTaskTotalMemoryBytes": 150,
    "spilledBytes": 0,
    "rootStage": {"stageId": "0", "state": "RUNNING", "subStages": []},
    "runtimeStats": {"x": {"sum": 1}},
}


def test_page_stats_get_trinos_fields_with_presto_bytes_as_physical_input():
    stats = presto.trino_stats(PRESTO_STATS)
    assert stats["state"] == "RUNNING"
    assert stats["processedBytes"] == stats["physicalInputBytes"] == 2048
    assert stats["progressPercentage"] == 75.0
    assert "rootStage" not in stats and "runtimeStats" not in stats
    assert "waitingForPrerequisites" not in stats
    assert set(stats) >= {"cpuTimeMillis", "elapsedTimeMillis", "peakMemoryBytes", "queued"}


def test_a_queued_page_has_no_progress():
    stats = presto.trino_stats({"state": "QUEUED", "queued": True, "scheduled": False})
    assert stats["state"] == "QUEUED" and stats["queued"] is True
    assert "progressPercentage" not in stats
    assert stats["processedRows"] == 0


def test_a_presto_error_keeps_trinos_keys_only():
    error = {
        "message": "line 1:8: Column 'x' cannot be resolved",
        "sqlState": "42000",
        "errorCode": 47,
        "errorName": "COLUMN_NOT_FOUND",
        "errorType": "USER_ERROR",
        "retriable": False,
        "errorLocation": {"lineNumber": 1, "columnNumber": 8},
        "failureInfo": {
            "type": "com.facebook.presto.sql.analyzer.SemanticException",
            "message": "line 1:8: Column 'x' cannot be resolved",
            "suppressed": [],
            "stack": ["a.b(C.java:1)"],
            "errorLocation": {"lineNumber": 1, "columnNumber": 8},
            "errorCode": {"code": 47},
            "cause": {
                "type": "java.lang.IllegalStateException",
                "message": "inner",
                "stack": ["d.e(F.java:2)"],
                "suppressed": [{"type": "x.Y", "message": "z", "stack": ["g.h(I.java:3)"]}],
            },
        },
        "errorCause": "UNKNOWN",
    }
    out = presto.trino_error(error)
    assert set(out) == {
        "message",
        "sqlState",
        "errorCode",
        "errorName",
        "errorType",
        "errorLocation",
        "failureInfo",
    }
    assert out["errorName"] == "COLUMN_NOT_FOUND"
    assert "errorCode" not in out["failureInfo"]
    # No Java stack frames at any level, whatever the page's size.
    failure = out["failureInfo"]
    assert failure["stack"] == [] and failure["cause"]["stack"] == []
    assert failure["cause"]["suppressed"][0]["stack"] == []
    assert failure["cause"]["message"] == "inner"
    assert ".java:" not in str(out)


def test_a_page_is_translated_with_its_uris_first():
    page = {
        "columns": [{"name": "t", "type": "timestamp", "typeSignature": {"rawType": "timestamp"}}],
        **presto_page(),
        "data": [["2024-01-02 03:04:05.123"]],
        "stats": PRESTO_STATS,
    }
    out = json.loads(presto.translate_page(json.dumps(page).encode()))
    assert list(out)[:3] == ["id", "infoUri", "nextUri"]
    assert out["columns"] == [
        {
            "name": "t",
            "type": "timestamp(3)",
            "typeSignature": {"rawType": "timestamp", "arguments": [{"kind": "LONG", "value": 3}]},
        }
    ]
    assert out["data"] == [["2024-01-02 03:04:05.123"]]
    assert out["stats"]["physicalInputBytes"] == 2048


def test_an_update_page_keeps_its_update():
    page = presto_page(updateType="SET SESSION", stats={"state": "FINISHED"})
    del page["nextUri"]
    out = json.loads(presto.translate_page(json.dumps(page).encode()))
    assert out["updateType"] == "SET SESSION"
    assert out["stats"]["state"] == "FINISHED"


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"<html>Error</html>"])
def test_a_body_that_is_no_page_passes_unchanged(body):
    assert presto.translate_page(body) == body


def test_unicode_passes_as_it_came():
    page = presto_page(data=[["ünï ✓"]])
    out = presto.translate_page(json.dumps(page, ensure_ascii=False).encode())
    assert "ünï ✓".encode() in out


# ------------------------------------------------------------- a Presto answer


class FakeAiohttpResponse:
    """What `PrestoResponse` reads of aiohttp's response."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = CIMultiDict(headers + [("Content-Length", str(len(body)))])
        self.body = body
        self.released = False

    async def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        self.released = True


PRESTO = Cluster("lake", "http://presto:8080", engine="presto")


def answer(body: bytes, status: int = 200, content_type: str = "application/json"):
    headers = [("Content-Type", content_type), ("X-Presto-Set-Session", "a=1")]
    return PrestoResponse(PRESTO, FakeAiohttpResponse(status, headers, body))


def test_a_presto_answer_reads_as_a_trino_clusters():
    page = presto_page(columns=[{"name": "t", "type": "time", "typeSignature": {}}], data=[])
    response = answer(json.dumps(page).encode())
    assert response.header_items() == [
        ("Content-Type", "application/json"),
        ("X-Trino-Set-Session", "a=1"),
    ]
    assert "content-length" not in response.headers  # the translated body has its own
    body, whole = asyncio.run(response.read_up_to(64 * 1024))
    assert whole and json.loads(body)["columns"][0]["type"] == "time(3)"


def test_a_large_presto_page_is_translated_whole_off_the_event_loop():
    rows = [["x" * 100, "2024-01-01 00:00:00.000"] for _ in range(2000)]
    columns = [{"name": "s", "type": "varchar"}, {"name": "t", "type": "timestamp"}]
    response = answer(json.dumps(presto_page(columns=columns, data=rows)).encode())

    async def read():
        head, whole = await response.read_up_to(64 * 1024)
        chunks = [chunk async for chunk in response.chunks()]
        return head, whole, b"".join(chunks)

    head, whole, body = asyncio.run(read())
    assert (head, whole) == (b"", False)
    page = json.loads(body)
    assert page["columns"][1]["type"] == "timestamp(3)"
    assert page["data"] == rows


def test_a_presto_answer_that_is_no_page_is_not_touched():
    response = answer(b"<html>Bad gateway</html>", status=502, content_type="text/html")
    assert asyncio.run(response.read()) == b"<html>Bad gateway</html>"


# ------------------------------------------------ a page captured from PrestoDB 0.296

CAPTURED = Path(__file__).parent / "data" / "presto_types_page.json"


def test_a_captured_presto_page_reads_in_the_trino_client_as_trinos_would():
    """The page of ``SELECT <one value of each type>`` as PrestoDB 0.296 wrote it (array,
    map and row values as JSON texts, ``01:02:03.456 +05:30``, Presto's signatures),
    translated and read by the trino client's own row mapper."""
    page = json.loads(presto.translate_page(CAPTURED.read_bytes()))
    mapper = RowMapperFactory().create(columns=page["columns"], legacy_primitive_types=False)
    values = dict(
        zip([c["name"] for c in page["columns"]], mapper.map(page["data"])[0], strict=True)
    )
    types = {c["name"]: c["type"] for c in page["columns"]}
    assert types["c15"] == "time(3)" and types["c17"] == "timestamp(3)"
    assert values["c16"] == dt.time(1, 2, 3, 456000, tzinfo=dt.timezone(dt.timedelta(minutes=330)))
    assert values["c25"] == [1, None, 3]
    assert values["c26"] == {"a": Decimal("1.5")}
    assert values["c27"] == (1, "x") and values["c27"].a == 1
    (nested,) = values["c28"]
    assert nested.k == 1 and nested.ds == [dt.date(2024, 1, 1), None]
    assert nested.m == {"t": dt.datetime(2024, 1, 1)}
    assert values["c30"] == [
        dt.time(1, 2, 3, 456000, tzinfo=dt.timezone(dt.timedelta(minutes=330)))
    ]
    assert values["c31"] == [["a b", None]]
    assert values["c24"] == b"\x00\xff" and values["c8"] == Decimal(
        "12345678901234567890123456789.123456789"
    )
    assert page["stats"]["state"] == "RUNNING" and "runtimeStats" not in page["stats"]
    assert list(page)[:4] == ["id", "infoUri", "partialCancelUri", "nextUri"]


def test_presto_waiting_for_prerequisites_reads_as_queued():
    stats = presto.trino_stats({"state": "WAITING_FOR_PREREQUISITES", "queued": False})
    assert stats["state"] == "QUEUED" and stats["queued"] is True


# ------------------------------------------------------------- EXECUTE IMMEDIATE


def test_execute_immediate_runs_on_presto_as_a_prepared_statement():
    body, headers = presto.immediate_as_prepared(
        b"EXECUTE IMMEDIATE 'SELECT name FROM nation WHERE name = ''A'' AND k = ?' USING 7",
        [("X-Trino-Catalog", "tpch")],
    )
    assert body == b"EXECUTE datahub_immediate USING 7"
    assert headers == [
        ("X-Trino-Catalog", "tpch"),
        (
            "X-Trino-Prepared-Statement",
            "datahub_immediate=SELECT+name+FROM+nation+WHERE+name+%3D+%27A%27+AND+k+%3D+%3F",
        ),
    ]
    assert parse_prepared_statements([headers[1][1]]) == {
        "datahub_immediate": "SELECT name FROM nation WHERE name = 'A' AND k = ?"
    }


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "EXECUTE q USING 1", "EXECUTE IMMEDIATE x", "-- EXECUTE IMMEDIATE 'x'\nSELECT 1"],
)
def test_other_statements_go_to_presto_as_they_are(sql):
    headers = [("X-Trino-Prepared-Statement", "q=SELECT+%3F")]
    assert presto.immediate_as_prepared(sql.encode(), headers) == (sql.encode(), headers)


def test_execute_immediate_without_parameters_and_in_unicode():
    body, headers = presto.immediate_as_prepared(b"execute immediate U&'\\0053ELECT 1'", [])
    assert body == b"EXECUTE datahub_immediate"
    assert headers == [("X-Trino-Prepared-Statement", "datahub_immediate=SELECT+1")]
