"""A new query's way through the gateway: route → admit → pick a cluster → forward → relay.

Each step is a function over values (`StatementRequest`, `QueryRecord`, `Admitted`); the
handler only turns the HTTP request into a `StatementRequest` and gives the `Exchange` its
answer. A query refused on the way is audited and answered with one sentence; an admitted
query ends exactly once, whatever happens after (the tracker sees to that).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..identity import Identity
from ..query import LIMIT_MESSAGES, QueryRecord
from ..wire import (
    CLUSTER_UNREACHABLE,
    NO_CLUSTER_AVAILABLE,
    PREPARED_STATEMENT_HEADER,
    ROUTING_HEADER,
    STATEMENT_PATH,
    TRINO_CATALOG_HEADER,
    TRINO_CLIENT_TAGS_HEADER,
    TRINO_SCHEMA_HEADER,
    TRINO_SOURCE_HEADER,
)
from . import presto, protocol
from .admission import Admitted, QueryQueued, QueryRefused
from .client import Error
from .clusters import Attempt, Cluster, failover
from .engine_limits import limit_messages_for, limited_session_headers
from .exchange import Exchange
from .routing import Router, RoutingError, RoutingRequest, parse_client_tags
from .statements import (
    StatementError,
    parse_prepared_statements,
    resolve_statement,
    with_prepared_statements,
)
from .upstream import ClusterUnreachable, UpstreamResponse


@dataclass(frozen=True)
class StatementRequest:
    """A client's ``POST /v1/statement``: the statement and every header, as values."""

    body: bytes
    headers: tuple[tuple[str, str], ...]

    @property
    def sql(self) -> str:
        return self.body.decode("utf-8", "replace")

    def values(self, name: str) -> list[str]:
        """Every value of header *name* (case-insensitive), in order."""
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def header(self, name: str) -> str | None:
        """Header *name*'s values joined by commas, None if absent."""
        values = self.values(name)
        return ",".join(values) if values else None


class Refusal(Exception):
    """A query the gateway refuses before admission: the user's sentence, Trino's error,
    the metrics' reason, and what the audit records of the query."""

    def __init__(self, message: str, error: Error, reason: str, query: QueryRecord) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.reason = reason
        self.query = query


def route(
    router: Router,
    identity: Identity,
    request: StatementRequest,
    *,
    allow_spooling: bool,
    log: logging.Logger,
) -> QueryRecord:
    """The query *request* asks for, routed: its SQL (the SQL that runs), the routing
    group, and the client's headers that go with it. Raises Refusal."""
    sql = request.sql
    source = request.header(TRINO_SOURCE_HEADER)
    client_tags = parse_client_tags(request.values(TRINO_CLIENT_TAGS_HEADER))
    tags = tuple(sorted(client_tags))
    query = QueryRecord(identity, sql=sql, source=source, client_tags=tags)
    try:
        prepared = parse_prepared_statements(request.values(PREPARED_STATEMENT_HEADER))
    except StatementError as e:
        raise Refusal(str(e), protocol.GENERIC_USER_ERROR, "request", query) from e
    # Routing and the audit see the SQL that runs (a prepared statement's, not the
    # EXECUTE of it); only the prepared statements it uses reach the cluster.
    resolved = resolve_statement(sql, prepared)
    query.sql, query.client_sql = resolved.sql, resolved.client_sql
    catalog = request.header(TRINO_CATALOG_HEADER)
    routing = RoutingRequest(
        user=identity.name,
        groups=identity.groups,
        source=source,
        client_tags=client_tags,
        hint=request.header(ROUTING_HEADER),
        sql=resolved.sql,
        catalog=catalog,
    )
    try:
        decision = router.route(routing)
    except RoutingError as e:
        raise Refusal(e.message, e.error, "routing", query) from e
    except Exception as e:
        log.exception("Routing failed for a query of %s", identity.name)
        message = "DataHub could not route the query (an internal error); ask an admin."
        raise Refusal(message, protocol.GENERIC_INTERNAL_ERROR, "internal", query) from e
    session = protocol.session_headers(request.headers, allow_spooling=allow_spooling)
    query.catalog, query.schema = catalog, request.header(TRINO_SCHEMA_HEADER)
    query.routing_hint = routing.hint
    query.routing_group, query.routing_reason = decision.routing_group, decision.reason
    query.pinned_cluster = decision.cluster
    query.headers = tuple(with_prepared_statements(session, prepared, resolved.uses))
    if router.engine_of(decision.routing_group) == presto.PRESTO:
        unsupported = presto.unsupported_request(query.headers)
        if unsupported:
            raise Refusal(unsupported, protocol.GENERIC_USER_ERROR, "request", query)
    return query


async def statement(exchange: Exchange, request: StatementRequest) -> None:
    """Route, admit and submit the query of *request*; answer the client."""
    gateway, identity = exchange.gateway, exchange.identity
    try:
        query = route(
            gateway.router,
            identity,
            request,
            allow_spooling=gateway.allow_spooling,
            log=gateway.log,
        )
    except Refusal as r:
        refuse(exchange, r.query, r.message, r.error, r.reason)
        return
    try:
        admitted = await gateway.tracker.admit(query)
    except QueryQueued as queued:
        answer_queued(exchange, gateway.tracker.queued(query, queued), queued)
        return
    except QueryRefused as e:
        refuse(exchange, query, e.message, e.error, "quota")
        return
    except Exception:
        gateway.log.exception("The admission failed to admit a query of %s", identity.name)
        message = "DataHub could not admit the query (an internal error); ask an admin."
        refuse(exchange, query, message, protocol.GENERIC_INTERNAL_ERROR, "internal")
        return
    # Admitted: from here on the query ends exactly once, whatever happens.
    await submit(exchange, query, admitted, request.body)


def answer_queued(exchange: Exchange, query_id: str, queued: QueryQueued) -> None:
    """Answer with the gateway's QUEUED page: the client polls its signed nextUri."""
    gateway, base = exchange.gateway, exchange.base_url
    next_uri = gateway.signer.queued_uri(base, exchange.identity.name, query_id, queued.place)
    info_uri = f"{base}{gateway.prefix}queries/{query_id}"
    page = protocol.queued_page(
        query_id, info_uri, next_uri, queued.reason, int(queued.waited * 1000)
    )
    exchange.client.begin(200, [("Content-Type", "application/json")])
    exchange.client.end(page)


def refuse(
    exchange: Exchange,
    query: QueryRecord,
    message: str,
    error: Error,
    reason: str,
    query_id: str | None = None,
) -> None:
    """Audit the refusal of *query* (as far as it got) and answer with *message*."""
    query_id = exchange.gateway.tracker.rejected(
        query, message=message, error=error, reason=reason, query_id=query_id
    )
    exchange.client.fail(message, error, query_id=query_id)


async def forward(
    exchange: Exchange, query: QueryRecord, admitted: Admitted, body: bytes
) -> tuple[Cluster, UpstreamResponse] | None:
    """Send the admitted query to the best cluster of its routing group that takes it
    (`clusters.failover` decides when to try the next one): the cluster and its answer,
    or None after failing the query."""
    gateway = exchange.gateway
    monitor = gateway.monitor
    # The admission's per-query limits go to Trino as session limits, which the client's
    # own session values can only lower.
    engine = gateway.router.engine_of(query.routing_group)
    headers = tuple(limited_session_headers(query.headers, admitted.engine_limits, engine))
    if engine == presto.PRESTO:
        body, presto_headers = presto.immediate_as_prepared(body, headers)
        headers = tuple(presto_headers)
    tried: list[str] = []
    for status in monitor.rank(query.routing_group, query.pinned_cluster):
        cluster = gateway.clusters[status.name]
        try:
            response = await exchange.send(cluster, "POST", STATEMENT_PATH, body, headers)
        except ClusterUnreachable as e:
            monitor.mark_unreachable(cluster.name, e.reason, down=e.refused)
            if failover(None, not_sent=e.not_sent) is Attempt.STOP:
                message = (
                    f"Cluster {cluster.name} stopped answering while taking the query; "
                    "run it again."
                )
                await fail(exchange, query, cluster, message)
                return None
            tried.append(f"{cluster.name} unreachable")
        else:
            if failover(response.status_code) is Attempt.TAKEN:
                return cluster, response
            await response.aclose()
            monitor.mark_unreachable(cluster.name, f"HTTP {response.status_code}", down=True)
            tried.append(f"{cluster.name} answered HTTP {response.status_code}")
        gateway.log.warning(
            "Query of %s not taken by cluster %s (%s); trying the next one",
            exchange.identity.name,
            cluster.name,
            tried[-1],
        )
        gateway.metrics.failovers.labels(cluster.name).inc()
    if tried:
        message = (
            f"No cluster of routing group {query.routing_group!r} could take the "
            f"query ({', '.join(tried)}); try again shortly or ask an admin."
        )
    else:
        message = monitor.unavailable_message(query.routing_group, query.pinned_cluster)
    await fail(exchange, query, None, message)
    return None


async def submit(exchange: Exchange, query: QueryRecord, admitted: Admitted, body: bytes) -> None:
    """Forward an admitted query and relay the cluster's first page; the query is known
    to the tracker before the client can follow it."""
    gateway, identity = exchange.gateway, exchange.identity
    forwarded = await forward(exchange, query, admitted, body)
    if forwarded is None:
        return
    cluster, response = forwarded
    gateway.monitor.note_submitted(cluster.name)
    # Trino's error for a limit set from the admission's (not a lower one of the
    # client's) reaches the client as its sentence, on whichever process serves it.
    messages = limit_messages_for(
        query.headers,
        admitted.engine_limits,
        admitted.limit_messages,
        gateway.router.engine_of(query.routing_group),
    )
    if messages:
        query.admission = {**query.admission, LIMIT_MESSAGES: messages}
    tracker = gateway.tracker
    followed: list[QueryRecord] = []

    def register(facts: protocol.PageFacts) -> None:
        if facts.query_id:
            followed.append(tracker.submitted(query, cluster, facts))

    deadline = time.monotonic() + gateway.page_collapse_seconds
    try:
        relayed = await exchange.relay(
            cluster,
            response,
            before_finish=register,
            collapse=gateway.page_collapse_seconds > 0,
            carry=gateway.page_carry_seconds > 0,
            limit_messages=messages,
        )
    finally:
        await response.aclose()
    if not followed:
        # No query came into being: the cluster refused the account, the user or
        # the request itself (the client has the cluster's answer).
        message = relayed.failure or f"Cluster {cluster.name} did not start the query."
        await tracker.failed(query, cluster, message, relayed.error or protocol.GENERIC_USER_ERROR)
        return
    active = followed[0]
    # One INFO line per query, at its end (`QueryCloser.close`); the audit has the rest.
    gateway.log.debug(
        "Query %s submitted user=%s via=%s cluster=%s group=%s reason=%s source=%s",
        active.query_id,
        identity.name,
        identity.via,
        cluster.name,
        query.routing_group,
        query.routing_reason,
        query.source or "",
    )
    with tracker.watcher.serving(active.query_id):
        await exchange.pages(cluster, active, relayed, deadline)


async def fail(
    exchange: Exchange,
    query: QueryRecord,
    cluster: Cluster | None,
    message: str,
) -> None:
    """Fail an admitted query no cluster took (*cluster*: the one that may have it)."""
    error = NO_CLUSTER_AVAILABLE if cluster is None else CLUSTER_UNREACHABLE
    query_id = await exchange.gateway.tracker.failed(query, cluster, message, error)
    exchange.client.fail(message, error, query_id=query_id)
