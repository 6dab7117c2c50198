"""HTTP clients for the Trino clusters: pooled, keep-alive, with each cluster's CA."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from .clusters import Cluster


class ClusterUnreachable(Exception):
    """A cluster did not accept a connection or did not answer in time."""

    def __init__(self, cluster: Cluster, cause: Exception) -> None:
        super().__init__(f"Cluster {cluster.name} is unreachable: {type(cause).__name__}")
        self.cluster = cluster
        self.cause = cause


class Upstream:
    """One ``httpx.AsyncClient`` per cluster (each may trust a different CA).

    Connections are kept alive between the many requests of a query, and bounded so a
    burst of queries cannot exhaust the gateway's or the cluster's sockets.
    """

    def __init__(
        self,
        clusters: Mapping[str, Cluster],
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._clients = {
            name: httpx.AsyncClient(
                verify=cluster.ssl_verify(),
                timeout=timeout,
                limits=limits,
                # Never follow a redirect to somewhere the signature does not cover.
                follow_redirects=False,
                # Proxy settings from the environment are for people, not for this hop.
                trust_env=False,
            )
            for name, cluster in clusters.items()
        }

    async def send(
        self,
        cluster: Cluster,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None = None,
    ) -> httpx.Response:
        """Send a request to *cluster* and return the response with its body unread.

        The caller must ``aclose()`` the response. Raises ClusterUnreachable if no
        answer arrives (connection refused, TLS failure, timeout).
        """
        client = self._clients[cluster.name]
        request = client.build_request(
            method, cluster.url + path, headers=list(headers), content=body
        )
        try:
            return await client.send(request, stream=True)
        except (httpx.TransportError, OSError) as e:
            raise ClusterUnreachable(cluster, e) from e

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self._clients.values():
            await client.aclose()
