"""Routing and the audit see the SQL that runs, not the EXECUTE that names it.

A gateway in front of the stack's real Trino, with two clusters (the same Trino twice) and
a routing rule keyed on the tpch catalog, driven by the unmodified trino client: its
legacy prepared statements (PREPARE, then EXECUTE with the X-Trino-Prepared-Statement
header), its EXECUTE IMMEDIATE parameters, and hand-written requests.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests

from datahub.testing import (
    BackgroundGateway,
    closed_record,
    gateway_connection,
    resolver_for,
    user_token,
)

SECRET = b"executed-sql-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}
CUSTOMERS = "SELECT name FROM tpch.tiny.customer WHERE custkey = ?"


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    state = tmp_path_factory.mktemp("executed-sql")
    trino_cluster = stack.settings["clusters"][0]
    running = BackgroundGateway(
        clusters=[
            {**trino_cluster, "name": "main", "routing_group": "default"},
            {**trino_cluster, "name": "lake", "routing_group": "lake"},
        ],
        routing_rules=[{"name": "tpch tables", "catalogs": ["tpch"], "routing_group": "lake"}],
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        event_log_file=str(state / "events.jsonl"),
    )
    yield running
    running.close()


def submitted_event(gateway, query_id: str) -> dict[str, Any]:
    with open(gateway.service.event_log_file, encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    (event,) = [e for e in events if e["query_id"] == query_id and e["event"] == "query_submitted"]
    return event


def test_a_prepared_customer_select_is_audited_and_routed_as_itself_not_as_execute(gateway):
    cursor = gateway_connection(gateway, legacy_prepared_statements=True).cursor()
    cursor.execute(CUSTOMERS, (1,))
    assert cursor.fetchall() == [["Customer#000000001"]]
    rec = closed_record(gateway, cursor.query_id, 30)
    # Trino hands the client its own formatting of a prepared statement.
    assert rec["sql"].startswith("SELECT name\nFROM\n  tpch.tiny.customer\nWHERE")
    assert rec["client_sql"].startswith("EXECUTE ") and "USING 1" in rec["client_sql"]
    assert (rec["cluster"], rec["routing_reason"]) == ("lake", "rule:tpch tables")
    assert submitted_event(gateway, cursor.query_id)["sql"] == rec["sql"]


def test_a_long_prepared_statement_compressed_by_trino_is_read_too(gateway):
    padded = "SELECT name, '" + "x" * 3000 + "' AS pad FROM tpch.tiny.customer WHERE custkey = ?"
    cursor = gateway_connection(gateway, legacy_prepared_statements=True).cursor()
    cursor.execute(padded, (2,))
    assert cursor.fetchall()[0][0] == "Customer#000000002"
    rec = closed_record(gateway, cursor.query_id, 30)
    assert "x" * 3000 in rec["sql"] and "tpch.tiny.customer" in rec["sql"]
    assert rec["cluster"] == "lake"


def test_execute_immediate_parameters_are_audited_and_routed_by_the_literal(gateway):
    cursor = gateway_connection(gateway, legacy_prepared_statements=False).cursor()
    cursor.execute(CUSTOMERS, (3,))
    assert cursor.fetchall() == [["Customer#000000003"]]
    rec = closed_record(gateway, cursor.query_id, 30)
    assert rec["sql"] == CUSTOMERS
    assert rec["client_sql"].startswith("EXECUTE IMMEDIATE '")
    assert rec["cluster"] == "lake"


def test_a_unicode_escaped_execute_immediate_cannot_hide_its_sql(gateway):
    hidden = "".join(f"\\{ord(c):04X}" for c in "SELECT name FROM tpch.tiny.customer")
    cursor = gateway_connection(gateway).cursor()
    cursor.execute(f"EXECUTE IMMEDIATE U&'{hidden} WHERE custkey = 4'")
    assert cursor.fetchall() == [["Customer#000000004"]]
    rec = closed_record(gateway, cursor.query_id, 30)
    assert rec["sql"] == "SELECT name FROM tpch.tiny.customer WHERE custkey = 4"
    assert rec["cluster"] == "lake"


def test_only_the_executed_prepared_statement_reaches_trino(gateway):
    """A decoy prepared statement beside the one executed cannot be what runs: Trino gets
    exactly the statement the gateway resolved (re-encoded), so they never disagree."""
    header = f"q={quote_plus('SELECT 1 AS decoy')},q={quote_plus(CUSTOMERS)}"
    headers = {"Authorization": "Bearer alice-token", "X-Trino-Prepared-Statement": header}
    page = requests.post(
        f"{gateway.url}/v1/statement", data="EXECUTE q USING 5", headers=headers, timeout=30
    ).json()
    rows = list(page.get("data") or [])
    while page.get("nextUri"):
        page = requests.get(page["nextUri"], headers=headers, timeout=30).json()
        rows += page.get("data") or []
    assert rows == [["Customer#000000005"]]
    rec = closed_record(gateway, page["id"], 30)
    assert (rec["sql"], rec["client_sql"]) == (CUSTOMERS, "EXECUTE q USING 5")


def test_a_malformed_prepared_statement_header_is_one_sentence(gateway):
    headers = {"Authorization": "Bearer alice-token", "X-Trino-Prepared-Statement": "q=a=b"}
    response = requests.post(
        f"{gateway.url}/v1/statement", data="EXECUTE q", headers=headers, timeout=30
    )
    error = response.json()["error"]
    assert error["message"].startswith("The X-Trino-Prepared-Statement header is malformed")
    assert "\n" not in error["message"]
