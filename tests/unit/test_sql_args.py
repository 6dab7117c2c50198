"""The %%sql magic's pure helpers: options, --limit wrapping, error messages."""

import pytest
from IPython.core.error import UsageError

from datahub.extensions.progress import format_progress, format_summary
from datahub.extensions.sql import (
    SqlError,
    SqlMagic,
    _gateway_error,
    _option_names,
    _y_columns,
    format_query_error,
    split_options,
    strip_sql,
    wrap_limit,
)

FLAGS, VALUED = _option_names(SqlMagic.sql.parser)


def test_split_options_stops_at_the_sql_and_keeps_its_quoting():
    opts, sql = split_options(
        "-o df --chart bar --y a,b --no-display SELECT '-o' AS x, \"col\" FROM t",
        FLAGS,
        VALUED,
    )
    assert opts == "-o df --chart bar --y a,b --no-display"
    assert sql == "SELECT '-o' AS x, \"col\" FROM t"


def test_split_options_accepts_equals_form_and_no_sql():
    assert split_options("--limit=5 --cluster=adhoc", FLAGS, VALUED) == (
        "--limit=5 --cluster=adhoc",
        "",
    )


def test_split_options_requires_a_value():
    with pytest.raises(UsageError, match="--x needs a value"):
        split_options("--x", FLAGS, VALUED)


def test_every_documented_option_is_parsed():
    for name in [
        "-o",
        "--chart",
        "--x",
        "--y",
        "--color",
        "--no-display",
        "--catalog",
        "--schema",
        "--limit",
        "--cluster",
        "--help",
    ]:
        assert name in FLAGS | VALUED


def test_y_accepts_repeats_and_comma_lists():
    assert _y_columns(["a,b", "c", " d , "]) == ["a", "b", "c", "d"]
    assert _y_columns(None) == []


def test_strip_sql_drops_trailing_semicolons():
    assert strip_sql("  SELECT 1 ;; \n") == "SELECT 1"


def test_limit_wraps_the_query_on_its_own_lines():
    sql, offset = wrap_limit("SELECT * FROM t -- trailing comment;", 10)
    assert sql == "SELECT * FROM (\nSELECT * FROM t -- trailing comment\n) LIMIT 10"
    assert offset == 1


def test_limit_accepts_with_values_and_leading_comments():
    for q in ["WITH x AS (SELECT 1) SELECT * FROM x", "VALUES 1, 2", "-- c\n/* d */ select 1"]:
        assert wrap_limit(q, 3)[0].endswith("LIMIT 3")


def test_limit_rejects_statements_that_are_not_queries():
    with pytest.raises(UsageError, match="only on queries"):
        wrap_limit("SHOW TABLES", 5)
    with pytest.raises(UsageError):
        wrap_limit("SELECT 1", -1)


def test_syntax_error_shows_the_line_and_a_caret_under_the_column():
    msg = format_query_error(
        "SYNTAX_ERROR",
        "line 2:1: mismatched input 'FORM'. Expecting: 'FROM'",
        "SELECT *\nFORM t",
        (2, 1),
    )
    assert msg.splitlines() == [
        "Syntax error at line 2, column 1: mismatched input 'FORM'. Expecting: 'FROM'",
        "    FORM t",
        "    ^",
    ]


def test_error_location_is_mapped_back_through_the_limit_wrapper():
    msg = format_query_error(
        "COLUMN_NOT_FOUND",
        "line 2:8: Column 'nope' cannot be resolved",
        "SELECT nope FROM t",
        (2, 8),
        line_offset=1,
    )
    assert msg.splitlines()[1:] == ["    SELECT nope FROM t", "           ^"]
    assert msg.startswith("Column not found at line 1, column 8")


def test_permission_error_is_one_sentence():
    msg = format_query_error(
        "PERMISSION_DENIED", "Access Denied: Cannot select from table x", "SELECT 1", None
    )
    assert msg == "Access Denied: Cannot select from table x"


def test_sql_error_renders_without_traceback():
    assert SqlError("Query cancelled")._render_traceback_() == ["Query cancelled"]


def test_gateway_401_asks_to_restart_the_server():
    from trino.exceptions import HttpError

    msg = _gateway_error(HttpError("error 401: b'invalid token'"), "http://gw")
    assert "refused your token" in msg and "restart your server" in msg


def test_token_is_hidden_in_config_repr():
    magic = SqlMagic(shell=None)
    magic.token = "s3cret-token"
    assert "s3cret" not in repr(magic.token)
    assert str(magic.token) == "s3cret-token"


def test_progress_and_summary_lines():
    line = format_progress(
        {
            "state": "RUNNING",
            "totalSplits": 10,
            "completedSplits": 5,
            "processedRows": 1_234_567,
            "processedBytes": 2048,
        },
        3.2,
    )
    assert line == "RUNNING · 50% of 10 splits · 1.23M rows · 2.0 KiB · 3.20 s"
    assert format_summary(3, 0.5, "q1") == "✔ 3 rows · 0.50 s · query q1"
