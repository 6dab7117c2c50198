"""SQL completion in a real IPython shell (no browser), with metadata read through the
real DataHub service and gateway as each user, filtered by the real Trino's rules:
alice sees every tpch table and ``customer``, bob no ``customer``, dave tables of
``tpch.tiny`` only."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from IPython.core.completer import provisionalcompleter

from datahub.extensions.sql import SqlError

#: How long a test waits for what must come (a bound, not a measure of speed).
GIVE_UP_AFTER = 120


def as_user(ip, users, name: str) -> None:
    ip.run_line_magic("config", f"SqlMagic.token = {users.token(name)!r}")
    ip.run_line_magic("config", f"SqlMagic.user = {name!r}")


def complete(ip, text: str) -> list[tuple[str, str]]:
    """What Tab offers at the end of *text*: (text, type) pairs, in the list's order."""
    with provisionalcompleter():
        found = list(ip.Completer.completions(text, len(text)))
    return [(c.text, c.type) for c in found]


def names(ip, text: str) -> list[str]:
    return [t for t, _ in complete(ip, text)]


def trino_says(ip, sql: str) -> list[str]:
    """The first column of *sql* run as the current user, sorted."""
    result = ip.run_cell(f"%sql --no-display -o _answer {sql}")
    assert result.error_in_exec is None, result.error_in_exec
    return sorted(str(v) for v in ip.user_ns["_answer"].iloc[:, 0])


@pytest.fixture
def sql_as(ip, users):
    """``sql_as(name)``: switch the shell to *name*; back to alice after the test.

    Completion waits for the service as long as a query may take here (a cold metadata
    statement on a busy test machine can take longer than the interactive default)."""
    ip.run_line_magic("config", "SqlCompleter.timeout = 120.0")
    yield lambda name: as_user(ip, users, name)
    as_user(ip, users, "alice")


def test_alice_after_from_catalog_dot_gets_every_tpch_schema_trino_shows_her(ip, sql_as):
    sql_as("alice")
    offered = names(ip, "%%sql\nSELECT * FROM tpch.")
    assert {"tiny", "sf1", "sf100"} <= set(offered)
    assert sorted(offered) == trino_says(ip, "SHOW SCHEMAS FROM tpch")


def test_dave_gets_tables_of_tpch_tiny_only(ip, sql_as):
    # Trino shows dave the schema names of tpch (his employees group may read tpch; the
    # contractors rule narrows tables, and schema names are visible through any rule),
    # but lists him tables in tiny only.
    sql_as("dave")
    assert sorted(names(ip, "%%sql\nSELECT * FROM tpch.")) == trino_says(
        ip, "SHOW SCHEMAS FROM tpch"
    )
    tiny = names(ip, "%%sql\nSELECT * FROM tpch.tiny.")
    assert {"orders", "lineitem", "nation"} <= set(tiny)
    assert sorted(tiny) == trino_says(ip, "SHOW TABLES FROM tpch.tiny")
    assert names(ip, "%%sql\nSELECT * FROM tpch.sf1.") == []
    assert trino_says(ip, "SHOW TABLES FROM tpch.sf1") == []


def test_alice_gets_tables_of_every_tpch_schema(ip, sql_as):
    sql_as("alice")
    sf1 = names(ip, "%%sql\nSELECT * FROM tpch.sf1.")
    assert {"orders", "customer"} <= set(sf1)
    assert sorted(sf1) == trino_says(ip, "SHOW TABLES FROM tpch.sf1")


def test_bob_never_gets_alices_cached_table_list(ip, sql_as):
    # alice's answer is cached in the service first; bob must get his own view.
    sql_as("alice")
    assert "customer" in names(ip, "%%sql\nSELECT * FROM tpch.tiny.")
    sql_as("bob")
    bobs = names(ip, "%%sql\nSELECT * FROM tpch.tiny.")
    assert "orders" in bobs and "customer" not in bobs
    assert sorted(bobs) == trino_says(ip, "SHOW TABLES FROM tpch.tiny")


def test_alias_dot_completes_that_tables_columns_with_types(ip, sql_as):
    sql_as("alice")
    text = "%%sql\nSELECT * FROM tpch.tiny.orders o WHERE o.tot"
    assert complete(ip, text) == [("totalprice", "column")]
    text = "%%sql\nSELECT o. FROM tpch.tiny.orders o"
    with provisionalcompleter():
        found = list(ip.Completer.completions(text, text.index(".") + 1))
    assert {"orderkey", "custkey", "totalprice", "orderdate"} <= {c.text for c in found}
    assert {c.type for c in found} == {"column"}


def test_join_on_offers_the_shared_key(ip, sql_as):
    sql_as("alice")
    text = "%%sql\nSELECT * FROM tpch.tiny.orders o JOIN tpch.tiny.customer c ON "
    assert complete(ip, text)[0] == ("o.custkey = c.custkey", "join")


def test_functions_come_from_trino_without_holding_up_columns(ip, sql_as):
    sql_as("alice")
    ip.run_cell("%sql refresh-completions")
    # Trino lists functions slowly: the first completion may go without them (columns
    # come at once), a later Tab has them.
    text = "%%sql\nSELECT approx_dis"
    for _ in range(GIVE_UP_AFTER):
        offered = complete(ip, text)
        if offered:
            break
        time.sleep(1)
    assert ("approx_distinct", "function") in offered


def test_nested_row_fields_and_refresh_shows_a_new_table(ip, sql_as):
    sql_as("alice")
    table = f"people_{uuid.uuid4().hex[:8]}"
    before = names(ip, "%%sql\nSELECT * FROM memory.default.")
    assert table not in before
    result = ip.run_cell(
        f"%sql --no-display CREATE TABLE memory.default.{table} AS SELECT 1 AS id, "
        "CAST(ROW('Oslo', ROW(59.9, 10.7)) AS ROW(city varchar, geo ROW(lat double, "
        "lon double))) AS address"
    )
    assert result.error_in_exec is None, result.error_in_exec
    # Cached (in the kernel and the service) until the refresh command.
    assert table not in names(ip, "%%sql\nSELECT * FROM memory.default.")
    result = ip.run_cell("%sql refresh-completions")
    assert result.error_in_exec is None, result.error_in_exec
    assert table in names(ip, "%%sql\nSELECT * FROM memory.default.")
    text = f"%%sql\nSELECT p.address.geo. FROM memory.default.{table} p"
    with provisionalcompleter():
        found = list(ip.Completer.completions(text, text.index("geo.") + 4))
    assert [(c.text, c.type) for c in found] == [("lat", "field"), ("lon", "field")]


def test_metadata_statements_run_as_the_user_and_are_audited(ip, sql_as, stack, users):
    sql_as("dave")
    ip.run_cell("%sql refresh-completions")
    assert "tiny" in names(ip, "%%sql\nSELECT * FROM tpch.")
    response = requests.get(
        f"{stack.settings['gateway_url']}/services/datahub/api/queries",
        params={"user": "me", "limit": 20},
        headers={"Authorization": f"token {users.token('dave')}"},
        timeout=30,
    )
    response.raise_for_status()
    metadata = [q for q in response.json()["queries"] if q["source"] == "datahub-metadata"]
    assert any("information_schema.schemata" in q["sql"] for q in metadata)
    assert {q["user"] for q in metadata} == {"dave"}


def test_the_metadata_api_refuses_requests_without_a_token(stack):
    response = requests.get(
        f"{stack.settings['gateway_url']}/services/datahub/api/metadata/catalogs", timeout=30
    )
    assert response.status_code == 403
    assert "hub API token" in response.json()["message"]


def test_the_metadata_api_answers_bad_names_with_one_sentence(stack, users):
    response = requests.get(
        f"{stack.settings['gateway_url']}/services/datahub/api/metadata/tables",
        params={"catalog": "tpch"},
        headers={"Authorization": f"token {users.token('alice')}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Listing tables needs the schema name (?schema=…)."


def test_catalogs_are_those_trino_shows_the_user_and_unknown_ones_complete_nothing(ip, sql_as):
    sql_as("dave")
    assert trino_says(ip, "SHOW CATALOGS") == sorted(names(ip, "%%sql\nSELECT * FROM "))
    assert names(ip, "%%sql\nSELECT * FROM nosuchcatalog.") == []


def test_refresh_with_a_refused_token_is_one_sentence(ip, sql_as):
    ip.run_line_magic("config", "SqlMagic.token = 'not-a-token'")
    result = ip.run_cell("%sql refresh-completions")
    assert isinstance(result.error_in_exec, SqlError)
    assert "refused to refresh completions" in str(result.error_in_exec)
