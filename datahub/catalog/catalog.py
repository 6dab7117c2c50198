"""Reading a user's metadata through the gateway, as that user, with a per-user cache.

Why through the gateway: a metadata statement is a query like any other, so it gets the
same identity (the gateway resolves the caller's own hub token, which is forwarded
unchanged), the same quota and routing, the same audit, and Trino's access rules filter
``information_schema`` for exactly that user. The service holds no identity of its own
here: it cannot ask on anyone's behalf but the token's owner, so no request can show
another user's view. Answers are cached under the user name resolved from that same
token, for ``ttl`` seconds, and ``forget`` drops them (``%sql refresh-completions``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

import httpx
from traitlets import Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..wire import ROUTING_HEADER, STATEMENT_PATH, TRINO_SOURCE_HEADER, TRINO_USER_HEADER
from .cache import MetadataCache
from .queries import MetadataRequest, shape, statement

__all__ = ["MetadataCatalog", "MetadataError", "gateway_listener_url"]


class MetadataError(Exception):
    """Trino or the gateway refused or failed a metadata statement; the message is the
    sentence they gave (a quota refusal, an access denial, an unreachable cluster)."""


class MetadataCatalog(LoggingConfigurable):
    """Answers metadata questions for the caller, through the gateway, cached per user.

    The service builds one in `DataHubService.init` (its ``datahub_catalog`` part),
    setting ``gateway_url`` to its own listener when the configuration leaves it empty.
    """

    ttl = Float(
        300.0,
        help="""Seconds a user's metadata answers (catalogs, schemas, tables, columns,
        functions) are reused for completion and the schema browser before Trino is asked
        again. New tables appear after at most this long, or at once after
        `%sql refresh-completions`. Each answer is one query on the user's quota.

        Example: c.MetadataCatalog.ttl = 600
        """,
    ).tag(config=True)

    max_entries = Integer(
        20_000,
        help="""Most answers kept in memory across all users (the least recently used
        go first). One answer is one schema's tables or one table's columns.

        Example: c.MetadataCatalog.max_entries = 100000
        """,
    ).tag(config=True)

    timeout = Float(
        20.0,
        help="""Seconds one metadata statement may take before the caller is told it
        timed out (the completion then offers keywords only).

        Example: c.MetadataCatalog.timeout = 10
        """,
    ).tag(config=True)

    source = Unicode(
        "datahub-metadata",
        help="""Trino 'source' of metadata statements: they show under it in the query
        history, the audit and Trino's resource groups, and routing rules can match it.

        Example: c.MetadataCatalog.source = "datahub-sql"
        """,
    ).tag(config=True)

    gateway_url = Unicode(
        "",
        help="""Where the service sends metadata statements: its own gateway listener
        (the default, empty: http://<DataHubService.ip>:<DataHubService.port>, with
        127.0.0.1 for a wildcard address). Set it when that address is not reachable
        from the service itself.

        Example: c.MetadataCatalog.gateway_url = "http://127.0.0.1:10101"
        """,
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = MetadataCache(self.ttl, self.max_entries)
        self._inflight: dict[tuple[str, Hashable], asyncio.Future] = {}
        self._client: httpx.AsyncClient | None = None

    async def lookup(
        self, user: str, authorization: str, request: MetadataRequest, hint: str | None = None
    ) -> list[Any]:
        """The answer to *request* for *user*, whose own ``Authorization`` header value
        runs the statement; from the cache when fresh. Concurrent identical questions of
        one user share one statement."""
        key = (hint or "", request.key)
        cached = self.cache.get(user, key)
        if cached is not MetadataCache.MISSING:
            return cached
        pending = self._inflight.get((user, key))
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(authorization, request, hint))
            self._inflight[(user, key)] = pending
            try:
                value = await pending
            finally:
                self._inflight.pop((user, key), None)
            self.cache.put(user, key, value)
            return value
        return await asyncio.shield(pending)

    def forget(self, user: str) -> int:
        """Drop *user*'s cached answers; how many there were."""
        return self.cache.forget_user(user)

    async def _fetch(
        self, authorization: str, request: MetadataRequest, hint: str | None
    ) -> list[Any]:
        rows = await self.run(authorization, statement(request), hint)
        return shape(request, rows)

    async def run(self, authorization: str, sql: str, hint: str | None = None) -> list[list]:
        """Run *sql* through the gateway with the caller's *authorization*; its rows."""
        headers = {
            "Authorization": authorization,
            TRINO_SOURCE_HEADER: self.source,
            # The gateway sets the session user from the token; Trino wants the header.
            TRINO_USER_HEADER: "datahub-metadata",
        }
        if hint:
            headers[ROUTING_HEADER] = hint
        client = self._http()
        rows: list[list] = []
        try:
            response = await client.post(
                self.gateway_url.rstrip("/") + STATEMENT_PATH, content=sql, headers=headers
            )
            while True:
                page = _page(response)
                rows.extend(page.get("data") or ())
                next_uri = page.get("nextUri")
                if not next_uri:
                    return rows
                response = await client.get(next_uri, headers=headers)
        except httpx.TimeoutException:
            raise MetadataError(
                f"Reading metadata took longer than {self.timeout:g} seconds; try again."
            ) from None
        except httpx.HTTPError as e:
            self.log.warning("Metadata statement could not reach the gateway: %r", e)
            raise MetadataError("The DataHub gateway could not be reached for metadata.") from None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _page(response: httpx.Response) -> dict[str, Any]:
    """One Trino protocol page; MetadataError with the message of any error."""
    try:
        page = response.json()
    except ValueError:
        page = None
    if not isinstance(page, dict):
        raise MetadataError(f"The DataHub gateway answered HTTP {response.status_code}.")
    error = page.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        raise MetadataError(str(message or "The metadata statement failed."))
    if response.status_code != 200:
        raise MetadataError(f"The DataHub gateway answered HTTP {response.status_code}.")
    return page


def gateway_listener_url(ip: str, port: int) -> str:
    """The service's own gateway listener as a URL it can call itself."""
    if ip in ("", "0.0.0.0"):  # noqa: S104 - a wildcard listen address, not a bind
        ip = "127.0.0.1"
    elif ip in ("::", "[::]"):
        ip = "[::1]"
    elif ":" in ip and not ip.startswith("["):
        ip = f"[{ip}]"
    return f"http://{ip}:{port}"
