"""Pages and REST API of the quota feature, mounted under the service prefix.

For everyone: ``api/quota/me``, the page ``quota`` and the box ``quota/box`` (embedded in
the hub's home page). For quota admins only (tokens with the scope
``custom:datahub:quotas``, checked by `needs_scope`): the policy, user, group, usage,
refusal and change endpoints under ``api/quota/``, and the pages ``admin/quotas`` and
``admin/quotas/usage``. The OpenAPI document is ``api/openapi.json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import plotly
from tornado import web

from ..scopes import QUOTAS as QUOTAS_SCOPE
from ..web.base import APIHandler, BaseHandler, PageHandler, needs_scope
from . import charts, storage
from .manager import QuotaManager
from .openapi import openapi_document
from .policy import (
    LIMITS,
    SCOPES,
    PolicyError,
    format_bytes,
    format_limit,
    input_value,
    limits_to_json,
)
from .report import usage_lines
from .resource_groups import resource_groups

STATIC = Path(__file__).with_name("static")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data"

_NAME = r"([^/]+)"


class QuotaHandler(BaseHandler):
    """Base of the feature's handlers: its manager (the service's ``datahub_quotas``
    part). Store calls go through ``self.store.run``, off the event loop."""

    @property
    def quotas(self) -> QuotaManager:
        return self.settings["datahub_quotas"]

    def subject(self, scope: str, name: str | None) -> tuple[str, str]:
        """A policy's subject from the URL, normalized; 400 when it is not one."""
        try:
            return storage.subject(scope, name)
        except PolicyError as e:
            raise web.HTTPError(400, str(e)) from None

    async def me(self) -> dict[str, Any]:
        """The caller's effective policy, today's usage and when it resets."""
        return await self.quotas.report(self.user_name, self.user_groups)


# ------------------------------------------------------------------ REST API


class MeAPI(QuotaHandler, APIHandler):
    """``GET api/quota/me``: your limits (and where each comes from) and today's usage."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.me())


def _policy_body(handler: APIHandler) -> dict[str, Any]:
    body = handler.body_json()
    if not isinstance(body, dict) or not isinstance(body.get("limits"), dict):
        raise web.HTTPError(400, 'Send {"limits": {"<limit>": <value or null>, …}}.')
    return body["limits"]


class PoliciesAPI(QuotaHandler, APIHandler):
    """``GET api/quota/policies``: every stored policy."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        policies = await self.store.run(storage.list_policies, self.store)
        self.write_json(
            {
                "policies": policies,
                "configured_default": self.quotas.default_limits,
                "limits": {
                    name: {"kind": spec.kind, "label": spec.label, "help": spec.help}
                    for name, spec in LIMITS.items()
                },
            }
        )


class PolicyAPI(QuotaHandler, APIHandler):
    """``api/quota/policies/default`` and ``api/quota/policies/{group|user}/{name}``:
    read (GET), replace (PUT), change some limits (PATCH), delete (DELETE)."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self, scope: str, name: str | None = None) -> None:
        scope, name = self.subject(scope, name)
        policy = await self.store.run(storage.get_policy, self.store, scope, name)
        if policy is None:
            raise web.HTTPError(404, f"There is no policy for {scope} {name}.")
        self.write_json({"scope": scope, "name": name, "limits": limits_to_json(policy.limits)})

    async def _set(self, scope: str, name: str | None, *, merge: bool) -> None:
        scope, name = self.subject(scope, name)
        limits = _policy_body(self)
        try:
            before, after = await self.store.run(
                storage.set_policy,
                self.store,
                scope,
                name,
                limits,
                self.user_name,
                self.quotas.now(),
                merge=merge,
            )
        except PolicyError as e:
            raise web.HTTPError(400, str(e)) from None
        self.write_json({"scope": scope, "name": name, "before": before, "after": after})

    @needs_scope(QUOTAS_SCOPE)
    async def put(self, scope: str, name: str | None = None) -> None:
        await self._set(scope, name, merge=False)

    @needs_scope(QUOTAS_SCOPE)
    async def patch(self, scope: str, name: str | None = None) -> None:
        await self._set(scope, name, merge=True)

    @needs_scope(QUOTAS_SCOPE)
    async def delete(self, scope: str, name: str | None = None) -> None:
        scope, name = self.subject(scope, name)
        before = await self.store.run(
            storage.reset_policy,
            self.store,
            scope,
            name,
            self.user_name,
            self.quotas.now(),
        )
        if before is None:
            raise web.HTTPError(404, f"There is no policy for {scope} {name}.")
        self.write_json({"scope": scope, "name": name, "before": before, "after": None})


class UsersAPI(QuotaHandler, APIHandler):
    """``GET api/quota/users``: every known user with today's usage against limits."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        quotas = self.quotas
        now = quotas.now()
        users = await self.store.run(
            storage.users_overview,
            self.store,
            quotas.days.day_of(now),
            now,
            quotas.configured_limits,
        )
        self.write_json({"users": users, **quotas.reset_info()})


class UserAPI(QuotaHandler, APIHandler):
    """``GET api/quota/users/{name}``: one user's limits and today's usage (their groups
    as the gateway last saw them)."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self, name: str) -> None:
        _, name = self.subject("user", name)
        groups = await self.store.run(storage.user_groups, self.store, name)
        self.write_json(await self.quotas.report(name, groups))


class ResetUsageAPI(QuotaHandler, APIHandler):
    """``POST api/quota/users/{name}/reset-usage``: zero the user's counters of today."""

    @needs_scope(QUOTAS_SCOPE)
    async def post(self, name: str) -> None:
        _, name = self.subject("user", name)
        quotas = self.quotas
        now = quotas.now()
        before = await self.store.run(
            storage.reset_usage, self.store, name, quotas.days.day_of(now), self.user_name, now
        )
        self.write_json({"user": name, "day": quotas.days.day_of(now), "before": before})


class GroupsAPI(QuotaHandler, APIHandler):
    """``GET api/quota/groups``: every known group, its policy and its members' usage."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        quotas = self.quotas
        now = quotas.now()
        groups = await self.store.run(
            storage.groups_overview, self.store, quotas.days.day_of(now), now
        )
        self.write_json({"groups": groups, **quotas.reset_info()})


def _int_argument(handler: web.RequestHandler, name: str, default: int, most: int) -> int:
    raw = handler.get_argument(name, str(default))
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= most:
        raise web.HTTPError(400, f"{name} must be a whole number from 1 to {most}.")
    return int(raw)


async def _usage_summary(handler: QuotaHandler, days: int) -> dict[str, Any]:
    quotas = handler.quotas
    last = quotas.today()
    first = last - dt.timedelta(days=days - 1)
    rows = await handler.store.run(storage.usage_history, handler.store, first, last)
    return charts.summarize(rows, first, last)


class UsageAPI(QuotaHandler, APIHandler):
    """``GET api/quota/usage?days=30``: totals per day, top users and top groups."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        days = _int_argument(self, "days", self.quotas.history_days, 3660)
        self.write_json(await _usage_summary(self, days))


class RefusalsAPI(QuotaHandler, APIHandler):
    """``GET api/quota/refusals?limit=50``: the newest refusals and quota cancellations."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        limit = _int_argument(self, "limit", 50, 1000)
        user = self.get_argument("user", None)
        rows = await self.store.run(storage.recent_refusals, self.store, limit, user)
        self.write_json({"refusals": rows})


class ChangesAPI(QuotaHandler, APIHandler):
    """``GET api/quota/changes?limit=50``: the audit of policy and usage changes."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        limit = _int_argument(self, "limit", 50, 1000)
        rows = await self.store.run(storage.recent_changes, self.store, limit)
        self.write_json({"changes": rows})


class ResourceGroupsAPI(QuotaHandler, APIHandler):
    """``GET api/quota/resource-groups``: Trino resource-group configuration generated
    from the policies, for the clusters' ``etc/resource-groups.json``."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        policies = await self.store.run(storage.all_policies, self.store)
        users = await self.store.run(storage.seen_users, self.store)
        self.write_json(resource_groups(policies, self.quotas.configured_limits, users))


class OpenAPIHandler(APIHandler):
    """``GET api/openapi.json``: the REST API's OpenAPI 3 document (no sign-in needed)."""

    async def get(self) -> None:
        self.write_json(openapi_document(self.prefix))


# ------------------------------------------------------------------ pages


class QuotaPage(QuotaHandler, PageHandler):
    """``quota``: your limits and today's usage."""

    @web.authenticated
    async def get(self) -> None:
        self.render_page("quota.html", active="quota", report=await self.me())


class QuotaBox(QuotaHandler, PageHandler):
    """``quota/box``: the usage box the hub's home page embeds (an iframe, so the
    service's own sign-in applies)."""

    @web.authenticated
    async def get(self) -> None:
        self.render_page("quota_box.html", report=await self.me())


class AdminQuotasPage(QuotaHandler, PageHandler):
    """``admin/quotas``: users and groups with today's usage against limits, policies
    with their editors, recent refusals and changes."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        quotas = self.quotas
        now = quotas.now()
        day = quotas.days.day_of(now)
        store = self.store
        users = await self.store.run(
            storage.users_overview, store, day, now, quotas.configured_limits
        )
        for user in users:
            user["lines"] = {
                line["limit"]: line for line in usage_lines(user["policy"]["limits"], user["usage"])
            }
        self.render_page(
            "admin_quotas.html",
            active="admin/quotas",
            users=users,
            groups=await self.store.run(storage.groups_overview, store, day, now),
            policies=await self.store.run(storage.list_policies, store),
            refusals=await self.store.run(storage.recent_refusals, store, 20),
            changes=await self.store.run(storage.recent_changes, store, 20),
            limits=LIMITS,
            configured=quotas.default_limits,
            input_value=input_value,
            format_limit=format_limit,
            format_bytes=format_bytes,
            reset=quotas.reset_info(),
            message=self.get_argument("message", ""),
            error=self.get_argument("error", ""),
            # Not a store call: it looks at the host's enforcement (cgroup files).
            limits_notice=await asyncio.to_thread(self.quotas.server_limits_notice),
        )


class AdminPolicyForm(QuotaHandler, PageHandler):
    """``POST admin/quotas/policy``: save or reset a policy from the admin page's form
    (XSRF-checked like every POST). Empty fields are inherited; "unlimited" sets none."""

    @needs_scope(QUOTAS_SCOPE)
    async def post(self) -> None:
        scope = self.get_body_argument("scope", "")
        name = self.get_body_argument("name", "").strip() or None
        action = self.get_body_argument("action", "save")
        quotas = self.quotas
        try:
            scope, name = storage.subject(scope, name)
            if action == "reset":
                await self.store.run(
                    storage.reset_policy, self.store, scope, name, self.user_name, quotas.now()
                )
                message = f"Policy of {scope} {name} removed; it inherits again."
            else:
                limits = {
                    limit: self.get_body_argument(limit).strip()
                    for limit in LIMITS
                    if self.get_body_argument(limit, "").strip()
                }
                await self.store.run(
                    storage.set_policy,
                    self.store,
                    scope,
                    name,
                    limits,
                    self.user_name,
                    quotas.now(),
                )
                message = f"Policy of {scope} {name} saved."
        except PolicyError as e:
            self.redirect(_admin_url(self, error=str(e)))
            return
        self.redirect(_admin_url(self, message=message))


class AdminResetUsageForm(QuotaHandler, PageHandler):
    """``POST admin/quotas/reset-usage``: zero a user's counters of today."""

    @needs_scope(QUOTAS_SCOPE)
    async def post(self) -> None:
        quotas = self.quotas
        try:
            _, name = storage.subject("user", self.get_body_argument("name", ""))
        except PolicyError as e:
            self.redirect(_admin_url(self, error=str(e)))
            return
        now = quotas.now()
        await self.store.run(
            storage.reset_usage, self.store, name, quotas.days.day_of(now), self.user_name, now
        )
        self.redirect(_admin_url(self, message=f"Today's usage of {name} reset."))


def _admin_url(handler: QuotaHandler, **args: str) -> str:
    return f"{handler.prefix}admin/quotas?{urlencode(args)}"


class AdminUsagePage(QuotaHandler, PageHandler):
    """``admin/quotas/usage``: queries, CPU and bytes per day; top users and groups."""

    @needs_scope(QUOTAS_SCOPE)
    async def get(self) -> None:
        days = _int_argument(self, "days", self.quotas.history_days, 3660)
        summary = await _usage_summary(self, days)
        self.render_page(
            "usage.html",
            active="admin/quotas/usage",
            summary=summary,
            figures=charts.figures(summary),
            days=days,
            format_bytes=format_bytes,
        )


class StaticHandler(web.StaticFileHandler):
    """The feature's scripts and plotly.js, from the service itself (the page CSP allows
    no other origin)."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "public, max-age=3600")


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]] | tuple]:
    api = prefix + "api/quota/"
    scopes = "|".join(s for s in SCOPES if s != "default")
    return [
        (api + "me", MeAPI),
        (api + "policies", PoliciesAPI),
        (api + r"policies/(default)", PolicyAPI),
        (api + rf"policies/({scopes})/{_NAME}", PolicyAPI),
        (api + "users", UsersAPI),
        (api + rf"users/{_NAME}", UserAPI),
        (api + rf"users/{_NAME}/reset-usage", ResetUsageAPI),
        (api + "groups", GroupsAPI),
        (api + "usage", UsageAPI),
        (api + "refusals", RefusalsAPI),
        (api + "changes", ChangesAPI),
        (api + "resource-groups", ResourceGroupsAPI),
        (prefix + "api/openapi.json", OpenAPIHandler),
        (prefix + "quota", QuotaPage),
        (prefix + "quota/box", QuotaBox),
        (prefix + "admin/quotas", AdminQuotasPage),
        (prefix + "admin/quotas/policy", AdminPolicyForm),
        (prefix + "admin/quotas/reset-usage", AdminResetUsageForm),
        (prefix + "admin/quotas/usage", AdminUsagePage),
        (prefix + r"static/quotas/(.*)", StaticHandler, {"path": str(STATIC)}),
        (prefix + r"static/plotly/(plotly\.min\.js)", StaticHandler, {"path": str(PLOTLY_JS)}),
    ]
