"""Tornado handlers of the gateway: thin adapters over the steps of a query.

The Trino protocol sits at the root of the gateway's listener (``POST /v1/statement``,
signed follow-ups under ``/v1/dh/``, ``GET /v1/info``) so unmodified Trino clients work;
the health check sits under the service prefix so it is reachable through the hub's
proxy too. A handler authenticates the caller, turns the request into values and hands
them, with itself as the `client.Client` the answer goes to, to ``submit.py`` or
``followup.py``. Its collaborators come from the `Gateway` part in the tornado settings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from jupyterhub.services.auth import check_scopes
from tornado import web
from tornado.iostream import StreamClosedError

from .. import __version__
from ..identity import INVALID_TOKEN, AuthError, Identity, IdentityUnavailable, parse_authorization
from ..wire import (
    ACT_AS_HEADER,
    API_HEALTH,
    FOLLOWUP_PREFIX,
    HUB_UNAVAILABLE,
    INFO_PATH,
    PERMISSION_DENIED,
    QUEUED_PREFIX,
    STATEMENT_PATH,
)
from . import followup, protocol, segments, submit
from .client import ClientGone, Error
from .clusters import Cluster
from .core import Gateway
from .exchange import Exchange
from .pages import default_handlers as cluster_pages


def service_account_refusal(name: str, clusters: Iterable[Cluster]) -> str | None:
    """The sentence refusing hub user *name* if a cluster's service account has that name
    (else None). The gateway authenticates as the service account and names the user in
    X-Trino-User; Trino checks impersonation only when the two differ, so a hub user named
    like the account would act on Trino as the account itself."""
    accounts = {c.user.casefold() for c in clusters if c.user}
    if name.casefold() not in accounts:
        return None
    return (
        f"The DataHub user {name!r} has the name of a cluster's service account, so the "
        "gateway runs no queries for it; ask an admin."
    )


async def authenticate(gateway: Gateway, authorization: str | None, act_as: str | None) -> Identity:
    """The caller's Identity from its ``Authorization`` and ``X-DataHub-Act-As`` headers.

    An admin acting as another user is authorised again on every request, follow-ups
    included: the identity is the user's, with ``acting_admin`` set. Raises AuthError
    and IdentityUnavailable.
    """
    identity = await gateway.identity_resolver.resolve(
        authorization, act_as, allow_act_as=gateway.allow_admin_act_as
    )
    refusal = service_account_refusal(identity.name, gateway.clusters.values())
    if refusal:
        raise AuthError(refusal, status=403)
    return identity


class GatewayHandler(web.RequestHandler):
    """Common plumbing: the gateway part, identity, Trino-format errors."""

    @property
    def gateway(self) -> Gateway:
        return self.settings["gateway"]

    @property
    def log(self):
        return self.gateway.log

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
        error: Error,
        *,
        status: int = 200,
        query_id: str | None = None,
        headers: Mapping[str, str] | None = None,
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
        """The caller's Identity (see `authenticate`), or None after answering with an
        auth error."""
        try:
            identity = await authenticate(
                self.gateway,
                self.request.headers.get("Authorization"),
                self.request.headers.get(ACT_AS_HEADER),
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
            self.write_trino_error(e.message, PERMISSION_DENIED, status=e.status, headers=challenge)
            return None
        except IdentityUnavailable as e:
            self.write_trino_error(str(e), HUB_UNAVAILABLE)
            return None
        if identity.acting_admin and self.request.method == "POST":
            self.log.info(
                "Admin %s acts as %s for %s %s",
                identity.acting_admin,
                identity.name,
                self.request.method,
                self.request.path,
            )
        return identity


class TrinoProxyHandler(GatewayHandler):
    """A Trino protocol request served by the steps of a query: this handler is the
    `client.Client` their answer goes to."""

    #: The ``datahub_gateway_request_duration_seconds`` kind of this handler's requests.
    kind = "submit"

    @property
    def method(self) -> str:
        return self.request.method or ""

    def base_url(self) -> str:
        """Where clients reach this gateway: configured, or as the client addressed it."""
        if self.gateway.public_url:
            return self.gateway.public_url
        return f"{self.request.protocol}://{self.request.host}"

    async def serve(self, step: Callable[[Exchange], Awaitable[None]]) -> None:
        """Identify the caller, then run *step*; the time goes to the metrics."""
        started = time.perf_counter()
        try:
            identity = await self.identify()
            if identity is None:
                return
            headers = tuple(self.request.headers.get_all())
            await step(Exchange(self.gateway, self, identity, headers, self.base_url()))
        finally:
            self.gateway.metrics.request_duration.labels(self.kind).observe(
                time.perf_counter() - started
            )

    # ------------------------------------------------------------- exchange.Client

    def fail(
        self,
        message: str,
        error: Error,
        *,
        status: int = 200,
        query_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.write_trino_error(message, error, status=status, query_id=query_id, headers=headers)

    def begin(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.clear_header("Content-Type")
        self.set_status(status)
        for name, value in headers:
            self.add_header(name, value)

    def set_length(self, length: int) -> None:
        self.set_header("Content-Length", length)

    async def send(self, chunk: bytes) -> None:
        self.write(chunk)
        try:
            await self.flush()
        except StreamClosedError as e:
            raise ClientGone from e

    def end(self, body: bytes = b"") -> None:
        self.finish(body or None)  # no body at all for a 204

    def abort(self) -> None:
        self.request.connection.stream.close()


class StatementHandler(TrinoProxyHandler):
    """``POST /v1/statement``: route, admit and submit a query as the hub user."""

    async def post(self) -> None:
        request = submit.StatementRequest(self.request.body, tuple(self.request.headers.get_all()))
        await self.serve(lambda exchange: submit.statement(exchange, request))


class FollowupHandler(TrinoProxyHandler):
    """GET/DELETE on a signed follow-up URI: ``/v1/dh/{cluster}/{sig}/v1/statement/...``."""

    kind = "followup"

    async def get(self, *args: str) -> None:
        await self._follow("GET")

    async def delete(self, *args: str) -> None:
        await self._follow("DELETE")

    async def head(self, *args: str) -> None:
        path, query = self.request.path, self.request.query
        await self.serve(lambda exchange: segments.heartbeat(exchange, path, query))

    async def _follow(self, method: str) -> None:
        path, query = self.request.path, self.request.query
        await self.serve(lambda exchange: followup.follow(exchange, method, path, query))


class SegmentHandler(TrinoProxyHandler):
    """GET/HEAD/DELETE on a spooled segment's signed URI (``/v1/dh-segment/...``), relayed
    to its cluster: the URI is the credential (see ``segments.py``)."""

    async def get(self, *args: str) -> None:
        headers = tuple(self.request.headers.get_all())
        await segments.download(self.gateway, self, self.request.path, headers)

    head = delete = get


class QueuedHandler(TrinoProxyHandler):
    """GET/DELETE on a queued query's signed URI ``/v1/dh-queued/{id}/{place}/{sig}``:
    ask whether its turn has come (and submit it then), or give its place up. Any gateway
    process can serve it: the place, and the request to submit, are in the store."""

    SUPPORTED_METHODS = ("GET", "DELETE")
    kind = "queued"

    async def get(self, *args: str) -> None:
        path = self.request.path
        await self.serve(lambda exchange: followup.poll(exchange, path))

    async def delete(self, *args: str) -> None:
        path = self.request.path
        await self.serve(lambda exchange: followup.withdraw(exchange, path))


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
                    "uptime": f"{time.monotonic() - self.gateway.started_at:.0f}s",
                }
            )
        )


class HealthHandler(GatewayHandler):
    """``GET {service prefix}api/health``: is the gateway process up, which clusters."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": "ok", "clusters": sorted(self.gateway.clusters)}))


class MetricsHandler(web.RequestHandler):
    """``GET /metrics``: Prometheus metrics (no user names or SQL; see metrics.py).

    On the HTTPS listener, the one external clients reach, only for a hub token carrying
    one of ``metrics_scopes``; the plain listener is internal and open.
    """

    @property
    def gateway(self) -> Gateway:
        return self.settings["gateway"]

    def compute_etag(self) -> None:
        return None

    async def get(self) -> None:
        # Both listeners serve without X-Forwarded-*: "https" means the TLS listener.
        if self.request.protocol == "https":
            refusal = await self._refusal()
            if refusal is not None:
                status, message = refusal
                self.log_refusal(message)
                self.set_status(status)
                if status == 401:
                    self.set_header("WWW-Authenticate", 'Bearer realm="DataHub"')
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.finish(message + "\n")
                return
        metrics = self.gateway.metrics
        self.set_header("Content-Type", metrics.content_type)
        self.finish(metrics.render())

    def log_refusal(self, message: str) -> None:
        self.gateway.log.info("Refused /metrics to %s: %s", self.request.remote_ip, message)

    async def _refusal(self) -> tuple[int, str] | None:
        """(status, sentence) if the request's token may not read the metrics."""
        gateway = self.gateway
        needed = " or ".join(sorted(gateway.metrics_scopes))
        try:
            credentials = parse_authorization(self.request.headers.get("Authorization"))
            model = await gateway.identity_resolver.user_model(credentials.token)
        except AuthError:
            return 401, f"/metrics here needs a hub token with the scope {needed}."
        except IdentityUnavailable as e:
            return 503, str(e)
        if not model or (
            credentials.username is not None and credentials.username != model.get("name")
        ):
            return 401, INVALID_TOKEN
        try:
            allowed = check_scopes(set(gateway.metrics_scopes), set(model.get("scopes") or ()))
        except ValueError:
            allowed = False
        if not allowed:
            return 403, f"This token does not carry {needed}, which /metrics here needs."
        return None


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
        (re.escape(STATEMENT_PATH), StatementHandler),
        (re.escape(FOLLOWUP_PREFIX) + ".*", FollowupHandler),
        (re.escape(QUEUED_PREFIX) + ".*", QueuedHandler),
        (segments.ROUTE, SegmentHandler),
        (re.escape(INFO_PATH), InfoHandler),
        (r"/metrics", MetricsHandler),
        (prefix + "api/" + API_HEALTH, HealthHandler),
        *cluster_pages(prefix),
    ]
