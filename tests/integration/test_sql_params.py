"""Parameters through the real gateway and Trino, as alice: hostile values arrive as values,
SQL with JSON, braces and colons runs exactly as typed, identifiers are quoted, and errors
in parameterised SQL point at the user's own line."""

import datetime as dt
import uuid
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from datahub.extensions.sql import SqlError

HOSTILE = {
    "v_drop": "'; DROP TABLE memory.default.{table}; --",
    "v_quotes": "O'Brien said \"hi\" '' \\' \\\\",
    "v_comment": "x -- y /* z */",
    "v_marker": "{{ v_drop }} ${v_drop} :v_drop ? %s",
    "v_unicode": "ünïcødé ✓ 日本語 🙂 \u202eevil",
    "v_newlines": "line 1\nline 2\r\n\ttab",
    "v_or_true": "' OR '1'='1",
}


def run(ip, cell):
    with capture_output() as captured:
        result = ip.run_cell(cell)
    return result, captured


def query_id(out) -> str:
    return out.stderr.strip().rsplit("query ", 1)[1]


@pytest.fixture
def victim(ip):
    """A table the hostile values name; it must survive them."""
    table = f"params_victim_{uuid.uuid4().hex[:8]}"
    run(ip, f"%sql CREATE TABLE memory.default.{table} AS SELECT 1 AS x")
    yield table
    run(ip, f"%sql DROP TABLE IF EXISTS memory.default.{table}")


def test_hostile_values_arrive_as_values(ip, victim, trino_query_info):
    values = {name: v.replace("{table}", victim) for name, v in HOSTILE.items()}
    ip.user_ns.update(values)
    select = ", ".join(f"{{{{ {name} }}}} AS {name}" for name in values)
    result, out = run(ip, f"%%sql\nSELECT {select}")
    assert result.error_in_exec is None, out.stdout
    row = result.result.iloc[0]
    for name, value in values.items():
        assert row[name] == value, name
    # Trino received a statement with placeholders and the values apart from it.
    info = trino_query_info(query_id(out))
    statement = info["query"]
    assert statement.startswith("EXECUTE IMMEDIATE 'SELECT ? AS v_drop, ? AS v_quotes")
    assert info["state"] == "FINISHED"
    # The table the value names is still there.
    result, _ = run(ip, f"%sql SELECT x FROM memory.default.{victim}")
    assert result.result["x"].tolist() == [1]


def test_values_filter_like_any_literal(ip):
    ip.user_ns["region"] = np.int64(1)  # numpy scalars, as from a DataFrame
    ip.user_ns["names"] = pd.Series(["BRAZIL", "CANADA", "NOWHERE"])
    result, _ = run(
        ip,
        "%%sql\nSELECT name FROM tpch.tiny.nation\n"
        "WHERE regionkey = {{ region }} AND contains({{ names }}, name) ORDER BY 1",
    )
    assert result.result["name"].tolist() == ["BRAZIL", "CANADA"]


def test_python_values_keep_their_types(ip):
    ip.user_ns.update(
        p_date=dt.date(2024, 2, 29),
        p_ts=dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        p_tstz=pd.Timestamp("2024-06-01 12:00", tz="Europe/Berlin"),
        p_dec=Decimal("12345678901234567890.123456789"),
        p_big=2**70,
        p_list=[1, None, 3],
        p_map={"a": 1.5},
        p_row=(1, "x"),
        p_bytes=b"\x00\xff",
        p_uuid=uuid.UUID("12151fd2-7586-11e9-8f9e-2a86e4085a59"),
        p_none=None,
        p_bool=True,
        p_inf=float("inf"),
        p_time=dt.time(1, 2, 3),
    )
    names = [n for n in ip.user_ns if n.startswith("p_")]
    select = ", ".join(f"{{{{ {n} }}}} AS {n}" for n in names)
    result, out = run(ip, f"%%sql --chart none\nSELECT {select}")
    assert result.error_in_exec is None, out.stdout
    row = result.result.iloc[0]
    assert row["p_date"] == pd.Timestamp("2024-02-29")
    assert row["p_ts"] == pd.Timestamp("2024-01-02 03:04:05.123456")
    assert row["p_tstz"] == pd.Timestamp("2024-06-01 10:00", tz="UTC")
    assert str(row["p_tstz"].tz) == "Europe/Berlin"
    assert row["p_dec"] == Decimal("12345678901234567890.123456789")
    assert row["p_big"] == Decimal(2**70)
    assert row["p_list"] == [1, None, 3] and row["p_map"] == {"a": 1.5}
    assert row["p_row"] == (1, "x") and row["p_bytes"] == b"\x00\xff"
    assert row["p_uuid"] == "12151fd2-7586-11e9-8f9e-2a86e4085a59"
    assert row["p_none"] is None
    assert result.result["p_bool"].tolist() == [True]
    assert row["p_inf"] == float("inf") and row["p_time"] == dt.time(1, 2, 3)


SQL_WITH_BRACES = """SELECT -- {{ c }}
  json_extract_scalar(JSON '{"a": {"b": "{{ x }}"}}', '$.a.b') AS j,
  regexp_like('123-45', '^\\d{3}-\\d{2}$') AS re, '10:30:00' AS colons, 'a::b' AS casts,
  ':1' AS positional, '{' AS brace, 1 AS "{{ y }}" /* {{ z }} */,
  (SELECT m.n FROM (VALUES 1, 2, 3) AS t(x) MATCH_RECOGNIZE (ORDER BY x MEASURES count(*) AS n
     ONE ROW PER MATCH PATTERN (A{2,3} {- B -}?) DEFINE A AS true) AS m) AS pattern"""


def test_sql_with_json_braces_and_colons_runs_exactly_as_typed(ip, trino_query_info):
    result, out = run(ip, f"%%sql --chart none\n{SQL_WITH_BRACES}")
    assert result.error_in_exec is None, out.stdout
    assert result.result.iloc[0].tolist() == ["{{ x }}", True, "10:30:00", "a::b", ":1", "{", 1, 3]
    assert list(result.result.columns)[6] == "{{ y }}"
    assert trino_query_info(query_id(out))["query"] == SQL_WITH_BRACES


def test_identifiers_go_through_the_explicit_quoting_form(ip):
    weird = f'we"ird {uuid.uuid4().hex[:6]} ✓'
    ip.user_ns.update(tbl=("tpch", "tiny", "nation"), weird=weird, col='x"; DROP TABLE t; --')
    result, _ = run(ip, "%sql SELECT count(*) AS {{ ident(col) }} FROM {{ ident(tbl) }}")
    assert result.result.to_dict("list") == {'x"; DROP TABLE t; --': [25]}
    run(ip, "%sql CREATE TABLE memory.default.{{ ident(weird) }} AS SELECT 7 AS v")
    try:
        result, _ = run(ip, "%sql SELECT v FROM memory.default.{{ ident(weird) }}")
        assert result.result["v"].tolist() == [7]
    finally:
        run(ip, "%sql DROP TABLE memory.default.{{ ident(weird) }}")


def test_a_value_marker_cannot_stand_for_a_table(ip):
    ip.user_ns["tbl"] = "tpch.tiny.nation"
    result, out = run(ip, "%sql SELECT * FROM {{ tbl }}")
    assert isinstance(result.error_in_exec, SqlError)
    assert out.stdout.startswith("Syntax error at line 1, column 15: mismatched input '?'")
    assert out.stdout.splitlines()[1:] == ["    SELECT * FROM {{ tbl }}", "                  ^"]


def test_missing_variable_is_named_and_nothing_runs(ip):
    ip.user_ns.pop("nowhere", None)
    with capture_output() as out:
        result = ip.run_cell("%sql SELECT {{ nowhere }}")
    assert isinstance(result.error_in_exec, UsageError)
    assert "Parameter {{ nowhere }}: there is no variable 'nowhere'." in out.stderr
    assert "✔" not in out.stderr


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (
            "SELECT {{ n }}, 'a' || 1\nFROM tpch.tiny.nation",
            ["Function not found at line 1, column 21:", "    SELECT {{ n }}, 'a' || 1", 24],
        ),
        (
            "SELECT {{ n }},\n  nope\nFROM tpch.tiny.nation",
            ["Column not found at line 2, column 3:", "      nope", 6],
        ),
        (
            "SELECT {{ n }}, 'it''s'\nFORM tpch.tiny.nation",
            ["Syntax error at line 2, column 6:", "    FORM tpch.tiny.nation", 9],
        ),
    ],
    ids=["semantic-first-line", "semantic-later-line", "syntax-later-line"],
)
def test_errors_in_parameterised_sql_point_at_the_users_line(ip, cell, expected):
    ip.user_ns["n"] = 1
    result, out = run(ip, f"%%sql\n{cell}")
    assert isinstance(result.error_in_exec, SqlError)
    head, src, caret = out.stdout.strip("\n").splitlines()
    assert head.startswith(expected[0]) and src == expected[1]
    assert caret == " " * expected[2] + "^"
