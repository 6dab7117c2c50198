"""The life of every query through the gateway: admission, journal, listeners, metrics.

The handlers hand the tracker the query's `QueryRecord` and tell it what they saw (a
query refused, admitted, submitted, a result page, a cancel, a cluster gone); the tracker
asks the admission, records the query in the journal, tells the listeners and counts it.
It keeps the queries it follows in memory (``active``) so the protocol path never waits
for the store; a follow-up that reaches another gateway process (or this one after a
restart) finds the query in the journal instead, and failing that is recorded from what
the signed follow-up URI says.

A query ends exactly once: the journal closes an open query only once (see
`datahub.gateway.journal.QueryJournal.close`), and only the closer tells the listeners,
counts the metric and writes the ``query_finished`` event (`closing`). The clusters are
asked about the queries nobody closes, and about the running ones, by the `watcher`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..identity import Identity
from ..query import QueryRecord, QueryState, QueryStats, utcnow
from ..wire import QUERY_LOST, QUOTA_EXCEEDED
from . import protocol
from .admission import Admitted, Listeners, QueryAdmission, QueryQueued
from .closing import Error, QueryCloser
from .clusters import Cluster
from .health import ClusterMonitor
from .journal import QueryJournal
from .metrics import GatewayMetrics
from .stats import QUEUED_STATES, TRINO_FINAL_STATES, stats_from_page
from .upstream import ClusterUnreachable, Upstream
from .watcher import QueryWatcher

#: Seconds a query runs before the journal records it running (see `QueryTracker.page`).
RUNNING_RECORD_AFTER = 1.0


def gateway_query_id() -> str:
    """An id for a query that never got one from Trino (refused, or no cluster took it)."""
    return "datahub_" + uuid.uuid4().hex[:20]


def stop_message(query_id: str, reason: str) -> str:
    """The user's sentence for a query a listener stopped."""
    return f"DataHub stopped query {query_id}: {reason.rstrip('.')}."


def _is_running(state: str) -> bool:
    return state not in QUEUED_STATES and state not in TRINO_FINAL_STATES


class QueryTracker:
    """See the module docstring."""

    def __init__(
        self,
        *,
        journal: QueryJournal,
        admission: QueryAdmission,
        listeners: Listeners,
        metrics: GatewayMetrics,
        monitor: ClusterMonitor,
        upstream: Upstream,
        clusters: Mapping[str, Cluster],
        log: logging.Logger,
        fetch_final_stats: bool = True,
        request_timeout: float = 10.0,
        reconcile_interval: float = 30.0,
        lost_after: float = 30.0,
        idle_timeout: float = 600.0,
        watch_interval: float = 2.0,
    ) -> None:
        self.journal = journal
        self.admission = admission
        self.listeners = listeners
        self.metrics = metrics
        self.upstream = upstream
        self.clusters = clusters
        self.log = log
        self.request_timeout = request_timeout
        self.closer = QueryCloser(
            journal=journal,
            listeners=listeners,
            metrics=metrics,
            upstream=upstream,
            clusters=clusters,
            log=log,
            fetch_final_stats=fetch_final_stats,
            request_timeout=request_timeout,
        )
        self.watcher = QueryWatcher(
            self,
            monitor,
            reconcile_interval=reconcile_interval,
            lost_after=lost_after,
            idle_timeout=idle_timeout,
            watch_interval=watch_interval,
        )
        self.active: dict[str, QueryRecord] = {}
        #: The closes in flight in this process, by query id: the query and its outcome.
        self._closing: dict[str, tuple[QueryRecord, asyncio.Future[bool]]] = {}
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------- admission

    async def admit(self, query: QueryRecord) -> Admitted:
        """Admit *query* (its note and data go into it), naming the user's queries whose
        close is in flight here. If it would be queued, first close the user's queries
        that ended on their cluster (`QueryWatcher.settle`) and, if any did, ask again:
        a query whose client stopped reading never holds a slot. Raises `QueryQueued` or
        `QueryRefused`."""
        ending = [q for q, _ in self.closing(query.user).values()]
        try:
            admitted = await self.admission.admit(query, ending)
        except QueryQueued as queued:
            if not await self.watcher.settle(query.user):
                raise
            _, admitted = await self.admission.recheck(query.identity, queued.place)
        return _admitted(query, admitted)

    def queued(self, query: QueryRecord, queued: QueryQueued) -> str:
        """The admission queued *query*: give it the gateway's id (its queued URI's) and
        record it waiting (the journal's ``queued``); returns the id."""
        query.query_id = gateway_query_id()
        query.submitted_at = utcnow()
        query.state = QueryState.QUEUED
        query.admission_note = queued.reason
        self.journal.queued(query)
        self.log.info("Query %s queued user=%s: %s", query.query_id, query.user, queued.reason)
        return query.query_id

    async def recheck(self, identity: Identity, place: str) -> tuple[QueryRecord, Admitted]:
        """Ask the admission again about the queued query at *place*; while it still
        waits, close the user's queries that have ended on their cluster and ask once
        more. Returns the kept query, admitted."""
        try:
            query, admitted = await self.admission.recheck(identity, place)
        except QueryQueued:
            if not await self.watcher.settle(identity.name):
                raise
            query, admitted = await self.admission.recheck(identity, place)
        return query, _admitted(query, admitted)

    async def withdraw(self, identity: Identity, place: str, query_id: str) -> None:
        """The client cancelled the queued query *query_id* at *place*: give the place up
        and record the query CANCELED (when the place still had it)."""
        query = await self.admission.withdraw(identity, place)
        if query is None:
            return
        query.query_id = query_id
        query.submitted_at = utcnow()
        query.end(QueryState.CANCELED, error=(None, None, "Cancelled by its client while queued."))
        self.journal.ended_early(query)
        self.metrics.query_ended(None, QueryState.CANCELED, None)
        self.log.info("Query %s cancelled while queued user=%s", query_id, identity.name)

    # ------------------------------------------------------------- before a cluster

    def rejected(
        self,
        query: QueryRecord,
        *,
        message: str,
        error: tuple[str, str, int],
        reason: str,
        query_id: str | None = None,
    ) -> str:
        """Record *query*, refused before admission or by it (*reason*: routing, quota,
        request…; *query_id* when it had one while queued); returns its id."""
        query.query_id = query_id or gateway_query_id()
        query.submitted_at = utcnow()
        # Refused: whatever the admission noted of it is not part of its record.
        query.admission_note, query.admission = None, {}
        query.end(QueryState.REJECTED, error=(error[0], error[1], message))
        query.finished_at = query.submitted_at
        self.journal.ended_early(query)
        self.metrics.rejected.labels(reason).inc()
        self.log.info("Query %s refused user=%s: %s", query.query_id, query.user, message)
        return query.query_id

    async def failed(
        self,
        query: QueryRecord,
        cluster: Cluster | None,
        message: str,
        error: tuple[str, str, int],
    ) -> str:
        """Record admitted *query*, which never ran (no cluster took it; *cluster* is the
        one that may have it, if any); returns its id. The listeners hear its end."""
        query.query_id = gateway_query_id()
        query.submitted_at = utcnow()
        query.cluster = cluster.name if cluster else None
        query.principal = cluster.user if cluster else None
        query.end(QueryState.FAILED, error=(error[0], error[1], message))
        query.finished_at = query.submitted_at
        query.closed = True
        self.journal.ended_early(query)
        self.metrics.query_ended(query.cluster, QueryState.FAILED, None)
        self.log.info("Query %s failed user=%s: %s", query.query_id, query.user, message)
        query.stats = QueryStats(
            QueryState.FAILED, error_name=error[0], error_type=error[1], error=message
        )
        await self.listeners.on_finished(query)
        return query.query_id

    # --------------------------------------------------------------- while it runs

    def submitted(
        self, query: QueryRecord, cluster: Cluster, facts: protocol.PageFacts
    ) -> QueryRecord:
        """*cluster* accepted admitted *query*: follow it and record it submitted.

        Synchronous on purpose: the handler calls it before the client receives the
        page, so the client's first follow-up always finds the query here.
        """
        query.query_id = str(facts.query_id)
        query.cluster, query.principal = cluster.name, cluster.user
        query.state = facts.state or QueryState.QUEUED
        query.submitted_at = utcnow()
        query.last_seen = time.monotonic()
        self.active[query.query_id] = query
        self.journal.submitted(query)
        self.metrics.submitted.labels(cluster.name, query.routing_group).inc()
        return query

    async def lookup(self, query_id: str, identity: Identity, cluster: str) -> QueryRecord:
        """The query a follow-up belongs to: followed here, else from the journal, else
        what the signed URI tells (its submitted event was lost)."""
        query = self.active.get(query_id)
        if query is not None:
            query.last_seen = time.monotonic()
            return query
        try:
            query = await self.journal.find(query_id)
        except Exception:
            query = None  # logged by the journal; follow the query without its record
        if query is not None and query.user == identity.name:
            query.identity = identity
        else:
            known = self.clusters.get(cluster)
            query = QueryRecord(
                identity=identity,
                query_id=query_id,
                cluster=cluster,
                routing_group=known.routing_group if known else None,
            )
        if not query.closed:
            self.active[query_id] = query
        return query

    async def page(
        self, query: QueryRecord, facts: protocol.PageFacts, *, delivered: bool = True
    ) -> None:
        """A result page of *query* reached its client (or, not *delivered*, was followed
        on its behalf: then the listeners' ``on_progress`` is not called for it)."""
        query.last_seen = time.monotonic()
        if facts.stats:
            # A spooled query's rows are counted from its segments (Trino counts those).
            rows = facts.spooled_rows or (query.stats.output_rows if query.stats else None)
            query.stats = stats_from_page(facts.stats, facts.error, output_rows=rows)
            state = query.stats.state
            if state != query.state:
                started = _is_running(state) and not _is_running(query.state)
                query.state = state
                if started and facts.has_next:
                    # One write per query still running a moment after it started, for
                    # the history page (a short query's close says it all, and sooner).
                    loop = asyncio.get_running_loop()
                    loop.call_later(RUNNING_RECORD_AFTER, self._record_running, query)
        if not facts.has_next:
            self._spawn(self.close(query, page_stats=query.stats))
            return
        if delivered and self.listeners and query.stats is not None and not query.stop_reason:
            reason = await self.listeners.on_progress(query, query.stats)
            if reason:
                await self.stop_query(query, reason, facts.next_uri)

    def _record_running(self, query: QueryRecord) -> None:
        if not query.closed:
            self.journal.running(query)

    async def stop_query(self, query: QueryRecord, reason: str, next_uri: str | None) -> None:
        """Stop *query* for *reason*: cancel it on its cluster, close it as FAILED."""
        if query.stop_reason:
            return
        query.stop_reason = reason
        message = stop_message(query.query_id, reason)
        self.log.info("Stopping query %s of %s: %s", query.query_id, query.user, reason)
        cluster = self.clusters.get(query.cluster or "")
        if cluster is not None:
            if next_uri:
                path, user = protocol.upstream_path(next_uri), query.user
            else:
                # No page at hand (the watcher stops it): Trino's query resource, as
                # the service account.
                path, user = f"/v1/query/{query.query_id}", None
            try:
                await self.upstream.call(
                    cluster, "DELETE", path, user=user, timeout=self.request_timeout
                )
            except ClusterUnreachable as e:
                self.log.warning(
                    "Could not cancel query %s on %s: %s", query.query_id, cluster.name, e.reason
                )
        stopped = (*QUOTA_EXCEEDED[:2], message)
        self._spawn(
            self.close(query, state=QueryState.FAILED, page_stats=query.stats, error=stopped)
        )

    def cancelled(self, query: QueryRecord) -> None:
        """The client cancelled *query* (DELETE on its statement URI)."""
        self._spawn(self.close(query, state=QueryState.CANCELED, page_stats=query.stats))

    def lost(self, query: QueryRecord, message: str) -> None:
        """*query*'s cluster went away mid-query: its outcome is unknown."""
        lost = (*QUERY_LOST[:2], message)
        self._spawn(
            self.close(
                query, state=QueryState.LOST, page_stats=query.stats, error=lost, fetch=False
            )
        )

    # ------------------------------------------------------------------- closing

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def closing(self, user: str) -> dict[str, tuple[QueryRecord, asyncio.Future[bool]]]:
        """*user*'s closes in flight here by query id: the query, the outcome (closed it)."""
        return {i: closing for i, closing in self._closing.items() if closing[0].user == user}

    async def close(
        self,
        query: QueryRecord,
        *,
        state: str | None = None,
        page_stats: QueryStats | None = None,
        info: Mapping[str, Any] | None = None,
        error: Error | None = None,
        fetch: bool = True,
    ) -> bool:
        """Close *query* (once; see `QueryCloser.close`); returns True if this call
        closed it."""
        if query.closed:
            return False
        query.closed = True
        if page_stats is None and query.stats is not None and query.stats.output_rows is not None:
            page_stats = query.stats  # a spooled query's rows, which Trino's info lacks
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._closing[query.query_id] = (query, done)
        closed = False
        try:
            closed = await self.closer.close(
                query, state=state, page_stats=page_stats, info=info, error=error, fetch=fetch
            )
            return closed
        except Exception:
            self.log.exception("Could not close query %s", query.query_id)
            return False
        finally:
            self._closing.pop(query.query_id, None)
            done.set_result(closed)
            if not query.stop_reason:
                # A stopped query stays so the client's next request hears why.
                self.active.pop(query.query_id, None)

    # ------------------------------------------------------------------ the tasks

    async def reconcile(self) -> int:
        """Close the open queries nobody follows any more (`QueryWatcher.reconcile`)."""
        return await self.watcher.reconcile()

    async def watch(self) -> None:
        """One pass of the watcher (`QueryWatcher.watch`)."""
        await self.watcher.watch()

    def start(self) -> None:
        """Start the watcher and the reconciler (`QueryWatcher.start`)."""
        self.watcher.start()

    async def stop(self, timeout: float = 10) -> None:
        """Stop the reconciler and the watcher, and let the closes in flight finish."""
        await self.watcher.stop()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


def _admitted(query: QueryRecord, admitted: Admitted) -> Admitted:
    """Note *admitted* in *query* (its note and data travel with it)."""
    query.admission_note = admitted.note
    query.admission = dict(admitted.data)
    return admitted
