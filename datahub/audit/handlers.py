"""Query history: the REST API and the pages, mounted under the service prefix.

- ``GET {prefix}api/queries?user=me&limit=N`` (and ``cluster=``, ``state=``, ``since=``,
  ``until=``): ``{"queries": [...]}``, newest first. ``user`` other than yourself (or
  ``*`` for everyone) is for admins only.
- ``GET {prefix}api/queries/{query_id}``: every audited field of one query (yours, or
  any for admins).
- Pages: ``{prefix}queries`` (your history, queries admins ran as you marked, and the
  admins who looked at your account), ``{prefix}queries/all`` (admins: everyone's, with
  filters), ``{prefix}queries/{query_id}``.
- Admins only (their token's ``custom:datahub:audit`` scope, like everyone's queries
  above): ``{prefix}admin/users/{name}`` and ``{prefix}api/admin/users/{name}``, one
  user's history and quota as they see them (and how to act as them, when
  ``DataHubService.allow_admin_act_as`` is on). Every opening is recorded for the user,
  so they are served only when the admin meant to open them (`datahub.web.fetch_metadata`):
  the page on a navigation of the browser (not an ``<img>``, a frame or a prefetch that
  markup on some other page, such as a shared notebook, could make with the admin's
  cookie), the API to a token or a script's fetch. Anything else is refused (403) and
  nothing is recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from tornado import web

from ..identity import ACT_AS_HEADER, IdentityResolver, IdentityUnavailable, normalize_username
from ..names import UsernameError, validate_username
from ..quotas.manager import QuotaManager
from ..scopes import AUDIT as AUDIT_SCOPE
from ..web.base import APIHandler, BaseHandler, PageHandler, needs_scope
from ..web.fetch_metadata import is_page_navigation, is_program_call
from . import records, views
from .log import AuditLog

#: How many admin views of their account a user's history page lists.
ACCESS_ROWS = 20


class AuditHandler(BaseHandler):
    """Base of the feature's handlers: the audit's writer (the service's
    ``datahub_audit`` part) for what they record; reads go through ``self.store``."""

    @property
    def audit(self) -> AuditLog:
        return self.settings["datahub_audit"]

    @property
    def cluster_names(self) -> list[str]:
        """The configured clusters' names, for the history's filter."""
        return list(self.settings["datahub_clusters"])


class _QueriesMixin(AuditHandler):
    """Filters from the query string, with the one rule: others' queries are for admins."""

    def query_filter(self, default_user: str = "me") -> records.QueryFilter:
        user = (self.get_argument("user", default_user) or default_user).strip()
        if user in ("me", ""):
            user = self.user_name
        elif user != "*":
            user = normalize_username(user)
        if user != self.user_name and not self.has_scope(AUDIT_SCOPE):
            raise web.HTTPError(
                403, "Only DataHub administrators may see other users' queries; ask for user=me."
            )
        try:
            return records.QueryFilter(
                user=None if user == "*" else user,
                cluster=self.get_argument("cluster", "") or None,
                state=views.parse_state(self.get_argument("state", "")),
                since=views.parse_time("since", self.get_argument("since", "")),
                until=views.parse_time("until", self.get_argument("until", "")),
                limit=views.parse_limit(self.get_argument("limit", "")),
            )
        except views.FilterError as e:
            raise web.HTTPError(400, str(e)) from None

    async def load(self, where: records.QueryFilter) -> list[dict[str, Any]]:
        return await self.store.run_in_transaction(records.list_queries, where=where)

    async def load_one(self, query_id: str) -> dict[str, Any]:
        record = await self.store.run_in_transaction(records.get_query, query_id=query_id)
        # Someone else's query is as absent as a missing one, unless you are an admin.
        if record is None or (record["user"] != self.user_name and not self.has_scope(AUDIT_SCOPE)):
            raise web.HTTPError(404, f"No query {query_id} of yours is recorded.")
        return record


class QueriesAPI(_QueriesMixin, APIHandler):
    """``GET {prefix}api/queries``."""

    @web.authenticated
    async def get(self) -> None:
        rows = await self.load(self.query_filter())
        self.write_json({"queries": [views.api_query(r) for r in rows]})


class QueryAPI(_QueriesMixin, APIHandler):
    """``GET {prefix}api/queries/{query_id}``."""

    @web.authenticated
    async def get(self, query_id: str) -> None:
        self.write_json(views.api_query_detail(await self.load_one(query_id)))


class _QueryListPage(_QueriesMixin, PageHandler):
    """The query list page, for one user's queries or everyone's."""

    async def render_list(
        self,
        where,
        active: str,
        title: str,
        *,
        everyone: bool,
        accesses: list[dict[str, Any]] | None = None,
    ) -> None:
        rows = await self.load(where)
        self.render_page(
            "queries.html",
            active=active,
            title=title,
            everyone=everyone,
            rows=[views.page_row(r) for r in rows],
            where=_form_values(where),
            states=views.STATES,
            clusters=self.cluster_names,
            accesses=[views.page_access(a) for a in accesses or ()],
        )


class MyQueriesPage(_QueryListPage):
    """``{prefix}queries``: the signed-in user's query history, and which admins looked
    at their account."""

    @web.authenticated
    async def get(self) -> None:
        where = self.query_filter()
        accesses = await self.store.run_in_transaction(
            records.admin_accesses, user=self.user_name, limit=ACCESS_ROWS
        )
        await self.render_list(where, "queries", "Query history", everyone=False, accesses=accesses)


class AllQueriesPage(_QueryListPage):
    """``{prefix}queries/all``: everyone's queries, for admins, with filters."""

    @needs_scope(AUDIT_SCOPE)
    async def get(self) -> None:
        where = self.query_filter(default_user="*")
        await self.render_list(where, "queries/all", "All queries", everyone=True)


class QueryPage(_QueriesMixin, PageHandler):
    """``{prefix}queries/{query_id}``: one query, every audited field."""

    @web.authenticated
    async def get(self, query_id: str) -> None:
        record = await self.load_one(query_id)
        self.render_page(
            "query.html",
            active="queries",
            query_id=query_id,
            query_user=record["user"],
            sql=record.get("sql") or "",
            fields=views.page_detail(record),
        )


class _UserViewMixin(_QueriesMixin):
    """One user's account as an admin sees it, recorded for the user."""

    #: Whether a request is one the admin meant to send (from its headers), and the
    #: sentence refusing any other.
    deliberate: Callable[[Mapping[str, str]], bool]
    not_deliberate: str

    @property
    def quotas(self) -> QuotaManager:
        """The quota feature's manager (``datahub_quotas``), for the user's quota."""
        return self.settings["datahub_quotas"]

    @property
    def identity_resolver(self) -> IdentityResolver:
        """Asks the hub about users (``datahub_identity``)."""
        return self.settings["datahub_identity"]

    async def user_view(self, name: str, what: str) -> dict[str, Any]:
        """The user's hub groups, history and quota; records that the admin looked."""
        if not type(self).deliberate(self.request.headers):
            raise web.HTTPError(403, self.not_deliberate)
        try:
            name = validate_username(name)
        except UsernameError:
            name = ""
        try:
            model = await self.identity_resolver.hub_user(name) if name else None
        except IdentityUnavailable as e:
            raise web.HTTPError(503, str(e)) from None
        if model is None:
            raise web.HTTPError(404, "The hub has no such user; check the name.")
        name = model["name"]
        groups = list(model.get("groups") or ())
        if name != self.user_name:
            # Through the audit's writer, in order with everything else it records.
            await self.audit.run(
                functools.partial(
                    records.record_admin_access, admin=self.user_name, user=name, what=what
                )
            )
        queries = await self.load(records.QueryFilter(user=name))
        return {
            "user": name,
            "groups": groups,
            "admin": bool(model.get("admin")),
            "queries": queries,
            "quota": await self.quotas.report(name, groups),
            "act_as": bool(self.settings["datahub_allow_admin_act_as"]),
        }


class AdminUserAPI(_UserViewMixin, APIHandler):
    """``GET {prefix}api/admin/users/{name}``: one user's history and quota (admins)."""

    deliberate = staticmethod(is_program_call)
    not_deliberate = (
        "Call this API with a hub token (Authorization: token …): an admin's view of an "
        "account is recorded for its user."
    )

    @needs_scope(AUDIT_SCOPE)
    async def get(self, name: str) -> None:
        view = await self.user_view(name, "history and quota (API)")
        self.write_json(
            {
                **view,
                "queries": [views.api_query_detail(r) for r in view["queries"]],
                "act_as": {"allowed": view["act_as"], "header": ACT_AS_HEADER},
            }
        )


class AdminUserPage(_UserViewMixin, PageHandler):
    """``{prefix}admin/users/{name}``: one user's history and quota (admins)."""

    deliberate = staticmethod(is_page_navigation)
    not_deliberate = (
        "This page opens only as a page of its own in your browser (an admin's view of an "
        "account is recorded for its user): follow a link to it or type its address."
    )

    @needs_scope(AUDIT_SCOPE)
    async def get(self, name: str) -> None:
        view = await self.user_view(name, "history and quota page")
        self.render_page(
            "admin_user.html",
            active="queries/all",
            view=view,
            rows=[views.page_row(r) for r in view["queries"]],
            act_as_header=ACT_AS_HEADER,
        )


def _form_values(where: records.QueryFilter) -> dict[str, str]:
    def local(value: Any) -> str:
        return value.strftime("%Y-%m-%dT%H:%M") if value else ""

    return {
        "user": where.user or "",
        "cluster": where.cluster or "",
        "state": where.state or "",
        "since": local(where.since),
        "until": local(where.until),
        "limit": str(where.limit),
    }


_QUERY_ID = r"([A-Za-z0-9_]{1,100})"


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    return [
        (prefix + r"api/queries", QueriesAPI),
        (prefix + r"api/queries/" + _QUERY_ID, QueryAPI),
        (prefix + r"queries", MyQueriesPage),
        (prefix + r"queries/all", AllQueriesPage),
        (prefix + r"queries/" + _QUERY_ID, QueryPage),
        (prefix + r"api/admin/users/([^/]+)", AdminUserAPI),
        (prefix + r"admin/users/([^/]+)", AdminUserPage),
    ]
