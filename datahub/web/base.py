"""Base handlers for the DataHub service's pages and REST API.

Both authenticate with the hub (`HubOAuth`): pages through the hub's OAuth flow and its
cookie, the API by `Authorization: token|Bearer <hub token>` or the same cookie (then with
JupyterHub's XSRF check on writes). Identity always comes from the hub, never from the
request. Power comes from the scopes of the token behind the request (the OAuth token of
the page cookie, or the API token): handlers that need one use ``@needs_scope(SCOPE)``
(:mod:`datahub.scopes`), the one place that rule lives, never the hub's admin flag.

Handlers depend on named parts, never on the service object (JupyterHub's
``BaseHandler`` style): `DataHubService.make_app` puts each part the service built in
the tornado settings under a ``datahub_*`` name, and each handler reads the ones it uses
through a typed property: the common ones here (``store``, ``prefix``, ``hub_auth``, the
identity of the request), each feature's in its own base handler (``quotas``,
``sharing``, ``audit``, ``metadata``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web

import datahub.templates

from .. import scopes
from ..identity import normalize_username
from ..store import Store
from .nav import nav_bar

TEMPLATES = Path(datahub.templates.__file__).parent / "service"
#: Where the hub serves its pages and static files (its default base URL).
HUB_PREFIX = "/hub/"


def template_environment() -> jinja2.Environment:
    """Jinja environment for service pages (autoescaped: user content is never markup)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Common to pages and API: the hub user and their power, the store, templates."""

    @property
    def hub_auth(self) -> HubOAuth:
        return self.settings["hub_auth"]

    @property
    def store(self) -> Store:
        """The store; call it with ``await self.store.run(fn, ...)``, never directly."""
        return self.settings["datahub_store"]

    @property
    def prefix(self) -> str:
        """The service prefix, with slashes at both ends (``/services/datahub/``)."""
        return self.settings["datahub_prefix"]

    async def prepare(self) -> None:
        # Resolve the user without blocking the event loop; get_current_user then reads
        # the cached result.
        model = await self.hub_auth.get_user(self, sync=False)
        if model is None:
            self._hub_auth_user_cache = None
            return
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            # Tornado asked before the identity was known (see check_xsrf_cookie); now
            # that it is, a write identified by the cookie must carry the XSRF token.
            self.check_xsrf_cookie()
        try:
            self._hub_auth_user_cache = self.check_hub_user(model)
        except Exception:  # not allowed: behave as anonymous (403/redirect below)
            self._hub_auth_user_cache = None

    def check_xsrf_cookie(self) -> None:
        """JupyterHub's XSRF check, skipped only for requests authenticated by a token.

        Tornado calls this before `prepare`, when nobody knows yet whether a token or the
        cookie identifies the request: that call is deferred to `prepare` (and to HubOAuth,
        which runs it before it accepts the cookie). A request's headers never decide:
        only the hub's answer that its token is valid (``_token_authenticated``) does.
        """
        if getattr(self, "_token_authenticated", False):
            return
        if not hasattr(self, "_cached_hub_user"):
            return  # before prepare(): checked there once the identity is known
        super().check_xsrf_cookie()

    @property
    def user_name(self) -> str:
        """The requester's DataHub user name (only under ``@web.authenticated``)."""
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Sign in first.")
        return normalize_username(user["name"])

    @property
    def token_scopes(self) -> frozenset[str]:
        """The scopes of the token behind this request (expanded by the hub)."""
        return frozenset((self.current_user or {}).get("scopes") or ())

    def has_scope(self, scope: str) -> bool:
        """Whether the request's token carries ``scope`` (:mod:`datahub.scopes`)."""
        return scopes.holds(self.token_scopes, scope)

    @property
    def is_admin(self) -> bool:
        """Whether this request may administer DataHub (the token's admin scope)."""
        return self.has_scope(scopes.ADMIN)

    @property
    def user_groups(self) -> list[str]:
        """The requester's hub groups."""
        return list((self.current_user or {}).get("groups") or [])


#: What someone who is not a DataHub administrator is told.
ADMINS_ONLY = "Only DataHub administrators may do this."


def needs_scope(
    scope: str,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Only requests whose token carries ``scope`` may call this handler method; others
    get 403. An admin whose token lacks the scope (a narrow token, their server's) is
    told which scope it needs; anyone else that only administrators may do this."""

    def decorate(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        @web.authenticated
        async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
            if not self.has_scope(scope):
                admin = bool(self.current_user.get("admin"))
                message = scopes.missing_scope_message(scope) if admin else ADMINS_ONLY
                raise web.HTTPError(403, message)
            return await method(self, *args, **kwargs)

        return wrapper

    return decorate


#: The whole of DataHub's admin power (clusters, shared notebooks' moderation): the
#: admin scope itself, not one of its parts.
admin_only = needs_scope(scopes.ADMIN)


class PageHandler(BaseHandler):
    """An HTML page in the hub's look (templates/service/page.html)."""

    #: This page's Content-Security-Policy, when stricter than the service's (the
    #: ``page_csp`` setting): a shared notebook's page sets its own.
    page_csp: str | None = None

    def render_page(self, template: str, **context: Any) -> None:
        """Render a service template; ``active`` (a path under the service prefix, e.g.
        "gallery") marks the page's nav item."""
        env = self.settings["jinja_env"]
        prefix = self.prefix
        active = context.pop("active", None)
        user = self.current_user
        nav = nav_bar(
            user["name"] if user else None,
            admin=self.is_admin,
            current="" if active is None else f"service:{active}",
            hub_prefix=HUB_PREFIX,
            service_prefix=prefix,
        )
        html = env.get_template(template).render(
            user=user,
            is_admin=self.is_admin,
            prefix=prefix,
            hub_prefix=HUB_PREFIX,
            xsrf_token=self.xsrf_token.decode("ascii"),
            nav=nav,
            active=active,
            **context,
        )
        self.set_header("Content-Security-Policy", self.page_csp or self.settings["page_csp"])
        self.finish(html)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        try:
            self.render_page("error.html", status_code=status_code, message=reason)
        except Exception:  # never fail while reporting a failure
            self.finish(f"{status_code}: {reason}")


class APIHandler(BaseHandler):
    """A JSON endpoint. Errors are ``{"status": code, "message": "…"}``, never HTML."""

    def get_login_url(self) -> str:
        # An API caller without credentials gets 403, not a redirect to a login page.
        raise web.HTTPError(403, "Send a hub API token: Authorization: token <token>.")

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(value, default=str))

    def body_json(self) -> Any:
        """The request body as JSON; a clear 400 when it is not."""
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as e:
            raise web.HTTPError(400, f"The request body is not valid JSON: {e}") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code == 500:
            message = "Internal error in the DataHub service; it has been logged."
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"status": status_code, "message": message}))


def oauth_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The OAuth callback every HubOAuth service registers."""

    class CallbackHandler(HubOAuthCallbackHandler):
        @property
        def hub_auth(self) -> HubOAuth:
            return self.settings["hub_auth"]

    return [(prefix + "oauth_callback", CallbackHandler)]
