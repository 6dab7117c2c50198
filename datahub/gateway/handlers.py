"""Tornado handlers of the gateway: thin shells around protocol.py.

The Trino protocol sits at the root of the gateway's listener (``POST /v1/statement``,
signed follow-ups under ``/v1/dh/``, ``GET /v1/info``) so unmodified Trino clients work;
the health check sits under the service prefix so it is reachable through the hub's
proxy too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyterhub.services.auth import check_scopes
from tornado import web
from tornado.iostream import StreamClosedError

from .. import __version__
from ..identity import (
    ACT_AS_HEADER,
    INVALID_TOKEN,
    AuthError,
    Identity,
    IdentityUnavailable,
    parse_authorization,
)
from ..query import LIMIT_MESSAGES, QueryRecord
from . import protocol
from .admission import Admitted, QueryQueued, QueryRefused
from .clusters import Cluster
from .engine_limits import limit_messages_for, limited_session_headers
from .pages import default_handlers as cluster_pages
from .routing import ROUTING_HEADER, RoutingError, RoutingRequest, parse_client_tags
from .statements import (
    PREPARED_STATEMENT_HEADER,
    StatementError,
    parse_prepared_statements,
    resolve_statement,
    with_prepared_statements,
)
from .tracker import gateway_query_id, stop_message, upstream_path
from .upstream import ClusterUnreachable, UpstreamResponse

if TYPE_CHECKING:
    from ..service.app import DataHubService


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
        """The caller's Identity, or None after answering with an auth error.

        An admin acting as another user (``X-DataHub-Act-As``) is authorised again on
        every request, follow-ups included: the identity is the user's, with
        ``acting_admin`` set.
        """
        try:
            identity = await self.service.identity_resolver.resolve(
                self.request.headers.get("Authorization"),
                self.request.headers.get(ACT_AS_HEADER),
                allow_act_as=self.service.allow_admin_act_as,
            )
            refusal = service_account_refusal(identity.name, self.service.cluster_map.values())
            if refusal:
                raise AuthError(refusal, status=403)
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
        if identity.acting_admin and self.request.method == "POST":
            self.log.info(
                "Admin %s acts as %s for %s %s",
                identity.acting_admin,
                identity.name,
                self.request.method,
                self.request.path,
            )
        return identity


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


@dataclass
class Relayed:
    """What relaying one cluster response to the client came to."""

    #: Facts of the Trino page the client received (None if it was no Trino page).
    facts: protocol.PageFacts | None = None
    #: Set when the gateway answered with its own error instead: the message and error.
    failure: str | None = None
    error: tuple[str, str, int] | None = None
    #: The cluster broke off in the middle of the page (it died, or the network did).
    broken: bool = False
    #: Set instead of answering: the page carried nothing for the client, follow this
    #: (the cluster's own nextUri) on its behalf.
    follow: str | None = None


def lost_message(cluster: Cluster) -> str:
    """The user's sentence when *cluster* went away under a running query."""
    return (
        f"Cluster {cluster.name} became unreachable while your query ran; its outcome is "
        "unknown. Run it again."
    )


class TrinoProxyHandler(GatewayHandler):
    """Forwards Trino protocol requests and streams the answers back."""

    def base_url(self) -> str:
        """Where clients reach this gateway: configured, or as the client addressed it."""
        if self.service.public_url:
            return self.service.public_url
        return f"{self.request.protocol}://{self.request.host}"

    async def send(
        self,
        identity: Identity,
        cluster: Cluster,
        method: str,
        path: str,
        body: bytes | None = None,
        client_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> UpstreamResponse:
        """Send the client's request (or a queued query's stored *client_headers*) on to
        *cluster* as the service account, impersonating the hub user. Raises
        ClusterUnreachable."""
        headers = protocol.upstream_request_headers(
            self.request.headers.get_all() if client_headers is None else client_headers,
            identity.name,
            cluster.authorization,
            allow_spooling=self.service.allow_spooling,
        )
        return await self.service.upstream.send(cluster, method, path, headers, body)

    async def relay(
        self,
        identity: Identity,
        cluster: Cluster,
        response: UpstreamResponse,
        before_finish: Callable[[protocol.PageFacts], None] | None = None,
        *,
        collapse: bool = False,
        limit_messages: Mapping[str, str] | None = None,
    ) -> Relayed:
        """Stream *response* to the client with its URIs rewritten.

        *before_finish* is called with the page's facts just before the client can
        have the whole page (so the query is known before the client can follow it).
        With *collapse*, a page that carries nothing for the client (see
        `protocol.carries_nothing`) is not sent: the result says which URI to follow.
        A failed query's error gets the message of *limit_messages* for its error name.
        """
        status = response.status_code
        if status == 401:
            self.log.error(
                "Cluster %s refused the service account %r (HTTP 401); check its password.",
                cluster.name,
                cluster.user,
            )
            message = f"Cluster {cluster.name} refused the DataHub service account; ask an admin."
            self.write_trino_error(message, protocol.CLUSTER_UNREACHABLE)
            return Relayed(failure=message, error=protocol.CLUSTER_UNREACHABLE)
        content_type = response.headers.get("content-type", "")
        if status != 200 or not content_type.startswith("application/json"):
            body = await response.read()
            if status == 204:  # a DELETE taken
                self._answer_with(response)
                self.finish()
                return Relayed()
            # A stack trace (a refused X-Trino-Role is an HTTP 500 with one), an HTML
            # error page, a 4xx text: never relayed as it is.
            return self._upstream_failed(identity, cluster, response, body)

        base = self.base_url()
        signer = self.service.signer

        def rewrite_uri(uri: str) -> str:
            return signer.gateway_uri(base, cluster.name, identity.name, uri)

        rewriter = protocol.ResultRewriter(rewrite_uri)
        upstream_length = response.headers.get("content-length")
        # A small page (queued, planning, an error) is read whole: skipped if it carries
        # nothing for the client, and Trino's stack frames kept to ourselves. (Trino sends
        # error pages chunked, without a length.)
        body, whole = b"", False
        if not upstream_length or int(upstream_length) <= protocol.WHOLE_PAGE:
            try:
                body, whole = await response.read_up_to(protocol.WHOLE_PAGE)
            except ClusterUnreachable as e:
                return self._broken_off(identity, cluster, e, started=False)
        if whole:
            page = protocol.with_error_message(protocol.without_stack_frames(body), limit_messages)
            out = rewriter.feed(page) + rewriter.finish()
            if rewriter.not_json:
                return self._upstream_failed(identity, cluster, response, body)
            facts = rewriter.facts()
            if collapse and protocol.carries_nothing(body, response.header_items()):
                if before_finish is not None:
                    before_finish(facts)
                return Relayed(facts=facts, follow=facts.next_uri)
            if before_finish is not None:
                before_finish(facts)
            self._answer_with(response)
            self.set_header("Content-Length", len(out))
            self.finish(out)
            return Relayed(facts=facts)
        self._answer_with(response)
        started = False

        async def rest() -> AsyncIterator[bytes]:
            if body:
                yield body
            async for chunk in response.chunks():
                yield chunk

        try:
            async for chunk in rest():
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
        except ClusterUnreachable as e:
            return self._broken_off(identity, cluster, e, started=started)
        except StreamClosedError:
            self.log.debug("Client went away during a result page for %s", identity.name)
            return Relayed()
        if rewriter.not_json and not started:
            return self._upstream_failed(identity, cluster, response, out)
        facts = rewriter.facts()
        if before_finish is not None:
            before_finish(facts)
        if not started:
            self.set_header("Content-Length", len(out))
        self.finish(out)
        return Relayed(facts=facts)

    def _upstream_failed(
        self, identity: Identity, cluster: Cluster, response: UpstreamResponse, body: bytes
    ) -> Relayed:
        """Answer a cluster's non-Trino answer with a one-sentence Trino error; the whole
        answer goes to the log, for admins."""
        status = response.status_code
        message, error = protocol.upstream_failure(cluster.name, status, body)
        self.log.log(
            logging.ERROR if status >= 500 else logging.WARNING,
            "Cluster %s answered %s %s for %s with HTTP %d (%s), told the user %r: %s",
            cluster.name,
            self.request.method,
            "/v1/statement" if self.request.method == "POST" else "a follow-up",
            identity.name,
            status,
            response.headers.get("content-type", "no content type"),
            message,
            body[:4000].decode("utf-8", "replace"),
        )
        # Clients retry a 502/503/504 and check a DELETE's status; any other failure is a
        # failed query (HTTP 200), which every client shows as a query error.
        keep = self.request.method == "DELETE" or status in (502, 503, 504)
        self.write_trino_error(message, error, status=status if keep else 200)
        return Relayed(failure=message, error=error)

    def _answer_with(self, response: UpstreamResponse) -> None:
        """Take the cluster's status and the response headers a client may see."""
        self.clear_header("Content-Type")
        self.set_status(response.status_code)
        for name, value in protocol.client_response_headers(response.header_items()):
            self.add_header(name, value)

    def _broken_off(
        self, identity: Identity, cluster: Cluster, error: ClusterUnreachable, *, started: bool
    ) -> Relayed:
        self.log.warning(
            "Cluster %s broke off a result page for %s: %s",
            cluster.name,
            identity.name,
            error.reason,
        )
        self.service.monitor.mark_unreachable(cluster.name, f"broke off a page: {error.reason}")
        message = lost_message(cluster)
        if started:
            # Too late for an error body: close so the client sees a failed read
            # rather than a truncated page.
            self.request.connection.stream.close()
        else:
            self.write_trino_error(message, protocol.QUERY_LOST)
        return Relayed(failure=message, error=protocol.QUERY_LOST, broken=True)

    async def pages(
        self,
        identity: Identity,
        cluster: Cluster,
        active: QueryRecord,
        relayed: Relayed,
        deadline: float,
    ) -> None:
        """Tell the tracker about the page *relayed*, and while pages carry nothing for
        the client (and *deadline* has not passed), follow them on its behalf."""
        tracker = self.service.tracker
        while True:
            if relayed.broken:
                tracker.lost(active, relayed.failure or "")
                return
            if relayed.facts is not None:
                await tracker.page(active, relayed.facts, delivered=relayed.follow is None)
            if relayed.follow is None:
                return
            if active.stop_reason:
                self.write_trino_error(
                    stop_message(active.query_id, active.stop_reason),
                    protocol.QUOTA_EXCEEDED,
                    query_id=active.query_id,
                )
                return
            try:
                response = await self.send(identity, cluster, "GET", upstream_path(relayed.follow))
            except ClusterUnreachable as e:
                self.unreachable(identity, cluster, "GET", active.query_id, e)
                tracker.lost(active, lost_message(cluster))
                return
            try:
                relayed = await self.relay(
                    identity,
                    cluster,
                    response,
                    collapse=time.monotonic() < deadline,
                    limit_messages=active.limit_messages,
                )
            finally:
                await response.aclose()

    def unreachable(
        self,
        identity: Identity,
        cluster: Cluster,
        method: str,
        query_id: str | None,
        error: ClusterUnreachable,
    ) -> None:
        """Answer that *cluster* went away during a follow-up of *query_id*."""
        self.log.warning(
            "Cluster %s unreachable for %s of query %s (user %s): %s",
            cluster.name,
            method,
            query_id or "(stage)",
            identity.name,
            error.reason,
        )
        self.service.monitor.mark_unreachable(cluster.name, error.reason)
        self.write_trino_error(lost_message(cluster), protocol.QUERY_LOST, query_id=query_id)


class StatementHandler(TrinoProxyHandler):
    """``POST /v1/statement``: route, admit and submit a query as the hub user."""

    async def post(self) -> None:
        started = time.perf_counter()
        try:
            await self._post()
        finally:
            self.service.metrics.request_duration.labels("submit").observe(
                time.perf_counter() - started
            )

    async def _post(self) -> None:
        identity = await self.identify()
        if identity is None:
            return
        service = self.service
        headers = self.request.headers
        sql = self.request.body.decode("utf-8", "replace")
        source = headers.get("X-Trino-Source")
        client_tags = parse_client_tags(headers.get_list("X-Trino-Client-Tags"))
        tags = tuple(sorted(client_tags))
        query = QueryRecord(identity, sql=sql, source=source, client_tags=tags)
        try:
            prepared = parse_prepared_statements(headers.get_list(PREPARED_STATEMENT_HEADER))
        except StatementError as e:
            self._refuse(query, str(e), protocol.GENERIC_USER_ERROR, "request")
            return
        # Routing and the audit see the SQL that runs (a prepared statement's, not the
        # EXECUTE of it); only the prepared statements it uses reach the cluster.
        resolved = resolve_statement(sql, prepared)
        query.sql, query.client_sql = resolved.sql, resolved.client_sql
        request = RoutingRequest(
            user=identity.name,
            groups=identity.groups,
            source=source,
            client_tags=client_tags,
            hint=headers.get(ROUTING_HEADER),
            sql=resolved.sql,
            catalog=headers.get("X-Trino-Catalog"),
        )
        try:
            decision = service.router.route(request)
        except RoutingError as e:
            self._refuse(query, e.message, e.error, "routing")
            return
        except Exception:
            self.log.exception("Routing failed for a query of %s", identity.name)
            message = "DataHub could not route the query (an internal error); ask an admin."
            self._refuse(query, message, protocol.GENERIC_INTERNAL_ERROR, "internal")
            return
        query.catalog = headers.get("X-Trino-Catalog")
        query.schema = headers.get("X-Trino-Schema")
        query.routing_hint = request.hint
        query.routing_group, query.routing_reason = decision.routing_group, decision.reason
        query.pinned_cluster = decision.cluster
        query.headers = tuple(
            with_prepared_statements(
                protocol.session_headers(headers.get_all(), allow_spooling=service.allow_spooling),
                prepared,
                resolved.uses,
            )
        )
        try:
            admitted = await service.tracker.admit(query)
        except QueryQueued as queued:
            query_id = gateway_query_id()
            self.log.info("Query %s queued user=%s: %s", query_id, identity.name, queued.reason)
            self.write_queued(identity, query_id, queued)
            return
        except QueryRefused as e:
            self._refuse(query, e.message, e.error, "quota")
            return
        except Exception:
            self.log.exception("The admission failed to admit a query of %s", identity.name)
            message = "DataHub could not admit the query (an internal error); ask an admin."
            self._refuse(query, message, protocol.GENERIC_INTERNAL_ERROR, "internal")
            return
        # Admitted: from here on the query ends exactly once, whatever happens.
        await self._submit(identity, query, admitted, self.request.body)

    def write_queued(self, identity: Identity, query_id: str, queued: QueryQueued) -> None:
        """Answer with the gateway's QUEUED page: the client polls its signed nextUri."""
        base = self.base_url()
        next_uri = self.service.signer.queued_uri(base, identity.name, query_id, queued.place)
        info_uri = f"{base}{self.service.prefix}queries/{query_id}"
        self.set_header("Content-Type", "application/json")
        self.finish(
            protocol.queued_page(
                query_id, info_uri, next_uri, queued.reason, int(queued.waited * 1000)
            )
        )

    def _refuse(
        self,
        query: QueryRecord,
        message: str,
        error: tuple[str, str, int],
        reason: str,
        query_id: str | None = None,
    ) -> None:
        """Audit the refusal of *query* (as far as it got) and answer with *message*."""
        query_id = self.service.tracker.rejected(
            query, message=message, error=error, reason=reason, query_id=query_id
        )
        self.write_trino_error(message, error, query_id=query_id)

    async def _submit(
        self, identity: Identity, query: QueryRecord, admitted: Admitted, body: bytes
    ) -> None:
        service = self.service
        tracker = service.tracker
        candidates = service.monitor.rank(query.routing_group, query.pinned_cluster)
        tried: list[str] = []
        response = None
        cluster = None
        for status in candidates:
            cluster = service.cluster_map[status.name]
            try:
                # The admission's per-query limits go to Trino as session limits, which
                # the client's own session values can only lower.
                headers = limited_session_headers(query.headers, admitted.engine_limits)
                response = await self.send(
                    identity, cluster, "POST", "/v1/statement", body, tuple(headers)
                )
            except ClusterUnreachable as e:
                service.monitor.mark_unreachable(cluster.name, e.reason)
                if not e.not_sent:
                    # It may have the query: never run it twice.
                    message = (
                        f"Cluster {cluster.name} stopped answering while taking the query; "
                        "run it again."
                    )
                    await self._fail(query, cluster, message)
                    return
                tried.append(f"{cluster.name} unreachable")
            else:
                if response.status_code not in (502, 503, 504):
                    break
                # Starting, shutting down, or a load balancer without a backend.
                await response.aclose()
                service.monitor.mark_unreachable(cluster.name, f"HTTP {response.status_code}")
                tried.append(f"{cluster.name} answered HTTP {response.status_code}")
                response = None
            self.log.warning(
                "Query of %s not taken by cluster %s (%s); trying the next one",
                identity.name,
                cluster.name,
                tried[-1],
            )
            service.metrics.failovers.labels(cluster.name).inc()
        if response is None or cluster is None:
            if tried:
                message = (
                    f"No cluster of routing group {query.routing_group!r} could take the "
                    f"query ({', '.join(tried)}); try again shortly or ask an admin."
                )
            else:
                message = service.monitor.unavailable_message(
                    query.routing_group, query.pinned_cluster
                )
            await self._fail(query, None, message)
            return
        service.monitor.note_submitted(cluster.name)
        # Trino's error for a limit set from the admission's (not a lower one of the
        # client's) reaches the client as its sentence, on whichever process serves it.
        messages = limit_messages_for(
            query.headers, admitted.engine_limits, admitted.limit_messages
        )
        if messages:
            query.admission = {**query.admission, LIMIT_MESSAGES: messages}
        followed: list[QueryRecord] = []

        def register(facts: protocol.PageFacts) -> None:
            if facts.query_id:
                followed.append(tracker.submitted(query, cluster, facts))

        deadline = time.monotonic() + service.page_collapse_seconds
        try:
            relayed = await self.relay(
                identity,
                cluster,
                response,
                before_finish=register,
                collapse=service.page_collapse_seconds > 0,
                limit_messages=messages,
            )
        finally:
            await response.aclose()
        if not followed:
            # No query came into being: the cluster refused the account, the user or
            # the request itself (the client has the cluster's answer).
            message = relayed.failure or f"Cluster {cluster.name} did not start the query."
            await tracker.failed(
                query, cluster, message, relayed.error or protocol.GENERIC_USER_ERROR
            )
            return
        active = followed[0]
        self.log.info(
            "Query %s submitted user=%s via=%s cluster=%s group=%s reason=%s source=%s",
            active.query_id,
            identity.name,
            identity.via,
            cluster.name,
            query.routing_group,
            query.routing_reason,
            query.source or "",
        )
        await self.pages(identity, cluster, active, relayed, deadline)

    async def _fail(self, query: QueryRecord, cluster: Cluster | None, message: str) -> None:
        error = protocol.NO_CLUSTER_AVAILABLE if cluster is None else protocol.CLUSTER_UNREACHABLE
        query_id = await self.service.tracker.failed(query, cluster, message, error)
        self.write_trino_error(message, error, query_id=query_id)


class FollowupHandler(TrinoProxyHandler):
    """GET/DELETE on a signed follow-up URI: ``/v1/dh/{cluster}/{sig}/v1/statement/...``."""

    async def _followup(self, method: str) -> None:
        started = time.perf_counter()
        try:
            await self._follow(method)
        finally:
            self.service.metrics.request_duration.labels("followup").observe(
                time.perf_counter() - started
            )

    async def _follow(self, method: str) -> None:
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
        query_id = protocol.query_id_from_path(followup.path)
        tracker = service.tracker
        active = await tracker.lookup(query_id, identity, cluster.name) if query_id else None
        if active is not None and active.stop_reason:
            # A hook stopped it (and cancelled it on the cluster): say why.
            if method == "DELETE":
                self.set_status(204)
                self.finish()
            else:
                self.write_trino_error(
                    stop_message(active.query_id, active.stop_reason),
                    protocol.QUOTA_EXCEEDED,
                    query_id=active.query_id,
                )
            return
        following = active is not None and not active.closed
        deadline = time.monotonic() + service.page_collapse_seconds
        try:
            response = await self.send(identity, cluster, method, followup.path)
        except ClusterUnreachable as e:
            self.unreachable(identity, cluster, method, query_id, e)
            if following:
                tracker.lost(active, lost_message(cluster))
            return
        if following and method == "GET" and active.stop_reason:
            # A hook stopped the query while this request was on its way to the cluster:
            # the page is stale, the client hears why instead.
            await response.aclose()
            self.write_trino_error(
                stop_message(active.query_id, active.stop_reason),
                protocol.QUOTA_EXCEEDED,
                query_id=active.query_id,
            )
            return
        collapse = following and method == "GET" and service.page_collapse_seconds > 0
        try:
            relayed = await self.relay(
                identity,
                cluster,
                response,
                collapse=collapse,
                limit_messages=active.limit_messages if active is not None else None,
            )
        finally:
            await response.aclose()
        if not following:
            return
        if method == "DELETE":
            if "/partialCancel/" not in followup.path:
                self.log.info(
                    "Query %s cancelled user=%s cluster=%s",
                    query_id,
                    identity.name,
                    cluster.name,
                )
                tracker.cancelled(active)
            return
        await self.pages(identity, cluster, active, relayed, deadline)

    async def get(self, *args: str) -> None:
        await self._followup("GET")

    async def delete(self, *args: str) -> None:
        await self._followup("DELETE")


class QueuedHandler(StatementHandler):
    """GET/DELETE on a queued query's signed URI ``/v1/dh-queued/{id}/{place}/{sig}``:
    ask whether its turn has come (and submit it then), or give its place up. Any gateway
    process can serve it: the place, and the request to submit, are in the store."""

    SUPPORTED_METHODS = ("GET", "DELETE")

    async def get(self, *args: str) -> None:
        await self._timed(self._poll)

    async def delete(self, *args: str) -> None:
        await self._timed(self._withdraw)

    async def _timed(self, work: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            await work()
        finally:
            self.service.metrics.request_duration.labels("queued").observe(
                time.perf_counter() - started
            )

    async def _queued(self) -> tuple[Identity, protocol.Queued] | None:
        """The caller and the queued URI, or None after answering with an error."""
        identity = await self.identify()
        if identity is None:
            return None
        try:
            queued = protocol.parse_queued(self.request.path)
        except protocol.FollowupError as e:
            self.write_trino_error(str(e), protocol.NOT_FOUND, status=404)
            return None
        if not self.service.signer.verify_queued(queued, identity.name):
            self.log.warning("Refused a queued-query URI not issued to %s", identity.name)
            self.write_trino_error(
                "This query URI was not issued to you; run the query yourself.",
                protocol.PERMISSION_DENIED,
                status=403,
            )
            return None
        return identity, queued

    async def _poll(self) -> None:
        found = await self._queued()
        if found is None:
            return
        identity, queued = found
        try:
            query, admitted = await self.service.tracker.recheck(identity, queued.place)
        except QueryQueued as waiting:
            self.write_queued(identity, queued.query_id, waiting)
            return
        except QueryRefused as e:
            # The stored request is gone when the place was lost: refuse with what is known.
            kept = e.query or QueryRecord(identity)
            self._refuse(kept, e.message, e.error, "quota", query_id=queued.query_id)
            return
        except Exception:
            self.log.exception("The admission failed to re-admit queued query %s", queued.query_id)
            message = "DataHub could not admit the query (an internal error); ask an admin."
            self.write_trino_error(message, protocol.GENERIC_INTERNAL_ERROR)
            return
        note = "; ".join(filter(None, (query.admission_note, f"queued as {queued.query_id}")))
        query.admission_note = note
        self.log.info("Query %s admitted after queueing user=%s", queued.query_id, identity.name)
        await self._submit(identity, query, admitted, query.statement.encode())

    async def _withdraw(self) -> None:
        found = await self._queued()
        if found is None:
            return
        identity, queued = found
        try:
            await self.service.tracker.withdraw(identity, queued.place, queued.query_id)
        except QueryRefused as e:
            self.write_trino_error(e.message, e.error)
            return
        except Exception:
            self.log.exception("The admission failed to withdraw queued query %s", queued.query_id)
            message = "DataHub could not cancel the queued query (an internal error); ask an admin."
            self.write_trino_error(message, protocol.GENERIC_INTERNAL_ERROR)
            return
        self.set_status(204)
        self.finish()


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


class MetricsHandler(web.RequestHandler):
    """``GET /metrics``: Prometheus metrics (no user names or SQL; see metrics.py).

    On the HTTPS listener, the one external clients reach, only for a hub token carrying
    one of ``metrics_scopes``; the plain listener is internal and open.
    """

    def compute_etag(self) -> None:
        return None

    async def get(self) -> None:
        service = self.settings["datahub_service"]
        # Both listeners serve without X-Forwarded-*: "https" means the TLS listener.
        if self.request.protocol == "https":
            refusal = await self._refusal(service)
            if refusal is not None:
                status, message = refusal
                self.log_refusal(message)
                self.set_status(status)
                if status == 401:
                    self.set_header("WWW-Authenticate", 'Bearer realm="DataHub"')
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.finish(message + "\n")
                return
        metrics = service.metrics
        self.set_header("Content-Type", metrics.content_type)
        self.finish(metrics.render())

    def log_refusal(self, message: str) -> None:
        self.settings["datahub_service"].log.info(
            "Refused /metrics to %s: %s", self.request.remote_ip, message
        )

    async def _refusal(self, service: DataHubService) -> tuple[int, str] | None:
        """(status, sentence) if the request's token may not read the metrics."""
        needed = " or ".join(sorted(service.metrics_scopes))
        try:
            credentials = parse_authorization(self.request.headers.get("Authorization"))
            model = await service.identity_resolver.user_model(credentials.token)
        except AuthError:
            return 401, f"/metrics here needs a hub token with the scope {needed}."
        except IdentityUnavailable as e:
            return 503, str(e)
        if not model or (
            credentials.username is not None and credentials.username != model.get("name")
        ):
            return 401, INVALID_TOKEN
        try:
            allowed = check_scopes(set(service.metrics_scopes), set(model.get("scopes") or ()))
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
        (r"/v1/statement", StatementHandler),
        (r"/v1/dh/.*", FollowupHandler),
        (r"/v1/dh-queued/.*", QueuedHandler),
        (r"/v1/info", InfoHandler),
        (r"/metrics", MetricsHandler),
        (prefix + r"api/health", HealthHandler),
        *cluster_pages(prefix),
    ]
