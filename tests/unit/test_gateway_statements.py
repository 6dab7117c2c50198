"""What a statement runs: prepared statements and EXECUTE IMMEDIATE resolved for routing
and the audit (datahub.gateway.statements)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
import zstandard

from datahub.gateway.statements import (
    StatementError,
    parse_prepared_statements,
    prepared_statements_header,
    resolve_query_info,
    resolve_statement,
    with_prepared_statements,
)

CUSTOMERS = "SELECT name FROM tpch.tiny.customer WHERE custkey = ?"
PREPARED = {"q": CUSTOMERS, "Mixed": "SELECT 2", "odd name": "SELECT 3"}


def header(**statements: str) -> str:
    return ",".join(f"{quote_plus(n)}={quote_plus(s)}" for n, s in statements.items())


def test_the_header_is_read_as_trino_reads_it():
    assert parse_prepared_statements([header(q=CUSTOMERS), " r=SELECT+1 , "]) == {
        "q": CUSTOMERS,
        "r": "SELECT 1",
    }
    # A later item for the same name replaces an earlier one, as in Trino.
    assert parse_prepared_statements(["q=SELECT+1,q=SELECT+2"]) == {"q": "SELECT 2"}


def test_compressed_statements_are_decompressed():
    long_sql = "SELECT '" + "x" * 3000 + "'"
    compressed = zstandard.ZstdCompressor().compress(long_sql.encode())
    value = "$zstd:" + base64.urlsafe_b64encode(compressed).decode()
    assert parse_prepared_statements([f"big={quote_plus(value)}"]) == {"big": long_sql}


@pytest.mark.parametrize(
    "value",
    [
        "q",  # no value
        "q=a=b",  # a raw "=" in the value
        "q=SELECT+1,%71=SELECT+2",  # two names that decode alike (Trino answers HTTP 500)
        "q=%24zstd%3Anot-zstd",
    ],
)
def test_a_malformed_header_is_one_sentence(value):
    with pytest.raises(StatementError, match="header is malformed"):
        parse_prepared_statements([value])


def test_a_compressed_bomb_is_refused_before_decompressing():
    huge = zstandard.ZstdCompressor().compress(b" " * (8 * 1024 * 1024))
    value = "$zstd:" + base64.urlsafe_b64encode(huge).decode()
    with pytest.raises(StatementError, match="excessive size"):
        parse_prepared_statements([f"q={quote_plus(value)}"])


@pytest.mark.parametrize(
    ("sql", "runs", "uses"),
    [
        ("EXECUTE q USING 1", CUSTOMERS, ("q",)),
        ("execute q", CUSTOMERS, ("q",)),
        ('EXECUTE "q" USING 1', CUSTOMERS, ("q",)),
        ("/* hidden */ EXECUTE -- here\n q USING 1", CUSTOMERS, ("q",)),
        ("EXECUTE Mixed", "SELECT 2", ("Mixed",)),
        ('EXECUTE "odd name"', "SELECT 3", ("odd name",)),
        ("EXPLAIN EXECUTE q USING 1", "EXPLAIN " + CUSTOMERS, ("q",)),
        (
            "EXPLAIN (TYPE IO, FORMAT JSON) EXECUTE q",
            "EXPLAIN (TYPE IO, FORMAT JSON) " + CUSTOMERS,
            ("q",),
        ),
        ("EXPLAIN EXPLAIN EXECUTE q", "EXPLAIN EXPLAIN " + CUSTOMERS, ("q",)),
        ("DESCRIBE OUTPUT q", f"DESCRIBE OUTPUT ({CUSTOMERS})", ("q",)),
        ("DESCRIBE INPUT q", f"DESCRIBE INPUT ({CUSTOMERS})", ("q",)),
        (
            "EXECUTE IMMEDIATE 'SELECT ''a'' FROM tpch.tiny.customer' USING 1",
            "SELECT 'a' FROM tpch.tiny.customer",
            (),
        ),
        ("EXECUTE IMMEDIATE U&'\\0053ELECT 1'", "SELECT 1", ()),
        ("EXECUTE IMMEDIATE u&'#+000053ELECT #0031' UESCAPE '#'", "SELECT 1", ()),
        ("EXPLAIN EXECUTE IMMEDIATE 'SELECT 1'", "EXPLAIN SELECT 1", ()),
    ],
)
def test_the_sql_that_runs_is_found(sql, runs, uses):
    resolved = resolve_statement(sql, PREPARED)
    assert (resolved.sql, resolved.client_sql, resolved.uses) == (runs, sql, uses)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "EXECUTE Q",  # names are case-sensitive in Trino: not found there
        "EXECUTE missing",
        "EXECUTE IMMEDIATE",
        "EXECUTEq",
        "PREPARE q FROM SELECT 1",
        "EXPLAIN SELECT 1",
    ],
)
def test_other_statements_run_as_they_are_and_need_no_prepared_statement(sql):
    resolved = resolve_statement(sql, PREPARED)
    assert (resolved.sql, resolved.client_sql, resolved.uses) == (sql, None, ())


def test_deallocate_needs_its_statement_and_runs_nothing_else():
    resolved = resolve_statement("DEALLOCATE PREPARE q", PREPARED)
    assert (resolved.sql, resolved.client_sql, resolved.uses) == (
        "DEALLOCATE PREPARE q",
        None,
        ("q",),
    )


def test_only_the_statements_used_are_forwarded_re_encoded():
    value = prepared_statements_header(PREPARED, ["odd name"])
    assert value == "odd+name=SELECT+3"
    assert parse_prepared_statements([value]) == {"odd name": "SELECT 3"}
    assert prepared_statements_header(PREPARED, []) is None


def test_trinos_query_info_tells_what_ran():
    executed = resolve_query_info("EXECUTE q USING 1", CUSTOMERS)
    assert (executed.sql, executed.client_sql) == (CUSTOMERS, "EXECUTE q USING 1")
    immediate = resolve_query_info("EXECUTE IMMEDIATE 'SELECT 1'", None)
    assert (immediate.sql, immediate.client_sql) == ("SELECT 1", "EXECUTE IMMEDIATE 'SELECT 1'")
    assert resolve_query_info("SELECT 1", None).client_sql is None


def test_the_forwarded_headers_carry_only_the_statement_used():
    client = [("X-Trino-Catalog", "tpch"), ("X-Trino-Prepared-Statement", header(**PREPARED))]
    assert with_prepared_statements(client, PREPARED, ("q",)) == [
        ("X-Trino-Catalog", "tpch"),
        ("X-Trino-Prepared-Statement", header(q=CUSTOMERS)),
    ]
    assert with_prepared_statements(client, PREPARED, ()) == [("X-Trino-Catalog", "tpch")]
