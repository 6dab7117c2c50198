"""Tornado handlers of the gateway: thin shells around protocol.py.

The Trino protocol sits at the root of the gateway's listener (``POST /v1/statement``,
signed follow-ups under ``/v1/dh/``, ``GET /v1/info``) so unmodified Trino clients work;
the health check sits under the service prefix so it is reachable through the hub's
proxy too.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx
from tornado import web
from tornado.iostream import StreamClosedError

from .. import __version__
from ..identity import AuthError, Identity, IdentityUnavailable
from . import protocol
from .clusters import Cluster, choose_cluster
from .upstream import ClusterUnreachable

if TYPE_CHECKING:
    from .app import DataHubService


class GatewayHandler(web.RequestHandler):
    """Common plumbing: the service, identity, Trino-format errors."""

    @property
    def service(self) -> DataHubService:
        return self.settings["datahub_service"]

    @property
    def log(self):
        return self.service.log

    def compute_etag(self) -> None:
        # Tornado would hash every GET body; result pages are large and never cached.
        return None

    def check_xsrf_cookie(self) -> None:
        # The Trino protocol authenticates every request by its Authorization header and
        # never by cookie, so there is no cross-site request to forge.
        return None

    def write_trino_error(
        self,
        message: str,
        error: tuple[str, str, int],
        *,
        status: int = 200,
        query_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Finish with a Trino-format error carrying *message*.

        Query failures use HTTP 200 like Trino itself, so every client raises its
        usual query error with our message. (A 5xx would make the Python client retry
        and then show only "service unavailable".)
        """
        name, kind, code = error
        self.clear()
        self.set_status(status, reason=protocol.http_reason(message) if status != 200 else None)
        # A 4xx body is still our Trino-format JSON, but labelled text/plain: Trino's
        # Java clients (CLI, JDBC) parse a JSON 4xx body, then print only "returned
        # HTTP 401"; as text they print it, and it leads with the message. The Python
        # client prints any 4xx body as it is.
        content_type = "application/json" if status == 200 else "text/plain; charset=utf-8"
        self.set_header("Content-Type", content_type)
        for header, value in (headers or {}).items():
            self.set_header(header, value)
        self.finish(protocol.trino_error_body(message, name, kind, code, query_id))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Anything that escaped the handlers: already logged by tornado with the
        # traceback; the client gets one line, never the traceback.
        if status_code >= 500:
            message = "The DataHub gateway failed on this request; ask an admin (it is logged)."
            error = protocol.GENERIC_INTERNAL_ERROR
        else:
            message = f"The DataHub gateway refused this request ({self._reason})."
            error = protocol.GENERIC_USER_ERROR
        name, kind, code = error
        self.set_header("Content-Type", "application/json")
        self.finish(protocol.trino_error_body(message, name, kind, code))

    async def identify(self) -> Identity | None:
        """The caller's Identity, or None after answering with an auth error."""
        try:
            return await self.service.identity_resolver.resolve(
                self.request.headers.get("Authorization")
            )
        except AuthError as e:
            self.log.info(
                "Refused %s %s from %s: %s",
                self.request.method,
                self.request.path,
                self.request.remote_ip,
                e.message,
            )
            # The challenge tells HTTP tools (and people reading curl -v) what to send.
            challenge = {"WWW-Authenticate": 'Basic realm="DataHub"'} if e.status == 401 else {}
            self.write_trino_error(
                e.message, protocol.PERMISSION_DENIED, status=e.status, headers=challenge
            )
            return None
        except IdentityUnavailable as e:
            self.write_trino_error(str(e), protocol.HUB_UNAVAILABLE)
            return None


class TrinoProxyHandler(GatewayHandler):
    """Forwards one Trino protocol request and streams the answer back."""

    def base_url(self) -> str:
        """Where clients reach this gateway: configured, or as the client addressed it."""
        if self.service.public_url:
            return self.service.public_url
        return f"{self.request.protocol}://{self.request.host}"

    async def proxy(
        self,
        identity: Identity,
        cluster: Cluster,
        method: str,
        path: str,
        body: bytes | None = None,
    ) -> protocol.PageFacts | None:
        """Forward to *cluster* and stream the rewritten response; return page facts."""
        headers = protocol.upstream_request_headers(
            self.request.headers.get_all(),
            identity.name,
            cluster.authorization,
            allow_spooling=self.service.allow_spooling,
        )
        try:
            response = await self.service.upstream.send(cluster, method, path, headers, body)
        except ClusterUnreachable as e:
            self.log.warning(
                "Cluster %s unreachable for %s of query %s (user %s): %r",
                cluster.name,
                method,
                protocol.query_id_from_path(path) or "(new)",
                identity.name,
                e.cause,
            )
            self.write_trino_error(
                f"Cluster {cluster.name} is unreachable; try again shortly or ask an admin.",
                protocol.CLUSTER_UNREACHABLE,
            )
            return None
        try:
            return await self._relay(identity, cluster, response)
        finally:
            await response.aclose()

    async def _relay(
        self, identity: Identity, cluster: Cluster, response: httpx.Response
    ) -> protocol.PageFacts | None:
        status = response.status_code
        if status == 401:
            self.log.error(
                "Cluster %s refused the service account %r (HTTP 401); check its password.",
                cluster.name,
                cluster.user,
            )
            self.write_trino_error(
                f"Cluster {cluster.name} refused the DataHub service account; ask an admin.",
                protocol.CLUSTER_UNREACHABLE,
            )
            return None
        if status == 403:
            # Impersonation or access denied for this user: Trino's text says which.
            text = (await response.aread()).decode("utf-8", "replace").strip()
            self.write_trino_error(
                text or f"Cluster {cluster.name} denied access to {identity.name}.",
                protocol.PERMISSION_DENIED,
            )
            return None

        self.clear_header("Content-Type")
        self.set_status(status)
        for name, value in protocol.client_response_headers(response.headers.multi_items()):
            self.add_header(name, value)
        if status != 200 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            # 204 after DELETE, 404 for a finished query, 503 overload...: small
            # bodies that carry no URIs.
            body = await response.aread()
            self.finish(body or None)  # tornado refuses even b"" with a 204
            return None

        base = self.base_url()
        signer = self.service.signer

        def rewrite_uri(uri: str) -> str:
            return signer.gateway_uri(base, cluster.name, identity.name, uri)

        rewriter = protocol.ResultRewriter(rewrite_uri)
        upstream_length = response.headers.get("content-length")
        started = False
        try:
            async for chunk in response.aiter_bytes():
                out = rewriter.feed(chunk)
                if out:
                    if not started and upstream_length and rewriter.size_delta is not None:
                        self.set_header(
                            "Content-Length", int(upstream_length) + rewriter.size_delta
                        )
                    started = True
                    self.write(out)
                    await self.flush()
            out = rewriter.finish()
        except httpx.HTTPError as e:
            self.log.warning(
                "Cluster %s broke off a result page for %s: %r", cluster.name, identity.name, e
            )
            if started:
                # Too late for an error body: close so the client sees a failed read
                # rather than a truncated page.
                self.request.connection.stream.close()
                return None
            self.write_trino_error(
                f"Cluster {cluster.name} is unreachable; try again shortly or ask an admin.",
                protocol.CLUSTER_UNREACHABLE,
            )
            return None
        except StreamClosedError:
            self.log.debug("Client went away during a result page for %s", identity.name)
            return None
        if not started:
            self.set_header("Content-Length", len(out))
        self.finish(out)
        return rewriter.facts()

    def log_page(
        self, identity: Identity, cluster: Cluster, facts: protocol.PageFacts | None
    ) -> None:
        """Log the end of a query (user, cluster, id, final state) once, on its last page."""
        if facts is None or facts.has_next:
            return
        stats = facts.stats
        error = facts.error or {}
        self.log.info(
            "Query %s ended user=%s cluster=%s state=%s rows=%s cpu_ms=%s elapsed_ms=%s%s",
            facts.query_id,
            identity.name,
            cluster.name,
            facts.state,
            stats.get("processedRows"),
            stats.get("cpuTimeMillis"),
            stats.get("elapsedTimeMillis"),
            f" error={error.get('errorName')}" if error else "",
        )


class StatementHandler(TrinoProxyHandler):
    """``POST /v1/statement``: submit a query to the chosen cluster as the hub user."""

    async def post(self) -> None:
        identity = await self.identify()
        if identity is None:
            return
        try:
            cluster = choose_cluster(identity, self.service.cluster_map, self.request.headers)
        except LookupError as e:
            self.write_trino_error(str(e), protocol.CLUSTER_UNREACHABLE)
            return
        started = time.monotonic()
        facts = await self.proxy(identity, cluster, "POST", "/v1/statement", self.request.body)
        if facts is not None:
            self.log.info(
                "Query %s submitted user=%s via=%s cluster=%s source=%s (%.0f ms)",
                facts.query_id,
                identity.name,
                identity.via,
                cluster.name,
                self.request.headers.get("X-Trino-Source", ""),
                (time.monotonic() - started) * 1000,
            )
        self.log_page(identity, cluster, facts)


class FollowupHandler(TrinoProxyHandler):
    """GET/DELETE on a signed follow-up URI: ``/v1/dh/{cluster}/{sig}/v1/statement/...``."""

    async def _followup(self, method: str) -> None:
        identity = await self.identify()
        if identity is None:
            return
        try:
            followup = protocol.parse_followup(self.request.path, self.request.query)
        except protocol.FollowupError as e:
            self.write_trino_error(str(e), protocol.NOT_FOUND, status=404)
            return
        service = self.service
        if not service.signer.verify(
            followup.cluster, identity.name, followup.path, followup.signature
        ):
            self.log.warning(
                "Refused a follow-up URI not issued to %s (cluster %s)",
                identity.name,
                followup.cluster,
            )
            self.write_trino_error(
                "This query URI was not issued to you; run the query yourself.",
                protocol.PERMISSION_DENIED,
                status=403,
            )
            return
        cluster = service.cluster_map.get(followup.cluster)
        if cluster is None:
            self.write_trino_error(
                f"Cluster {followup.cluster} is no longer configured; run the query again.",
                protocol.NOT_FOUND,
                status=404,
            )
            return
        if method == "DELETE":
            self.log.info(
                "Query %s cancelled user=%s cluster=%s",
                protocol.query_id_from_path(followup.path),
                identity.name,
                cluster.name,
            )
        facts = await self.proxy(identity, cluster, method, followup.path)
        self.log_page(identity, cluster, facts)

    async def get(self, *args: str) -> None:
        await self._followup("GET")

    async def delete(self, *args: str) -> None:
        await self._followup("DELETE")


class InfoHandler(GatewayHandler):
    """``GET /v1/info``: the gateway's own server info, for clients' readiness probes."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "nodeVersion": {"version": f"datahub-{__version__}"},
                    "environment": "datahub",
                    "coordinator": True,
                    "starting": False,
                    "uptime": f"{time.monotonic() - self.service.started_at:.0f}s",
                }
            )
        )


class HealthHandler(GatewayHandler):
    """``GET {service prefix}api/health``: is the gateway process up, which clusters."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": "ok", "clusters": sorted(self.service.cluster_map)}))


class NotFoundHandler(GatewayHandler):
    """Any other path: a Trino-format 404, so clients print a sentence, not HTML."""

    def prepare(self) -> None:
        self.write_trino_error(
            f"{self.request.path} is not a DataHub gateway endpoint; point your Trino "
            "client at the gateway's host and port.",
            protocol.NOT_FOUND,
            status=404,
        )


def default_handlers(service_prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The gateway's routes; *service_prefix* is $JUPYTERHUB_SERVICE_PREFIX."""
    prefix = "/" + service_prefix.strip("/") + "/" if service_prefix.strip("/") else "/"
    return [
        (r"/v1/statement", StatementHandler),
        (r"/v1/dh/.*", FollowupHandler),
        (r"/v1/info", InfoHandler),
        (prefix + r"api/health", HealthHandler),
    ]
