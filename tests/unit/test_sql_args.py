"""The %%sql magic's pure helpers: options, subcommands, error messages."""

import pytest
from IPython.core.error import UsageError

from datahub.extensions.sql import (
    SqlError,
    SqlMagic,
    _gateway_error,
    _option_names,
    _y_columns,
    format_query_error,
    parse_subcommand,
    split_options,
    strip_sql,
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
        "--routing-group",
        "--explain",
        "--help",
    ]:
        assert name in FLAGS | VALUED


def test_help_lists_every_option_and_the_parameter_syntax():
    text = SqlMagic.sql.parser.format_help()
    for name in ["--routing-group", "--explain", "--limit", "--no-display", "-o", "--chart"]:
        assert name in text
    assert "{{ name }}" in text and "{{ ident(name) }}" in text
    assert "%sql history" in text and "%sql clusters" in text


def test_routing_group_is_another_name_for_cluster():
    parser = SqlMagic.sql.parser
    assert parser.parse_args(["--routing-group", "adhoc"]).cluster == "adhoc"
    assert parser.parse_args(["--cluster=etl"]).cluster == "etl"


@pytest.mark.parametrize(
    ("rest", "cell", "expected"),
    [
        ("history", None, ("history", None)),
        ("history 50", None, ("history", 50)),
        ("HISTORY  5", "", ("history", 5)),
        ("clusters", None, ("clusters", None)),
        ("history", "SELECT 1", None),
        ("SELECT history FROM t", None, None),
        ("", "SELECT 1", None),
    ],
)
def test_subcommands_are_recognised_only_alone(rest, cell, expected):
    assert parse_subcommand(rest, cell) == expected


def test_history_count_must_be_a_positive_number():
    with pytest.raises(UsageError, match="number of queries"):
        parse_subcommand("history lots", None)
    with pytest.raises(UsageError):
        parse_subcommand("history 0", None)


def test_y_accepts_repeats_and_comma_lists():
    assert _y_columns(["a,b", "c", " d , "]) == ["a", "b", "c", "d"]
    assert _y_columns(None) == []


def test_strip_sql_drops_trailing_semicolons():
    assert strip_sql("  SELECT 1 ;; \n") == "SELECT 1"


def test_syntax_error_shows_the_line_and_a_caret_under_the_column():
    msg = format_query_error(
        "SYNTAX_ERROR",
        "line 2:1: mismatched input 'FORM'. Expecting: 'FROM'",
        "SELECT *\nFORM t",
        9,
    )
    assert msg.splitlines() == [
        "Syntax error at line 2, column 1: mismatched input 'FORM'. Expecting: 'FROM'",
        "    FORM t",
        "    ^",
    ]


def test_error_at_the_end_of_the_sql_puts_the_caret_after_it():
    msg = format_query_error("SYNTAX_ERROR", "line 1:9: mismatched input '<EOF>'", "SELECT (", 8)
    assert msg.splitlines()[1:] == ["    SELECT (", "            ^"]


def test_error_location_keeps_tabs_so_the_caret_lines_up():
    msg = format_query_error("COLUMN_NOT_FOUND", "Column 'x' cannot be resolved", "\tSELECT x", 8)
    assert msg.splitlines()[1:] == ["    \tSELECT x", "    \t       ^"]


def test_error_without_location_is_one_line():
    assert format_query_error("SYNTAX_ERROR", "bad", "SELECT") == "Syntax error: bad"
    assert format_query_error("TABLE_NOT_FOUND", "Table 'x' does not exist", "S") == (
        "Table not found: Table 'x' does not exist"
    )


def test_permission_error_is_one_sentence():
    msg = format_query_error(
        "PERMISSION_DENIED", "Access Denied: Cannot select from table x", "SELECT 1", None
    )
    assert msg == "Access Denied: Cannot select from table x"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("QUOTA_EXCEEDED", "QuotaExceeded: 50 of 50 queries used today; resets 00:00 UTC"),
        ("INVALID_ROUTING_GROUP", "No cluster serves routing group 'gpu'; ask an admin."),
        ("CLUSTER_UNREACHABLE", "Cluster adhoc is unreachable; try again shortly."),
    ],
)
def test_gateway_refusals_are_shown_as_the_gateway_worded_them(name, text):
    assert format_query_error(name, text, "SELECT 1", 0) == text


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
