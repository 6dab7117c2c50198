"""Notebook validation, the stored form, SQL extraction and diffs, safe names and paths."""

import json

import nbformat
import pytest

from datahub.sharing.errors import SharingError
from datahub.sharing.notebooks import (
    canonical_notebook,
    check_workspace_path,
    format_size,
    numbered_file_name,
    safe_file_name,
    sql_blocks,
    sql_diff,
    sql_text,
    unified_diff_text,
)
from datahub.sharing.search import check_filter, check_sort, parse_query


def make_notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if cell.startswith("#"):
            nb.cells.append(nbformat.v4.new_markdown_cell(cell))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell))
    return json.loads(nbformat.writes(nb))


def test_a_valid_notebook_is_stored_as_v4_json():
    text = canonical_notebook(make_notebook("# Title", "%%sql\nSELECT 1"), 10**6)
    node = nbformat.reads(text, as_version=4)
    nbformat.validate(node)
    assert node.cells[1].source == "%%sql\nSELECT 1"


def test_trust_marks_are_removed():
    nb = make_notebook("print(1)")
    nb["cells"][0]["metadata"]["trusted"] = True
    nb["metadata"]["signature"] = "sha256:forged"
    stored = json.loads(canonical_notebook(nb, 10**6))
    assert "trusted" not in stored["cells"][0]["metadata"]
    assert "signature" not in stored["metadata"]


@pytest.mark.parametrize(
    "content",
    [
        {"cells": "not a list", "nbformat": 4, "nbformat_minor": 5, "metadata": {}},
        {"hello": "world"},
        ["not", "an", "object"],
        "{not json",
    ],
)
def test_invalid_notebooks_are_refused_with_a_clear_error(content):
    with pytest.raises(SharingError) as error:
        canonical_notebook(content, 10**6)
    assert error.value.status == 400
    assert "notebook" in error.value.message or "JSON" in error.value.message


def test_oversize_notebooks_are_refused_with_413():
    nb = make_notebook("x = '" + "a" * 5000 + "'")
    with pytest.raises(SharingError) as error:
        canonical_notebook(nb, 2000)
    assert error.value.status == 413
    assert "limit" in error.value.message and "Clear Outputs" in error.value.message


def test_sql_blocks_come_from_sql_cells_and_line_magics():
    nb = make_notebook(
        "# Intro",
        "\n%%sql -o shipped\nSELECT returnflag\nFROM tpch.tiny.lineitem\n",
        "df = shipped.head()\n%sql SELECT 42",
        "print('not sql')",
    )
    blocks = sql_blocks(nb)
    assert [(b.cell, b.magic, b.sql) for b in blocks] == [
        (1, "%%sql -o shipped", "SELECT returnflag\nFROM tpch.tiny.lineitem"),
        (2, "%sql", "SELECT 42"),
    ]
    assert sql_text(nb).startswith("-- %%sql -o shipped\nSELECT returnflag")


def test_sql_diff_shows_removed_and_added_lines():
    old = "-- %%sql\nSELECT a\nFROM t"
    new = "-- %%sql\nSELECT a, b\nFROM t\nWHERE b > 1"
    lines = sql_diff(old, new)
    assert ("remove", "SELECT a") in [(line.kind, line.text) for line in lines]
    assert ("add", "SELECT a, b") in [(line.kind, line.text) for line in lines]
    assert ("add", "WHERE b > 1") in [(line.kind, line.text) for line in lines]
    assert lines[0].kind == "hunk"
    text = unified_diff_text(lines)
    assert "-SELECT a\n+SELECT a, b" in text


def test_a_removed_sql_comment_is_not_mistaken_for_a_diff_header():
    lines = sql_diff("-- %%sql\nSELECT 1", "SELECT 1")
    assert ("remove", "-- %%sql") in [(line.kind, line.text) for line in lines]


def test_identical_sql_has_no_diff():
    assert sql_diff("SELECT 1", "SELECT 1") == []


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Sales by region", "Sales by region.ipynb"),
        ("../../.bashrc", "bashrc.ipynb"),
        ("a/b\\c", "a-b-c.ipynb"),
        ("report.ipynb", "report.ipynb"),
        ("...", "notebook.ipynb"),
        ("x" * 300, "x" * 100 + ".ipynb"),
        ("Tab\tand\nnewline", "Tab and newline.ipynb"),
    ],
)
def test_file_names_from_titles_cannot_escape_or_hide(title, name):
    assert safe_file_name(title) == name


def test_taken_names_get_a_number():
    assert numbered_file_name("Sales.ipynb", 2) == "Sales (2).ipynb"


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd.ipynb",
        "/etc/passwd.ipynb",
        "~/x.ipynb",
        "a/../../b.ipynb",
        ".ssh/x.ipynb",
        "a\\b.ipynb",
        "a\x00b.ipynb",
        "notes.txt",
        "",
    ],
)
def test_path_tricks_are_refused(path):
    with pytest.raises(SharingError):
        check_workspace_path(path)


def test_workspace_paths_are_kept():
    assert check_workspace_path("reports/Sales by region.ipynb") == "reports/Sales by region.ipynb"


def test_sizes_read_like_people_write_them():
    assert format_size(512) == "512 bytes"
    assert format_size(10 * 1024 * 1024) == "10.0 MB"


def test_search_queries_split_words_owners_and_tags():
    query = parse_query('Revenue "by region" owner:Alice tag:#Weekly')
    assert query.words == ("revenue", "by region")
    assert query.owners == ("alice",)
    assert query.tags == ("weekly",)
    assert parse_query("  ").empty
    assert parse_query('unbalanced "quote').words == ("unbalanced", "quote")


def test_unknown_filters_and_sorts_are_clear_errors():
    assert check_filter(None) == "all" and check_sort("VIEWS") == "views"
    with pytest.raises(SharingError, match="mine"):
        check_filter("everything")
    with pytest.raises(SharingError, match="copies"):
        check_sort("popular")
