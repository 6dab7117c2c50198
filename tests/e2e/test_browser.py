"""What a person does in a browser, in a real browser: Debian's Chromium driven by Playwright.

Screenshots of each step illustrate the README (`make screenshots` refreshes them). The page,
screenshot, sign-in and run-cell helpers are fixtures in conftest.py.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from datahub.stack import demo


def test_wrong_password_is_explained_on_the_login_page(page, shot, sign_in_form):
    sign_in_form(page, "alice", "wrong")
    expect(page.locator(".login_error")).to_have_text("Invalid username or password.")
    shot(page, "login-error")


def test_sign_in_opens_jupyterlab_and_a_sql_cell_shows_table_and_chart(
    page, stack, shot, sign_in_form, run_cell
):
    page.goto(f"{stack.hub_url}/hub/login")
    expect(page.get_by_role("heading", name="Welcome to DataHub")).to_be_visible()
    shot(page, "login")
    sign_in_form(page, "alice", demo.demo_password("alice"))
    # The hub starts her server and JupyterLab opens on the welcome notebook.
    page.wait_for_url(re.compile(r"/user/alice/lab/tree/Welcome"), timeout=180_000)
    tab = page.get_by_role("tab", name=re.compile("Welcome to DataHub"))
    expect(tab).to_be_visible(timeout=120_000)
    # The same, without restoring notebooks that earlier tests opened in her workspace.
    page.goto(f"{stack.hub_url}/user/alice/lab/tree/Welcome%20to%20DataHub.ipynb?reset")
    expect(tab).to_be_visible(timeout=120_000)
    # The welcome notebook is the main area's visible notebook (JupyterLab may restore
    # other notebooks of her workspace in background tabs).
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    notebook = panel.locator(".jp-Notebook")
    expect(notebook).to_be_visible()
    # Run the first SQL example with Shift+Enter, once its kernel is idle.
    expect(panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(
        timeout=120_000
    )
    whoami = notebook.locator(".jp-CodeCell").filter(has_text="current_user").first
    run_cell(page, whoami)
    expect(whoami.locator(".jp-OutputArea")).to_contain_text("alice", timeout=120_000)
    # The aggregation example: the result grid and an interactive Plotly chart.
    aggregation = notebook.locator(".jp-CodeCell").filter(has_text="sum(quantity)").first
    run_cell(page, aggregation)
    output = aggregation.locator(".jp-OutputArea")
    expect(output.locator(".js-plotly-plot")).to_be_visible(timeout=120_000)
    expect(output.locator(".jp-DataHub-grid [role=gridcell]").first).to_be_visible()
    expect(output).to_contain_text("rows")
    aggregation.scroll_into_view_if_needed()
    shot(page, "jupyterlab-sql")
