"""The metadata REST API, under the service prefix, for SQL completion and the schema
browser. Every answer is the caller's own view, read as them (see ``catalog.py``).

- ``GET {prefix}api/metadata/catalogs`` → ``{"catalogs": ["memory", "tpch"]}``
- ``GET {prefix}api/metadata/schemas?catalog=C`` → ``{"schemas": [...]}``
- ``GET {prefix}api/metadata/tables?catalog=C&schema=S`` →
  ``{"tables": [{"name", "type", "comment"?}]}``
- ``GET {prefix}api/metadata/columns?catalog=C&schema=S&table=T`` →
  ``{"columns": [{"name", "type"}]}``
- ``GET {prefix}api/metadata/functions`` →
  ``{"functions": [{"name", "signature", "kind", "description"}]}``
- ``POST {prefix}api/metadata/refresh`` → ``{"forgotten": N}``: drop your cached answers.

For the schema browser:

- ``GET {prefix}api/metadata/routing-groups`` → ``{"routing_groups": [{"name",
  "clusters", "default"}]}``: the routing groups your quota policy lets you use (what a
  cell names with ``--cluster``), with their clusters.
- ``catalogs``, ``schemas`` and ``tables`` take ``offset=`` and ``limit=`` (at most
  1000): ``{"tables": [...], "total": N, "next_offset": M or null}``. The whole listing
  is one cached answer, so paging asks Trino nothing more.
- ``GET {prefix}api/metadata/describe?catalog=C&schema=S&table=T`` →
  ``{"describe": [{"name", "type", "comment"?, "fields"?}]}``: the columns with their
  comments, a ``ROW`` column's fields as nested ``fields``.
- ``GET {prefix}api/metadata/search?catalog=C&text=X`` (``schema=``, ``offset=``,
  ``limit=``, 50 by default) → ``{"search": [{"schema", "table", "type"} or {"schema",
  "table", "column", "column_type"}], "next_offset": M or null}``: tables, then columns,
  whose name contains X (any case; ``%`` and ``_`` are plain characters), one statement
  on Trino per page.

Each GET takes ``cluster=GROUP``, the routing hint a cell sends with ``--cluster``. They
need the hub token in ``Authorization`` (the statement runs with it); a Trino or gateway
refusal is ``{"status": 502, "message": "<its sentence>"}``.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ..gateway.core import Gateway
from ..web.base import APIHandler
from .browse import page_of, routing_group_entries, search_page
from .catalog import MetadataCatalog, MetadataError
from .queries import KINDS, MetadataRequest, RequestError, paging

#: The listings the schema browser pages through.
PAGED = ("catalogs", "schemas", "tables")

__all__ = ["default_handlers"]


class _MetadataHandler(APIHandler):
    @property
    def metadata(self) -> MetadataCatalog:
        """The service's metadata catalog (its ``datahub_catalog`` part)."""
        return self.settings["datahub_catalog"]


class MetadataAPI(_MetadataHandler):
    """One metadata question, answered as the caller."""

    @web.authenticated
    async def get(self, kind: str) -> None:
        authorization = self.request.headers.get("Authorization")
        if not authorization:
            # A browser session has no token to run statements with.
            raise web.HTTPError(
                403, "Metadata is read with your hub token: send Authorization: token <token>."
            )
        try:
            offset, limit = paging(self.get_argument("offset", ""), self.get_argument("limit", ""))
            names = {name: self.get_argument(name, "") for name in (*KINDS.get(kind, ()), "schema")}
            request = MetadataRequest.build(kind, offset=offset, limit=limit, **names)
        except RequestError as e:
            raise web.HTTPError(400, str(e)) from None
        hint = self.get_argument("cluster", "") or None
        try:
            answer: Any = await self.metadata.lookup(self.user_name, authorization, request, hint)
        except MetadataError as e:
            raise web.HTTPError(502, str(e)) from None
        if kind == "search":
            self.write_json(search_page(answer, request.offset, request.limit))
        elif kind in PAGED and limit:
            self.write_json(page_of(kind, answer, offset, limit))
        else:
            self.write_json({kind: answer})


class RoutingGroupsAPI(_MetadataHandler):
    """The routing groups the caller may use, for the schema browser's top level."""

    @property
    def gateway(self) -> Gateway:
        return self.settings["gateway"]

    @web.authenticated
    async def get(self) -> None:
        router = self.gateway.router
        # Which routing groups a person may use is the quota policy's to say.
        allowed = await self.gateway.allowed_routing_groups(self.user_name, self.user_groups)
        entries = routing_group_entries(router.clusters, router.default_group, allowed)
        self.write_json({"routing_groups": entries})


class MetadataRefreshAPI(_MetadataHandler):
    """Forget the caller's cached answers, so the next ones come fresh from Trino."""

    @web.authenticated
    async def post(self) -> None:
        self.write_json({"forgotten": self.metadata.forget(self.user_name)})


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    kinds = "|".join(KINDS)
    return [
        (prefix + "api/metadata/refresh", MetadataRefreshAPI),
        (prefix + "api/metadata/routing-groups", RoutingGroupsAPI),
        (prefix + rf"api/metadata/({kinds})", MetadataAPI),
    ]
