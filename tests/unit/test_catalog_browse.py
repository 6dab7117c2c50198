"""The schema browser's pure parts in the service: its statements (columns with comments,
search with escaped LIKE patterns), the shapes of their answers, paging and the routing
groups a user may browse."""

from __future__ import annotations

import pytest

from datahub.catalog.browse import page_of, routing_group_entries, search_page
from datahub.catalog.queries import (
    MetadataRequest,
    RequestError,
    like_pattern,
    paging,
    shape,
    statement,
)


def test_a_tables_columns_come_from_show_columns_with_quoted_names():
    request = MetadataRequest.build("describe", catalog="memory", schema="de fault", table='a"b')
    assert statement(request) == 'SHOW COLUMNS FROM "memory"."de fault"."a""b"'


def test_columns_keep_comments_and_show_row_fields_as_nested_fields():
    request = MetadataRequest.build("describe", catalog="c", schema="s", table="t")
    rows = [
        ["id", "bigint", "", "the key"],
        ["address", 'row(street varchar, geo row(lat double, "long x" double))', "", None],
    ]
    assert shape(request, rows) == [
        {"name": "id", "type": "bigint", "comment": "the key"},
        {
            "name": "address",
            "type": 'row(street varchar, geo row(lat double, "long x" double))',
            "fields": [
                {"name": "street", "type": "varchar"},
                {
                    "name": "geo",
                    "type": 'row(lat double, "long x" double)',
                    "fields": [
                        {"name": "lat", "type": "double"},
                        {"name": "long x", "type": "double"},
                    ],
                },
            ],
        },
    ]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("Orders", "%orders%"),
        ("50%", "%50\\%%"),
        ("a_b", "%a\\_b%"),
        ("back\\slash", "%back\\\\slash%"),
    ],
)
def test_search_text_matches_only_itself_in_like_patterns(text, pattern):
    assert like_pattern(text) == pattern


def test_search_reads_tables_then_columns_of_one_catalog_one_page_at_a_time():
    request = MetadataRequest.build("search", catalog="tpch", text="it's_", offset=100, limit=50)
    sql = statement(request)
    assert sql.count("LIKE '%it''s\\_%' ESCAPE '\\'") == 2
    assert 'FROM "tpch".information_schema.tables WHERE lower(table_name) LIKE' in sql
    assert 'FROM "tpch".information_schema.columns WHERE lower(column_name) LIKE' in sql
    assert sql.endswith("ORDER BY 1, 2, 4 NULLS FIRST OFFSET 100 LIMIT 51")
    assert "table_schema =" not in sql
    narrowed = MetadataRequest.build("search", catalog="tpch", text="x", schema="tiny")
    assert statement(narrowed).count("AND table_schema = 'tiny'") == 2
    assert narrowed.limit == 50  # the default page


def test_search_hits_name_a_table_or_a_column():
    request = MetadataRequest.build("search", catalog="c", text="o")
    rows = [
        ["tiny", "orders", "BASE TABLE", None, None],
        ["tiny", "lineitem", None, "orderkey", "bigint"],
    ]
    assert shape(request, rows) == [
        {"schema": "tiny", "table": "orders", "type": "BASE TABLE"},
        {"schema": "tiny", "table": "lineitem", "column": "orderkey", "column_type": "bigint"},
    ]


def test_searches_and_their_pages_are_cached_apart():
    one = MetadataRequest.build("search", catalog="c", text="o", offset=0, limit=10)
    two = MetadataRequest.build("search", catalog="c", text="o", offset=10, limit=10)
    other = MetadataRequest.build("search", catalog="c", text="p", offset=0, limit=10)
    assert len({one.key, two.key, other.key}) == 3
    # A listing is one answer, whatever page is asked for.
    tables = MetadataRequest.build("tables", catalog="c", schema="s", offset=10, limit=10)
    assert tables.key == MetadataRequest.build("tables", catalog="c", schema="s").key


@pytest.mark.parametrize(
    ("kind", "names", "message"),
    [
        ("search", {"catalog": "tpch"}, "Listing search needs the text to search for (?text=…)."),
        ("search", {"text": "x"}, "Listing search needs the catalog name"),
        ("describe", {"catalog": "c", "schema": "s"}, "Listing describe needs the table name"),
    ],
)
def test_malformed_browser_requests_get_one_sentence(kind, names, message):
    with pytest.raises(RequestError) as refused:
        MetadataRequest.build(kind, **names)
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize(
    ("offset", "limit", "expected"),
    [("", "", (0, 0)), ("20", "100", (20, 100)), (None, "1000", (0, 1000))],
)
def test_paging_arguments(offset, limit, expected):
    assert paging(offset, limit) == expected


@pytest.mark.parametrize(
    ("offset", "limit", "message"),
    [
        ("x", "10", "offset and limit must be whole numbers."),
        ("-1", "10", "offset must be 0 or more and limit between 1 and 1000."),
        ("0", "1001", "offset must be 0 or more and limit between 1 and 1000."),
    ],
)
def test_bad_paging_arguments_get_one_sentence(offset, limit, message):
    with pytest.raises(RequestError, match=message):
        paging(offset, limit)


def test_pages_of_a_listing_say_where_the_next_one_starts():
    names = [f"t{i:04d}" for i in range(2500)]
    first = page_of("tables", names, 0, 1000)
    assert first["tables"] == names[:1000]
    assert (first["total"], first["next_offset"]) == (2500, 1000)
    last = page_of("tables", names, 2000, 1000)
    assert last["tables"] == names[2000:]
    assert last["next_offset"] is None
    assert page_of("tables", names, 3000, 10) == {"tables": [], "total": 2500, "next_offset": None}


def test_a_search_page_drops_the_extra_hit_that_says_there_is_more():
    hits = [{"table": str(i)} for i in range(11)]
    assert search_page(hits, 20, 10) == {"search": hits[:10], "next_offset": 30}
    assert search_page(hits[:7], 20, 10) == {"search": hits[:7], "next_offset": None}


def test_routing_groups_are_those_the_policy_allows_with_their_clusters():
    clusters = {"a": "default", "b": "etl", "c": "default", "d": "adhoc"}
    assert routing_group_entries(clusters, "default", ["default", "adhoc"]) == [
        {"name": "default", "clusters": ["a", "c"], "default": True},
        {"name": "adhoc", "clusters": ["d"], "default": False},
    ]
    assert [g["name"] for g in routing_group_entries(clusters, "etl", None)] == [
        "default",
        "etl",
        "adhoc",
    ]


def test_the_schema_browser_quotes_the_reserved_words_the_kernel_does():
    """The JupyterLab extension writes names into cells; its list of words that must be
    quoted must be the kernel completion's own."""
    import re
    from pathlib import Path

    from datahub.extensions.completion import _RESERVED

    source = (
        Path(__file__).resolve().parents[2] / "extensions" / "labextension" / "src" / "schema.ts"
    ).read_text()
    body = re.search(r"RESERVED = \[(.*?)\]", source, re.S).group(1)
    assert set(re.findall(r"'([^']+)'", body)) == set(_RESERVED)
