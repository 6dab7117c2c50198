"""A new query's first step without HTTP: a POST /v1/statement as values, routed into the
QueryRecord the rest of the way uses, or refused with what the audit keeps of it."""

from __future__ import annotations

import logging
from urllib.parse import quote_plus

import pytest

from datahub.gateway.routing import Router
from datahub.gateway.submit import Refusal, StatementRequest, route
from datahub.identity import Identity
from datahub.wire import INVALID_ROUTING_GROUP

ALICE = Identity("alice", ("analysts",))
ROUTER = Router.from_config(
    clusters={"adhoc-1": "adhoc", "etl-1": "etl"},
    rules=[{"name": "jobs", "source": "airflow", "routing_group": "etl"}],
    default_group="adhoc",
)
LOG = logging.getLogger("test")


def routed(sql: str, *headers: tuple[str, str]):
    request = StatementRequest(sql.encode(), tuple(headers))
    return route(ROUTER, ALICE, request, allow_spooling=False, log=LOG)


def test_headers_are_read_case_insensitively_and_repeated_ones_joined_like_tornado():
    request = StatementRequest(
        b"SELECT 1", (("X-Trino-Client-Tags", "a"), ("x-trino-client-tags", "b,c"))
    )
    assert request.values("X-TRINO-CLIENT-TAGS") == ["a", "b,c"]
    assert request.header("X-Trino-Client-Tags") == "a,b,c"
    assert request.header("X-Trino-Source") is None
    assert StatementRequest(b"", (("X-Trino-Source", ""),)).header("X-Trino-Source") == ""


def test_a_query_is_routed_with_its_session_and_never_the_clients_identity():
    query = routed(
        "SELECT 1",
        ("X-Trino-Source", "airflow"),
        ("X-Trino-Catalog", "tpch"),
        ("X-Trino-Schema", "tiny"),
        ("X-Trino-Client-Tags", "nightly, batch"),
        ("X-Trino-User", "mallory"),
        ("Authorization", "token t"),
    )
    assert (query.user, query.sql, query.source) == ("alice", "SELECT 1", "airflow")
    assert (query.routing_group, query.routing_reason) == ("etl", "rule:jobs")
    assert (query.catalog, query.schema, query.client_tags) == (
        "tpch",
        "tiny",
        ("batch", "nightly"),
    )
    sent = {name.lower() for name, _ in query.headers}
    assert sent == {"x-trino-source", "x-trino-catalog", "x-trino-schema", "x-trino-client-tags"}


def test_a_routing_hint_naming_a_cluster_pins_it():
    query = routed("SELECT 1", ("X-DataHub-Routing-Group", "etl-1"))
    assert (query.routing_hint, query.routing_group, query.pinned_cluster) == (
        "etl-1",
        "etl",
        "etl-1",
    )


def test_an_executed_prepared_statement_is_routed_and_audited_by_the_sql_it_runs():
    prepared = f"q={quote_plus('SELECT * FROM hive.web.clicks')},other={quote_plus('SELECT 2')}"
    query = routed("EXECUTE q", ("X-Trino-Prepared-Statement", prepared))
    assert (query.sql, query.client_sql, query.statement) == (
        "SELECT * FROM hive.web.clicks",
        "EXECUTE q",
        "EXECUTE q",
    )
    # Only the statement the query uses reaches the cluster.
    assert [v for n, v in query.headers if n.lower() == "x-trino-prepared-statement"] == [
        "q=SELECT+%2A+FROM+hive.web.clicks"
    ]


def test_an_unknown_routing_group_is_refused_with_what_is_known_of_the_query():
    with pytest.raises(Refusal) as refused:
        routed("SELECT 1", ("X-DataHub-Routing-Group", "nope"))
    assert (refused.value.reason, refused.value.error) == ("routing", INVALID_ROUTING_GROUP)
    assert refused.value.query.sql == "SELECT 1"
    assert refused.value.query.routing_group is None


def test_a_malformed_prepared_statement_header_is_refused_as_the_requests_fault():
    with pytest.raises(Refusal) as refused:
        routed("EXECUTE q", ("X-Trino-Prepared-Statement", "q=a=b"))
    assert refused.value.reason == "request"
    assert refused.value.error[1] == "USER_ERROR"
    assert refused.value.query.sql == "EXECUTE q"
