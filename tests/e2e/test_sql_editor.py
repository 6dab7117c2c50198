"""SQL cells as a SQL editor, in a real browser (Debian's Chromium, Playwright) on the real
stack: the JupyterLab extension highlights the SQL of %%sql cells (and of SQL strings in
Python cells), and Tab lists what the kernel completes from the signed-in user's own Trino
metadata, in the kernel's ranking, with columns' Trino types and functions' documentation."""

from __future__ import annotations

import json
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


COMPLETER = ".jp-Completer:not(.lm-mod-hidden)"  # one per open notebook


def completion_list(page, cell, attempts: int = 3) -> list[str]:
    """Press Tab in *cell* and read the completer's list once it shows."""
    completer = page.locator(COMPLETER)
    for attempt in range(attempts):
        # The cursor is still where the text was typed. The first completion in a schema
        # runs a metadata query on Trino; on a busy machine JupyterLab may stop waiting
        # for it (its providerTimeout), and a person presses Tab again.
        page.keyboard.press("Tab")
        try:
            expect(completer).to_be_visible(timeout=30_000)
            break
        except AssertionError:
            if attempt == attempts - 1:
                raise
    return shown(page)


def shown(page) -> list[str]:
    """The entries of the open completion list, top first."""
    return page.locator(f"{COMPLETER} .jp-Completer-item .jp-Completer-match").all_inner_texts()


def shown_types(page) -> list[str]:
    """The type column of the open completion list, top first."""
    return page.locator(f"{COMPLETER} .jp-Completer-typeExtended").all_inner_texts()


def kernel_completions(page, notebook, run_cell, new_cell_with, code: str) -> list[str]:
    """What the notebook's kernel itself completes at the end of *code* (IPython's
    completer, whose SQL matcher ranks), best first."""
    cell = new_cell_with(
        page,
        notebook,
        "import json\n"
        "from IPython.core.completer import provisionalcompleter\n"
        f"code = {code!r}\n"
        "with provisionalcompleter():\n"
        "    found = get_ipython().Completer.completions(code, len(code))\n"
        "    print(json.dumps([c.text for c in found]))",
    )
    run_cell(page, cell)
    output = cell.locator(".jp-OutputArea-output")
    expect(output).to_contain_text("]", timeout=180_000)
    return json.loads(output.inner_text())


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


#: After FROM, with a default catalog and schema: that schema's tables first, then the
#: catalog's schemas, then catalogs (the kernel's ranking; alphabetically they mix).
FROM_CELL = "%%sql --catalog tpch --schema tiny\nSELECT * FROM "


def test_completion_lists_keep_the_kernels_ranking_and_follow_trinos_rules_for_alice_and_dave(
    new_page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    tables = {}
    for user in ("alice", "dave"):
        page = new_page()
        open_welcome_notebook(page, stack, sign_in_form, user)
        notebook = new_notebook(page, user)
        patient_completion(page, notebook, run_cell, new_cell_with)
        cell = new_cell_with(page, notebook, FROM_CELL)
        offered = completion_list(page, cell)
        types = shown_types(page)
        if user == "alice":
            # Typing narrows the list and keeps the ranking: the table first, then the
            # schemas (sf1 …) that start with it.
            page.keyboard.type("s")
            expect(page.locator(f"{COMPLETER} .jp-Completer-match").first).to_have_text("supplier")
            narrowed = shown(page)
            assert narrowed.index("supplier") < narrowed.index("sf1")
        page.keyboard.press("Escape")
        ranked = kernel_completions(page, notebook, run_cell, new_cell_with, FROM_CELL)
        # The list starts with the kernel's, in its order, which is not the alphabetical
        # order JupyterLab's own list would sort it into (words of the cell follow).
        assert len(ranked) >= 10
        assert offered[: len(ranked)] == ranked
        assert ranked != sorted(ranked, key=str.lower)
        # The schema's tables first, each typed as one; then schemas, then catalogs.
        types = types[: len(ranked)]
        count = types.count("table")
        assert types[:count] == ["table"] * count
        assert "schema" in types[count:] and "catalog" in types[count:]
        tables[user] = offered[:count]
    # Trino lets alice read tpch's customer tables; dave (a contractor) not.
    assert {"customer", "orders", "nation"} <= set(tables["alice"])
    assert {"orders", "nation"} <= set(tables["dave"])
    assert "customer" not in tables["dave"]
    assert tables["alice"] != tables["dave"]


def test_alias_columns_complete_in_the_browser_with_their_trino_types(
    page, stack, sign_in_form, shot, run_cell, new_notebook, new_cell_with
):
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    patient_completion(page, notebook, run_cell, new_cell_with)
    cell = new_cell_with(page, notebook, "%%sql\nSELECT * FROM tpch.tiny.orders o WHERE o.")
    offered = completion_list(page, cell)
    # The list says what each column is: its Trino type, from the kernel.
    typed = dict(zip(offered, shown_types(page), strict=True))
    assert {
        "orderkey": "bigint",
        "orderstatus": "varchar(1)",
        "totalprice": "double",
        "orderdate": "date",
    }.items() <= typed.items()
    shot(page, "sql-completion")


def test_sql_in_a_python_string_completes_like_a_sql_cell(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    patient_completion(page, notebook, run_cell, new_cell_with)
    cell = new_cell_with(
        page, notebook, 'df = spark.sql("SELECT * FROM tpch.tiny.orders o WHERE o.'
    )
    offered = completion_list(page, cell)
    typed = dict(zip(offered, shown_types(page), strict=True))
    assert {"orderkey": "bigint", "totalprice": "double"}.items() <= typed.items()
    # The chosen name goes into the string, where the cursor was.
    page.keyboard.press("Enter")
    expect(cell.locator(".cm-line").first).to_have_text(
        'df = spark.sql("SELECT * FROM tpch.tiny.orders o WHERE o.' + offered[0]
    )


#: A cell that counts the kernel's completion requests in ``asked`` (their code).
COUNT_REQUESTS = (
    "kernel = get_ipython().kernel\n"
    "asked = []\n"
    "complete = kernel.do_complete\n"
    "def counted(code, cursor_pos):\n"
    "    asked.append(code)\n"
    "    return complete(code, cursor_pos)\n"
    "kernel.do_complete = counted"
)


def printed(page, notebook, run_cell, new_cell_with, expression: str):
    """What the kernel prints for *expression* (JSON)."""
    cell = new_cell_with(page, notebook, f"import json\nprint(json.dumps({expression}))")
    run_cell(page, cell)
    output = cell.locator(".jp-OutputArea-output")
    expect(output).to_be_visible(timeout=120_000)
    return json.loads(output.inner_text())


def tab_until_listed(page, presses: int = 4) -> tuple[list[str], int]:
    """Press Tab until the completion list shows; the list and the presses it took."""
    for press in range(1, presses + 1):
        page.keyboard.press("Tab")
        try:
            expect(page.locator(COMPLETER)).to_be_visible(timeout=30_000)
        except AssertionError:
            if press == presses:
                raise
        else:
            return shown(page), press
    raise AssertionError("unreachable")


def test_in_sql_only_datahub_asks_the_kernel_and_pythons_completions_stay_out(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    # The attack on the list: JupyterLab's own kernel provider also asks the kernel, for
    # the whole cell. In a SQL string in Python that brings IPython's completions for
    # Python (magics such as %load, file names) into the SQL list, and in a SQL cell it
    # doubles every request. Where DataHub's provider answers, the kernel's stands aside.
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    patient_completion(page, notebook, run_cell, new_cell_with)
    run_cell(page, new_cell_with(page, notebook, COUNT_REQUESTS))
    cells = {
        "python": 'df = spark.sql("SELECT * FROM tpch.tiny.orders WHERE c',
        "sql": "%%sql\nSELECT * FROM tpch.tiny.orders o WHERE o.",
    }
    for kind, source in cells.items():
        run_cell(page, new_cell_with(page, notebook, "asked.clear()"))
        new_cell_with(page, notebook, source)
        offered, presses = tab_until_listed(page)
        page.keyboard.press("Escape")
        asked = printed(page, notebook, run_cell, new_cell_with, "asked")
        assert offered, kind
        assert not [o for o in offered if o.startswith("%")], (kind, offered)
        if kind == "python":
            assert {"custkey", "clerk"} <= set(offered), offered
        else:
            assert {"orderkey", "totalprice"} <= set(offered), offered
        # One request per Tab, each DataHub's: SQL (a Python string's as a %%sql cell).
        assert len(asked) == presses, (kind, presses, asked)
        assert all(code.startswith("%%sql") for code in asked), asked


def complete_cos(page, notebook, new_cell_with) -> list[str]:
    """Type ``SELECT cos`` in a new SQL cell and press Tab until the list offers ``cos``
    first; the list."""
    new_cell_with(page, notebook, "%%sql\nSELECT cos")
    for _ in range(24):
        # The kernel fetches Trino's function list in the background the first time (it
        # takes seconds): until then it offers nothing here (no list shows), and a person
        # presses Tab again a few seconds later.
        page.keyboard.press("Tab")
        try:
            expect(page.locator(COMPLETER)).to_be_visible(timeout=5_000)
        except AssertionError:
            offered = []  # (Escape now would leave the cell for command mode)
        else:
            offered = shown(page)
            if offered[:1] == ["cos"]:
                return offered
            page.keyboard.press("Escape")
    raise AssertionError(f"cos never came first; last offered: {offered}")


def assert_cos_documented(page) -> None:
    """The documentation panel beside the list: the selected function's signature and
    description, from Trino."""
    panel = page.locator(f"{COMPLETER} .jp-Completer-docpanel")
    expect(panel).to_contain_text("cos(double) → double", timeout=60_000)
    expect(panel).to_contain_text("Cosine")


def test_the_completion_list_documents_trino_functions(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    open_welcome_notebook(page, stack, sign_in_form, "alice")
    notebook = new_notebook(page, "alice")
    patient_completion(page, notebook, run_cell, new_cell_with)
    offered = complete_cos(page, notebook, new_cell_with)
    assert {"cos", "cosh", "cosine_similarity"} <= set(offered)
    assert set(shown_types(page)) == {"function"}
    assert_cos_documented(page)


#: JupyterLab's setting of which completion providers answer, and in what order.
PROVIDERS_SETTING = "@jupyterlab/completer-extension:manager"


def put_lab_setting(page, user: str, plugin: str, raw: str) -> int:
    """Save *user*'s JupyterLab setting of *plugin* as JupyterLab does (its REST API, the
    page's XSRF token); the HTTP status."""
    return page.evaluate(
        """async ([url, raw]) => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='));
            const response = await fetch(url, {
                method: 'PUT',
                headers: {
                    'Content-Type': 'application/json',
                    'X-XSRFToken': decodeURIComponent(xsrf.slice('_xsrf='.length))
                },
                body: JSON.stringify({ raw })
            });
            return response.status;
        }""",
        [f"/user/{user}/lab/api/settings/{plugin}", raw],
    )


def test_jupyterlabs_own_kernel_completion_documents_trino_functions_too(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    # With DataHub's provider switched off, JupyterLab's own kernel provider answers in
    # SQL (it stands aside only for DataHub's), and documents its items with a request of
    # its own (the cursor past the end of the code it sends). (bob: alice's tests keep
    # DataHub's provider.)
    open_welcome_notebook(page, stack, sign_in_form, "bob")
    providers = {"jupyter-datahub:sql-completion": -1, "CompletionProvider:kernel": 550}
    raw = json.dumps({"availableProviders": providers})
    assert put_lab_setting(page, "bob", PROVIDERS_SETTING, raw) == 204
    try:
        notebook = new_notebook(page, "bob")  # JupyterLab reloaded: the setting applies
        patient_completion(page, notebook, run_cell, new_cell_with)
        offered = complete_cos(page, notebook, new_cell_with)
        assert {"cos", "cosh"} <= set(offered)
        assert_cos_documented(page)
    finally:
        assert put_lab_setting(page, "bob", PROVIDERS_SETTING, "{}") == 204


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
