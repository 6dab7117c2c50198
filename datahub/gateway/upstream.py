"""HTTP clients for the clusters: pooled, keep-alive, with each cluster's CA.

A Presto cluster is spoken to through `presto`'s translation: the request's ``X-Trino-*``
headers go out as ``X-Presto-*``, and its answer (`PrestoResponse`) reads as a Trino
cluster's, so nothing after this module knows the engine.

aiohttp (already a JupyterHub dependency) rather than httpx: a result page passes through
here several times per query, and aiohttp's C-accelerated parsing costs a fraction of
httpx's pure-Python request building and h11 parsing (see benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict

from ..wire import TRINO_USER_HEADER
from . import presto
from .clusters import Cluster

#: Failures that happen before the request reaches the cluster: retrying the request
#: elsewhere cannot run a query twice. (A pooled keep-alive connection the cluster had
#: closed fails with ServerDisconnectedError before any answer; a cluster that crashed
#: after taking the query has lost the query anyway.)
NOT_SENT = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    ConnectionRefusedError,
)
#: Errors that mean nothing took the connection (refused, no route, name or TLS failure):
#: the cluster is down or misconfigured, not merely slow.
REFUSED = (aiohttp.ClientConnectorError, ConnectionRefusedError)


class ClusterUnreachable(Exception):
    """A cluster did not accept a connection or did not answer in time.

    ``not_sent`` is True when the request surely never reached the cluster (no
    connection), so a new query may fail over to another cluster; ``refused`` when the
    cluster did not take the connection at all (down, not slow: see `ClusterStatus`).
    """

    def __init__(self, cluster: Cluster, cause: BaseException) -> None:
        super().__init__(f"Cluster {cluster.name} is unreachable: {type(cause).__name__}")
        self.cluster = cluster
        self.cause = cause
        self.not_sent = isinstance(cause, NOT_SENT)
        self.refused = isinstance(cause, REFUSED)

    @property
    def reason(self) -> str:
        """A short description of the cause, for logs and status pages."""
        return f"{type(self.cause).__name__}: {self.cause}"[:200]


class UpstreamResponse:
    """A cluster's answer with its body unread: status, headers, and the body as chunks.

    Errors while reading the body raise ClusterUnreachable.
    """

    def __init__(self, cluster: Cluster, response: aiohttp.ClientResponse) -> None:
        self.cluster = cluster
        self._response = response
        self.status_code = response.status
        self.headers = response.headers  # case-insensitive, repeated headers kept

    def header_items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, repeated headers included."""
        return list(self.headers.items())

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ClusterUnreachable(self.cluster, e) from e

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """The body and True if it ends within *limit* bytes; else what was read so far
        and False (``chunks()`` then yields the rest)."""
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in self._response.content.iter_any():
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    return b"".join(parts), False
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ClusterUnreachable(self.cluster, e) from e
        return b"".join(parts), True

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ClusterUnreachable(self.cluster, e) from e

    async def aclose(self) -> None:
        """Give the connection back (or drop it, if the body was not read to the end)."""
        self._response.release()


class PrestoResponse(UpstreamResponse):
    """A Presto cluster's answer as a Trino cluster's: headers renamed
    (`presto.response_headers`), a JSON body translated (`presto.translate_page`).

    The body is read whole before the first byte is given out, since a page's columns
    and statistics are rewritten; Presto's pages are bounded (1 MB by default, the
    gateway never asks for more). Large pages are translated off the event loop.
    """

    #: Bodies larger than this are translated in a worker thread.
    inline_limit = 64 * 1024

    def __init__(self, cluster: Cluster, response: aiohttp.ClientResponse) -> None:
        super().__init__(cluster, response)
        headers = presto.response_headers(response.headers.items())
        # The translated body has another length; the relay learns it from the body.
        self.headers = CIMultiDict((k, v) for k, v in headers if k.lower() != "content-length")
        self._translate = self.status_code == 200 and self.headers.get(
            "content-type", ""
        ).startswith("application/json")
        self._body: bytes | None = None

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    async def read(self) -> bytes:
        if self._body is None:
            body = await super().read()
            if self._translate and len(body) > self.inline_limit:
                body = await asyncio.to_thread(presto.translate_page, body)
            elif self._translate:
                body = presto.translate_page(body)
            self._body = body
        return self._body

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        body = await self.read()
        if len(body) <= limit:
            return body, True
        return b"", False  # chunks() yields it all

    async def chunks(self) -> AsyncIterator[bytes]:
        yield await self.read()


class Upstream:
    """One aiohttp session per cluster (each may trust a different CA).

    Connections are kept alive between the many requests of a query, and bounded so a
    burst of queries cannot exhaust the gateway's or the cluster's sockets. Sessions are
    made on first use, inside the event loop that serves the gateway.
    """

    def __init__(
        self,
        clusters: Mapping[str, Cluster],
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        self._clusters = dict(clusters)
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, cluster: Cluster) -> aiohttp.ClientSession:
        session = self._sessions.get(cluster.name)
        if session is None or session.closed:
            verify = cluster.ssl_verify()
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ssl=verify,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # The gateway rewrites bodies byte for byte; never decompress, never add
                # headers the client did not send, never take proxies from the environment.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                trust_env=False,
            )
            self._sessions[cluster.name] = session
        return session

    async def send(
        self,
        cluster: Cluster,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        translate: bool = True,
    ) -> UpstreamResponse:
        """Send a request to *cluster* and return the response with its body unread.

        The caller must ``aclose()`` the response. Raises ClusterUnreachable if no
        answer arrives (connection refused, TLS failure, timeout). *timeout* bounds the
        whole request instead of the configured timeouts (health checks use a short one).
        A Presto cluster's answer is a `PrestoResponse` unless *translate* is False.
        """
        presto_cluster = cluster.engine == presto.PRESTO
        if presto_cluster:
            headers = presto.request_headers(headers)
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            response = await self._session(cluster).request(
                method,
                cluster.url + path,
                headers=list(headers),
                data=body,
                allow_redirects=False,  # never follow where the signature does not cover
                **extra,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise ClusterUnreachable(cluster, e) from e
        if presto_cluster and translate:
            return PrestoResponse(cluster, response)
        return UpstreamResponse(cluster, response)

    async def call(
        self,
        cluster: Cluster,
        method: str,
        path: str,
        *,
        user: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """A small request of the gateway's own, as the service account (impersonating
        *user*, if given): returns the status and the JSON body (None if not JSON), as
        the cluster wrote it (a Presto cluster's query info is not translated: its
        fields that the gateway reads have Trino's names).

        Raises ClusterUnreachable if the cluster does not answer.
        """
        headers = [("Accept-Encoding", "identity")]
        if cluster.authorization:
            headers.append(("Authorization", cluster.authorization))
        if user:
            headers.append((TRINO_USER_HEADER, user))
        response = await self.send(cluster, method, path, headers, timeout=timeout, translate=False)
        try:
            body = await response.read()
        finally:
            await response.aclose()
        try:
            return response.status_code, json.loads(body) if body else None
        except ValueError:
            return response.status_code, None

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
