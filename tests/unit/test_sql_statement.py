"""The statement the magic sends (datahub.extensions.statement): --limit, EXPLAIN, bound
values as the trino client sends them, and error locations mapped back to the user's SQL.

The locations used here are the ones Trino 476 reports (checked against the real server
by tests/integration/test_sql_params.py)."""

import datetime as dt

import pytest
import trino
from IPython.core.error import UsageError

from datahub.extensions import trino_compat
from datahub.extensions.params import bind
from datahub.extensions.statement import (
    Statement,
    line_and_column,
    prepare,
    strip_sql,
    wrap_limit,
)


@pytest.fixture(scope="module")
def cursor():
    # Only its value formatting is used; nothing connects.
    return trino.dbapi.connect(host="localhost", port=1, user="nobody").cursor()


def fmt(cursor):
    """How the magic formats bound values: the trino client's own literal writer."""
    return trino_compat.format_parameter(cursor.connection)


def user(sql):
    return Statement.from_user(sql)


def test_strip_sql_drops_trailing_semicolons():
    assert strip_sql("  SELECT 1 ;; \n") == "SELECT 1"


def test_limit_wraps_the_query_on_its_own_lines():
    stmt = wrap_limit(user("SELECT * FROM t -- trailing comment"), 10)
    assert stmt.text == "SELECT * FROM (\nSELECT * FROM t -- trailing comment\n) LIMIT 10"
    assert stmt.origin_at(2, 8) == 7  # the '*' of the user's SQL


def test_limit_accepts_with_values_and_leading_comments():
    for q in ["WITH x AS (SELECT 1) SELECT * FROM x", "VALUES 1, 2", "-- c\n/* d */ select 1"]:
        assert wrap_limit(user(q), 3).text.endswith("LIMIT 3")


def test_limit_rejects_statements_that_are_not_queries():
    with pytest.raises(UsageError, match="only on queries"):
        wrap_limit(user("SHOW TABLES"), 5)
    with pytest.raises(UsageError):
        wrap_limit(user("SELECT 1"), -1)


def test_without_parameters_the_statement_goes_as_it_is(cursor):
    sent = prepare(user("SELECT 1"), fmt(cursor))
    assert sent.text == "SELECT 1"
    sent = prepare(user("SELECT 1"), fmt(cursor), explain_plan=True)
    assert sent.text == "EXPLAIN SELECT 1"
    assert sent.locate(1, 9) == 0


def test_parameters_are_sent_exactly_as_the_trino_client_sends_them(cursor):
    values = {
        "s": "'; DROP TABLE t; --",
        "d": dt.date(2024, 1, 31),
        "xs": [1, None],
        "b": b"\x00",
        "f": float("nan"),
    }
    stmt = bind("SELECT {{ s }}, 'it''s', {{ d }}, {{ xs }}, {{ b }}, {{ f }}", values)
    sent = prepare(stmt, fmt(cursor))
    # What cursor.execute(sql, params) sends on a Trino with EXECUTE IMMEDIATE.
    assert sent.text == cursor._execute_immediate_statement(stmt.text, stmt.params).query
    assert sent.text == (
        "EXECUTE IMMEDIATE 'SELECT ?, ''it''''s'', ?, ?, ?, ?' USING "
        "'''; DROP TABLE t; --',DATE '2024-01-31',ARRAY[1,NULL],X'00',nan()"
    )


def test_explain_with_parameters_explains_the_bound_statement(cursor):
    stmt = bind("SELECT {{ n }}", {"n": 1})
    sent = prepare(stmt, fmt(cursor), explain_plan=True)
    assert sent.text == "EXPLAIN EXECUTE IMMEDIATE 'SELECT ?' USING 1"


@pytest.fixture
def bound(cursor):
    sql = "SELECT {{ n }}, 'a''b' || 1,\n  nope\nFORM t"
    stmt = bind(sql, {"n": 1})
    return sql, prepare(stmt, fmt(cursor))


def test_semantic_error_on_the_first_line_is_shifted_by_the_literal(bound):
    sql, sent = bound
    # Trino: inner column + len("EXECUTE IMMEDIATE '") on line 1.
    inner_col = "SELECT ?, 'a''b' || 1".index("||") + 1
    offset = sent.locate(1, inner_col + 19)
    assert offset == sql.index("||")


def test_semantic_error_on_a_later_line_is_not_shifted(bound):
    sql, sent = bound
    assert sent.locate(2, 3) == sql.index("nope")


def test_syntax_error_on_a_later_line_is_shifted_too(bound):
    sql, sent = bound
    # Trino reports parse errors inside the literal with the column shift on every line.
    t = sql.index("t", sql.index("FORM"))
    assert sent.locate(3, 6 + 19, syntax_error=True) == t
    assert sent.locate(3, 6) == t  # a semantic error there is not shifted


def test_error_in_a_marker_points_at_the_marker(bound):
    sql, sent = bound
    assert sent.locate(1, 8 + 19) == sql.index("{{ n }}")


def test_error_past_the_end_points_just_after_the_sql():
    assert user("SELECT (").origin_at(1, 9) == len("SELECT (")
    stmt = wrap_limit(user("SELECT ("), 5)
    assert stmt.origin_at(3, 1) is None  # the wrapper's own ")": no caret


def test_line_and_column_are_one_based():
    assert line_and_column("ab\ncd", 0) == (1, 1)
    assert line_and_column("ab\ncd", 4) == (2, 2)
