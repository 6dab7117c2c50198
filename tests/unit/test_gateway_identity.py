"""Identity resolution: Authorization header in, hub user (or a clear refusal) out."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from datahub.identity import (
    AuthError,
    Identity,
    IdentityResolver,
    IdentityUnavailable,
    parse_authorization,
)

SCOPE = "access:services!service=datahub"
MODELS: dict[str, dict[str, Any]] = {
    "alice-token": {
        "kind": "user",
        "name": "alice",
        "admin": True,
        "groups": ["analysts"],
        "scopes": [SCOPE, "read:users:name!user=alice"],
    },
    "all-services": {"kind": "user", "name": "dave", "scopes": ["access:services"]},
    "other-service": {
        "kind": "user",
        "name": "erin",
        "scopes": ["access:services!service=grafana"],
    },
    "svc": {"kind": "service", "name": "cron", "scopes": [SCOPE]},
    "weird": {"kind": "user", "name": "frank", "scopes": ["read:users!user"]},
}


class StaticResolver(IdentityResolver):
    async def user_model(self, token: str) -> dict[str, Any] | None:
        if token == "hub-down":
            raise IdentityUnavailable("The hub could not check your token right now.")
        return MODELS.get(token)


def resolve(header: str | None) -> Identity:
    return asyncio.run(StaticResolver(service_name="datahub").resolve(header))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "header", ["Bearer alice-token", "token alice-token", "bearer  alice-token "]
)
def test_a_bearer_or_token_header_identifies_the_tokens_owner(header):
    assert resolve(header) == Identity("alice", ("analysts",), admin=True, via="token")


def test_basic_with_the_owners_name_in_any_case_identifies_the_owner():
    assert resolve(basic("ALICE", "alice-token")).via == "basic"


def test_basic_with_another_users_name_is_refused():
    with pytest.raises(AuthError, match="does not belong to 'bob'") as raised:
        resolve(basic("bob", "alice-token"))
    assert raised.value.status == 401


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "No DataHub token"),
        ("", "No DataHub token"),
        ("Bearer ", "No DataHub token"),
        ("Basic !!!", "malformed"),
        (basic("alice", ""), "No token in the password"),
        ("Negotiate xyz", "not supported"),
        ("Bearer nope", "invalid or expired"),
    ],
)
def test_missing_or_bad_credentials_get_a_401_with_a_sentence(header, message):
    with pytest.raises(AuthError, match=message) as raised:
        resolve(header)
    assert raised.value.status == 401


def test_service_tokens_are_refused():
    with pytest.raises(AuthError, match="service token") as raised:
        resolve("Bearer svc")
    assert raised.value.status == 403


def test_the_unfiltered_access_services_scope_is_enough():
    assert resolve("Bearer all-services").name == "dave"


@pytest.mark.parametrize("token", ["other-service", "weird"])
def test_a_token_without_the_gateway_scope_is_refused(token):
    with pytest.raises(AuthError, match=r"needs access:services!service=datahub") as raised:
        resolve(f"Bearer {token}")
    assert raised.value.status == 403


def test_a_hub_outage_is_not_an_auth_failure():
    with pytest.raises(IdentityUnavailable):
        resolve("Bearer hub-down")


def test_credentials_never_show_the_token():
    assert "alice-token" not in repr(parse_authorization("Bearer alice-token"))


def test_required_scope_follows_the_service_name():
    assert StaticResolver(service_name="gw").required_scopes == {"access:services!service=gw"}


class _FakeHubUserAPI:
    """Serves GET /hub/api/user like the hub: the model of the token's owner, or 403."""

    def __init__(self) -> None:
        from tornado import web

        models = MODELS

        class UserHandler(web.RequestHandler):
            def get(self) -> None:
                token = self.request.headers.get("Authorization", "").split(" ", 1)[-1]
                if token not in models:
                    raise web.HTTPError(403)
                self.write(models[token])

        self.app = web.Application([(r"/hub/api/user", UserHandler)])


def test_tokens_are_resolved_through_hubauth_against_the_hub_api():
    from jupyterhub.services.auth import HubAuth
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    async def scenario() -> tuple[Identity, str]:
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = HTTPServer(_FakeHubUserAPI().app)
        server.add_sockets(sockets)
        hub_auth = HubAuth(api_url=f"http://127.0.0.1:{port}/hub/api", api_token="svc-token")
        resolver = IdentityResolver(service_name="datahub", hub_auth=hub_auth)
        try:
            identity = await resolver.resolve("Bearer alice-token")
            with pytest.raises(AuthError) as raised:
                await resolver.resolve("Bearer unknown")
            return identity, raised.value.message
        finally:
            server.stop()

    identity, refusal = asyncio.run(scenario())
    assert identity == Identity("alice", ("analysts",), admin=True, via="token")
    assert "invalid or expired" in refusal


def test_an_unreachable_hub_is_reported_as_unavailable():
    from jupyterhub.services.auth import HubAuth
    from tornado.netutil import bind_sockets

    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    sockets[0].close()
    hub_auth = HubAuth(api_url=f"http://127.0.0.1:{port}/hub/api", api_token="svc-token")
    resolver = IdentityResolver(service_name="datahub", hub_auth=hub_auth)
    with pytest.raises(IdentityUnavailable, match="try again shortly"):
        asyncio.run(resolver.resolve("Bearer alice-token"))
