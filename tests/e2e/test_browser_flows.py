"""The remaining browser flows, in a real browser (Debian's Chromium driven by Playwright)
against the real stack: cancelling a query from JupyterLab's toolbar, publishing a
notebook and opening a copy of it as someone else, an admin editing a quota that then
refuses a query, and a non-admin finding no admin links and no way into admin pages.

The demo users' servers are real processes that outlive a test and may be shared with
another test session on this machine, so each flow works in a new notebook of its own
instead of relying on a clean workspace. Screenshots illustrate the README.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote

import pytest
import requests
from playwright.sync_api import expect

from datahub.stack import demo

pytestmark = pytest.mark.e2e

SERVICE = "/services/datahub/"
#: The DataHub kernel's name in JupyterLab's launcher (datahub/share/jupyter/kernels).
KERNEL = "Python 3 (DataHub SQL)"
#: Long enough (Trino generates 600M rows) that it is still running when interrupted.
LONG_QUERY = "SELECT count(*) FROM tpch.sf100.lineitem"
#: Where no link on a non-admin's page may point: any path part starting with "admin"
#: (the hub's admin page, the service's admin pages) and everyone's query history.
ADMIN_HREF = re.compile(r"(^|/)admin|queries/all")
ADMIN_ONLY = "Only DataHub administrators may do this."
#: The shared notebook's title (the gallery and the viewer are screenshots for the README).
TITLE = "Lines by return flag"


def open_lab(page, stack, sign_in_form, user: str) -> None:
    """Sign in as ``user``, wait for the hub to start their server and JupyterLab to open
    on the welcome notebook, then load JupyterLab without it: the welcome notebook takes
    the focus back whenever it finishes opening, and a new notebook must keep it."""
    sign_in_form(page, user, demo.demo_password(user))
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=180_000)
    expect(page.get_by_role("tab", name=re.compile("Welcome to DataHub"))).to_be_visible(
        timeout=120_000
    )
    page.goto(f"{stack.hub_url}/user/{user}/lab?reset")  # without tabs earlier tests left
    expect(page.get_by_role("button", name="New Launcher", exact=True)).to_be_visible(
        timeout=120_000
    )


def in_tab(page, tab):
    """What a JupyterLab tab shows: a notebook, a launcher… (Lumino links the panel to
    its tab's id)."""
    expect(tab).to_be_visible(timeout=120_000)
    return page.locator(f'.lm-DockPanel-widget[aria-labelledby="{tab.get_attribute("id")}"]')


def new_sql_notebook(page):
    """Open a new notebook with the DataHub kernel from a new launcher, as a person does;
    return its panel once the kernel is idle."""
    page.get_by_role("button", name="New Launcher", exact=True).click()
    current = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    expect(current).to_have_text("Launcher")
    launcher = in_tab(page, current)
    launcher.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{KERNEL}"]').click()
    # The new notebook takes the launcher's place.
    expect(current).to_have_text(re.compile(r"\.ipynb$"))
    notebook = in_tab(page, current)
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(
        timeout=120_000
    )
    return notebook


def type_into_cell(page, cell, source: str) -> None:
    """Type ``source`` into a cell's editor as typed text (no auto-closed brackets)."""
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.insert_text(source)
    expect(cell.locator(".jp-InputArea-editor")).to_contain_text(source.splitlines()[-1])


def links_on(page) -> list[str]:
    """Every link target on the page and in its frames (the hub's home page embeds the
    quota box), once each frame has loaded."""
    frames = page.locator("iframe")
    for index in range(frames.count()):
        expect(frames.nth(index).content_frame.locator("body")).not_to_be_empty()
    return [
        href
        for frame in page.frames
        for href in frame.eval_on_selector_all(
            "a[href]", "links => links.map(a => a.getAttribute('href'))"
        )
    ]


# ------------------------------------------------------------------ 1. cancel a query


def test_interrupting_the_kernel_from_the_toolbar_cancels_the_running_query(
    page, stack, sign_in_form, run_cell, trino_query_info
):
    open_lab(page, stack, sign_in_form, "bob")
    notebook = new_sql_notebook(page)
    cell = notebook.locator(".jp-CodeCell").first
    type_into_cell(page, cell, f"%%sql\n{LONG_QUERY}")
    run_cell(page, cell)
    # The live progress shows the query running on Trino, with its id.
    progress = cell.locator(".datahub-sql-progress")
    expect(progress).to_contain_text("RUNNING", timeout=120_000)
    query_id = re.search(r"query (\S+)", progress.inner_text()).group(1)
    notebook.get_by_role("button", name="Interrupt the kernel").click()
    output = cell.locator(".jp-OutputArea")
    expect(output).to_contain_text("Query cancelled")
    expect(output).not_to_contain_text("KeyboardInterrupt")
    expect(output).not_to_contain_text("Traceback")
    # Trino itself ended the query as cancelled by the user.
    info = trino_query_info(query_id)
    assert info["session"]["user"] == "bob"
    assert info["state"] == "FAILED" and info["errorCode"]["name"] == "USER_CANCELED"
    # So does bob's query history in the service.
    page.goto(f"{stack.hub_url}{SERVICE}queries")
    expect(page.locator(f'tr[data-query-id="{query_id}"]')).to_contain_text("CANCELED")


# ------------------------------------------------------------------ 2. publish and copy


def test_a_notebook_published_from_the_gallery_is_viewed_and_copied_by_a_colleague(
    page, new_page, stack, sign_in_form, run_cell, shot
):
    marker = uuid.uuid4().hex[:8]
    sql = (
        "%%sql\nSELECT returnflag, count(*) AS lines\nFROM tpch.tiny.lineitem\n"
        "GROUP BY returnflag\nORDER BY returnflag"
    )
    # bob runs a query in a new notebook, so that it has a chart, and saves it.
    open_lab(page, stack, sign_in_form, "bob")
    notebook = new_sql_notebook(page)
    cell = notebook.locator(".jp-CodeCell").first
    type_into_cell(page, cell, sql)
    run_cell(page, cell)
    expect(cell.locator(".jp-OutputArea .js-plotly-plot")).to_be_visible(timeout=120_000)
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached()
    # The first save asks for a name.
    file_name = f"lines-{marker}.ipynb"
    notebook.get_by_role("button", name=re.compile("^Save")).click()
    rename = page.get_by_role("dialog")
    rename.get_by_role("textbox").fill(file_name)
    rename.get_by_role("button", name="Rename and Save").click()
    tab = page.get_by_role("tab", name=file_name)
    expect(tab).to_be_visible()
    expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"), timeout=30_000)
    # He publishes it from the gallery's publish page, shared with his group.
    page.goto(f"{stack.hub_url}{SERVICE}gallery/publish")
    page.get_by_label("Notebook in your workspace").select_option(file_name)
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Description").fill("Line items per return flag, with a chart.")
    page.get_by_label("Tags (comma-separated)").fill("returns")
    page.get_by_label(re.compile("^Share with")).fill("group:analysts")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    notebook_id = re.search(r"/gallery/(\d+)\?version=1$", page.url).group(1)
    # dave, also an analyst, finds it in the gallery.
    dave = new_page()
    sign_in_form(dave, "dave", demo.demo_password("dave"), f"{SERVICE}gallery")
    expect(dave.get_by_role("heading", name="Shared notebooks")).to_be_visible()
    item = dave.locator(f'.dh-gallery-item[data-notebook-id="{notebook_id}"]')
    expect(item).to_contain_text(TITLE)
    expect(item).to_contain_text("by bob")
    shot(dave, "gallery")
    # The viewer shows the SQL, and the chart drawn by the page's own script under a
    # Content-Security-Policy that refuses inline scripts (a violation would be logged).
    refused: list[str] = []
    dave.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    with dave.expect_response(re.compile(rf"/gallery/{notebook_id}$")) as viewer:
        item.get_by_role("link", name=TITLE).click()
    assert "script-src 'self'" in viewer.value.headers["content-security-policy"]
    expect(dave.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(dave.locator(".dh-code").first).to_contain_text("FROM tpch.tiny.lineitem")
    chart = dave.locator(".dh-chart")
    expect(chart).to_have_class(re.compile(r"\bjs-plotly-plot\b"))
    expect(chart.locator(".main-svg").first).to_be_visible()
    assert refused == []
    shot(dave, "notebook-view")
    # "Open a copy" writes it into dave's own workspace and opens it in his JupyterLab
    # (a name already taken there gets a number, so read the name from the address).
    dave.get_by_role("button", name="Open a copy in JupyterLab").click()
    dave.wait_for_url(re.compile(r"/user/dave/lab/tree/gallery/[^/]+\.ipynb$"), timeout=180_000)
    copy_name = unquote(dave.url.rsplit("/", 1)[1])
    assert copy_name.startswith(TITLE)
    copy = in_tab(dave, dave.get_by_role("tab", name=copy_name))
    expect(copy.locator(".jp-CodeCell").first).to_contain_text("FROM tpch.tiny.lineitem")


# ------------------------------------------------------------------ 3. quota edit


@pytest.fixture
def dave_policy_restored(stack, hub, sign_in):
    """dave's quota policy as it was before the test, put back after it whatever happens
    (through the REST API, as carol)."""
    _, response = sign_in("carol", demo.demo_password("carol"))  # the hub knows her
    assert response.status_code == 302
    api = requests.Session()
    api.headers["Authorization"] = f"token {hub.token_for('carol')}"
    url = f"{stack.hub_url}{SERVICE}api/quota/policies/user/dave"
    before = api.get(url, timeout=60)
    assert before.status_code in (200, 404), before.text
    yield
    if before.status_code == 200:
        restored = api.put(url, json={"limits": before.json()["limits"]}, timeout=60)
    else:
        restored = api.delete(url, timeout=60)
    assert restored.status_code in (200, 404), restored.text


def test_an_admin_sets_a_daily_query_limit_and_the_user_is_refused_with_it_named(
    page, new_page, stack, sign_in_form, run_cell, shot, dave_policy_restored
):
    sign_in_form(page, "carol", demo.demo_password("carol"), f"{SERVICE}admin/quotas")
    expect(page.get_by_role("heading", name="Quotas", exact=True)).to_be_visible()
    new_policy = page.locator("details", has=page.locator("summary", has_text="New policy"))
    new_policy.get_by_label("For").select_option("user")
    new_policy.get_by_label("Name (user or group)").fill("dave")
    new_policy.get_by_label(re.compile(r"^queries per day")).fill("0")
    new_policy.get_by_role("button", name="Create policy").click()  # an XSRF-checked form
    expect(page.locator(".alert-success[role=status]")).to_have_text("Policy of user dave saved.")
    # The change is audited: who, what, before and after.
    change = page.locator("table[aria-describedby='changes'] tbody tr").first
    expect(change).to_contain_text("carol")
    expect(change).to_contain_text("set user dave")
    expect(change).to_contain_text('"queries_per_day": 0')
    # The policy's own editor shows the new limit.
    editor = page.locator("details[data-policy='user:dave']")
    editor.locator("summary").click()
    expect(editor.get_by_label(re.compile(r"^queries per day"))).to_have_value("0")
    editor.scroll_into_view_if_needed()
    shot(page, "quota-edit")
    # dave's next query, from his JupyterLab, is refused with the limit named.
    dave = new_page()
    open_lab(dave, stack, sign_in_form, "dave")
    cell = new_sql_notebook(dave).locator(".jp-CodeCell").first
    type_into_cell(dave, cell, "%sql SELECT 1 AS one")
    run_cell(dave, cell)
    expect(cell.locator(".jp-OutputArea")).to_contain_text(
        re.compile(
            r"QuotaExceeded: \d+ of 0 queries used today; resets .+; "
            r"ask your DataHub admin \(datahub-admins\) for more\."
        ),
        timeout=120_000,
    )
    # carol sees the refusal on her page.
    page.reload()
    refusal = page.locator("table[aria-describedby='refusals'] tbody tr").first
    expect(refusal).to_contain_text("dave")
    expect(refusal).to_contain_text("queries_per_day")


# ------------------------------------------------------------------ 4. non-admins


def test_a_non_admin_sees_no_admin_links_and_is_refused_on_admin_pages(page, stack, sign_in_form):
    sign_in_form(page, "alice", demo.demo_password("alice"), "/hub/home")
    page.wait_for_url(re.compile(r"/hub/home"))
    pages = {"/hub/home": links_on(page)}
    for path in ("", "gallery", "queries", "quota"):
        response = page.goto(f"{stack.hub_url}{SERVICE}{path}")
        assert response.status == 200, path
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        pages[SERVICE + path] = links_on(page)
    assert all(pages.values()), pages  # every page has its navigation links
    admin_links = {
        path: [h for h in hrefs if ADMIN_HREF.search(h)] for path, hrefs in pages.items()
    }
    assert admin_links == {path: [] for path in pages}
    for path in ("admin/quotas", "admin/quotas/usage", "queries/all"):
        response = page.goto(f"{stack.hub_url}{SERVICE}{path}")
        assert response.status == 403, path
        expect(page.get_by_text(ADMIN_ONLY)).to_be_visible()
    response = page.goto(f"{stack.hub_url}/hub/admin")
    assert response.status == 403
    # The hub's refusal, in DataHub's words, with the hub's reason below it.
    expect(page.get_by_role("heading", level=1)).to_have_text("You do not have access to this page")
    expect(page.locator("body")).to_contain_text("ask your DataHub admin")
    expect(page.locator("body")).to_contain_text("403 : Action is not authorized")
