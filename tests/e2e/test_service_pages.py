"""The DataHub service's pages and API: hub sign-in (OAuth), the hub's look, admin checks."""

from __future__ import annotations

import requests

from datahub.stack import demo


def service_url(stack, path: str = "") -> str:
    return f"{stack.hub_url}/services/datahub/{path}"


def test_api_reports_the_token_owner(stack, users):
    r = requests.get(
        service_url(stack, "api/me"),
        headers={"Authorization": f"token {users.token('alice')}"},
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json() == {"name": "alice", "groups": ["analysts"], "admin": False}


def test_api_without_credentials_is_refused_with_json(stack):
    r = requests.get(service_url(stack, "api/me"), timeout=30)
    assert r.status_code == 403
    assert r.json()["status"] == 403


def test_pages_sign_in_through_the_hub_and_look_like_datahub(stack, sign_in):
    session, response = sign_in("carol", demo.demo_password("carol"))
    assert response.status_code == 302
    page = session.get(service_url(stack), timeout=30)  # follows the OAuth redirects
    assert page.status_code == 200
    assert page.url == service_url(stack)
    text = page.content.decode()
    assert "Signed in as <strong>carol</strong>" in text
    assert "administrator" in text
    assert "/hub/static/css/style.min.css" in text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_pages_redirect_anonymous_visitors_to_the_hub_login(stack):
    r = requests.get(service_url(stack), allow_redirects=True, timeout=30)
    assert "/hub/login" in r.url
