"""The kernel's view of the user's Trino metadata, from the DataHub service.

:class:`MetadataClient` asks ``{api}/metadata/…`` with the kernel's hub token (the service
runs the statements through the gateway as the token's owner and caches them per user),
keeps the answers for a short while in the kernel too (completion asks on every key
press), and never raises: completion must not break typing, so a failure is logged and
answered with nothing. It implements :class:`datahub.extensions.completion.Catalog`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from datahub.extensions.completion import Column, Function, Table, parse_type

__all__ = ["MetadataClient", "MetadataUnavailable"]

log = logging.getLogger(__name__)


class MetadataUnavailable(Exception):
    """The service could not be asked (shown by ``%sql refresh-completions``)."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class MetadataClient:
    """Cached metadata of the token's owner, read through the DataHub service.

    ``hint`` is the routing group a cell names with ``--cluster``: the statements go
    where that cell's query would. Answers are kept ``ttl`` seconds (failures
    ``failure_ttl``, so a down service is not asked on every key press).
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        hint: str | None = None,
        timeout: float = 5.0,
        ttl: float = 60.0,
        failure_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.hint = hint
        self.timeout = timeout
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self._clock = clock
        self._session = session or requests.Session()
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
        """Drop the cached answers here and in the service; how many the service had."""
        self.forget()
        try:
            response = self._session.post(
                f"{self.api_url}/metadata/refresh", headers=self._headers(), timeout=self.timeout
            )
        except requests.RequestException as e:
            raise MetadataUnavailable(
                f"Cannot reach the DataHub service to refresh completions ({type(e).__name__})."
            ) from None
        if response.status_code != 200:
            raise MetadataUnavailable(
                f"The DataHub service refused to refresh completions: {_message(response)}"
            )
        return int(response.json().get("forgotten", 0))

    # -- plumbing -----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def _get(self, kind: str, **names: str) -> list[Any]:
        key = (kind, *names.values())
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        params = dict(names)
        if self.hint:
            params["cluster"] = self.hint
        value, ttl = self._fetch(kind, params), self.ttl
        if value is None:
            value, ttl = [], self.failure_ttl
        self._cache[key] = (now + ttl, value)
        return value

    def _fetch(self, kind: str, params: dict[str, str]) -> list[Any] | None:
        url = f"{self.api_url}/metadata/{kind}"
        try:
            response = self._session.get(
                url, params=params, headers=self._headers(), timeout=self.timeout
            )
        except requests.RequestException as e:
            return self._failed(f"Cannot reach the DataHub service for {kind} ({e!r}).")
        if response.status_code != 200:
            return self._failed(f"Listing {kind} {params}: {_message(response)}")
        try:
            value = response.json().get(kind)
        except (ValueError, AttributeError):
            return self._failed(f"The DataHub service answered {kind} with something not JSON.")
        if not isinstance(value, list):
            return self._failed(f"The DataHub service's answer has no {kind} list.")
        self.last_error = None
        return value

    def _failed(self, message: str) -> None:
        log.info("SQL completion metadata: %s", message)
        self.last_error = message
        return None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return f"HTTP {response.status_code}"
