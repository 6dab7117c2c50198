"""SQL cells as a SQL editor, in a real browser (Debian's Chromium, Playwright) on the real
stack: the JupyterLab extension highlights the SQL of %%sql cells (and of SQL strings in
Python cells), and Tab lists what the kernel completes from the signed-in user's own Trino
metadata."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from datahub.stack import demo

pytestmark = pytest.mark.e2e


def open_welcome_notebook(page, stack, sign_in_form, user: str):
    """Sign in as *user*; the welcome notebook (with SQL cells) once its kernel is idle."""
    sign_in_form(page, user, demo.demo_password(user))
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=180_000)
    # The welcome notebook alone: earlier tests' notebooks are not restored.
    page.goto(f"{stack.hub_url}/user/{user}/lab/tree/Welcome%20to%20DataHub.ipynb?reset")
    tab = page.get_by_role("tab", name=re.compile("Welcome to DataHub"))
    expect(tab).to_be_visible(timeout=120_000)
    notebook = page.locator(f'.lm-DockPanel-widget[aria-labelledby="{tab.get_attribute("id")}"]')
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(
        timeout=120_000
    )
    return notebook


def patient_completion(page, notebook, run_cell, new_cell_with) -> None:
    """Let completion wait as long as a cold metadata query may take on this busy test
    machine (the interactive default gives up sooner and offers keywords only)."""
    cell = new_cell_with(page, notebook, "%config SqlCompleter.timeout = 120.0")
    run_cell(page, cell)
    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"))


def completion_list(page, cell) -> list[str]:
    """Press Tab in *cell* and read the completer's list once it shows."""
    completer = page.locator(".jp-Completer:not(.lm-mod-hidden)")  # one per open notebook
    for attempt in range(3):
        # The cursor is still where the text was typed. The first completion in a schema
        # runs a metadata query on Trino; on a busy machine JupyterLab may stop waiting
        # for it (its providerTimeout), and a person presses Tab again.
        page.keyboard.press("Tab")
        try:
            expect(completer).to_be_visible(timeout=30_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    return completer.locator(".jp-Completer-item .jp-Completer-match").all_inner_texts()


def test_sql_in_a_sql_cell_is_highlighted_as_sql(
    page, stack, sign_in_form, shot, new_notebook, new_cell_with
):
    notebook = open_welcome_notebook(page, stack, sign_in_form, "alice")
    cell = notebook.locator(".jp-CodeCell").filter(has_text="%%sql").first
    # The extension's marks: the magic, SQL keywords with the SQL classes.
    expect(cell.locator(".cm-datahub-sql-magic").first).to_have_text("%%sql")
    keywords = cell.locator(".cm-datahub-sql.tok-keyword")
    expect(keywords.first).to_be_visible()
    assert "SELECT" in [k.upper() for k in keywords.all_inner_texts()]
    # A {{ }} parameter typed into a new notebook's cell is marked as one.
    notebook = new_notebook(page, "alice")
    typed = new_cell_with(page, notebook, "%%sql\nSELECT * FROM tpch.tiny.nation WHERE n = {{ n }}")
    params = typed.locator(".cm-datahub-sql-param")
    expect(params.first).to_be_visible()
    # Other marks (bracket matching, SQL tokens) may split it into several spans.
    assert "".join(params.all_inner_texts()) == "{{ n }}"
    expect(typed.locator(".cm-datahub-sql.tok-keyword").first).to_have_text("SELECT")


def test_sql_in_a_python_string_is_highlighted_as_sql(
    page, stack, sign_in_form, new_notebook, new_cell_with
):
    sign_in_form(page, "alice", demo.demo_password("alice"))
    page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=180_000)
    notebook = new_notebook(page, "alice")
    cell = new_cell_with(
        page,
        notebook,
        'df = spark.sql("""SELECT name FROM t WHERE n > {{ n }}""")\nprint("SELECT")',
    )
    embedded = cell.locator(".cm-datahub-sql-embedded")
    expect(embedded.first).to_be_visible()
    # Other marks (Python's own string, bracket matching) may split it into pieces.
    assert "".join(embedded.all_inner_texts()) == "SELECT name FROM t WHERE n > {{ n }}"
    # The SQL's keywords carry the SQL token classes, inside the Python string; the
    # second string holds no statement and gets none.
    keywords = cell.locator(".cm-datahub-sql.tok-keyword")
    expect(keywords).to_have_text(["SELECT", "FROM", "WHERE"])
    expect(cell.locator(".cm-datahub-sql-embedded .cm-datahub-sql.tok-keyword")).to_have_count(3)
    params = cell.locator(".cm-datahub-sql-param")
    expect(params.first).to_be_visible()
    assert "".join(params.all_inner_texts()) == "{{ n }}"


def test_completion_lists_follow_trinos_rules_for_alice_and_dave(
    new_page, stack, sign_in_form, shot, run_cell, new_notebook, new_cell_with
):
    lists = {}
    for user in ("alice", "dave"):
        page = new_page()
        open_welcome_notebook(page, stack, sign_in_form, user)
        notebook = new_notebook(page, user)
        patient_completion(page, notebook, run_cell, new_cell_with)
        cell = new_cell_with(page, notebook, "%%sql\nSELECT * FROM tpch.tiny.")
        lists[user] = completion_list(page, cell)
        if user == "alice":
            shot(page, "sql-completion")
    # Trino lets alice read tpch's customer tables; dave (a contractor) not.
    assert {"customer", "orders", "nation"} <= set(lists["alice"])
    assert {"orders", "nation"} <= set(lists["dave"])
    assert "customer" not in lists["dave"]


def test_alias_columns_complete_in_the_browser(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    patient_completion(page, notebook, run_cell, new_cell_with)
    cell = new_cell_with(page, notebook, "%%sql\nSELECT * FROM tpch.tiny.orders o WHERE o.")
    offered = completion_list(page, cell)
    assert {"orderkey", "custkey", "totalprice"} <= set(offered)
    # The list says what each candidate is (the kernel's types).
    types = page.locator(".jp-Completer:not(.lm-mod-hidden) .jp-Completer-typeExtended")
    assert set(types.all_inner_texts()) == {"column"}


def test_shift_tab_on_a_trino_function_shows_its_documentation(
    page, stack, sign_in_form, new_notebook, new_cell_with
):
    sign_in_form(page, "alice", demo.demo_password("alice"))
    page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=180_000)
    notebook = new_notebook(page, "alice")
    new_cell_with(page, notebook, "%%sql\nSELECT approx_distinct")
    tooltip = page.locator(".jp-Tooltip")
    for attempt in range(6):
        # The kernel fetches Trino's function list in the background the first time (it
        # takes seconds); a person presses Shift+Tab again.
        page.keyboard.press("Shift+Tab")
        try:
            expect(tooltip).to_contain_text("approx_distinct(", timeout=20_000)
            break
        except AssertionError:
            if attempt == 5:
                raise
    expect(tooltip).to_contain_text("bigint")


def test_format_sql_shortcut_lays_out_the_cell(
    page, stack, sign_in_form, new_notebook, new_cell_with
):
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    cell = new_cell_with(page, notebook, "%%sql --limit 5\nselect a, b from t where a > {{ n }}")
    formatted = ["%%sql --limit 5", "SELECT", "a,", "b", "FROM t", "WHERE", "a > {{ n }}"]
    for attempt in range(2):
        # Once more if the kernel of the new notebook was still connecting (formatting
        # formatted SQL changes nothing, so a second press is harmless).
        page.keyboard.press("Alt+Shift+F")
        try:
            expect(cell.locator(".cm-line")).to_have_text(formatted, timeout=60_000)
            break
        except AssertionError:
            if attempt == 1:
                raise


def test_format_sql_leaves_sql_that_does_not_parse_and_says_why(
    page, stack, sign_in_form, new_notebook, new_cell_with
):
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    cell = new_cell_with(page, notebook, "%%sql\nSELECT FROM WHERE (")
    page.keyboard.press("Alt+Shift+F")
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Cannot format this SQL", timeout=120_000)
    dialog.get_by_role("button").last.click()
    expect(cell.locator(".cm-line")).to_have_text(["%%sql", "SELECT FROM WHERE ("])
