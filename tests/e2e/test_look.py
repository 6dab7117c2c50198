"""One DataHub look, in a real browser against the real stack: hub and service pages share
one nav bar (admins' items only for admins), pass axe-core's accessibility checks, fit a
375 px wide phone without scrolling sideways, and work from the keyboard.

axe-core comes from npm (package.json devDependencies) and is evaluated in the page
through the DevTools protocol, so the pages keep their real Content-Security-Policy.
Screenshots of a service page at laptop and phone widths illustrate the README
(`make screenshots`).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import pytest
import requests
import trino
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from trino.auth import JWTAuthentication

from datahub.stack import demo
from datahub.web.nav import nav_bar

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
SERVICE = "/services/datahub/"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 375, "height": 800}
#: Service pages everyone has, with the nav item each marks as the current page.
PAGES = {"gallery": "Notebooks", "queries": "Query history", "quota": "My quota"}
PAGES_ALL = {**PAGES, "clusters": "Clusters"}
#: Admins' pages (carol), with their nav items.
ADMIN_PAGES = {
    "admin/quotas": "Quotas",
    "admin/quotas/usage": "Usage",
    "admin/incidents": "Incidents",
    "queries/all": "All queries",
    "clusters": "Clusters",
}
ADMIN_ITEMS = ["Quotas", "Admin", "All queries", "Usage", "Incidents", "Users"]
#: Everything one can click in the nav bar, in document order (menu items included).
NAV_ENTRIES = "nav.datahub-nav :is(a.nav-link, button.dropdown-toggle, a.dropdown-item)"
#: A query with a long line of SQL, so that history tables have a wide row to fit.
WIDE_SQL = "SELECT " + ", ".join(f"'{word}' AS column_{i}" for i, word in enumerate(["w" * 40] * 8))


@pytest.fixture(scope="module")
def history(stack, users):
    """Alice's query with a long line of SQL, finished and in the query history."""
    token = users.token("alice")
    connection = trino.dbapi.connect(
        host="127.0.0.1",
        port=stack.settings["gateway_port"],
        http_scheme="http",
        user="alice",
        auth=JWTAuthentication(token),
        allow_insecure_auth=True,
        source="e2e-look",
    )
    cursor = connection.cursor()
    cursor.execute(WIDE_SQL)
    cursor.fetchall()
    url = f"{stack.hub_url}{SERVICE}api/queries?user=me"
    for _ in range(150):
        r = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30)
        r.raise_for_status()
        if any(q["query_id"] == cursor.query_id and q["finished"] for q in r.json()["queries"]):
            return cursor.query_id
        time.sleep(0.2)
    raise AssertionError(f"query {cursor.query_id} is not in alice's history")


@pytest.fixture
def open_as(browser, stack, sign_in_form):
    """``open_as(user, viewport=LAPTOP) -> page``: a new browser signed in as ``user`` on
    the hub's home page (which does not start their server)."""
    contexts = []

    def open_as(user: str, viewport: dict = LAPTOP, color_scheme: str = "light"):
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        context.set_default_timeout(60_000)
        contexts.append(context)
        page = context.new_page()
        sign_in_form(page, user, demo.demo_password(user), "/hub/home")
        page.wait_for_url(f"{stack.hub_url}/hub/home")
        return page

    yield open_as
    for context in contexts:
        context.close()


def visit(page, stack, path: str) -> None:
    """Open a service page and wait until it is drawn (OAuth redirects done)."""
    page.goto(f"{stack.hub_url}{SERVICE}{path}")
    try:
        page.wait_for_url(f"{stack.hub_url}{SERVICE}{path}")
    except PlaywrightTimeoutError:
        # Where the redirects stopped, and what that page says.
        body = page.locator("body").inner_text(timeout=5_000)[:1000]
        message = f"{path} never opened: the browser is at {page.url}: {body!r}"
        raise AssertionError(message) from None
    expect(page.locator("main h1")).to_have_count(1)


def nav_labels(page) -> list[str]:
    return [text.strip() for text in page.locator(NAV_ENTRIES).all_text_contents()]


def expected_labels(user: str, admin: bool) -> list[str]:
    labels = []
    for item in nav_bar(user, admin=admin).items:
        labels.append(item.label)
        labels.extend(child.label for child in item.children)
    return labels


def current_item(page) -> list[str]:
    return [
        text.strip()
        for text in page.locator("nav.datahub-nav [aria-current='page']").all_text_contents()
    ]


def serious_violations(page) -> list[dict]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await window.axe.run(document)")
    return [
        {
            "rule": v["id"],
            "help": v["help"],
            "where": [node["target"] for node in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def focused(page) -> str:
    return page.evaluate("() => document.activeElement.textContent.trim()")


def fits_the_width(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


# ------------------------------------------------------------------ one nav bar


@pytest.mark.parametrize(("user", "admin"), [("alice", False), ("carol", True)])
def test_hub_and_service_pages_show_one_nav_bar(open_as, stack, user, admin):
    page = open_as(user)
    expected = expected_labels(user, admin)
    assert nav_labels(page) == expected
    assert current_item(page) == ["Home"]
    expect(page.locator("nav.datahub-nav")).to_contain_text(user)
    expect(page.get_by_role("link", name="Logout")).to_be_visible()
    pages = {**PAGES_ALL, **(ADMIN_PAGES if admin else {})}
    if admin:
        pages.pop("quota")  # an admin's "Quotas" item is everyone's quotas
    for path, item in pages.items():
        visit(page, stack, path)
        assert nav_labels(page) == expected, path
        assert current_item(page) == [item], path
        expect(page.locator("nav.datahub-nav")).to_contain_text(user)
    # The hub's own pages (JupyterHub's templates under our layout) too.
    for path, item in [("token", "Token"), *([("admin", "Users")] if admin else [])]:
        page.goto(f"{stack.hub_url}/hub/{path}")
        assert nav_labels(page) == expected, path
        assert current_item(page) == [item], path
    if admin:
        assert set(ADMIN_ITEMS) <= set(expected)
    else:
        assert not set(ADMIN_ITEMS) & set(expected)
        assert expected == ["Home", "Notebooks", "Query history", "My quota", "Clusters", "Token"]


def test_admin_menu_works_from_the_keyboard(open_as, stack):
    page = open_as("carol")
    visit(page, stack, "gallery")
    menu = page.get_by_role("button", name="Admin")
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    assert focused(page) == "All queries"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{stack.hub_url}{SERVICE}queries/all")
    expect(page.get_by_role("heading", level=1)).to_have_text("All queries")


# ------------------------------------------------------------------ accessibility


@contextlib.contextmanager
def login_page(browser, stack, viewport):
    """The hub's login page (nobody signed in) in a browser window of *viewport*."""
    context = browser.new_context(viewport=viewport)
    try:
        page = context.new_page()
        page.goto(f"{stack.hub_url}/hub/login")
        expect(page.get_by_label("Company username:")).to_be_visible()
        yield page
    finally:
        context.close()


def test_login_page_has_no_serious_accessibility_violations(browser, stack):
    with login_page(browser, stack, LAPTOP) as page:
        assert serious_violations(page) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_pages_have_no_serious_accessibility_violations(open_as, stack, shot, history, theme):
    found = {}
    for user, paths in [("alice", ["", *PAGES_ALL]), ("carol", list(ADMIN_PAGES))]:
        # The hub's theme follows the system's until one picks another with the toggle.
        page = open_as(user, color_scheme=theme)
        found[f"{user}: hub home"] = serious_violations(page)
        for path in paths:
            visit(page, stack, path)
            assert page.evaluate("() => document.documentElement.dataset.bsTheme") == theme
            found[f"{user}: {path}"] = serious_violations(page)
            if path == "queries" and theme == "light":
                shot(page, "look-laptop")
    assert found == {name: [] for name in found}


# ------------------------------------------------------------------ narrow screens


@pytest.mark.parametrize(
    ("user", "paths"),
    [("alice", [*PAGES_ALL]), ("carol", list(ADMIN_PAGES))],
    ids=["user", "admin"],
)
def test_pages_fit_a_phone_and_the_nav_opens_from_its_menu_button(
    open_as, stack, shot, history, user, paths
):
    page = open_as(user, PHONE)
    assert fits_the_width(page), "hub home"
    for path in [None, *paths]:
        if path is not None:
            visit(page, stack, path)
            assert fits_the_width(page), path
        toggle = page.get_by_role("button", name="Menu")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(page.locator("nav.datahub-nav a.nav-link").first).to_be_hidden()
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        # Open, not still sliding open.
        expect(page.locator("#datahub-navbar")).to_have_class(re.compile(r"\bshow\b"))
        for link in page.locator("nav.datahub-nav a.nav-link").all():
            expect(link).to_be_visible()
        expect(page.get_by_role("link", name="Logout")).to_be_visible()
        assert fits_the_width(page), path
        if path == "queries":
            shot(page, "look-narrow")


def test_login_page_fits_a_phone(browser, stack):
    with login_page(browser, stack, PHONE) as page:
        assert fits_the_width(page)


# ------------------------------------------------------------------ keyboard


@pytest.mark.parametrize("path", [None, "gallery"], ids=["hub", "service"])
def test_tab_reaches_the_skip_link_first_then_the_nav(open_as, stack, path):
    page = open_as("alice")
    if path:
        visit(page, stack, path)
    expected = ["Skip to main content", "DataHub", *expected_labels("alice", False)]
    order = []
    for _ in expected:
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == expected
    # The skip link moves focus past the nav bar, into the page's main content.
    page.reload()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
