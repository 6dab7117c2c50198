"""Formatting the SQL of a %%sql cell with sqlglot (datahub.extensions.formatting)."""

from __future__ import annotations

import pytest

from datahub.extensions.formatting import FormatError, format_cell, format_sql


def test_sql_is_laid_out_one_clause_per_line():
    assert format_sql("select a, b from tpch.tiny.orders where a > 1") == (
        "SELECT\n  a,\n  b\nFROM tpch.tiny.orders\nWHERE\n  a > 1"
    )


def test_the_magic_line_and_its_options_are_kept():
    cell = "%%sql --limit 5 -o out\nselect 1"
    assert format_cell(cell) == "%%sql --limit 5 -o out\nSELECT\n  1"


def test_parameters_survive_formatting_unchanged():
    out = format_sql("select * from t where d >= {{ since }} and x = {{ ident(col) }}")
    assert "{{ since }}" in out and "{{ ident(col) }}" in out
    assert out.startswith("SELECT\n  *\nFROM t\nWHERE")


def test_several_statements_stay_separate():
    assert format_sql("select 1; select 2") == "SELECT\n  1;\n\nSELECT\n  2"


def test_sql_that_does_not_parse_is_one_sentence():
    with pytest.raises(FormatError, match="^Cannot format this SQL: "):
        format_sql("SELECT FROM WHERE (")


def test_other_cells_are_left_alone():
    assert format_cell("x = 1\nprint(x)") == "x = 1\nprint(x)"
    assert format_cell("%%sql\n") == "%%sql\n"


def test_the_frontend_gets_json_text_or_the_error():
    from datahub.extensions.formatting import FormattedCell

    assert FormattedCell("%%sql\nselect 1")._repr_json_() == {"text": "%%sql\nSELECT\n  1"}
    error = FormattedCell("%%sql\nSELECT FROM WHERE (")._repr_json_()["error"]
    assert error.startswith("Cannot format this SQL: ")
