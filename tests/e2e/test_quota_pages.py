"""Quota administration through the real hub and service: the REST API and its OpenAPI
document, the admin pages (admins only, XSRF-checked, audited), the usage charts drawn
by plotly.js in a real browser, the usage box on the hub's home page, the ``datahub
quota`` CLI, and ``show_quota`` in a user's kernel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import requests
from playwright.sync_api import expect

from datahub.stack import demo

pytestmark = pytest.mark.e2e


def service_url(stack, path: str = "") -> str:
    return f"{stack.hub_url}/services/datahub/{path}"


def api(stack, token: str | None, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(
        method, service_url(stack, "api/quota/" + path), headers=headers, timeout=60, **kwargs
    )


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def service_xsrf_cookie(session: requests.Session) -> str:
    """The service's own XSRF cookie (the hub has another under /hub/)."""
    return next(
        c.value
        for c in session.cookies
        if c.name == "_xsrf" and (c.path or "").startswith("/services/datahub")
    )


# ------------------------------------------------------------------ admins only

ADMIN_API = [
    ("GET", "policies"),
    ("GET", "policies/default"),
    ("PUT", "policies/default"),
    ("PATCH", "policies/group/analysts"),
    ("DELETE", "policies/user/bob"),
    ("GET", "users"),
    ("GET", "users/bob"),
    ("POST", "users/bob/reset-usage"),
    ("GET", "groups"),
    ("GET", "usage"),
    ("GET", "refusals"),
    ("GET", "changes"),
    ("GET", "resource-groups"),
]
ADMIN_PAGES = [
    ("GET", "admin/quotas"),
    ("GET", "admin/quotas/usage"),
    ("POST", "admin/quotas/policy"),
    ("POST", "admin/quotas/reset-usage"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_API)
def test_non_admins_are_refused_on_every_admin_endpoint(stack, tokens, method, path):
    body = {"limits": {"concurrent_queries": 99}} if method in ("PUT", "PATCH") else None
    r = api(stack, tokens["bob"], method, path, json=body)
    assert r.status_code == 403, r.text
    assert r.json() == {"status": 403, "message": "Only DataHub administrators may do this."}
    anonymous = api(stack, None, method, path, json=body)
    assert anonymous.status_code == 403


def test_non_admins_are_refused_on_every_admin_page_and_form(stack, pages):
    bob = pages("bob")
    for method, path in ADMIN_PAGES:
        data = {"_xsrf": service_xsrf_cookie(bob), "scope": "user", "name": "bob"}
        r = bob.request(method, service_url(stack, path), data=data, timeout=60)
        assert r.status_code == 403, (path, r.status_code)
        assert "Only DataHub administrators may do this." in r.text
    # The nav bar does not even offer them.
    assert "admin/quotas" not in bob.get(service_url(stack, "quota"), timeout=60).text


# ------------------------------------------------------------------ API and audit


def test_policy_edits_through_the_api_are_checked_and_audited(stack, tokens):
    carol = tokens["carol"]
    try:
        r = api(stack, carol, "PUT", "policies/group/analysts", json={"limits": {"x": 1}})
        assert r.status_code == 400
        assert r.json()["message"].startswith("Unknown limit 'x'; the limits are:")
        r = api(
            stack,
            carol,
            "PUT",
            "policies/group/analysts",
            json={"limits": {"queries_per_day": 900, "server_memory": "4GB"}},
        )
        assert r.json() == {
            "scope": "group",
            "name": "analysts",
            "before": None,
            "after": {"limits": {"queries_per_day": 900, "server_memory": 4_000_000_000}},
        }
        api(
            stack,
            carol,
            "PATCH",
            "policies/group/analysts",
            json={"limits": {"queries_per_day": None}},
        )
        assert api(stack, carol, "GET", "policies/group/analysts").json()["limits"] == {
            "queries_per_day": None,
            "server_memory": 4_000_000_000,
        }
    finally:
        api(stack, carol, "DELETE", "policies/group/analysts")
    changes = api(stack, carol, "GET", "changes", params={"limit": 3}).json()["changes"]
    assert [(c["actor"], c["action"], c["scope"], c["name"]) for c in changes] == [
        ("carol", "reset", "group", "analysts"),
        ("carol", "set", "group", "analysts"),
        ("carol", "set", "group", "analysts"),
    ]
    assert changes[1]["before"] == {
        "limits": {"queries_per_day": 900, "server_memory": 4_000_000_000}
    }
    assert changes[1]["after"]["limits"]["queries_per_day"] is None
    assert changes[0]["after"] is None and changes[0]["at"]


def test_everyone_sees_their_own_quota(stack, tokens):
    me = api(stack, tokens["bob"], "GET", "me").json()
    assert me["user"] == "bob" and me["groups"] == ["analysts"]
    assert me["resets"] == "00:00 UTC"
    assert me["contact"] == "your DataHub admin (datahub-admins)"
    lines = {line["limit"]: line for line in me["lines"]}
    assert lines["concurrent_queries"]["allowed"] == me["limits"]["concurrent_queries"]
    assert lines["queries_per_day"]["used"] == me["usage"]["queries"]


def test_the_openapi_document_describes_the_api(stack):
    doc = requests.get(service_url(stack, "api/openapi.json"), timeout=60).json()
    assert doc["openapi"].startswith("3.")
    assert "/services/datahub/api/quota/me" in doc["paths"]
    assert set(doc["paths"]["/services/datahub/api/quota/policies/{scope}/{name}"]) == {
        "get",
        "put",
        "patch",
        "delete",
    }
    assert "server_memory" in doc["components"]["schemas"]["Limits"]["properties"]


def test_resource_groups_for_trino_follow_the_policies(stack, tokens):
    carol = tokens["carol"]
    api(stack, carol, "PUT", "policies/user/bob", json={"limits": {"concurrent_queries": 2}})
    try:
        config = api(stack, carol, "GET", "resource-groups").json()
    finally:
        api(stack, carol, "DELETE", "policies/user/bob")
    groups = {g["name"]: g for g in config["rootGroups"][0]["subGroups"]}
    assert groups["user-bob"]["hardConcurrencyLimit"] == 2
    assert {"user": "^bob$", "group": "datahub.user-bob"} in config["selectors"]


# ------------------------------------------------------------------ admin pages


def test_admins_edit_policies_on_the_admin_page_with_the_xsrf_token(stack, pages, tokens):
    carol = pages("carol")
    page = carol.get(service_url(stack, "admin/quotas"), timeout=60)
    assert page.status_code == 200
    assert "Users today" in page.text and "New policy" in page.text
    form = {
        "scope": "user",
        "name": "bob",
        "action": "save",
        "queries_per_day": "777",
        "query_runtime_seconds": "5m",
    }
    forged = carol.post(service_url(stack, "admin/quotas/policy"), data=form, timeout=60)
    assert forged.status_code == 403  # no XSRF token: refused
    try:
        saved = carol.post(
            service_url(stack, "admin/quotas/policy"),
            data={**form, "_xsrf": xsrf_of(page.text)},
            timeout=60,
        )
        assert saved.status_code == 200
        assert "Policy of user bob saved." in saved.text
        assert 'data-policy="user:bob"' in saved.text
        assert 'data-user="bob"' in saved.text
        policy = api(stack, tokens["carol"], "GET", "policies/user/bob").json()
        assert policy["limits"] == {"queries_per_day": 777, "query_runtime_seconds": 300.0}
        bad = carol.post(
            service_url(stack, "admin/quotas/policy"),
            data={**form, "queries_per_day": "lots", "_xsrf": xsrf_of(page.text)},
            timeout=60,
        )
        assert "queries_per_day must be a number like 3" in bad.text
    finally:
        removed = carol.post(
            service_url(stack, "admin/quotas/policy"),
            data={"scope": "user", "name": "bob", "action": "reset", "_xsrf": xsrf_of(page.text)},
            timeout=60,
        )
    assert "Policy of user bob removed" in removed.text
    change = api(stack, tokens["carol"], "GET", "changes", params={"limit": 1}).json()
    assert (change["changes"][0]["actor"], change["changes"][0]["action"]) == ("carol", "reset")


def browser_sign_in(browser, stack, user: str):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{stack.hub_url}/hub/login")
    page.get_by_label("Company username:").fill(user)
    page.get_by_label("Password:").fill(demo.demo_password(user))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(hub|user)/.*"))
    return context, page


def test_the_usage_charts_are_drawn_by_plotly_under_the_pages_csp(stack, browser):
    context, page = browser_sign_in(browser, stack, "carol")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(service_url(stack, "admin/quotas/usage?days=7"))
        page.wait_for_selector("#usage-chart-5 .main-svg")
        assert page.locator(".datahub-chart .main-svg").count() >= 5
        assert page.get_by_text("Queries per day").count() >= 1
    finally:
        context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_the_hub_home_page_shows_the_users_usage_box(stack, browser):
    context, page = browser_sign_in(browser, stack, "bob")
    try:
        page.goto(f"{stack.hub_url}/hub/home")
        box = page.frame_locator("#datahub-usage-box")
        # The iframe signs in to the service through the hub's OAuth on its own.
        heading = box.get_by_role("heading", name=re.compile("Your usage today"))
        heading.wait_for()
        assert box.locator("tr[data-limit='queries_per_day']").count() == 1
        assert "resets 00:00 UTC" in heading.inner_text()
        # The box follows the hub's theme: the system's (light here), then the one picked
        # with the hub's toggle.
        expect(box.locator("html")).to_have_attribute("data-bs-theme", "light")
        page.locator("#dark-theme-toggle").click()
        page.reload()
        box = page.frame_locator("#datahub-usage-box")
        expect(box.locator("html")).to_have_attribute("data-bs-theme", "dark")
    finally:
        context.close()


# ------------------------------------------------------------------ CLI and notebook


def datahub_cli(stack, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATAHUB_URL": service_url(stack), "DATAHUB_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "datahub.cli", "quota", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_cli_shows_sets_and_resets_policies_as_the_admin(stack, tokens):
    carol = tokens["carol"]
    result = datahub_cli(stack, carol, "set", "user", "bob", "queries_per_day=1234")
    assert result.returncode == 0, result.stderr
    assert "saved policy of user bob" in result.stdout
    shown = datahub_cli(stack, carol, "show", "user", "bob")
    assert re.search(r"queries per day\s+\S+\s+1,234\s+user bob", shown.stdout), shown.stdout
    as_json = json.loads(datahub_cli(stack, carol, "--json", "show").stdout)
    assert any(p["name"] == "bob" for p in as_json["policies"]["policies"])
    reset = datahub_cli(stack, carol, "reset", "user", "bob")
    assert reset.returncode == 0 and "removed the policy of user bob" in reset.stdout
    change = api(stack, carol, "GET", "changes", params={"limit": 2}).json()["changes"]
    assert [(c["actor"], c["action"]) for c in change] == [("carol", "reset"), ("carol", "set")]
    refused = datahub_cli(stack, tokens["bob"], "set", "user", "bob", "queries_per_day=1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "datahub quota: Only DataHub administrators may do this."
    typo = datahub_cli(stack, carol, "set", "user", "bob", "querys=1")
    assert typo.returncode == 1 and "Unknown limit 'querys'" in typo.stderr


def test_show_quota_in_a_kernel_displays_the_users_quota(users):
    kernel = users.kernel("alice")
    out = kernel.execute(
        "import os\n"
        "from datahub.extensions.quota import show_quota\n"
        "bundle = show_quota(os.environ['DATAHUB_GATEWAY_URL'], "
        "os.environ['JUPYTERHUB_API_TOKEN'])\n"
        "print(bundle['text/plain'])"
    )
    assert out["status"] == "ok", out
    assert out["stdout"].startswith("Quota of alice — daily counters reset 00:00 UTC")
    assert "queries per day" in out["stdout"]
    assert "For more, ask your DataHub admin (datahub-admins)." in out["stdout"]
