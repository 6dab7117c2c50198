"""Parameter markers and values (datahub.extensions.params): valid SQL is left alone,
values become ``?`` with their values bound, identifiers are quoted by Trino's rules."""

import datetime as dt
import uuid
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

from datahub.extensions.params import bind, find_markers, quote_identifier, to_param_value

UNCHANGED = [
    "SELECT 1",
    # JSON literals, braces and colons in strings
    """SELECT JSON '{"a": {"b": [1, 2]}, "t": "10:30"}' AS j""",
    "SELECT json_extract_scalar('{\"k\": \"{{ v }}\"}', '$.k')",
    "SELECT regexp_like(x, '^\\d{3}-\\d{2,4}$') FROM t",
    "SELECT '{{ name }}', 'it''s {{ x }}', 'a::b', ':1', '{'",
    # quoted identifiers, backquotes and comments
    'SELECT 1 AS "{{ name }}", 2 AS "a""{{b}}"',
    "SELECT `{{ x }}`",
    "SELECT 1 -- {{ not_a_param }}\n, 2",
    "SELECT /* {{ x }}\n {{ y }} */ 1",
    # single braces (row pattern recognition), colons outside strings
    "SELECT * FROM t MATCH_RECOGNIZE (PATTERN (A{2,3} {- B -}) DEFINE A AS true)",
    "SELECT x[1], map(ARRAY['a'], ARRAY[1])['a'] FROM t",
    # unterminated literal: left for Trino to report
    "SELECT 'oops {{ x }}",
]


@pytest.mark.parametrize("sql", UNCHANGED)
def test_sql_without_markers_is_sent_exactly_as_typed(sql):
    assert find_markers(sql) == []
    stmt = bind(sql, {})
    assert stmt.text == sql and stmt.params == []


def test_value_markers_become_question_marks_with_values_in_order():
    ns = {"country": "O'Brien", "n": 3}
    stmt = bind("SELECT * FROM t WHERE c = {{ country }} AND n > {{n}} OR m = {{ n }}", ns)
    assert stmt.text == "SELECT * FROM t WHERE c = ? AND n > ? OR m = ?"
    assert stmt.params == ["O'Brien", 3, 3]


def test_markers_next_to_strings_and_comments_are_still_found():
    ns = {"a": 1, "b": 2}
    stmt = bind("SELECT '{{ x }}', {{ a }} -- {{ c }}\n, {{b}}/* {{ d }} */", ns)
    assert stmt.text == "SELECT '{{ x }}', ? -- {{ c }}\n, ?/* {{ d }} */"
    assert stmt.params == [1, 2]


def test_identifiers_are_quoted_with_trinos_double_quote_rule():
    ns = {"col": 'x"; DROP TABLE t; --', "table": ("tpch", "tiny", "nation")}
    stmt = bind("SELECT 1 AS {{ ident(col) }} FROM {{ ident( table ) }}", ns)
    assert stmt.text == 'SELECT 1 AS "x""; DROP TABLE t; --" FROM "tpch"."tiny"."nation"'
    assert stmt.params == []


@pytest.mark.parametrize("value", ["", 3, None, ("a", ""), []])
def test_identifiers_must_be_non_empty_strings(value):
    with pytest.raises(UsageError, match=r"ident\(t\)"):
        quote_identifier(value, "t")


def test_missing_variable_is_named():
    with pytest.raises(
        UsageError, match=r"Parameter \{\{ region \}\}: there is no variable 'region'"
    ):
        bind("SELECT {{ region }}", {})


def test_dotted_names_read_attributes_and_mapping_keys():
    ns = {"cfg": SimpleNamespace(start=dt.date(2024, 1, 31)), "p": {"country": "DE"}}
    stmt = bind("SELECT {{ cfg.start }}, {{ p.country }}", ns)
    assert stmt.params == [dt.date(2024, 1, 31), "DE"]
    with pytest.raises(UsageError, match="cfg has no 'end'"):
        bind("SELECT {{ cfg.end }}", ns)


@pytest.mark.parametrize(
    "sql",
    ["SELECT {{ 1 + 2 }}", "SELECT {{ }}", "SELECT {{ x", "SELECT {{ name() }}", "SELECT {{x}"],
)
def test_malformed_markers_explain_the_syntax(sql):
    with pytest.raises(UsageError, match=r"write \{\{ name \}\} for a value"):
        find_markers(sql)


def test_source_map_points_each_marker_back_to_the_users_sql():
    sql = "SELECT {{ a }},\n  {{ ident(t) }}"
    stmt = bind(sql, {"a": 1, "t": "x"})
    assert stmt.text == 'SELECT ?,\n  "x"'
    assert stmt.origins[stmt.text.index("?")] == sql.index("{{ a }}")
    assert stmt.origins[stmt.text.index('"x"')] == sql.index("{{ ident")
    assert stmt.origins[stmt.text.index(",")] == sql.index(",")
    assert stmt.param_origins == [sql.index("{{ a }}")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.int64(5), 5),
        (np.float32(1.5), 1.5),
        (np.bool_(True), True),
        (pd.NA, None),
        (pd.NaT, None),
        (np.datetime64("NaT"), None),
        (2**70, Decimal(2**70)),
        (bytearray(b"\x00\x01"), b"\x00\x01"),
        (np.array([1, 2]), [1, 2]),
        (pd.Series(["a", None]), ["a", None]),
        ({3, 1, 2}, [1, 2, 3]),
        ((1, "a"), (1, "a")),
        ({"k": np.int32(1)}, {"k": 1}),
        (uuid.UUID(int=1), uuid.UUID(int=1)),
        (Decimal("1.10"), Decimal("1.10")),
        (dt.time(1, 2, 3), dt.time(1, 2, 3)),
    ],
)
def test_values_are_converted_to_what_the_trino_client_formats(value, expected):
    got = to_param_value(value, "v")
    assert got == expected and type(got) is type(expected)


def test_timestamps_keep_iana_zones_and_other_zones_go_to_utc():
    berlin = to_param_value(pd.Timestamp("2024-06-01 12:00", tz="Europe/Berlin"), "t")
    assert isinstance(berlin, dt.datetime) and berlin.tzinfo == ZoneInfo("Europe/Berlin")
    fixed = dt.datetime(2024, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    got = to_param_value(fixed, "t")
    assert got == fixed and got.tzinfo == ZoneInfo("UTC")
    naive = to_param_value(pd.Timestamp("2024-06-01 12:00:00.5"), "t")
    assert naive == dt.datetime(2024, 6, 1, 12, 0, 0, 500000) and naive.tzinfo is None


def test_unsupported_values_name_the_parameter():
    with pytest.raises(UsageError, match=r"Parameter \{\{ frame \}\}: a DataFrame cannot"):
        to_param_value(pd.DataFrame({"a": [1]}), "frame")
    with pytest.raises(UsageError, match="intervals cannot be bound"):
        to_param_value(dt.timedelta(days=1), "d")
    with pytest.raises(UsageError, match="more than 38 digits"):
        to_param_value(10**40, "big")
