"""The result grid's kernel side: filters, sorted views, pages, downloads, the registry,
the comm requests, and the chart builder's requests with the options it writes back."""

from __future__ import annotations

import io
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from IPython.core.magic_arguments import parse_argstring

from datahub import charts
from datahub.extensions import grid
from datahub.extensions.sql import (
    CHART_MIMETYPE,
    PLOTLY_MIMETYPE,
    SqlMagic,
    _option_names,
    chart_choice,
    rewrite_chart_options,
    split_options,
)
from datahub.results import to_dataframe


@pytest.fixture
def frame() -> pd.DataFrame:
    return to_dataframe(
        [
            {"name": "id", "type": "bigint"},
            {"name": "name", "type": "varchar"},
            {"name": "price", "type": "decimal(10,2)"},
            {"name": "day", "type": "date"},
            {"name": "score", "type": "double"},
        ],
        [
            [1, "Alpha", "10.50", "2024-01-03", 1.5],
            [2, "beta", "2.00", "2024-01-01", None],
            [3, None, "7.25", "2024-01-02", 3.0],
            [4, "alphabet", None, None, -1.0],
        ],
    )


def keep(df: pd.DataFrame, column: str, text: str) -> list[int]:
    return df["id"][grid.column_filter(df[column], text)].tolist()


@pytest.mark.parametrize(
    ("column", "text", "ids"),
    [
        ("name", "alpha", [1, 4]),  # contains, ignoring case
        ("name", "=beta", [2]),
        ("name", "!=beta", [1, 4]),
        ("name", "null", [3]),
        ("name", "!null", [1, 2, 4]),
        ("id", ">2", [3, 4]),
        ("id", "<=2", [1, 2]),
        ("id", "2..3", [2, 3]),
        ("id", "3", [3]),
        ("price", ">5", [1, 3]),  # decimals compare as numbers
        ("score", "!=1.5", [3, 4]),  # NaN is never kept by a comparison
        ("day", ">=2024-01-02", [1, 3]),
        ("day", "2024-01-01..2024-01-02", [2, 3]),
        ("day", "01-0", [1, 2, 3]),  # not a date: the shown text contains it
        ("id", "", [1, 2, 3, 4]),
    ],
)
def test_column_filters(frame, column, text, ids):
    assert keep(frame, column, text) == ids


def test_views_sort_with_missing_values_last_and_filter_first(frame):
    by_name = grid.view_positions(frame, [grid.Sort(1)])
    assert frame["id"].iloc[by_name].tolist() == [1, 4, 2, 3]  # Alpha, alphabet, beta, NULL
    down = grid.view_positions(frame, [grid.Sort(2, descending=True)], {0: ">1"})
    assert frame["id"].iloc[down].tolist() == [3, 2, 4]
    assert grid.view_positions(frame) is None  # the frame itself, no copy
    with pytest.raises(grid.GridError, match="no column 9"):
        grid.view_positions(frame, [grid.Sort(8)])


def test_pages_show_text_and_null(frame):
    rows = grid.page_rows(frame, None, 1, 2)
    assert rows == [
        ["2", "beta", "2.00", "2024-01-01", None],
        ["3", None, "7.25", "2024-01-02", "3.0"],
    ]
    positions = grid.view_positions(frame, [grid.Sort(0, descending=True)])
    assert [r[0] for r in grid.page_rows(frame, positions, 0, 10)] == ["4", "3", "2", "1"]
    assert grid.page_rows(frame, None, 10, 5) == []


def test_a_million_rows_are_paged_without_converting_them_all():
    df = pd.DataFrame({"n": np.arange(1_000_000, dtype="int64")})
    positions = grid.view_positions(df, [grid.Sort(0, descending=True)], {0: ">=10"})
    assert len(positions) == 999_990
    assert grid.page_rows(df, positions, 999_980, 100) == [[str(v)] for v in range(19, 9, -1)]
    # A page request never returns more than MAX_PAGE_ROWS rows.
    assert len(grid.page_rows(df, None, 0, 10**9)) == grid.MAX_PAGE_ROWS


def test_csv_download_in_chunks_is_the_view(frame):
    positions = grid.view_positions(frame, [grid.Sort(0, descending=True)], {1: "!null"})
    chunks = list(grid.csv_chunks(frame, positions, rows=2))
    assert len(chunks) == 3  # header, then two chunks of at most two rows
    back = pd.read_csv(io.BytesIO(b"".join(chunks)))
    assert back["id"].tolist() == [4, 2, 1]
    assert back.columns.tolist() == ["id", "name", "price", "day", "score"]


def test_parquet_download_in_chunks_reads_back(frame):
    chunks = list(grid.parquet_chunks(frame, None, size=500))
    assert len(chunks) > 1
    back = pd.read_parquet(io.BytesIO(b"".join(chunks)))
    assert back["id"].tolist() == [1, 2, 3, 4]
    assert back["price"].tolist()[:3] == [Decimal("10.50"), Decimal("2.00"), Decimal("7.25")]
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(grid.GridError, match="distinct column names"):
        list(grid.parquet_chunks(dup))


def test_registry_keeps_the_last_results():
    registry = grid.ResultRegistry(size=2)
    ids = [registry.add(pd.DataFrame({"a": [i]})) for i in range(3)]
    assert len(registry) == 2
    assert registry.get(ids[2]).frame["a"].tolist() == [2]
    with pytest.raises(grid.GridError, match="keeps the last 2"):
        registry.get(ids[0])


def test_the_payload_has_columns_count_and_first_page(frame):
    payload = grid.grid_payload(frame, "abc", ["bigint", "varchar"])
    assert payload["result"] == "abc" and payload["rows"] == 4
    assert [c["kind"] for c in payload["columns"]] == [
        "number",
        "category",
        "number",
        "time",
        "number",
    ]
    assert payload["columns"][0]["type"] == "bigint"
    assert payload["first"][0][1] == "Alpha"


def comm_answers(service: grid.GridService, request: dict) -> list[tuple[dict, list | None]]:
    answers: list[tuple[dict, list | None]] = []
    service.handle(request, lambda msg, bufs: answers.append((msg, bufs)))
    return answers


def test_comm_pages_downloads_and_refusals(frame):
    registry = grid.ResultRegistry()
    rid = registry.add(frame, name="20240101_000000_00001_abcde")
    service = grid.GridService(registry)
    [(page, _)] = comm_answers(
        service,
        {"request": 7, "op": "page", "result": rid, "offset": 0, "limit": 2,
         "sort": [{"column": 4, "descending": True}], "filters": {"0": "<4"}},
    )  # fmt: skip
    assert page == {
        "request": 7,
        "ok": True,
        "total": 3,
        "offset": 0,
        "rows": [
            ["3", None, "7.25", "2024-01-02", "3.0"],
            ["1", "Alpha", "10.50", "2024-01-03", "1.5"],
        ],
    }
    answers = comm_answers(
        service, {"request": 8, "op": "download", "result": rid, "format": "csv"}
    )
    *chunks, last = answers
    assert all(m["request"] == 8 and bufs for m, bufs in chunks)
    assert last[0]["last"] and last[0]["name"] == "20240101_000000_00001_abcde.csv"
    assert b"".join(b for _, bufs in chunks for b in bufs).startswith(
        b"id,name,price,day,score\n1,"
    )
    [(gone, _)] = comm_answers(service, {"request": 9, "op": "page", "result": "nope"})
    assert gone["ok"] is False and "run the cell again" in gone["error"]
    [(bad, _)] = comm_answers(
        service, {"request": 10, "op": "download", "result": rid, "format": "xls"}
    )
    assert bad == {"request": 10, "ok": False, "error": "Downloads are CSV or Parquet."}


# --------------------------------------------------------------------- chart builder

FLAGS, VALUED = _option_names(SqlMagic.sql.parser)


def parse_line(line: str):
    assert line.startswith("%%sql")
    opts, rest = split_options(line[len("%%sql") :], FLAGS, VALUED)
    return parse_argstring(SqlMagic.sql, opts), rest


def test_rewriting_replaces_only_the_chart_options_and_the_magic_reads_them_back():
    line = "%%sql --limit 10 --chart=line --x day --y a,b -o df"
    spec = charts.ChartSpec("bar", x="nation name", y=["total", "-odd"], color="region", agg="mean")
    new = rewrite_chart_options(line, spec)
    assert new == (
        '%%sql --limit 10 -o df --chart bar --x "nation name" --y total --y=-odd '
        "--color region --agg mean"
    )
    args, rest = parse_line(new)
    assert chart_choice(args) == {
        "kind": "bar", "x": "nation name", "y": ["total", "-odd"], "color": "region", "agg": "mean",
    }  # fmt: skip
    assert (args.limit, args.out, rest) == (10, "df", "")
    # SQL on the first line stays; no chart is --chart none.
    assert rewrite_chart_options("%%sql --x a SELECT 1", None) == "%%sql --chart none SELECT 1"
    with pytest.raises(ValueError, match="comma"):
        rewrite_chart_options("%%sql", charts.ChartSpec("bar", x="a", y=["b,c"]))
    with pytest.raises(ValueError, match="%%sql"):
        rewrite_chart_options("df = 1", None)


def test_agg_is_an_option_with_help():
    assert "--agg" in VALUED
    assert "--agg" in SqlMagic.sql.parser.format_help()
    assert parse_argstring(SqlMagic.sql, "--agg count").agg == "count"


def test_the_builders_request_draws_and_writes_the_line_the_magic_draws_again(frame):
    magic = SqlMagic(shell=None)
    rid = magic.results.add(frame)
    choice = {"kind": "bar", "x": "name", "y": ["score"], "color": None, "agg": "max"}
    [(reply, _)] = comm_answers(
        magic.grid_service,
        {"request": 1, "op": "chart", "result": rid, "choice": choice, "line": "%%sql --limit 9"},
    )
    assert reply["ok"], reply
    assert reply["line"] == "%%sql --limit 9 --chart bar --x name --y score --agg max"
    bundle = reply["bundle"]
    assert bundle[CHART_MIMETYPE]["spec"] == {**choice, "color": None}
    # Re-run: the magic's options give the same figure.
    args, _ = parse_line(reply["line"])
    drawn = magic._chart(frame, chart_choice(args))
    assert drawn is not None and drawn[1] == bundle[PLOTLY_MIMETYPE]
    assert drawn[1]["layout"]["title"]["text"].startswith("max of score by name")
    # No chart; a bad choice is one sentence.
    none = magic._builder_chart(magic.results.get(rid), {"kind": "none"}, "%%sql --chart bar")
    assert none == {"bundle": None, "line": "%%sql --chart none"}
    [(bad, _)] = comm_answers(
        magic.grid_service,
        {"request": 2, "op": "chart", "result": rid, "line": "%%sql",
         "choice": {"kind": "histogram", "x": "score", "agg": "sum"}},
    )  # fmt: skip
    assert bad["ok"] is False and "a histogram counts values itself" in bad["error"]


def test_shared_notebooks_show_the_html_table_and_the_plotly_chart(frame):
    from datahub.extensions.sql import _table_bundle, chart_bundle
    from datahub.sharing.render import render_output

    info = {"display_rows": 2, "elapsed": 1.0, "query_id": "q1", "grid": "abc", "types": []}
    table = _table_bundle(frame, info)
    assert table[grid.GRID_MIMETYPE]["rows"] == 4 and "text/html" in table
    shown = render_output({"output_type": "execute_result", "data": table})
    assert shown is not None and shown.kind == "html" and "Alpha" in shown.html
    spec = charts.ChartSpec("bar", x="name", y=["score"])
    bundle = chart_bundle(frame, spec, charts.build_figure(frame, spec), "abc")
    assert bundle[CHART_MIMETYPE]["result"] == "abc"
    shown = render_output({"output_type": "display_data", "data": bundle})
    assert shown is not None and shown.kind == "chart"
