"""Helpers for the browser tests: a fresh browser page per test, screenshots (in a scratch
folder, or ``--screenshots DIR``: `make screenshots` refreshes the README's), signing in
through the hub's form and running a JupyterLab cell from its toolbar.

They are fixtures (each returns a function) so that every browser test module shares
them; pytest's importlib mode does not let test modules import one another.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import expect

from datahub.stack import demo
from datahub.stack.trino import ensure_trino_cli, find_java

#: The demo users who may sign in.
SIGNED_IN = ("alice", "bob", "carol", "dave")
#: From a JupyterLab cell up to the notebook panel (with its toolbar) that holds it.
NOTEBOOK_OF_CELL = "xpath=ancestor::div[contains(concat(' ', @class, ' '), ' jp-NotebookPanel ')]"


@pytest.fixture
def new_page(browser):
    """``new_page()``: a new page in a browser context of its own (its own cookies, so
    its own signed-in user), closed after the test."""
    contexts = []

    def open_page():
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.set_default_timeout(60_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    """A new page in its own browser context (no cookies shared with other tests)."""
    return new_page()


def _run_cell(page, cell) -> None:
    # The run button of the cell's own notebook: other notebooks' toolbars are in the
    # page too (hidden in background tabs).
    notebook = cell.locator(NOTEBOOK_OF_CELL)
    for _ in range(2):
        cell.locator(".jp-InputArea-editor").click()
        notebook.get_by_title("Run this cell and advance", exact=False).click()
        try:
            expect(cell.locator(".jp-InputPrompt")).not_to_have_text("[ ]:", timeout=15_000)
            return
        except AssertionError:
            continue


def _sign_in_form(page, stack, username: str, password: str, next_url: str = "") -> None:
    query = "?" + urlencode({"next": next_url}) if next_url else ""
    page.goto(f"{stack.hub_url}/hub/login{query}")
    page.get_by_label("Company username:").fill(username)
    page.get_by_label("Password:").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="session")
def screenshots(request, tmp_path_factory) -> Path:
    """Where screenshots go: ``--screenshots DIR`` (`make screenshots` passes
    docs/screenshots' staging folder), else a scratch folder, so a test run never
    rewrites the checkout."""
    chosen = request.config.getoption("screenshots")
    folder = Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shot(screenshots):
    """``shot(page, name)``: save a screenshot as NAME.png in :func:`screenshots`."""
    return lambda page, name: page.screenshot(path=str(screenshots / f"{name}.png"))


@pytest.fixture
def run_cell():
    """``run_cell(page, cell)``: select a cell and run it with the toolbar's run button,
    as a person would; once more if the kernel was still connecting and the first run
    did not register."""
    return _run_cell


@pytest.fixture
def sign_in_form(stack):
    """``sign_in_form(page, username, password, next_url="")``: sign in through the
    hub's login form (``next_url``, a path, is where the hub sends the browser after)."""
    return lambda page, username, password, next_url="": _sign_in_form(
        page, stack, username, password, next_url
    )


# ------------------------------------------------------------- notebooks in JupyterLab

#: The launcher card of DataHub's kernel.
KERNEL = "Python 3 (DataHub SQL)"


def _new_notebook(page, stack, user: str):
    """A new notebook with the DataHub kernel, opened from a launcher by signed-in *user*
    (JupyterLab reloaded first: the welcome notebook takes the focus back whenever it
    finishes opening); its panel once the kernel is idle."""
    page.goto(f"{stack.hub_url}/user/{user}/lab?reset")  # without tabs earlier tests left
    page.get_by_role("button", name="New Launcher", exact=True).click()
    current = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    expect(current).to_have_text("Launcher", timeout=120_000)
    launcher = page.locator(
        f'.lm-DockPanel-widget[aria-labelledby="{current.get_attribute("id")}"]'
    )
    launcher.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{KERNEL}"]').click()
    expect(current).to_have_text(re.compile(r"\.ipynb$"))
    notebook = page.locator(
        f'.lm-DockPanel-widget[aria-labelledby="{current.get_attribute("id")}"]'
    )
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(
        timeout=120_000
    )
    return notebook


def _new_cell_with(page, notebook, source: str):
    """A new cell at the end of *notebook* holding *source*, its cursor at the end."""
    cells = notebook.locator(".jp-Cell")
    count = cells.count()
    notebook.get_by_role("button", name="Click to add a cell.").click()
    expect(cells).to_have_count(count + 1)
    cell = cells.nth(count)  # stays this cell when running it adds another below
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.insert_text(source)
    expect(cell.locator(".jp-InputArea-editor")).to_contain_text(source.splitlines()[-1])
    return cell


@pytest.fixture
def new_notebook(stack):
    """``new_notebook(page, user)``: a new notebook with the DataHub kernel opened by
    signed-in *user* from a launcher, once its kernel is idle."""
    return lambda page, user: _new_notebook(page, stack, user)


@pytest.fixture
def new_cell_with():
    """``new_cell_with(page, notebook, source)``: a new cell at the end holding *source*."""
    return _new_cell_with


# ----------------------------------------------------------------- hub tokens, sessions


@pytest.fixture(scope="module")
def tokens(hub, sign_in) -> dict[str, str]:
    """Hub API tokens of alice and bob (analysts), carol (an admin) and dave (a
    contractor), each signed in through the hub's form first."""
    result = {}
    for name in SIGNED_IN:
        _, response = sign_in(name, demo.demo_password(name))
        assert response.status_code == 302
        result[name] = hub.token_for(name)
    return result


@pytest.fixture(scope="module")
def pages(stack, sign_in):
    """``pages(user) -> requests.Session`` signed in to the hub and the DataHub service."""

    def session_for(user: str) -> requests.Session:
        session, response = sign_in(user, demo.demo_password(user))
        assert response.status_code == 302
        service = f"{stack.hub_url}/services/datahub/"
        assert session.get(service, timeout=60).status_code == 200  # the OAuth round trip
        return session

    return session_for


@pytest.fixture(scope="session")
def trino_cli(stack):
    """``trino_cli(user, token, sql) -> (argv, env)``: the Trino CLI jar (from Maven
    Central) running *sql* through the gateway's HTTPS listener as *user*, with a hub
    *token* as the password (in the environment, as the CLI reads it), CSV output."""
    java, jar = find_java() / "bin" / "java", ensure_trino_cli()

    def command(user: str, token: str, sql: str) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(java), "-jar", str(jar),
            "--server", stack.settings["gateway_https_url"],
            "--user", user, "--password",
            "--truststore-path", stack.settings["gateway_ca_file"],
            "--output-format", "CSV",
            "--execute", sql,
        ]  # fmt: skip
        return argv, {**os.environ, "TRINO_PASSWORD": token}

    return command


@pytest.fixture(scope="session")
def restart_server(hub, users):
    """``restart_server(name)``: stop *name*'s server through the hub's API and start it
    again (the spawner reads the quota and prepares the home at every start). Kernels the
    ``users`` fixture held for *name* are closed; the next ``users.kernel(name)`` opens one."""

    def restart(name: str) -> None:
        kernel = users.kernels.pop(name, None)
        if kernel is not None:
            kernel.close()
        users.token(name)  # signed in, with a token, once
        r = hub.api("DELETE", f"/users/{name}/server")
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 120
        while hub.user(name)["servers"]:
            assert time.monotonic() < deadline, f"{name}'s server did not stop"
            time.sleep(0.5)
        hub.start_server(name)

    return restart
