"""Who is asking: hub users identified by their hub token, never by client headers.

A request carries a JupyterHub API token in its ``Authorization`` header:

* ``Bearer <token>`` or ``token <token>``: what the ``%%sql`` kernel sends (its
  ``JUPYTERHUB_API_TOKEN`` through ``trino.auth.JWTAuthentication``);
* ``Basic base64(<username>:<token>)``: what external tools (the Trino CLI, JDBC)
  send as user name and password. The user name must be the token's owner.

The hub says whom the token belongs to (``HubAuth.user_for_token``, cached) and which
scopes it carries; the token must carry the gateway's access scope
(``access:services!service=<service name>``), and service tokens are refused.

Acting as another user: an admin's request may carry ``X-DataHub-Act-As: <user>``
(what ``%%sql --as USER`` sends). It is only ever a request: it takes effect when the
service allows it (``DataHubService.allow_admin_act_as``), the *token* carries the act-as
scope (:data:`datahub.scopes.ACT_AS`; the hub's admin flag grants nothing), the hub knows
the user, and the user's account is still allowed and enabled (asked of the
authenticator, when the service has one: not deleted or disabled in the directory, still
in an allowed group, not blocked). The Identity is then that user's (name and groups from
the hub), with ``acting_admin`` naming the admin, so the audit records both.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from jupyterhub.services.auth import HubAuth, check_scopes
from tornado.web import HTTPError
from traitlets import Any as AnyTrait
from traitlets import Instance, Set, Unicode, default
from traitlets.config import LoggingConfigurable

from . import scopes
from .names import normalize_username, username_problem

# The header with which a hub admin asks to act as another user: defined in datahub.wire
# (the kernel sends it), named here too for the identity's users.
from .wire import ACT_AS_HEADER as ACT_AS_HEADER

Via = Literal["token", "basic"]


@dataclass(frozen=True)
class Identity:
    """A hub user as the gateway knows them.

    ``via`` records how the token was presented ("token" for Bearer/token, "basic"
    for user name and token as password), for the logs. ``admin`` is the hub's admin
    flag, recorded and shown but granting nothing; ``can_act_as`` says whether the token
    carries the act-as scope, which is what lets it act as another user.
    ``acting_admin`` names the admin whose token sent the request when they act as this
    user (see the module docstring); it is None when users act as themselves.
    """

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False
    via: Via = "token"
    acting_admin: str | None = None
    can_act_as: bool = False


class AuthError(Exception):
    """The request cannot be attributed to a hub user allowed to use the gateway.

    ``message`` is one sentence the user can act on; ``status`` is 401 (who are you?)
    or 403 (known, but this token may not use the gateway).
    """

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class IdentityUnavailable(Exception):
    """The hub could not be asked about a token (it is down or misconfigured)."""


@dataclass(frozen=True)
class Credentials:
    """The token from an ``Authorization`` header, and the user name sent with it."""

    token: str
    username: str | None
    via: Via

    def __repr__(self) -> str:  # never let a token reach a log line
        return f"Credentials(token=<hidden>, username={self.username!r}, via={self.via!r})"


MISSING_TOKEN = (
    "No DataHub token was sent; connect with your JupyterHub API token "
    "(JWTAuthentication(token), or user name and token as password)."
)
INVALID_TOKEN = (
    "Your DataHub token is invalid or expired; create a new token on the hub's "
    "token page (or restart your server) and try again."
)


ACT_AS_OFF = "Acting as another user is turned off on this DataHub; ask an admin."
ACT_AS_ADMINS_ONLY = (
    "Only DataHub administrators may act as another user; run the query as yourself."
)
ACT_AS_NEEDS_SCOPE = (
    f"This token does not carry the scope {scopes.ACT_AS} needed to act as another user; "
    "use a hub token created with it (or, from your notebook, ask an operator to turn on "
    "server_token_act_as)."
)


def account_refused(name: str, reason: str) -> str:
    """The sentence for acting as a user whose account may not use DataHub now."""
    return f"You cannot act as {name}: {reason}."


def unknown_user(name: str) -> str:
    """The sentence for acting as a user the hub does not know."""
    shown = name.strip()[:64]
    return (
        f"There is no DataHub user {shown!r} to act as; check the name (people become "
        "DataHub users when they first sign in)."
    )


def act_as_target(actor: Identity, requested: str | None, *, allowed: bool) -> str | None:
    """The user *actor* asks to act as (normalised), or None to act as themselves.

    *requested* is the ``X-DataHub-Act-As`` value (None or blank: not asked; the
    actor's own name: nothing to do). Raises AuthError (403) when the service does not
    allow acting (*allowed*), the actor's token lacks the act-as scope (an admin is told
    which scope; anyone else that only admins may), or the name cannot be a user.
    """
    if requested is None or not requested.strip():
        return None
    name = normalize_username(requested)
    if name == normalize_username(actor.name):
        return None
    if not allowed:
        raise AuthError(ACT_AS_OFF, status=403)
    if not actor.can_act_as:
        raise AuthError(ACT_AS_NEEDS_SCOPE if actor.admin else ACT_AS_ADMINS_ONLY, status=403)
    if username_problem(name):
        raise AuthError(unknown_user(requested), status=403)
    return name


def acting_identity(actor: Identity, name: str, model: Mapping[str, Any] | None) -> Identity:
    """The Identity of user *name* (the hub's *model* of them) with *actor* acting.

    Raises AuthError (403) when the hub has no such user.
    """
    if not model or model.get("kind", "user") != "user" or not model.get("name"):
        raise AuthError(unknown_user(name), status=403)
    return Identity(
        name=model["name"],
        groups=tuple(model.get("groups") or ()),
        admin=bool(model.get("admin")),
        via=actor.via,
        acting_admin=actor.name,
    )


def parse_authorization(header: str | None) -> Credentials:
    """Extract the hub token (and user name, for Basic) from an ``Authorization`` value.

    Raises AuthError (401) if the header is missing or malformed.
    """
    if not header or not header.strip():
        raise AuthError(MISSING_TOKEN)
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in ("bearer", "token"):
        if not value:
            raise AuthError(MISSING_TOKEN)
        return Credentials(token=value, username=None, via="token")
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(
                "The Basic credentials are malformed; send your user name and your "
                "JupyterHub API token as the password."
            ) from None
        username, sep, token = decoded.partition(":")
        if not sep or not token:
            raise AuthError(
                "No token in the password field; use your JupyterHub API token as the password."
            )
        return Credentials(token=token, username=username, via="basic")
    raise AuthError(
        f"Authentication scheme {scheme!r} is not supported; use Bearer <token> or "
        "Basic with your JupyterHub API token as the password."
    )


class IdentityResolver(LoggingConfigurable):
    """Turns a request's ``Authorization`` header into an Identity via the hub.

    Subclasses (tests, other hubs) override ``user_model`` to look tokens up elsewhere;
    the checks on the model (kind, scope, user name) stay in ``resolve``.
    """

    service_name = Unicode(
        help="""Name of the gateway's JupyterHub service; tokens must carry the scope
        access:services!service=<service_name>.

        Defaults to $JUPYTERHUB_SERVICE_NAME (set by the hub for managed services), or
        "datahub". Example: c.IdentityResolver.service_name = "datahub"
        """,
    ).tag(config=True)

    @default("service_name")
    def _default_service_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_NAME") or "datahub"

    required_scopes = Set(
        Unicode(),
        help="""Scopes a token must carry (any one of them) to use the gateway.

        Defaults to {"access:services!service=<service_name>"}. The hub must grant it to
        users (the "user" role) and put it in server tokens
        (c.Spawner.server_token_scopes), so the kernel's JUPYTERHUB_API_TOKEN works.
        Example: c.IdentityResolver.required_scopes = {"access:services!service=datahub"}
        """,
    ).tag(config=True)

    @default("required_scopes")
    def _default_required_scopes(self) -> set[str]:
        return {f"access:services!service={self.service_name}"}

    hub_auth = Instance(
        HubAuth,
        help="""The HubAuth used to ask the hub about tokens (it caches answers for
        HubAuth.cache_max_age seconds). Built from the JUPYTERHUB_* environment the hub
        gives managed services; configure it with c.HubAuth.*.
        """,
    )

    @default("hub_auth")
    def _default_hub_auth(self) -> HubAuth:
        return HubAuth(parent=self, access_scopes=set(self.required_scopes))

    account_check = AnyTrait(
        None,
        allow_none=True,
        help="""``async (name) -> str | None``: asked before an admin acts as user *name*;
        None if the account may use DataHub now, else why not (the end of a sentence
        starting with the name, e.g. "is disabled in the LDAP directory"). It may raise
        when it cannot tell; acting is then refused for the moment.

        The DataHub service sets it to the hub's authenticator's ``account_refusal`` when
        jupyterhub_config.py configures DataHubLDAPAuthenticator, so an admin cannot act
        as someone who was disabled, deleted or removed from the allowed groups since
        they last signed in. Answers are cached like token checks
        (HubAuth.cache_max_age). None: only the hub's knowledge of the user is checked.
        """,
    )

    async def user_model(self, token: str) -> dict[str, Any] | None:
        """The hub's model of the token's owner (with the token's ``scopes``), or None."""
        try:
            return await self.hub_auth.user_for_token(token, sync=False)
        except HTTPError as e:
            self.log.error("Could not check a token with the hub: %s", e.log_message)
            raise IdentityUnavailable(
                "The hub could not check your token right now; try again shortly or ask an admin."
            ) from None

    async def hub_user(self, name: str) -> dict[str, Any] | None:
        """The hub's model of user *name* (name, admin, groups), or None if there is none.

        Asked with the service's own token, which needs the scopes read:users:name and
        read:users:groups (the "datahub-users" role in jupyterhub_config.py); answers
        are cached like token checks (HubAuth.cache_max_age); "no such user" is not, so a
        user who signs in for the first time can be acted as at once.
        """
        key = f"datahub-user:{name}"
        cache = self.hub_auth.cache
        if key in cache:
            return cache[key]
        url = f"{self.hub_auth.api_url.rstrip('/')}/users/{quote(name, safe='')}"
        headers = {"Authorization": f"token {self.hub_auth.api_token}"}
        unavailable = IdentityUnavailable(
            "The hub could not tell who that user is right now; try again shortly or ask an admin."
        )
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.get(url, headers=headers)
        except httpx.HTTPError as e:
            self.log.error("Could not ask the hub about user %s: %s", name, e)
            raise unavailable from None
        model = response.json() if response.status_code == 200 else None
        if response.status_code != 404 and not (isinstance(model, dict) and "groups" in model):
            self.log.error(
                "The hub answered %d to GET users/%s without the user's groups: the DataHub "
                "service needs the scopes read:users:name and read:users:groups (load_roles)",
                response.status_code,
                name,
            )
            raise unavailable
        if model is not None:
            cache[key] = model
        return model

    def _has_required_scope(self, model: dict[str, Any]) -> bool:
        held = set(model.get("scopes") or ())
        try:
            return bool(check_scopes(set(self.required_scopes), held))
        except ValueError as e:
            # The hub sends expanded scopes; anything unparsable grants nothing.
            self.log.warning("Unparsable scopes for %s: %s", model.get("name"), e)
            return False

    async def resolve(
        self,
        authorization: str | None,
        act_as: str | None = None,
        *,
        allow_act_as: bool = False,
    ) -> Identity:
        """The Identity for an ``Authorization`` header value (and ``X-DataHub-Act-As``
        value *act_as*, honoured only with *allow_act_as* and a token with the act-as scope).

        Raises AuthError (401/403) if it does not identify a hub user allowed to use
        the gateway (or to act as *act_as*), IdentityUnavailable if the hub cannot be
        asked.
        """
        actor = await self._token_owner(authorization)
        target = act_as_target(actor, act_as, allowed=allow_act_as)
        if target is None:
            return actor
        identity = acting_identity(actor, target, await self.hub_user(target))
        reason = await self.account_problem(identity.name)
        if reason:
            raise AuthError(account_refused(identity.name, f"{identity.name} {reason}"), 403)
        return identity

    async def account_problem(self, name: str) -> str | None:
        """Why user *name* may not be acted as (see `account_check`), or None."""
        if self.account_check is None:
            return None
        key = f"datahub-account:{name}"
        cache = self.hub_auth.cache
        if key not in cache:
            try:
                cache[key] = await self.account_check(name) or ""
            except Exception as e:
                self.log.error("Could not check the account of %s: %s", name, e)
                raise IdentityUnavailable(
                    f"The company directory cannot confirm {name}'s account right now, so "
                    "nobody can act as them; try again shortly."
                ) from None
        return cache[key] or None

    async def _token_owner(self, authorization: str | None) -> Identity:
        credentials = parse_authorization(authorization)
        model = await self.user_model(credentials.token)
        if not model:
            raise AuthError(INVALID_TOKEN)
        kind = model.get("kind", "user")
        if kind != "user":
            raise AuthError(
                f"A {kind} token cannot run queries; use a JupyterHub user's token.",
                status=403,
            )
        name = model["name"]
        if credentials.username is not None and normalize_username(
            credentials.username
        ) != normalize_username(name):
            # A mismatch means a confused tool setup or someone trying another
            # user's name; either way the token's owner is who the query would run as.
            raise AuthError(
                f"The token does not belong to {credentials.username!r}; sign in with "
                "your own user name and token."
            )
        if self.required_scopes and not self._has_required_scope(model):
            needed = " or ".join(sorted(self.required_scopes))
            raise AuthError(
                f"Your token is not allowed to use the DataHub gateway (it needs {needed}); "
                "use your server's token or create one with that scope on the hub.",
                status=403,
            )
        return Identity(
            name=name,
            groups=tuple(model.get("groups") or ()),
            admin=bool(model.get("admin")),
            via=credentials.via,
            can_act_as=scopes.holds(model.get("scopes"), scopes.ACT_AS),
        )
