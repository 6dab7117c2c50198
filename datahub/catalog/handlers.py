"""The metadata REST API, under the service prefix, for SQL completion and the schema
browser. Every answer is the caller's own view, read as them (see ``catalog.py``).

- ``GET {prefix}api/metadata/catalogs`` → ``{"catalogs": ["memory", "tpch"]}``
- ``GET {prefix}api/metadata/schemas?catalog=C`` → ``{"schemas": [...]}``
- ``GET {prefix}api/metadata/tables?catalog=C&schema=S`` →
  ``{"tables": [{"name", "type"}]}``
- ``GET {prefix}api/metadata/columns?catalog=C&schema=S&table=T`` →
  ``{"columns": [{"name", "type"}]}``
- ``GET {prefix}api/metadata/functions`` →
  ``{"functions": [{"name", "signature", "kind", "description"}]}``
- ``POST {prefix}api/metadata/refresh`` → ``{"forgotten": N}``: drop your cached answers.

Each GET takes ``cluster=GROUP``, the routing hint a cell sends with ``--cluster``. They
need the hub token in ``Authorization`` (the statement runs with it); a Trino or gateway
refusal is ``{"status": 502, "message": "<its sentence>"}``.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ..web.base import APIHandler
from .catalog import MetadataCatalog, MetadataError
from .queries import KINDS, MetadataRequest, RequestError

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
            request = MetadataRequest.build(
                kind, **{name: self.get_argument(name, "") for name in KINDS.get(kind, ())}
            )
        except RequestError as e:
            raise web.HTTPError(400, str(e)) from None
        hint = self.get_argument("cluster", "") or None
        try:
            answer: Any = await self.metadata.lookup(self.user_name, authorization, request, hint)
        except MetadataError as e:
            raise web.HTTPError(502, str(e)) from None
        self.write_json({kind: answer})


class MetadataRefreshAPI(_MetadataHandler):
    """Forget the caller's cached answers, so the next ones come fresh from Trino."""

    @web.authenticated
    async def post(self) -> None:
        self.write_json({"forgotten": self.metadata.forget(self.user_name)})


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    kinds = "|".join(KINDS)
    return [
        (prefix + "api/metadata/refresh", MetadataRefreshAPI),
        (prefix + rf"api/metadata/({kinds})", MetadataAPI),
    ]
