"""The metadata service's pure parts: the statements it runs as the user, the shapes of
its answers, and the per-user cache."""

from __future__ import annotations

import pytest

from datahub.catalog.cache import MetadataCache
from datahub.catalog.catalog import gateway_listener_url
from datahub.catalog.queries import MetadataRequest, RequestError, shape, statement


def test_statements_read_trinos_filtered_metadata_views():
    assert statement(MetadataRequest.build("catalogs")) == (
        "SELECT catalog_name FROM system.metadata.catalogs ORDER BY 1"
    )
    assert statement(MetadataRequest.build("schemas", catalog="tpch")) == (
        'SELECT schema_name FROM "tpch".information_schema.schemata ORDER BY 1'
    )
    assert statement(MetadataRequest.build("tables", catalog="tpch", schema="tiny")) == (
        'SELECT t.table_name, t.table_type, c.comment FROM "tpch".information_schema.tables t '
        "LEFT JOIN system.metadata.table_comments c ON c.catalog_name = 'tpch' "
        "AND c.schema_name = 'tiny' AND c.table_name = t.table_name "
        "WHERE t.table_schema = 'tiny' ORDER BY 1"
    )
    sql = statement(MetadataRequest.build("columns", catalog="tpch", schema="tiny", table="x"))
    assert sql.endswith(
        "WHERE table_schema = 'tiny' AND table_name = 'x' ORDER BY ordinal_position"
    )
    assert statement(MetadataRequest.build("functions")) == "SHOW FUNCTIONS"


def test_names_cannot_break_out_of_the_statement():
    request = MetadataRequest.build(
        "tables", catalog='tpch".x; DROP TABLE t --', schema="tiny' OR '1'='1"
    )
    sql = statement(request)
    assert 'FROM "tpch"".x; DROP TABLE t --".information_schema.tables' in sql
    assert "table_schema = 'tiny'' OR ''1''=''1'" in sql


@pytest.mark.parametrize(
    ("kind", "names", "message"),
    [
        ("users", {}, "Unknown metadata kind 'users'"),
        ("schemas", {}, "Listing schemas needs the catalog name"),
        ("tables", {"catalog": "tpch"}, "Listing tables needs the schema name"),
        ("schemas", {"catalog": "a\x00b"}, "The catalog name is not a valid name."),
        ("schemas", {"catalog": "x" * 600}, "The catalog name is not a valid name."),
    ],
)
def test_malformed_requests_get_one_sentence(kind, names, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(")):
        MetadataRequest.build(kind, **names)


def test_answers_are_shaped_for_the_kernel():
    tables = MetadataRequest.build("tables", catalog="c", schema="s")
    assert shape(tables, [["orders", "BASE TABLE", "All orders"], ["v", "VIEW", None]]) == [
        {"name": "orders", "type": "BASE TABLE", "comment": "All orders"},
        {"name": "v", "type": "VIEW"},
    ]
    functions = shape(
        MetadataRequest.build("functions"),
        [
            ["abs", "bigint", "bigint", "scalar", True, "Absolute value"],
            ["abs", "double", "double", "scalar", True, "Absolute value"],
            ["count", "bigint", "", "aggregate", True, ""],
        ],
    )
    assert functions == [
        {
            "name": "abs",
            "signature": "abs(bigint) → bigint",
            "kind": "scalar",
            "description": "Absolute value",
        },
        {"name": "count", "signature": "count() → bigint", "kind": "aggregate", "description": ""},
    ]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_cache_answers_are_per_user_and_never_cross():
    cache = MetadataCache(ttl=60, max_entries=10, clock=Clock())
    cache.put("alice", ("schemas", "tpch"), ["sf1", "tiny"])
    assert cache.get("alice", ("schemas", "tpch")) == ["sf1", "tiny"]
    assert cache.get("dave", ("schemas", "tpch")) is MetadataCache.MISSING


def test_cache_entries_expire_after_the_ttl():
    clock = Clock()
    cache = MetadataCache(ttl=60, max_entries=10, clock=clock)
    cache.put("alice", "k", [1])
    clock.now = 59.9
    assert cache.get("alice", "k") == [1]
    clock.now = 60.0
    assert cache.get("alice", "k") is MetadataCache.MISSING
    assert len(cache) == 0


def test_cache_forgets_one_users_answers_only():
    cache = MetadataCache(ttl=60, max_entries=10, clock=Clock())
    cache.put("alice", "a", [1])
    cache.put("alice", "b", [2])
    cache.put("bob", "a", [3])
    assert cache.forget_user("alice") == 2
    assert cache.get("alice", "a") is MetadataCache.MISSING
    assert cache.get("bob", "a") == [3]


def test_cache_drops_the_least_recently_used_beyond_its_size():
    cache = MetadataCache(ttl=60, max_entries=2, clock=Clock())
    cache.put("u", "a", [1])
    cache.put("u", "b", [2])
    cache.get("u", "a")  # a is now the most recently used
    cache.put("u", "c", [3])
    assert cache.get("u", "b") is MetadataCache.MISSING
    assert cache.get("u", "a") == [1] and cache.get("u", "c") == [3]


def test_gateway_listener_url_for_wildcard_and_ipv6_addresses():
    assert gateway_listener_url("0.0.0.0", 10101) == "http://127.0.0.1:10101"
    assert gateway_listener_url("", 1) == "http://127.0.0.1:1"
    assert gateway_listener_url("::", 2) == "http://[::1]:2"
    assert gateway_listener_url("fe80::1", 3) == "http://[fe80::1]:3"
    assert gateway_listener_url("10.1.2.3", 4) == "http://10.1.2.3:4"
