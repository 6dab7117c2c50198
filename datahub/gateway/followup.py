"""A query's later requests: its signed follow-up URIs, and a queued query's URI.

``GET``/``DELETE`` on ``/v1/dh/{cluster}/{sig}/v1/statement/...`` (the next page, a
cancel) and on ``/v1/dh-queued/{id}/{place}/{sig}`` (has its turn come; give the place
up). Any gateway process serves them: the cluster and the user are in the signed URI, a
queued query's place and request in the store. The signature is checked against the
caller's identity, so no one else can use a URI.
"""

from __future__ import annotations

import time

from ..query import QUEUED_AS, QueryRecord
from ..wire import PERMISSION_DENIED, QUOTA_EXCEEDED
from . import protocol
from .admission import QueryQueued, QueryRefused
from .client import lost_message
from .clusters import Cluster
from .exchange import Exchange
from .signing import (
    Followup,
    FollowupError,
    Queued,
    parse_followup,
    parse_queued,
    query_id_from_path,
)
from .submit import answer_queued, refuse, submit
from .tracker import stop_message
from .upstream import ClusterUnreachable

NOT_ISSUED_TO_YOU = "This query URI was not issued to you; run the query yourself."


async def follow(exchange: Exchange, method: str, raw_path: str, query: str) -> None:
    """Serve a signed follow-up: relay the cluster's answer, tell the tracker."""
    gateway, identity, client = exchange.gateway, exchange.identity, exchange.client
    try:
        followup = parse_followup(raw_path, query)
    except FollowupError as e:
        client.fail(str(e), protocol.NOT_FOUND, status=404)
        return
    if not gateway.signer.verify(
        followup.cluster, identity.name, followup.path, followup.signature
    ):
        gateway.log.warning(
            "Refused a follow-up URI not issued to %s (cluster %s)",
            identity.name,
            followup.cluster,
        )
        client.fail(NOT_ISSUED_TO_YOU, PERMISSION_DENIED, status=403)
        return
    cluster = gateway.clusters.get(followup.cluster)
    if cluster is None:
        client.fail(
            f"Cluster {followup.cluster} is no longer configured; run the query again.",
            protocol.NOT_FOUND,
            status=404,
        )
        return
    query_id = query_id_from_path(followup.path)
    tracker = gateway.tracker
    active = await tracker.lookup(query_id, identity, cluster.name) if query_id else None
    if active is not None and active.stop_reason:
        # A hook stopped it (and cancelled it on the cluster): say why.
        if method == "DELETE":
            client.begin(204, [])
            client.end()
        else:
            client.fail(
                stop_message(active.query_id, active.stop_reason),
                QUOTA_EXCEEDED,
                query_id=active.query_id,
            )
        return
    following = active is not None and not active.closed
    # While its client waits for this answer, the query is not one it stopped reading.
    with tracker.watcher.serving(query_id if following else None):
        await _follow_on(exchange, method, followup, cluster, query_id, active)


async def _follow_on(
    exchange: Exchange,
    method: str,
    followup: Followup,
    cluster: Cluster,
    query_id: str | None,
    active: QueryRecord | None,
) -> None:
    """Relay a checked follow-up to *cluster*; tell the tracker about *active*."""
    gateway, identity, client = exchange.gateway, exchange.identity, exchange.client
    tracker = gateway.tracker
    following = active is not None and not active.closed
    deadline = time.monotonic() + gateway.page_collapse_seconds
    try:
        response = await exchange.send(cluster, method, followup.path)
    except ClusterUnreachable as e:
        exchange.unreachable(cluster, method, query_id, e)
        if following:
            tracker.lost(active, lost_message(cluster))
        return
    if following and method == "GET" and active.stop_reason:
        # A hook stopped the query while this request was on its way to the cluster:
        # the page is stale, the client hears why instead.
        await response.aclose()
        client.fail(
            stop_message(active.query_id, active.stop_reason),
            QUOTA_EXCEEDED,
            query_id=active.query_id,
        )
        return
    collapse = following and method == "GET" and gateway.page_collapse_seconds > 0
    try:
        relayed = await exchange.relay(
            cluster,
            response,
            collapse=collapse,
            carry=following and method == "GET" and gateway.page_carry_seconds > 0,
            limit_messages=active.limit_messages if active is not None else None,
        )
    finally:
        await response.aclose()
    if not following:
        return
    if method == "DELETE":
        if "/partialCancel/" not in followup.path:
            gateway.log.info(
                "Query %s cancelled user=%s cluster=%s", query_id, identity.name, cluster.name
            )
            tracker.cancelled(active)
        return
    await exchange.pages(cluster, active, relayed, deadline)


def _queued(exchange: Exchange, raw_path: str) -> Queued | None:
    """The queued URI, or None after answering with an error."""
    gateway, identity, client = exchange.gateway, exchange.identity, exchange.client
    try:
        queued = parse_queued(raw_path)
    except FollowupError as e:
        client.fail(str(e), protocol.NOT_FOUND, status=404)
        return None
    if not gateway.signer.verify_queued(queued, identity.name):
        gateway.log.warning("Refused a queued-query URI not issued to %s", identity.name)
        client.fail(NOT_ISSUED_TO_YOU, PERMISSION_DENIED, status=403)
        return None
    return queued


async def poll(exchange: Exchange, raw_path: str) -> None:
    """Has the queued query's turn come? Submit it then; else answer QUEUED again."""
    queued = _queued(exchange, raw_path)
    if queued is None:
        return
    gateway, identity = exchange.gateway, exchange.identity
    try:
        query, admitted = await gateway.tracker.recheck(identity, queued.place)
    except QueryQueued as waiting:
        answer_queued(exchange, queued.query_id, waiting)
        return
    except QueryRefused as e:
        # The stored request is gone when the place was lost: refuse with what is known.
        kept = e.query or QueryRecord(identity)
        refuse(exchange, kept, e.message, e.error, "quota", query_id=queued.query_id)
        return
    except Exception:
        gateway.log.exception("The admission failed to re-admit queued query %s", queued.query_id)
        message = "DataHub could not admit the query (an internal error); ask an admin."
        exchange.client.fail(message, protocol.GENERIC_INTERNAL_ERROR)
        return
    note = "; ".join(filter(None, (query.admission_note, f"queued as {queued.query_id}")))
    query.admission_note = note
    query.admission = {**query.admission, QUEUED_AS: queued.query_id}
    gateway.log.info("Query %s admitted after queueing user=%s", queued.query_id, identity.name)
    await submit(exchange, query, admitted, query.statement.encode())


async def withdraw(exchange: Exchange, raw_path: str) -> None:
    """Give a queued query's place up."""
    queued = _queued(exchange, raw_path)
    if queued is None:
        return
    gateway, identity, client = exchange.gateway, exchange.identity, exchange.client
    try:
        await gateway.tracker.withdraw(identity, queued.place, queued.query_id)
    except QueryRefused as e:
        client.fail(e.message, e.error)
        return
    except Exception:
        gateway.log.exception("The admission failed to withdraw queued query %s", queued.query_id)
        message = "DataHub could not cancel the queued query (an internal error); ask an admin."
        client.fail(message, protocol.GENERIC_INTERNAL_ERROR)
        return
    client.begin(204, [])
    client.end()
