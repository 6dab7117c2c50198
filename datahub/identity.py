"""Who is asking: hub users identified by their hub token, never by client headers.

A request carries a JupyterHub API token in its ``Authorization`` header:

* ``Bearer <token>`` or ``token <token>``: what the ``%%sql`` kernel sends (its
  ``JUPYTERHUB_API_TOKEN`` through ``trino.auth.JWTAuthentication``);
* ``Basic base64(<username>:<token>)``: what external tools (the Trino CLI, JDBC)
  send as user name and password. The user name must be the token's owner.

The hub says whom the token belongs to (``HubAuth.user_for_token``, cached) and which
scopes it carries; the token must carry the gateway's access scope
(``access:services!service=<service name>``), and service tokens are refused.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any, Literal

from jupyterhub.services.auth import HubAuth, check_scopes
from tornado.web import HTTPError
from traitlets import Instance, Set, Unicode, default
from traitlets.config import LoggingConfigurable

from .names import normalize_username  # noqa: F401 - re-exported for the gateway

Via = Literal["token", "basic"]


@dataclass(frozen=True)
class Identity:
    """A hub user as the gateway knows them.

    ``via`` records how the token was presented ("token" for Bearer/token, "basic"
    for user name and token as password), for the logs.
    """

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False
    via: Via = "token"


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

    async def user_model(self, token: str) -> dict[str, Any] | None:
        """The hub's model of the token's owner (with the token's ``scopes``), or None."""
        try:
            return await self.hub_auth.user_for_token(token, sync=False)
        except HTTPError as e:
            self.log.error("Could not check a token with the hub: %s", e.log_message)
            raise IdentityUnavailable(
                "The hub could not check your token right now; try again shortly or ask an admin."
            ) from None

    def _has_required_scope(self, model: dict[str, Any]) -> bool:
        scopes = set(model.get("scopes") or ())
        try:
            return bool(check_scopes(set(self.required_scopes), scopes))
        except ValueError as e:
            # The hub sends expanded scopes; anything unparsable grants nothing.
            self.log.warning("Unparsable scopes for %s: %s", model.get("name"), e)
            return False

    async def resolve(self, authorization: str | None) -> Identity:
        """The Identity for an ``Authorization`` header value.

        Raises AuthError (401/403) if it does not identify a hub user allowed to use
        the gateway, IdentityUnavailable if the hub cannot be asked.
        """
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
        )
