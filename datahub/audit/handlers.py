"""Query history: the REST API and the pages, mounted under the service prefix.

- ``GET {prefix}api/queries?user=me&limit=N`` (and ``cluster=``, ``state=``, ``since=``,
  ``until=``): ``{"queries": [...]}``, newest first. ``user`` other than yourself (or
  ``*`` for everyone) is for admins only.
- ``GET {prefix}api/queries/{query_id}``: every audited field of one query (yours, or
  any for admins).
- Pages: ``{prefix}queries`` (your history), ``{prefix}queries/all`` (admins: everyone's,
  with filters), ``{prefix}queries/{query_id}``.
"""

from __future__ import annotations

import functools
from typing import Any

from tornado import web

from ..identity import normalize_username
from ..web.base import APIHandler, PageHandler, admin_only
from . import records, views


class _QueriesMixin:
    """Filters from the query string, with the one rule: others' queries are for admins."""

    def query_filter(self: Any, default_user: str = "me") -> records.QueryFilter:
        user = (self.get_argument("user", default_user) or default_user).strip()
        if user in ("me", ""):
            user = self.user_name
        elif user != "*":
            user = normalize_username(user)
        if user != self.user_name and not self.is_admin:
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

    async def load(self: Any, where: records.QueryFilter) -> list[dict[str, Any]]:
        return await self.service.audit.run(functools.partial(records.list_queries, where=where))

    async def load_one(self: Any, query_id: str) -> dict[str, Any]:
        record = await self.service.audit.run(
            functools.partial(records.get_query, query_id=query_id)
        )
        # Someone else's query is as absent as a missing one, unless you are an admin.
        if record is None or (record["user"] != self.user_name and not self.is_admin):
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

    async def render_list(self, where, active: str, title: str, *, everyone: bool) -> None:
        rows = await self.load(where)
        self.render_page(
            "queries.html",
            active=active,
            title=title,
            everyone=everyone,
            rows=[views.page_row(r) for r in rows],
            where=_form_values(where),
            states=views.STATES,
            clusters=list(self.service.cluster_map),
        )


class MyQueriesPage(_QueryListPage):
    """``{prefix}queries``: the signed-in user's query history."""

    @web.authenticated
    async def get(self) -> None:
        await self.render_list(self.query_filter(), "queries", "My queries", everyone=False)


class AllQueriesPage(_QueryListPage):
    """``{prefix}queries/all``: everyone's queries, for admins, with filters."""

    @admin_only
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
            sql=record.get("sql") or "",
            fields=views.page_detail(record),
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
    ]
