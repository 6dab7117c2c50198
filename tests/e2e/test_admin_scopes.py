"""DataHub admin power comes from token scopes, not from the hub's admin flag: attacks
through the whole stack (hub, DataHub service, gateway, slapd, Trino).

carol is a hub admin (member of the LDAP group datahub-admins). Every token of hers says
``"admin": true`` in the hub's user model, however narrowly it is scoped; only tokens
that carry DataHub's custom scopes (``custom:datahub:…``, granted by a role to the hub
group datahub-admins) may administer DataHub or act as another user. The XSRF check of
cookie-authenticated writes is skipped only when the request was authenticated by a token.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from datahub import scopes
from datahub.identity import ACT_AS_HEADER
from datahub.stack import demo

pytestmark = pytest.mark.e2e

GATEWAY_SCOPE = "access:services!service=datahub"
QUOTAS_SCOPE, ACT_AS_SCOPE, ADMIN_SCOPE = scopes.QUOTAS, scopes.ACT_AS, scopes.ADMIN


def service_url(stack, path: str = "") -> str:
    return f"{stack.hub_url}/services/datahub/{path}"


def policy_url(stack, group: str) -> str:
    return service_url(stack, f"api/quota/policies/group/{group}")


def put_policy(stack, token: str, group: str) -> requests.Response:
    return requests.put(
        policy_url(stack, group),
        json={"limits": {"queries_per_day": 4321}},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


def policy_exists(stack, admin_token: str, group: str) -> bool:
    r = requests.get(
        policy_url(stack, group), headers={"Authorization": f"token {admin_token}"}, timeout=60
    )
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def act_as(stack, token: str, target: str) -> requests.Response:
    """POST a statement to the gateway with ``token``, asking to run it as ``target``."""
    return requests.post(
        f"{stack.settings['gateway_url']}/v1/statement",
        data="SELECT current_user",
        headers={"Authorization": f"Bearer {token}", ACT_AS_HEADER: target},
        timeout=60,
    )


def refusal(response: requests.Response) -> str:
    return json.loads(response.text)["error"]["message"]


def new_token(hub, user: str, scopes: list[str]) -> requests.Response:
    return hub.api(
        "POST", f"/users/{user}/tokens", json={"scopes": scopes, "expires_in": 3600, "note": "t"}
    )


@pytest.fixture(scope="module")
def narrow(hub, tokens) -> str:
    """A token of carol (an admin) that may only use the DataHub service."""
    r = new_token(hub, "carol", [GATEWAY_SCOPE])
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def carol_server_token(users) -> str:
    """The JUPYTERHUB_API_TOKEN of carol's own server, read in her kernel."""
    return users.kernel("carol").value("__import__('os').environ['JUPYTERHUB_API_TOKEN']")


def hub_scopes(stack, token: str) -> set[str]:
    r = requests.get(
        f"{stack.hub_url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=60
    )
    assert r.status_code == 200, r.text
    return set(r.json()["scopes"])


# --- Narrow tokens of an admin ---------------------------------------------------------------


def test_an_admins_narrow_token_cannot_edit_quotas(stack, hub, tokens, narrow):
    group = f"attack-{uuid.uuid4().hex[:8]}"
    assert hub.api("GET", "/users/carol").json()["admin"] is True  # the flag says admin
    refused = put_policy(stack, narrow, group)
    assert refused.status_code == 403, refused.text
    assert QUOTAS_SCOPE in refused.json()["message"]
    assert not policy_exists(stack, tokens["carol"], group)


def test_an_admins_narrow_token_cannot_read_everyones_queries_or_users(stack, narrow):
    for path in ("api/queries?user=*", "api/admin/users/alice", "api/quota/policies"):
        r = requests.get(
            service_url(stack, path), headers={"Authorization": f"token {narrow}"}, timeout=60
        )
        assert r.status_code == 403, (path, r.text)


def test_an_admins_narrow_token_cannot_act_as_another_user(stack, narrow):
    refused = act_as(stack, narrow, "alice")
    assert refused.status_code == 403, refused.text
    assert ACT_AS_SCOPE in refusal(refused)


def test_an_admins_server_token_cannot_edit_quotas(stack, tokens, carol_server_token):
    group = f"attack-{uuid.uuid4().hex[:8]}"
    assert ADMIN_SCOPE not in hub_scopes(stack, carol_server_token)
    refused = put_policy(stack, carol_server_token, group)
    assert refused.status_code == 403, refused.text
    assert not policy_exists(stack, tokens["carol"], group)


def test_with_server_token_act_as_on_an_admins_server_token_may_act_as(stack, carol_server_token):
    # jupyterhub_config.py turns DataHubLocalSpawner.server_token_act_as on for the demo:
    # an admin's server token then carries the act-as scope, and no other admin scope.
    held = hub_scopes(stack, carol_server_token)
    assert ACT_AS_SCOPE in held
    assert QUOTAS_SCOPE not in held
    page = act_as(stack, carol_server_token, "alice")
    assert page.status_code == 200, page.text
    assert "error" not in page.json(), page.text


def test_with_server_token_act_as_off_a_server_token_may_not_act_as(stack, hub, tokens):
    # A token with exactly the scopes of a server token when server_token_act_as is off.
    from datahub.spawners.local import DataHubLocalSpawner

    server_scopes = DataHubLocalSpawner(server_token_act_as=False).server_token_scopes
    assert not any(s.startswith("custom:") for s in server_scopes)
    r = new_token(hub, "carol", [s.replace("!server", "!server=carol/") for s in server_scopes])
    assert r.status_code == 201, r.text
    refused = act_as(stack, r.json()["token"], "alice")
    assert refused.status_code == 403, refused.text
    assert ACT_AS_SCOPE in refusal(refused)


def test_an_admins_token_with_the_quota_scope_edits_quotas(stack, hub, tokens):
    r = new_token(hub, "carol", [GATEWAY_SCOPE, QUOTAS_SCOPE])
    assert r.status_code == 201, r.text
    group = f"scoped-{uuid.uuid4().hex[:8]}"
    saved = put_policy(stack, r.json()["token"], group)
    assert saved.status_code == 200, saved.text
    assert policy_exists(stack, tokens["carol"], group)
    # ...and nothing else: quotas is not act-as.
    assert ACT_AS_SCOPE in refusal(act_as(stack, r.json()["token"], "alice"))


def test_a_non_admin_cannot_get_an_admin_scope(stack, hub, tokens):
    for scope in scopes.ALL:
        # Asked for by an operator on bob's behalf, or by bob himself: the hub refuses to
        # put a scope in a token that its owner does not hold.
        by_ops = new_token(hub, "bob", [GATEWAY_SCOPE, scope])
        assert by_ops.status_code == 400, by_ops.text
        by_bob = requests.post(
            f"{stack.hub_url}/hub/api/users/bob/tokens",
            json={"scopes": [scope]},
            headers={"Authorization": f"token {tokens['bob']}"},
            timeout=60,
        )
        assert by_bob.status_code in (400, 403), by_bob.text
    assert ADMIN_SCOPE not in hub_scopes(stack, tokens["bob"])


def test_the_admins_browser_session_carries_the_admin_scope(stack, pages):
    me = pages("carol").get(service_url(stack, "api/me"), timeout=60)
    assert me.status_code == 200 and me.json()["admin"] is True
    assert pages("carol").get(service_url(stack, "admin/quotas"), timeout=60).status_code == 200
    bob = pages("bob").get(service_url(stack, "api/me"), timeout=60)
    assert bob.json()["admin"] is False


# --- Act-as only for accounts still allowed and enabled ------------------------------------


@pytest.fixture
def locked_account(stack, hub):
    """A locked LDAP account in the allowed group, with a hub user; removed afterwards, so
    the shared demo directory is as the other tests expect it."""
    uid = "frank"
    stack.slapd.modify(
        f"dn: {demo.user_dn(uid)}\nchangetype: add\nobjectClass: inetOrgPerson\n"
        f"uid: {uid}\ncn: Frank Locked\nsn: Locked\nuserPassword: {demo.ssha('frank-pass')}\n"
        f"pwdAccountLockedTime: {demo.LOCKED_FOREVER}\n\n"
        f"dn: {demo.group_dn(demo.ALLOWED_GROUP)}\nchangetype: modify\nadd: member\n"
        f"member: {demo.user_dn(uid)}\n"
    )
    try:
        assert hub.api("POST", f"/users/{uid}").status_code in (201, 409)
        yield uid
    finally:
        hub.api("DELETE", f"/users/{uid}")
        stack.slapd.modify(
            f"dn: {demo.group_dn(demo.ALLOWED_GROUP)}\nchangetype: modify\ndelete: member\n"
            f"member: {demo.user_dn(uid)}\n\n"
            f"dn: {demo.user_dn(uid)}\nchangetype: delete\n"
        )


def test_acting_as_a_disabled_account_is_refused(stack, tokens, locked_account):
    uid = locked_account
    refused = act_as(stack, tokens["carol"], uid)
    assert refused.status_code == 403, refused.text
    assert refusal(refused) == "You cannot act as frank: frank is disabled in the LDAP directory."


def test_acting_as_an_account_outside_the_allowed_groups_is_refused(stack, hub, tokens):
    # eve is in the directory, but only in "marketing": she may not use DataHub. An
    # operator creating her hub account does not make her someone to act as.
    assert hub.api("POST", "/users/eve").status_code in (201, 409)
    refused = act_as(stack, tokens["carol"], "eve")
    assert refused.status_code == 403, refused.text
    assert refusal(refused) == "You cannot act as eve: eve is not in an allowed LDAP group."


def test_acting_as_a_hub_user_missing_from_the_directory_is_refused(stack, hub, tokens):
    assert hub.api("POST", "/users/ghost").status_code in (201, 409)
    refused = act_as(stack, tokens["carol"], "ghost")
    assert refused.status_code == 403, refused.text
    assert refusal(refused) == (
        "You cannot act as ghost: ghost is no longer in the LDAP directory."
    )


# --- XSRF: skipped only for requests authenticated by a token --------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["token not-a-real-token", "Bearer not-a-real-token", "Basic Ym9ndXM6Ym9ndXM="],
)
def test_a_cookie_write_with_a_bogus_authorization_header_still_needs_xsrf(
    stack, pages, tokens, authorization
):
    carol = pages("carol")
    group = f"xsrf-{uuid.uuid4().hex[:8]}"
    forged = carol.put(
        policy_url(stack, group),
        json={"limits": {"queries_per_day": 1}},
        headers={"Authorization": authorization},
        timeout=60,
    )
    assert forged.status_code == 403, forged.text
    assert not policy_exists(stack, tokens["carol"], group)
    # The same session with its XSRF token is carol, an admin: the refusal was the XSRF.
    xsrf = next(
        c.value
        for c in carol.cookies
        if c.name == "_xsrf" and (c.path or "").startswith("/services/datahub")
    )
    honest = carol.put(
        policy_url(stack, group),
        json={"limits": {"queries_per_day": 1}},
        headers={"X-XSRFToken": xsrf},
        timeout=60,
    )
    assert honest.status_code == 200, honest.text


def test_hub_pages_show_admin_items_only_to_holders_of_the_admin_scope(stack, pages):
    admin_link = 'href="/services/datahub/admin/quotas"'
    home = f"{stack.hub_url}/hub/home"
    assert admin_link in pages("carol").get(home, timeout=60).text
    assert admin_link not in pages("bob").get(home, timeout=60).text
