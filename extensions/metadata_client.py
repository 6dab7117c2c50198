"""The kernel's view of the user's Trino metadata, from the DataHub service.

:class:`MetadataClient` asks ``{api}/metadata/…`` through the kernel's
:class:`~datahub.extensions.service_client.ServiceClient` (the service runs the
statements through the gateway as the token's owner and caches them per user), keeps the
answers for a short while in the kernel too (completion asks on every key press), and
never raises while listing: completion must not break typing, so a failure is logged and
answered with nothing. It implements :class:`datahub.extensions.completion.Catalog`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from datahub.extensions.completion import Column, Function, Table, parse_type
from datahub.extensions.service_client import ServiceClient, ServiceError

__all__ = ["MetadataClient"]

log = logging.getLogger(__name__)


class MetadataClient:
    """Cached metadata of the token's owner, read through the DataHub service.

    ``hint`` is the routing group a cell names with ``--cluster``: the statements go
    where that cell's query would. Answers are kept ``ttl`` seconds (failures
    ``failure_ttl``, so a down service is not asked on every key press).
    """

    def __init__(
        self,
        service: ServiceClient,
        *,
        hint: str | None = None,
        ttl: float = 60.0,
        failure_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.hint = hint
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self._clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, list[Any]]] = {}
        #: The last failure's sentence, for whoever wants to tell the user.
        self.last_error: str | None = None

    # -- Catalog ------------------------------------------------------------------------

    def catalogs(self) -> list[str]:
        return [str(c) for c in self._get("catalogs")]

    def schemas(self, catalog: str) -> list[str]:
        return [str(s) for s in self._get("schemas", catalog=catalog)]

    def tables(self, catalog: str, schema: str) -> list[Table]:
        return [
            Table(t["name"], t.get("type") or "")
            for t in self._get("tables", catalog=catalog, schema=schema)
            if isinstance(t, dict) and "name" in t
        ]

    def columns(self, catalog: str, schema: str, table: str) -> list[Column]:
        out = []
        for c in self._get("columns", catalog=catalog, schema=schema, table=table):
            if isinstance(c, dict) and "name" in c:
                type_text = c.get("type") or ""
                out.append(Column(c["name"], type_text, parse_type(type_text)))
        return out

    def functions(self) -> list[Function]:
        return [
            Function(f["name"], f.get("signature") or "", f.get("description") or "")
            for f in self._get("functions")
            if isinstance(f, dict) and "name" in f
        ]

    # -- refresh ------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop the kernel's copies (the service's are dropped by :meth:`refresh`)."""
        self._cache.clear()

    def refresh(self) -> int:
        """Drop the cached answers here and in the service; how many the service had.
        Raises :class:`ServiceError` (one sentence) when the service cannot."""
        self.forget()
        return self.service.refresh_metadata()

    # -- plumbing -----------------------------------------------------------------------

    def _get(self, kind: str, **names: str) -> list[Any]:
        key = (kind, *names.values())
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        params = dict(names)
        if self.hint:
            params["cluster"] = self.hint
        try:
            value, ttl = self.service.metadata(kind, params), self.ttl
            self.last_error = None
        except ServiceError as e:
            log.info("SQL completion metadata %s %s: %s", kind, params, e.message)
            self.last_error = e.message
            value, ttl = [], self.failure_ttl
        self._cache[key] = (now + ttl, value)
        return value
