"""The result grid, the chart builder and Run/Cancel in the toolbar of %%sql cells, in a
real browser (Debian's Chromium, Playwright) on the real stack: alice pages through a
million-row result whose rows stay in her kernel while the browser's memory stays small,
sorts, filters and downloads it; she builds a chart whose choice is written into the cell
and drawn again on a re-run; she copies a selection to the clipboard, downloads a sorted and
filtered result as Parquet, and opens a saved notebook without a kernel, whose grid shows the
rows the output carries; bob runs a query and cancels it from the cell's toolbar."""

from __future__ import annotations

import base64
import csv
import io
import re

import pandas as pd
import pytest
from playwright.sync_api import expect

from datahub.stack import demo

pytestmark = pytest.mark.e2e

ROWS = 1_000_000
#: A million rows made by Trino (a cross join of two sequences), three columns.
MILLION = (
    "%%sql --chart none\n"
    "SELECT n, n % 97 AS bucket, 'row ' || CAST(n AS varchar) AS label\n"
    "FROM (SELECT (i - 1) * 1000 + j AS n\n"
    "      FROM UNNEST(sequence(1, 1000)) AS a(i) CROSS JOIN UNNEST(sequence(1, 1000)) AS b(j))\n"
    "ORDER BY n"
)
RUN_SQL = "jupyter-datahub:run-sql-cell"
CANCEL_SQL = "jupyter-datahub:cancel-sql-cell"


def open_lab(page, sign_in_form, user: str) -> None:
    sign_in_form(page, user, demo.demo_password(user))
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=180_000)


def sql_grid(page, notebook, new_cell_with, run_cell, sql: str, count, timeout=180_000):
    """Run *sql* in a new cell of *notebook*; the cell and its result grid, once the grid
    counts *count* (a text or a pattern)."""
    cell = new_cell_with(page, notebook, sql)
    run_cell(page, cell)
    grid = cell.locator(".jp-DataHub-grid")
    expect(grid.locator(".jp-DataHub-gridCount")).to_have_text(count, timeout=timeout)
    return cell, grid


@pytest.fixture
def alice_grid(page, sign_in_form, run_cell, new_notebook, new_cell_with):
    """``alice_grid(sql, count)``: alice's JupyterLab, a new notebook, *sql* run in a cell
    of it; the notebook, the cell and its result grid once the grid counts *count*."""

    def open_grid(sql: str, count):
        open_lab(page, sign_in_form, "alice")
        notebook = new_notebook(page, "alice")
        return (notebook, *sql_grid(page, notebook, new_cell_with, run_cell, sql, count))

    return open_grid


def heap_used(cdp) -> int:
    """The page's JavaScript heap in use after a full garbage collection, in bytes."""
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.collectGarbage")
    return int(cdp.send("Runtime.getHeapUsage")["usedSize"])


def first_column(grid) -> list[str]:
    """The first cells of the rows in view, once none is still loading."""
    expect(grid.locator(".jp-DataHub-gridCell.jp-mod-loading")).to_have_count(0, timeout=120_000)
    return grid.locator(
        ".jp-DataHub-gridDataRow .jp-DataHub-gridCell:first-child"
    ).all_inner_texts()


def scroll_to(grid, fraction: float) -> None:
    """Scroll the grid that far down, and wait for it to draw (on the next frames)."""
    grid.locator(".jp-DataHub-gridScroll").evaluate(
        """(el, f) => new Promise(done => {
            el.scrollTop = Math.round((el.scrollHeight - el.clientHeight) * f);
            requestAnimationFrame(() => requestAnimationFrame(done));
        })""",
        fraction,
    )


def download(page, grid, label: str) -> bytes:
    with page.expect_download(timeout=300_000) as info:
        grid.get_by_role("button", name=label, exact=True).click()
    return open(info.value.path(), "rb").read()


def test_the_grid_pages_through_a_million_rows_kept_in_the_kernel_with_sort_filter_and_csv(
    page, sign_in_form, shot, run_cell, new_notebook, new_cell_with
):
    open_lab(page, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    # A small result first, so the grid's code has run once before the heap is measured.
    warm = new_cell_with(page, notebook, "%%sql --chart none\nSELECT 1 AS x")
    run_cell(page, warm)
    expect(warm.locator(".jp-DataHub-grid")).to_contain_text("1 row", timeout=180_000)
    cdp = page.context.new_cdp_session(page)
    before = heap_used(cdp)

    cell, grid = sql_grid(
        page, notebook, new_cell_with, run_cell, MILLION, "1,000,000 rows", timeout=300_000
    )
    assert first_column(grid)[:3] == ["1", "2", "3"]
    # Page through it: every twentieth of the way, then the very end.
    for step in range(1, 21):
        scroll_to(grid, step / 20)
        shown = [int(v) for v in first_column(grid)]
        assert shown == list(range(shown[0], shown[0] + len(shown)))
        assert abs(shown[0] - (ROWS - len(shown)) * step / 20) <= 2
    assert first_column(grid)[-1] == str(ROWS)

    # Sort (descending: two clicks on the header) and filter, both done by the kernel.
    header = grid.locator(".jp-DataHub-gridHeadCell").first
    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    assert first_column(grid)[:2] == ["1000000", "999999"]
    grid.get_by_label("Filter bucket").fill("=0")
    expect(grid.locator(".jp-DataHub-gridCount")).to_have_text(
        f"{ROWS // 97:,} of 1,000,000 rows", timeout=120_000
    )
    assert first_column(grid)[:2] == [str(97 * (ROWS // 97)), str(97 * (ROWS // 97 - 1))]
    expected = sorted(
        (n for n in range(1, ROWS + 1) if n % 97 == 0 and "row 99" in f"row {n}"), reverse=True
    )
    grid.get_by_label("Filter label").fill("row 99")
    expect(grid.locator(".jp-DataHub-gridCount")).to_have_text(
        f"{len(expected):,} of 1,000,000 rows", timeout=120_000
    )
    shot(page, "result-grid")
    filtered = download(page, grid, "CSV")
    rows = list(csv.DictReader(io.StringIO(filtered.decode())))
    assert [int(r["n"]) for r in rows] == expected
    assert rows[0] == {"n": str(expected[0]), "bucket": "0", "label": f"row {expected[0]}"}

    # The whole result as CSV: its size is what shipping the result to the browser would
    # have cost at the very least; the browser's heap grew by far less.
    grid.get_by_label("Filter bucket").fill("")
    grid.get_by_label("Filter label").fill("")
    expect(grid.locator(".jp-DataHub-gridCount")).to_have_text("1,000,000 rows", timeout=120_000)
    whole = download(page, grid, "CSV")
    assert whole.count(b"\n") == ROWS + 1
    # Still sorted descending.
    assert whole.splitlines()[1] == f"{ROWS},{ROWS % 97},row {ROWS}".encode()
    grown = heap_used(cdp) - before
    assert grown < len(whole) / 2, (
        f"the page's heap grew by {grown:,} bytes for a result of {len(whole):,} CSV bytes"
    )


def test_the_chart_builders_choice_is_written_into_the_cell_and_drawn_again_on_a_rerun(
    page, sign_in_form, shot, run_cell, new_notebook, new_cell_with
):
    open_lab(page, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    cell = new_cell_with(
        page,
        notebook,
        "%%sql\nSELECT n.name AS nation, r.name AS region, n.nationkey\n"
        "FROM tpch.tiny.nation n JOIN tpch.tiny.region r ON n.regionkey = r.regionkey",
    )
    run_cell(page, cell)
    builder = cell.locator(".jp-DataHub-chartBuilder")
    title = cell.locator(".js-plotly-plot .gtitle")
    # The magic's own pick: nation keys by nation, coloured by region.
    expect(title).to_have_text(re.compile(r"^nationkey by nation"), timeout=180_000)
    expect(builder.get_by_label("Chart kind")).to_have_value("bar")

    builder.get_by_label("X axis").select_option("region")
    # Five nations a region: the chart says it sums them.
    expect(title).to_have_text(re.compile(r"^nationkey by region.*sum of"), timeout=60_000)
    builder.get_by_label("Aggregation").select_option("count")
    expect(title).to_have_text("count by region", timeout=60_000)
    first_line = "%%sql --chart bar --x region --y nationkey --color region --agg count"
    expect(cell.locator(".cm-line").first).to_have_text(first_line)
    bars = cell.locator(".js-plotly-plot .bars .point")
    expect(bars).to_have_count(5)  # one bar per region, five nations each
    shot(page, "chart-builder")

    builder.get_by_label("Chart kind").select_option("line")
    expect(cell.locator(".cm-line").first).to_have_text(
        "%%sql --chart line --x region --y nationkey --color region --agg count", timeout=60_000
    )
    builder.get_by_label("Chart kind").select_option("bar")
    expect(cell.locator(".cm-line").first).to_have_text(first_line, timeout=60_000)

    # Run again: the magic reads the options and draws the same chart.
    run_cell(page, cell)
    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[2\]"), timeout=180_000)
    expect(title).to_have_text("count by region", timeout=180_000)
    expect(bars).to_have_count(5)
    expect(builder.get_by_label("X axis")).to_have_value("region")
    expect(builder.get_by_label("Aggregation")).to_have_value("count")
    expect(cell.locator(".cm-line").first).to_have_text(first_line)

    # No chart: the output goes, and the line says so.
    builder.get_by_label("Chart kind").select_option("none")
    expect(cell.locator(".jp-DataHub-chart")).to_have_count(0, timeout=60_000)
    expect(cell.locator(".cm-line").first).to_have_text("%%sql --chart none")
    # The grid's Chart button draws the magic's pick again.
    cell.locator(".jp-DataHub-grid").get_by_role("button", name="Chart", exact=True).click()
    expect(title).to_have_text(re.compile(r"^nationkey by nation"), timeout=60_000)
    expect(cell.locator(".cm-line").first).to_have_text(
        "%%sql --chart bar --x nation --y nationkey --color region"
    )


def press_run(cell, run) -> None:
    """Press the cell toolbar's Run; once more if the new notebook's kernel was still
    connecting and the first press did not register (as the run_cell fixture does)."""
    for attempt in range(2):
        run.click()
        try:
            expect(cell.locator(".jp-InputPrompt")).not_to_have_text("[ ]:", timeout=15_000)
            return
        except AssertionError:
            if attempt == 1:
                raise


def test_run_and_cancel_from_the_toolbar_of_a_sql_cell(
    page, sign_in_form, new_notebook, new_cell_with
):
    open_lab(page, sign_in_form, "bob")
    notebook = new_notebook(page, "bob")
    cell = new_cell_with(page, notebook, "%%sql\nSELECT count(*) AS lines FROM tpch.sf100.lineitem")
    run = cell.locator(f'.jp-cell-toolbar [data-command="{RUN_SQL}"]')
    cancel = cell.locator(f'.jp-cell-toolbar [data-command="{CANCEL_SQL}"]')
    expect(run).to_be_visible(timeout=60_000)
    press_run(cell, run)
    expect(cell.locator(".datahub-sql-progress")).to_contain_text("RUNNING", timeout=180_000)
    cancel.click()
    output = cell.locator(".jp-OutputArea")
    expect(output).to_contain_text("Query cancelled", timeout=120_000)
    expect(output).not_to_contain_text("Traceback")
    # A quick one runs from the toolbar to its grid.
    quick = new_cell_with(page, notebook, "%%sql\nSELECT name FROM tpch.tiny.region")
    quick_run = quick.locator(f'.jp-cell-toolbar [data-command="{RUN_SQL}"]')
    expect(quick_run).to_be_visible(timeout=60_000)
    press_run(quick, quick_run)
    expect(quick.locator(".jp-DataHub-gridCount")).to_have_text("5 rows", timeout=180_000)
    # A Python cell has no SQL buttons.
    python = new_cell_with(page, notebook, "1 + 1")
    expect(python.locator(f'.jp-cell-toolbar [data-command="{RUN_SQL}"]')).to_be_hidden()


def cell_at(grid, row: int, column: int):
    return grid.locator(
        f'.jp-DataHub-gridDataRow[data-row="{row}"] .jp-DataHub-gridCell[data-column="{column}"]'
    )


def test_a_selection_copies_to_the_clipboard_with_rows_fetched_from_the_kernel(
    page, stack, alice_grid
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.hub_url)
    _, _, grid = alice_grid(
        "%%sql --chart none\n"
        "SELECT n, 'row ' || CAST(n AS varchar) AS label, n % 7 AS week_day\n"
        "FROM UNNEST(sequence(1, 5000)) AS t(n) ORDER BY n",
        "5,000 rows",
    )
    # Two cells of one row.
    cell_at(grid, 1, 0).click()
    cell_at(grid, 1, 1).click(modifiers=["Shift"])
    expect(grid.locator(".jp-DataHub-gridCell.jp-mod-selected")).to_have_count(2)
    page.keyboard.press("Control+c")
    expect(grid.locator(".jp-DataHub-gridStatus")).to_have_text("Copied 2 cells")
    assert page.evaluate("navigator.clipboard.readText()") == "2\trow 2"
    # From the first row to the last: rows the page never held come from the kernel.
    cell_at(grid, 0, 0).click()
    scroll_to(grid, 1.0)
    assert first_column(grid)[-1] == "5000"
    cell_at(grid, 4999, 1).click(modifiers=["Shift"])
    page.keyboard.press("Control+c")
    expect(grid.locator(".jp-DataHub-gridStatus")).to_have_text(
        "Copied 10,000 cells", timeout=120_000
    )
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "\n".join(f"{n}\trow {n}" for n in range(1, 5001))


def drag_by(page, grip, dx: float) -> None:
    """Drag *grip* sideways by *dx* pixels with the mouse, as a person would."""
    box = grip.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=10)
    page.mouse.up()


def test_dragging_a_headers_edge_resizes_its_column_down_to_a_minimum(page, alice_grid):
    _, _, grid = alice_grid(
        "%%sql --chart none\n"
        "SELECT n, 'row ' || CAST(n AS varchar) AS label FROM UNNEST(sequence(1, 30)) AS t(n)\n"
        "ORDER BY n",
        "30 rows",
    )
    heads = grid.locator(".jp-DataHub-gridHeadCell")
    first, second = heads.nth(0), heads.nth(1)
    before = first.bounding_box()
    label_x = second.bounding_box()["x"]

    # Wider by the drag: the header, the column's cells (the rows share the header's
    # column template) and the next column, pushed along.
    drag_by(page, first.locator(".jp-DataHub-gridResize"), 120)
    wider = first.bounding_box()["width"]
    assert wider == pytest.approx(before["width"] + 120, abs=1)
    for row in (0, 5):
        assert cell_at(grid, row, 0).bounding_box()["width"] == pytest.approx(wider, abs=0.5)
    assert second.bounding_box()["x"] == pytest.approx(label_x + 120, abs=1)
    assert cell_at(grid, 0, 1).bounding_box()["x"] == pytest.approx(label_x + 120, abs=1)
    # Dragging the edge is not a click on the header: the rows stay unsorted.
    expect(first).to_have_attribute("aria-sort", "none")
    assert first_column(grid)[:3] == ["1", "2", "3"]

    # Far to the left: the column stops at the grid's 48 px, and its cells with it.
    drag_by(page, first.locator(".jp-DataHub-gridResize"), -400)
    assert first.bounding_box()["width"] == pytest.approx(48, abs=0.5)
    assert cell_at(grid, 0, 0).bounding_box()["width"] == pytest.approx(48, abs=0.5)
    assert second.bounding_box()["x"] == pytest.approx(before["x"] + 48, abs=1)
    expect(first).to_have_attribute("aria-sort", "none")


def test_parquet_download_equals_the_kernels_dataframe_as_shown(
    page, run_cell, new_cell_with, alice_grid
):
    notebook, _, grid = alice_grid(
        "%%sql -o orders --chart none\n"
        "SELECT orderkey, custkey, totalprice, orderdate, orderstatus, comment\n"
        "FROM tpch.tiny.orders WHERE orderkey < 2000",
        re.compile(r"^\d+ rows$"),
    )
    # Sorted by price, highest first, and only the finished orders: as the grid shows it.
    price = grid.locator(".jp-DataHub-gridHeadCell").nth(2)
    price.click()
    price.click()
    expect(price).to_have_attribute("aria-sort", "descending")
    grid.get_by_label("Filter orderstatus").fill("F")
    expect(grid.locator(".jp-DataHub-gridCount")).to_have_text(
        re.compile(r"^\d+ of \d+ rows$"), timeout=120_000
    )
    downloaded = pd.read_parquet(io.BytesIO(download(page, grid, "Parquet")))

    # The kernel's own DataFrame (the magic's -o), brought over as Parquet in an output.
    frame = new_cell_with(
        page,
        notebook,
        "import base64, io\nbuffer = io.BytesIO()\norders.to_parquet(buffer, index=False)\n"
        "print(base64.b64encode(buffer.getvalue()).decode(), '~end~')",
    )
    run_cell(page, frame)
    # The printed text may show after the cell's prompt number, and in pieces: wait for
    # its end (a run on a busy machine read an empty output).
    output = frame.locator(".jp-OutputArea-output")
    expect(output).to_contain_text("~end~", timeout=120_000)
    printed = output.inner_text().strip().removesuffix("~end~")
    kernel = pd.read_parquet(io.BytesIO(base64.b64decode(printed.strip())))
    expected = (
        kernel[kernel["orderstatus"] == "F"]
        .sort_values("totalprice", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    assert 0 < len(expected) < len(kernel)
    pd.testing.assert_frame_equal(downloaded, expected)


def test_a_saved_notebook_without_a_kernel_shows_the_rows_its_output_carries(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    open_lab(page, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    cell = new_cell_with(
        page,
        notebook,
        "%%sql --chart none\nSELECT n FROM UNNEST(sequence(1, 120)) AS t(n) ORDER BY n",
    )
    run_cell(page, cell)
    expect(cell.locator(".jp-DataHub-gridCount")).to_have_text("120 rows", timeout=180_000)
    name = "Result to keep.ipynb"
    page.keyboard.press("Control+s")
    # JupyterLab asks for a name the first time an untitled notebook is saved.
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible(timeout=60_000)
    dialog.locator("input").first.fill(name)
    dialog.locator(".jp-Dialog-footer button").last.click()
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).to_have_text(
        name, timeout=60_000
    )
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty")).to_have_count(
        0, timeout=60_000
    )
    # A copy without its kernel's name: JupyterLab opens it asking which kernel to start.
    saved = "Saved result.ipynb"
    copy = new_cell_with(
        page,
        notebook,
        "import nbformat\n"
        f"nb = nbformat.read({name!r}, 4)\n"
        "nb.metadata.pop('kernelspec', None)\n"
        "nb.metadata.pop('language_info', None)\n"
        f"nbformat.write(nb, {saved!r})\n"
        "print('written')",
    )
    run_cell(page, copy)
    expect(copy.locator(".jp-OutputArea-output")).to_have_text("written", timeout=120_000)

    page.goto(f"{stack.hub_url}/user/alice/lab/tree/{saved}?reset")
    page.locator(".jp-Dialog").get_by_role("button", name="No Kernel", exact=True).click(
        timeout=120_000
    )
    grid = page.locator(".jp-DataHub-grid")
    expect(grid).to_have_count(1, timeout=120_000)
    # The output's first 50 rows, the whole count, and what to do to browse the rest;
    # sorting, filtering, charts and downloads need the kernel and are off.
    expect(grid.locator(".jp-DataHub-gridCount")).to_have_text("120 rows")
    expect(grid.locator(".jp-DataHub-gridStatus")).to_have_text(
        "Showing the first 50 rows of 120; run the cell to browse them all."
    )
    for label in ("Chart", "CSV", "Parquet"):
        expect(grid.get_by_role("button", name=label, exact=True)).to_be_disabled()
    expect(grid.get_by_label("Filter n")).to_be_disabled()
    assert first_column(grid)[:2] == ["1", "2"]
    scroll_to(grid, 1.0)
    assert first_column(grid)[-1] == "50"
    header = grid.locator(".jp-DataHub-gridHeadCell").first
    header.click()
    expect(header).to_have_attribute("aria-sort", "none")
    remove_files(page, [name, saved])


def remove_files(page, paths: list[str]) -> None:
    """Delete files from the signed-in user's server (its contents API, as JupyterLab
    does), so later tests and screenshots do not list them."""
    statuses = page.evaluate(
        """async paths => {
            const cookie = document.cookie.match(/_xsrf=([^;]+)/);
            const headers = {'X-XSRFToken': cookie ? decodeURIComponent(cookie[1]) : ''};
            const base = location.pathname.split('/lab')[0];
            const out = [];
            for (const path of paths) {
                const url = `${base}/api/contents/${encodeURIComponent(path)}`;
                out.push((await fetch(url, {method: 'DELETE', headers})).status);
            }
            return out;
        }""",
        paths,
    )
    assert statuses == [204] * len(paths)
