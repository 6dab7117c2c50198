"""SQL completion logic (datahub.extensions.completion): contexts and candidates from a
catalog held in memory, no services."""

from __future__ import annotations

import pytest

from datahub.extensions.completion import (
    Column,
    Function,
    Table,
    analyze,
    complete,
    function_at,
    function_doc,
    lex,
    parse_type,
    quote_name,
)

ADDRESS = "row(city varchar, geo row(lat double, lon double))"


class FakeCatalog:
    """A small tpch-like catalog; records what was asked, to prove laziness."""

    def __init__(self):
        self.asked: list[tuple] = []

    def catalogs(self):
        self.asked.append(("catalogs",))
        return ["memory", "system", "tpch"]

    def schemas(self, catalog):
        self.asked.append(("schemas", catalog))
        return {"tpch": ["information_schema", "sf1", "tiny"], "memory": ["default"]}.get(
            catalog, []
        )

    def tables(self, catalog, schema):
        self.asked.append(("tables", catalog, schema))
        names = {
            ("tpch", "tiny"): ["customer", "lineitem", "nation", "orders", "region"],
            ("memory", "default"): ["Mixed Case", "select", "v_orders"],
        }.get((catalog, schema), [])
        return [Table(n, "VIEW" if n.startswith("v_") else "BASE TABLE") for n in names]

    def columns(self, catalog, schema, table):
        self.asked.append(("columns", catalog, schema, table))
        if (catalog, schema) != ("tpch", "tiny"):
            return []
        return {
            "orders": [
                Column("orderkey", "bigint"),
                Column("custkey", "bigint"),
                Column("totalprice", "double"),
                Column("comment", "varchar(79)"),
            ],
            "customer": [
                Column("custkey", "bigint"),
                Column("name", "varchar(25)"),
                Column("comment", "varchar(117)"),
            ],
            "lineitem": [
                Column("orderkey", "bigint"),
                Column("address", ADDRESS, parse_type(ADDRESS)),
            ],
        }.get(table, [])

    def functions(self):
        return [Function("count", "count(x) → bigint"), Function("concat", "concat(…)")]


def run(sql_with_cursor: str, **defaults):
    """Complete at the ``|`` in the text; (fragment, [(text, type), …])."""
    offset = sql_with_cursor.index("|")
    sql = sql_with_cursor.replace("|", "", 1)
    result = complete(sql, offset, FakeCatalog(), **defaults)
    return result.fragment, [(c.text, c.type) for c in result.candidates]


def texts(sql_with_cursor: str, **defaults) -> list[str]:
    return [text for text, _ in run(sql_with_cursor, **defaults)[1]]


# --------------------------------------------------------------------------- tables


def test_after_from_and_a_catalog_lists_its_schemas():
    assert run("SELECT * FROM tpch.|") == (
        "",
        [("information_schema", "schema"), ("sf1", "schema"), ("tiny", "schema")],
    )


def test_schema_prefix_narrows_and_is_the_fragment_replaced():
    assert run("SELECT * FROM tpch.ti|") == ("ti", [("tiny", "schema")])


def test_after_catalog_and_schema_lists_tables():
    assert texts("SELECT * FROM tpch.tiny.|") == [
        "customer",
        "lineitem",
        "nation",
        "orders",
        "region",
    ]


def test_table_prefix_matches_case_insensitively():
    assert run("select * from tpch.tiny.OR|") == ("OR", [("orders", "table")])


def test_views_are_typed_as_views():
    assert ("v_orders", "view") in run("SELECT * FROM memory.default.|")[1]


def test_names_that_need_quotes_are_quoted():
    names = texts("SELECT * FROM memory.default.|")
    assert '"Mixed Case"' in names and '"select"' in names


def test_a_typed_opening_quote_completes_quoted_names():
    assert run('SELECT * FROM tpch."ti|') == ('"ti', [('"tiny"', "schema")])


def test_after_from_without_qualifier_offers_catalogs():
    assert texts("SELECT * FROM |") == ["memory", "system", "tpch"]


def test_default_catalog_and_schema_resolve_unqualified_names():
    names = run("SELECT * FROM o|", default_catalog="tpch", default_schema="tiny")
    assert names == ("o", [("orders", "table")])
    # With only a catalog: schemas of it, then "schema." lists its tables.
    assert "tiny" in texts("SELECT * FROM |", default_catalog="tpch")
    assert texts("SELECT * FROM tiny.n|", default_catalog="tpch") == ["nation"]


def test_join_and_comma_lists_complete_tables():
    assert texts("SELECT * FROM tpch.tiny.orders o JOIN tpch.tiny.c|") == ["customer"]
    assert texts("SELECT * FROM tpch.tiny.orders o, tpch.tiny.n|") == ["nation"]


def test_insert_into_and_describe_complete_tables():
    assert texts("INSERT INTO tpch.tiny.r|") == ["region"]
    assert texts("DESCRIBE tpch.tiny.l|") == ["lineitem"]


def test_use_completes_catalog_then_schema():
    assert texts("USE |") == ["memory", "system", "tpch"]
    assert texts("USE tpch.s|") == ["sf1"]


def test_show_schemas_from_completes_catalogs():
    assert texts("SHOW SCHEMAS FROM t|") == ["tpch"]


def test_show_tables_from_completes_schemas():
    assert texts("SHOW TABLES FROM tpch.|") == ["information_schema", "sf1", "tiny"]


def test_only_the_schema_asked_for_is_listed():
    catalog = FakeCatalog()
    complete("SELECT * FROM tpch.tiny.", len("SELECT * FROM tpch.tiny."), catalog)
    assert ("tables", "tpch", "tiny") in catalog.asked
    assert not [a for a in catalog.asked if a[0] == "columns"]
    assert not [a for a in catalog.asked if a[0] == "tables" and a[2] != "tiny"]


# --------------------------------------------------------------------------- columns


def test_alias_dot_lists_that_tables_columns():
    assert run("SELECT o.| FROM tpch.tiny.orders o") == (
        "",
        [
            ("comment", "column"),
            ("custkey", "column"),
            ("orderkey", "column"),
            ("totalprice", "column"),
        ],
    )


def test_alias_with_as_and_prefix():
    assert texts("SELECT c.n| FROM tpch.tiny.customer AS c") == ["name"]


def test_table_name_without_alias_qualifies_its_columns():
    assert texts("SELECT orders.t| FROM tpch.tiny.orders") == ["totalprice"]


def test_select_list_before_from_offers_columns_of_every_table_in_scope():
    names = run(
        "SELECT | FROM tpch.tiny.orders o JOIN tpch.tiny.customer c ON o.custkey = c.custkey"
    )[1]
    assert ("name", "column") in names and ("totalprice", "column") in names
    assert ("o", "alias") in names and ("c", "alias") in names
    # Columns first, then aliases, functions, keywords.
    kinds = [kind for _, kind in names]
    assert kinds.index("column") < kinds.index("alias") < kinds.index("function")
    assert kinds.index("function") < kinds.index("keyword")


def test_where_clause_completes_columns_with_a_prefix():
    assert texts("SELECT * FROM tpch.tiny.orders WHERE tot|") == ["totalprice"]


def test_columns_after_operators_and_commas():
    assert "custkey" in texts("SELECT orderkey, | FROM tpch.tiny.orders")
    assert "custkey" in texts("SELECT * FROM tpch.tiny.orders WHERE orderkey = |")


def test_row_fields_complete_after_the_column():
    assert run("SELECT l.address.| FROM tpch.tiny.lineitem l") == (
        "",
        [("city", "field"), ("geo", "field")],
    )


def test_nested_row_fields_complete_at_any_depth():
    assert run("SELECT l.address.geo.l| FROM tpch.tiny.lineitem l") == (
        "l",
        [("lat", "field"), ("lon", "field")],
    )


def test_unqualified_row_column_completes_its_fields():
    assert texts("SELECT address.| FROM tpch.tiny.lineitem") == ["city", "geo"]


def test_unknown_field_completes_nothing():
    assert texts("SELECT l.address.nope.| FROM tpch.tiny.lineitem l") == []


def test_join_on_offers_the_shared_key_first_then_other_shared_columns():
    names = run("SELECT * FROM tpch.tiny.orders o JOIN tpch.tiny.customer c ON |")[1]
    assert names[:2] == [("o.custkey = c.custkey", "join"), ("o.comment = c.comment", "join")]


def test_join_keys_only_from_tables_before_the_join():
    names = texts("SELECT * FROM tpch.tiny.lineitem l JOIN tpch.tiny.orders o ON |")
    assert "l.orderkey = o.orderkey" in names
    assert not [n for n in names if "custkey =" in n]


def test_columns_come_from_the_statement_at_the_cursor_only():
    sql = "SELECT * FROM tpch.tiny.orders; SELECT | FROM tpch.tiny.customer"
    names = texts(sql)
    assert "name" in names and "totalprice" not in names


def test_subquery_alias_is_not_a_table_and_cte_names_are_not_looked_up():
    catalog = FakeCatalog()
    sql = "WITH big AS (SELECT * FROM tpch.tiny.orders) SELECT  FROM big"
    complete(sql, sql.index("  ") + 1, catalog)
    assert ("columns", "tpch", "tiny", "orders") in catalog.asked
    assert not [a for a in catalog.asked if a[0] == "columns" and a[3] == "big"]


def test_columns_are_typed_with_the_table_when_several_are_in_scope():
    result = complete(
        "SELECT  FROM tpch.tiny.orders o, tpch.tiny.customer c",
        len("SELECT "),
        FakeCatalog(),
    )
    name = next(c for c in result.candidates if c.text == "name")
    assert name.detail == "varchar(25) · c"


# --------------------------------------------------------------------------- keywords, functions


def test_keywords_at_the_start_match_the_typed_case():
    assert run("SEL|") == ("SEL", [("SELECT", "keyword")])
    assert run("sel|") == ("sel", [("select", "keyword")])


def test_after_a_table_and_its_alias_keywords_come():
    assert texts("SELECT * FROM tpch.tiny.orders o wh|") == ["when", "where"]


def test_functions_complete_in_expressions_with_their_signature():
    result = complete("SELECT cou", len("SELECT cou"), FakeCatalog())
    (fn,) = [c for c in result.candidates if c.type == "function"]
    assert (fn.text, fn.detail) == ("count", "count(x) → bigint")


# --------------------------------------------------------------------------- no completion


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'tpch.|",
        "SELECT 'it''s tpch.|",
        "-- FROM tpch.|",
        "/* FROM tpch.|",
        "SELECT {{ x.| }}",
    ],
)
def test_nothing_inside_strings_comments_and_parameters(sql):
    assert run(sql) == ("", [])


def test_after_a_closed_string_completion_works_again():
    assert "custkey" in texts("SELECT * FROM tpch.tiny.orders WHERE 'x' = cust|")


# --------------------------------------------------------------------------- pieces


def test_parse_type_reads_nested_and_quoted_row_fields():
    fields = parse_type('row("first name" varchar, geo row(lat double), tags array(varchar))')
    assert [f.name for f in fields] == ["first name", "geo", "tags"]
    assert fields[1].fields == (Column("lat", "double"),)
    assert fields[2].type == "array(varchar)" and fields[2].fields == ()
    assert parse_type("bigint") == ()
    assert parse_type("decimal(12, 2)") == ()


def test_quote_name():
    assert quote_name("orders") == "orders"
    assert quote_name("Orders") == '"Orders"'
    assert quote_name("order") == '"order"'
    assert quote_name('a"b') == '"a""b"'


def test_lex_keeps_offsets_and_unfinished_tokens():
    tokens = lex("SELECT 'ab")
    assert [(t.kind, t.text, t.start) for t in tokens] == [
        ("word", "SELECT", 0),
        ("space", " ", 6),
        ("string", "'ab", 7),
    ]
    assert lex("{{ a }}x")[0].kind == "param"


def test_analyze_reports_the_scope_with_aliases():
    ctx = analyze("SELECT  FROM tpch.tiny.orders AS o JOIN tpch.tiny.customer c ON 1=1", 7)
    assert ctx.kind == "column"
    assert [(r.parts, r.alias) for r in ctx.scope] == [
        (("tpch", "tiny", "orders"), "o"),
        (("tpch", "tiny", "customer"), "c"),
    ]


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT approx_distinct|(x) FROM t", ["approx_distinct"]),
        ("SELECT approx_dis|", ["approx_dis"]),
        ("SELECT APPROX_DISTINCT(x|) FROM t", ["x", "approx_distinct"]),
        ("SELECT date_trunc('day', now()|) FROM t", ["date_trunc"]),
        ("SELECT round(a + (b|)) FROM t", ["b", "round"]),
        ("SELECT 'approx_distinct|' FROM t", []),
        ("SELECT (a|) FROM t", ["a"]),
        ("SELECT 1 |", []),
    ],
)
def test_the_function_at_the_cursor_is_the_name_or_a_call_around_it(sql, names):
    offset = sql.index("|")
    assert function_at(sql.replace("|", ""), offset) == names


def test_a_functions_documentation_is_its_signature_and_description():
    functions = [
        Function("abs", "abs(bigint) → bigint", "Absolute value"),
        Function("now", "now() → timestamp(3) with time zone"),
    ]
    assert function_doc(["x", "abs"], functions) == "abs(bigint) → bigint\n\nAbsolute value"
    assert function_doc(["now"], functions) == "now() → timestamp(3) with time zone"
    assert function_doc(["orders"], functions) is None
