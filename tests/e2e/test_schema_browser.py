"""The schema browser side panel in a real browser (Debian's Chromium, Playwright) on the
real stack: alice opens it, expands down to a table's columns, searches, inserts a
table's name into the cell she is writing and previews the table; a table she creates
shows, with its comment, after Refresh."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from datahub.stack import demo

pytestmark = pytest.mark.e2e


def row(panel, name: str):
    """The tree row (or search hit) whose name is exactly *name*."""
    return panel.locator(".jp-DataHub-schemaRow").filter(
        has=panel.page.locator(
            ".jp-DataHub-schemaName", has_text=re.compile(rf"^{re.escape(name)}$")
        )
    )


def open_node(panel, name: str) -> None:
    node = row(panel, name).first
    node.click()
    expect(node.locator("xpath=..")).to_have_attribute("aria-expanded", "true")


def test_alice_browses_searches_inserts_a_name_and_previews_a_table(
    page, stack, sign_in_form, shot, new_notebook, new_cell_with
):
    sign_in_form(page, "alice", demo.demo_password("alice"))
    page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=180_000)
    notebook = new_notebook(page, "alice")
    cell = new_cell_with(page, notebook, "%%sql\nSELECT * FROM ")

    page.locator('.lm-TabBar-tab[title="DataHub schema browser"]').click()
    panel = page.locator("#jupyter-datahub-schema-browser")
    expect(panel).to_be_visible()
    # The default routing group opens by itself; below it, the catalogs Trino shows alice.
    # The first listing runs a metadata statement on Trino: give it the time a query takes.
    expect(row(panel, "tpch")).to_be_visible(timeout=120_000)
    expect(row(panel, "memory")).to_be_visible()
    open_node(panel, "tpch")
    expect(row(panel, "tiny")).to_be_visible(timeout=120_000)
    open_node(panel, "tiny")
    expect(row(panel, "customer")).to_be_visible(timeout=120_000)  # alice may read it
    open_node(panel, "orders")
    orderkey = row(panel, "orderkey")
    expect(orderkey).to_be_visible(timeout=120_000)
    expect(orderkey.locator(".jp-DataHub-schemaDetail")).to_have_text("bigint")
    expect(row(panel, "totalprice").locator(".jp-DataHub-schemaDetail")).to_have_text("double")
    shot(page, "schema-browser")

    # Search: tables and columns of one catalog whose name contains the text.
    panel.get_by_label("Catalog to search").select_option(label="tpch")
    panel.get_by_label("Search tables and columns").fill("custkey")
    expect(row(panel, "tiny.customer.custkey")).to_be_visible(timeout=120_000)
    expect(row(panel, "tiny.orders.custkey")).to_be_visible()
    panel.get_by_label("Search tables and columns").fill("")
    expect(row(panel, "orderkey")).to_be_visible()  # the tree again, as it was

    # Insert the table's name where the cursor was in the cell.
    row(panel, "orders").first.click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Insert name into cell").click()
    editor = cell.locator(".jp-InputArea-editor")
    expect(editor).to_contain_text("SELECT * FROM tpch.tiny.orders")

    # Preview: a new %%sql cell below the active one, run.
    row(panel, "orders").first.click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Preview 100 rows").click()
    preview = notebook.locator(".jp-CodeCell").filter(has_text="LIMIT 100")
    expect(preview.locator(".jp-InputArea-editor")).to_contain_text(
        "SELECT * FROM tpch.tiny.orders LIMIT 100", timeout=30_000
    )
    summary = preview.locator(".jp-OutputArea-output").first
    expect(summary).to_contain_text("100 rows", timeout=180_000)
    expect(preview.locator(".jp-OutputArea-executeResult")).to_contain_text("orderkey")


def open_memory_default(panel) -> None:
    """Open the memory catalog and its schema ``default`` (not the routing group of the
    same name)."""
    expect(row(panel, "memory")).to_be_visible(timeout=120_000)
    open_node(panel, "memory")
    memory = row(panel, "memory").first.locator("xpath=..")
    expect(row(memory, "default")).to_be_visible(timeout=120_000)
    open_node(memory, "default")


def test_refresh_shows_a_table_created_meanwhile_with_its_comment(
    page, stack, sign_in_form, run_cell, new_notebook, new_cell_with
):
    sign_in_form(page, "alice", demo.demo_password("alice"))
    page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=180_000)
    notebook = new_notebook(page, "alice")
    page.locator('.lm-TabBar-tab[title="DataHub schema browser"]').click()
    panel = page.locator("#jupyter-datahub-schema-browser")
    open_memory_default(panel)  # its listing is now cached in the service
    expect(panel.get_by_text("Loading…")).to_have_count(0, timeout=120_000)

    table = f"browsed_{uuid.uuid4().hex[:8]}"
    cell = new_cell_with(
        page,
        notebook,
        f"%%sql\nCREATE TABLE memory.default.{table} (id bigint) COMMENT 'Made in the browser'",
    )
    run_cell(page, cell)
    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"), timeout=180_000)
    expect(cell.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    expect(row(panel, table)).to_have_count(0)  # the cached listing, until Refresh

    panel.get_by_label("Refresh the schema browser").click()
    open_memory_default(panel)
    created = row(panel, table)
    expect(created).to_be_visible(timeout=120_000)
    comment = created.locator("xpath=..").locator(".jp-DataHub-schemaComment")
    expect(comment).to_have_text("Made in the browser")
