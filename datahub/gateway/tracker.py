"""The life of every query through the gateway: audit, hooks, metrics, and the reconciler.

The handlers tell the tracker what they saw (a query submitted, a result page, a cancel,
a cluster gone); the tracker records it in the audit, calls the query hooks and counts
it. It keeps the queries it follows in memory (``active``) so the protocol path never
waits for the store; a follow-up that reaches another gateway process (or this one after
a restart) finds the query in the store instead, and failing that is recorded from what
the signed follow-up URI says.

A query ends exactly once: the audit closes an open record only once (see
`datahub.audit.records.close_query`), and only the closer calls the ``finished`` hooks,
counts the metric and writes the ``query_finished`` event. Queries nobody closes (a
cluster or gateway crashed, the client went away) are found by the reconciler, which
asks their cluster: Trino's final state if it has one, ``LOST`` if it no longer knows
the query or has been unreachable for ``lost_after`` seconds.

The watcher asks the clusters about every query this process follows, every
``watch_interval`` seconds, whether or not its client polls: a query Trino says has
ended is closed at once (its slot freed), and the hooks' ``on_running`` sees the
statistics of the others (the quota counts the day's CPU and bytes while they run, and
stops a query that takes its user past a daily limit). Before a query would be queued,
`admit` asks the same about the user's open queries (`settle`): a slot is held only by a
query its cluster says still runs, even when its client stopped reading after the data
(the trino client's ``EXECUTE IMMEDIATE`` probe, ``fetchone()`` then close).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..audit import events, records
from ..audit.log import AuditLog
from ..identity import Identity
from . import protocol
from .clusters import Cluster
from .health import ClusterMonitor
from .hooks import (
    CANCELED,
    FAILED,
    LOST,
    REJECTED,
    Admission,
    HookChain,
    QueryInfo,
    QueryQueued,
    QueryStats,
    Resumed,
    Submission,
)
from .metrics import GatewayMetrics
from .statements import resolve_query_info
from .stats import (
    QUEUED_STATES,
    TRINO_FINAL_STATES,
    final_state,
    merge_final,
    stats_from_page,
    stats_from_query_info,
)
from .upstream import ClusterUnreachable, Upstream


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def gateway_query_id() -> str:
    """An id for a query that never got one from Trino (refused, or no cluster took it)."""
    return "datahub_" + uuid.uuid4().hex[:20]


def upstream_path(uri: str) -> str:
    """The path and query of a cluster URI (requests always go to the configured URL)."""
    parts = urlsplit(uri)
    return parts.path + ("?" + parts.query if parts.query else "")


def stop_message(query_id: str, reason: str) -> str:
    """The user's sentence for a query a hook stopped."""
    return f"DataHub stopped query {query_id}: {reason.rstrip('.')}."


#: Key of the admission data holding `ActiveQuery.limit_messages`.
LIMIT_MESSAGES = "limit_messages"


@dataclass
class ActiveQuery:
    """A query the gateway follows: what the hooks and the audit need, and its progress."""

    query_id: str
    identity: Identity
    cluster: str
    routing_group: str | None
    sql: str
    source: str | None
    client_tags: tuple[str, ...]
    submitted_at: dt.datetime
    admission: Mapping[str, Any] = field(default_factory=dict)
    state: str = "QUEUED"
    stats: QueryStats | None = None
    stop_reason: str | None = None
    closed: bool = False
    last_seen: float = field(default_factory=time.monotonic)

    @property
    def limit_messages(self) -> Mapping[str, str]:
        """The client's error message by Trino error name for the per-query limits the
        gateway set (kept in the admission data, so every gateway process has them)."""
        return self.admission.get(LIMIT_MESSAGES, {})

    def info(self) -> QueryInfo:
        return QueryInfo(
            query_id=self.query_id,
            user=self.identity.name,
            cluster=self.cluster,
            routing_group=self.routing_group,
            sql=self.sql,
            source=self.source,
            client_tags=self.client_tags,
            submitted_at=self.submitted_at,
            admission=self.admission,
        )

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], identity: Identity | None = None
    ) -> ActiveQuery:
        identity = identity or records.identity_of(record)
        return cls(
            query_id=record["query_id"],
            identity=identity,
            cluster=record.get("cluster") or "",
            routing_group=record.get("routing_group"),
            sql=record.get("sql") or "",
            source=record.get("source"),
            client_tags=tuple(record.get("client_tags") or ()),
            submitted_at=record.get("submitted_at") or utcnow(),
            admission=record.get("admission") or {},
            state=record.get("state") or "QUEUED",
            stop_reason=record.get("stop_reason"),
            closed=record.get("finished_at") is not None,
        )


def _stats_fields(stats: QueryStats | None) -> dict[str, Any]:
    if stats is None:
        return {}
    return {
        "elapsed_ms": stats.elapsed_ms,
        "queued_ms": stats.queued_ms,
        "cpu_ms": stats.cpu_ms,
        "wall_ms": stats.wall_ms,
        "processed_rows": stats.processed_rows,
        "processed_bytes": stats.processed_bytes,
        "physical_bytes": stats.physical_bytes,
        "peak_memory_bytes": stats.peak_memory_bytes,
        "output_rows": stats.output_rows,
    }


def _is_running(state: str) -> bool:
    return state not in QUEUED_STATES and state not in TRINO_FINAL_STATES


#: Seconds after its submission during which a cluster that does not know a query is not
#: taken to have forgotten it: Trino lists a query only once it is dispatched, at its
#: client's first poll.
UNLISTED_GRACE = 30.0
#: Seconds `QueryTracker.settle` gives a running query to end. Short: it is paid each time
#: a user at their concurrency limit submits, and only matters for queries that are
#: ending (Trino still calls a query RUNNING for a moment after its client had the page
#: with the data, until its last driver and output buffer finish).
SETTLE_WAIT = 1.0
#: Trino's states of a query that may end at any moment.
ENDING_STATES = frozenset({"RUNNING", "FINISHING"})


class QueryTracker:
    """See the module docstring."""

    def __init__(
        self,
        *,
        audit: AuditLog,
        hooks: HookChain,
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
        self.audit = audit
        self.hooks = hooks
        self.metrics = metrics
        self.monitor = monitor
        self.upstream = upstream
        self.clusters = clusters
        self.log = log
        self.fetch_final_stats = fetch_final_stats
        self.request_timeout = request_timeout
        self.reconcile_interval = reconcile_interval
        self.lost_after = lost_after
        self.idle_timeout = idle_timeout
        self.watch_interval = watch_interval
        self.active: dict[str, ActiveQuery] = {}
        self._tasks: set[asyncio.Task] = set()
        self._reconciler: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None

    # ------------------------------------------------------------------- admission

    async def admit(self, identity: Identity, submission: Submission) -> Admission:
        """Admit *submission* through the hooks. If they would queue it, first close
        the user's queries that have ended on their cluster (`settle`) and, if any did,
        ask again: a query whose client stopped reading never holds a slot."""
        try:
            return await self.hooks.admit(identity, submission)
        except QueryQueued as queued:
            if not await self.settle(identity.name):
                raise
            return (await self.hooks.recheck(identity, queued.place)).admission

    async def recheck(self, identity: Identity, place: str) -> Resumed:
        """Ask the hooks again about the queued query at *place*; while it still waits,
        close the user's queries that have ended on their cluster and ask once more."""
        try:
            return await self.hooks.recheck(identity, place)
        except QueryQueued:
            if not await self.settle(identity.name):
                raise
            return await self.hooks.recheck(identity, place)

    async def settle(self, user: str) -> int:
        """Ask the clusters about *user*'s open queries (followed here or recorded in the
        store) and close those that ended; returns how many were closed."""
        mine = {q.query_id: q for q in self.active.values() if q.identity.name == user}
        try:
            stored = await self.audit.run(
                functools.partial(records.open_queries, submitted_before=utcnow(), user=user)
            )
        except Exception:
            stored = []  # logged by the writer; the queries followed here still count
        for record in stored:
            if record["query_id"] not in mine:
                mine[record["query_id"]] = ActiveQuery.from_record(record)
        settled = await asyncio.gather(
            *(self._settle_one(q) for q in mine.values() if not q.closed), return_exceptions=True
        )
        for outcome in settled:
            if isinstance(outcome, Exception):
                self.log.error("Could not settle a query of %s: %r", user, outcome)
        return sum(1 for outcome in settled if outcome is True)

    async def _settle_one(self, active: ActiveQuery) -> bool:
        """Close *active* if it ended; returns whether this call closed it.

        Trino still calls a query RUNNING for a moment after its client had the page with
        the data (the probe that never asks for the empty rest): a running query is asked
        about again until it ends, for up to SETTLE_WAIT.
        """
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            closed, info = await self._ask(active)
            if closed or info is None or info.get("state") not in ENDING_STATES:
                return closed
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------- before a cluster

    def rejected(
        self,
        identity: Identity,
        *,
        message: str,
        error: tuple[str, str, int],
        reason: str,
        sql: str,
        client_sql: str | None = None,
        source: str | None = None,
        client_tags: tuple[str, ...] = (),
        routing_group: str | None = None,
        routing_reason: str | None = None,
        query_id: str | None = None,
    ) -> str:
        """Record a query refused before admission (routing, a hook; *query_id* when it
        had one while queued); returns its id."""
        query_id = query_id or gateway_query_id()
        now = utcnow()
        row = records.new_record(
            query_id=query_id,
            **records.identity_fields(identity),
            routing_group=routing_group,
            routing_reason=routing_reason,
            sql=sql,
            client_sql=client_sql,
            source=source,
            client_tags=list(client_tags),
            state=REJECTED,
            error_name=error[0],
            error_type=error[1],
            error=message,
            submitted_at=now,
            finished_at=now,
        )
        self.audit.submit(
            functools.partial(records.insert_closed, row=row),
            lambda rec: [events.event(events.REJECTED, rec)],
        )
        self.metrics.rejected.labels(reason).inc()
        self.log.info("Query %s refused user=%s: %s", query_id, identity.name, message)
        return query_id

    async def failed(
        self,
        identity: Identity,
        submission: Submission,
        admission: Admission,
        cluster: Cluster | None,
        message: str,
        error: tuple[str, str, int],
    ) -> str:
        """Record an admitted query that never ran (no cluster took it); returns its id.

        The hooks get their ``finished`` call (state FAILED) here.
        """
        query_id = gateway_query_id()
        now = utcnow()
        row = records.new_record(
            **self._submitted_row(query_id, identity, submission, admission, cluster, now),
            state=FAILED,
            error_name=error[0],
            error_type=error[1],
            error=message,
            finished_at=now,
        )
        self.audit.submit(
            functools.partial(records.insert_closed, row=row),
            lambda rec: [events.event(events.FINISHED, rec)],
        )
        self.metrics.query_ended(cluster.name if cluster else None, FAILED, None)
        self.log.info("Query %s failed user=%s: %s", query_id, identity.name, message)
        query = ActiveQuery.from_record(row, identity)
        stats = QueryStats(FAILED, error_name=error[0], error_type=error[1], error=message)
        await self.hooks.finished(identity, query.info(), FAILED, stats)
        return query_id

    def withdrawn(self, identity: Identity, submission: Submission, query_id: str) -> None:
        """Record a queued query its client cancelled before it reached a cluster."""
        now = utcnow()
        row = records.new_record(
            **self._submitted_row(query_id, identity, submission, Admission(), None, now),
            state=CANCELED,
            error="Cancelled by its client while queued.",
            finished_at=now,
        )
        self.audit.submit(
            functools.partial(records.insert_closed, row=row),
            lambda rec: [events.event(events.FINISHED, rec)],
        )
        self.metrics.query_ended(None, CANCELED, None)
        self.log.info("Query %s cancelled while queued user=%s", query_id, identity.name)

    @staticmethod
    def _submitted_row(
        query_id: str,
        identity: Identity,
        submission: Submission,
        admission: Admission,
        cluster: Cluster | None,
        now: dt.datetime,
    ) -> dict[str, Any]:
        return {
            "query_id": query_id,
            **records.identity_fields(identity),
            "principal": cluster.user if cluster else None,
            "cluster": cluster.name if cluster else None,
            "routing_group": submission.routing_group,
            "routing_reason": submission.routing_reason,
            "sql": submission.sql,
            "client_sql": submission.client_sql,
            "source": submission.source,
            "client_tags": list(submission.client_tags),
            "admission_note": admission.note,
            "admission": dict(admission.data),
            "submitted_at": now,
        }

    # --------------------------------------------------------------- while it runs

    def submitted(
        self,
        identity: Identity,
        submission: Submission,
        admission: Admission,
        cluster: Cluster,
        facts: protocol.PageFacts,
    ) -> ActiveQuery:
        """A cluster accepted the query: follow it and record its submitted event.

        Synchronous on purpose: the handler calls it before the client receives the
        page, so the client's first follow-up always finds the query here.
        """
        now = utcnow()
        query_id = str(facts.query_id)
        state = facts.state or "QUEUED"
        active = ActiveQuery(
            query_id=query_id,
            identity=identity,
            cluster=cluster.name,
            routing_group=submission.routing_group,
            sql=submission.sql,
            source=submission.source,
            client_tags=submission.client_tags,
            submitted_at=now,
            admission=dict(admission.data),
            state=state,
        )
        self.active[query_id] = active
        row = records.new_record(
            **self._submitted_row(query_id, identity, submission, admission, cluster, now),
            state=state,
        )
        self.audit.submit(
            functools.partial(records.insert_submitted, row=row),
            lambda _: [events.event(events.SUBMITTED, row)],
        )
        self.metrics.submitted.labels(cluster.name, submission.routing_group).inc()
        return active

    async def lookup(self, query_id: str, identity: Identity, cluster: str) -> ActiveQuery:
        """The query a follow-up belongs to: followed here, else from the store, else
        what the signed URI tells (its submitted event was lost)."""
        active = self.active.get(query_id)
        if active is not None:
            active.last_seen = time.monotonic()
            return active
        try:
            record = await self.audit.run(functools.partial(records.get_query, query_id=query_id))
        except Exception:
            record = None  # logged by the writer; follow the query without its record
        if record is not None and record.get("user") == identity.name:
            active = ActiveQuery.from_record(record, identity)
        else:
            active = ActiveQuery(
                query_id=query_id,
                identity=identity,
                cluster=cluster,
                routing_group=self.clusters[cluster].routing_group
                if cluster in self.clusters
                else None,
                sql="",
                source=None,
                client_tags=(),
                submitted_at=utcnow(),
            )
        if not active.closed:
            self.active[query_id] = active
        return active

    async def page(
        self, active: ActiveQuery, facts: protocol.PageFacts, *, delivered: bool = True
    ) -> None:
        """A result page of *active* reached its client (or, not *delivered*, was followed
        on its behalf: then the hooks' ``on_progress`` is not called for it)."""
        active.last_seen = time.monotonic()
        if facts.stats:
            active.stats = stats_from_page(facts.stats, facts.error)
            state = active.stats.state
            if state != active.state:
                if _is_running(state) and not _is_running(active.state) and facts.has_next:
                    # One write per query when it starts running, for the history page.
                    self.audit.submit(
                        functools.partial(
                            records.update_state, query_id=active.query_id, state=state
                        )
                    )
                active.state = state
        if not facts.has_next:
            self._spawn(self._close(active, page_stats=active.stats))
            return
        if delivered and self.hooks.hooks and active.stats is not None and not active.stop_reason:
            reason = await self.hooks.on_progress(active.identity, active.info(), active.stats)
            if reason:
                await self.stop_query(active, reason, facts.next_uri)

    async def stop_query(self, active: ActiveQuery, reason: str, next_uri: str | None) -> None:
        """Stop *active* for *reason*: cancel it on its cluster, close it as FAILED."""
        if active.stop_reason:
            return
        active.stop_reason = reason
        message = stop_message(active.query_id, reason)
        self.log.info("Stopping query %s of %s: %s", active.query_id, active.identity.name, reason)
        cluster = self.clusters.get(active.cluster)
        if cluster is not None:
            if next_uri:
                path, user = upstream_path(next_uri), active.identity.name
            else:
                # No page at hand (the watcher stops it): Trino's query resource, as
                # the service account.
                path, user = f"/v1/query/{active.query_id}", None
            try:
                await self.upstream.call(
                    cluster, "DELETE", path, user=user, timeout=self.request_timeout
                )
            except ClusterUnreachable as e:
                self.log.warning(
                    "Could not cancel query %s on %s: %s", active.query_id, cluster.name, e.reason
                )
        self._spawn(
            self._close(
                active,
                state=FAILED,
                page_stats=active.stats,
                error=(*protocol.QUOTA_EXCEEDED[:2], message),
            )
        )

    def cancelled(self, active: ActiveQuery) -> None:
        """The client cancelled *active* (DELETE on its statement URI)."""
        self._spawn(self._close(active, state=CANCELED, page_stats=active.stats))

    def lost(self, active: ActiveQuery, message: str) -> None:
        """*active*'s cluster went away mid-query: its outcome is unknown."""
        self._spawn(
            self._close(
                active,
                state=LOST,
                page_stats=active.stats,
                error=(*protocol.QUERY_LOST[:2], message),
                fetch=False,
            )
        )

    # ------------------------------------------------------------------- closing

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _query_info(self, cluster: Cluster, query_id: str) -> tuple[int, Any]:
        return await self.upstream.call(
            cluster, "GET", f"/v1/query/{query_id}?pruned=true", timeout=self.request_timeout
        )

    async def _close(
        self,
        active: ActiveQuery,
        *,
        state: str | None = None,
        page_stats: QueryStats | None = None,
        info: Mapping[str, Any] | None = None,
        error: tuple[str, str, str] | None = None,
        fetch: bool = True,
    ) -> bool:
        """Close *active* (once); returns True if this call closed it."""
        if active.closed:
            return False
        active.closed = True
        try:
            return await self._close_record(active, state, page_stats, info, error, fetch)
        except Exception:
            self.log.exception("Could not close query %s", active.query_id)
            return False
        finally:
            if not active.stop_reason:
                # A stopped query stays so the client's next request hears why.
                self.active.pop(active.query_id, None)

    async def _close_record(
        self,
        active: ActiveQuery,
        state: str | None,
        page_stats: QueryStats | None,
        info: Mapping[str, Any] | None,
        error: tuple[str, str, str] | None,
        fetch: bool,
    ) -> bool:
        cluster = self.clusters.get(active.cluster)
        if info is None and fetch and self.fetch_final_stats and cluster is not None:
            # Only Trino's query info has the output rows (and the SQL, if the submitted
            # event was lost); a short wait after the client has its last page.
            try:
                code, body = await self._query_info(cluster, active.query_id)
                info = body if code == 200 and isinstance(body, dict) else None
            except ClusterUnreachable:
                info = None
        stats = merge_final(page_stats, stats_from_query_info(info) if info else None)
        if stats is None:
            stats = QueryStats(state or LOST)
        if state is None:
            state = final_state(stats.state, stats.error_name)
        error_name, error_type, message = error or (stats.error_name, stats.error_type, stats.error)
        fields: dict[str, Any] = {
            "state": state,
            "error_name": error_name,
            "error_type": error_type,
            "error": message,
            "stop_reason": active.stop_reason,
            "finished_at": utcnow(),
            **_stats_fields(stats),
        }
        if info:
            session = info.get("session") or {}
            # What ran: Trino's preparedQuery for an EXECUTE, not the EXECUTE itself.
            ran = resolve_query_info(info.get("query") or "", info.get("preparedQuery"))
            fields.update(
                sql=ran.sql,
                client_sql=ran.client_sql,
                source=session.get("source"),
                client_tags=list(session.get("clientTags") or []),
            )
            if not active.sql:
                active.sql = fields["sql"]
                active.source = fields["source"]
                active.client_tags = tuple(fields["client_tags"])
        fallback = {
            "query_id": active.query_id,
            **records.identity_fields(active.identity),
            "principal": cluster.user if cluster else None,
            "cluster": active.cluster or None,
            "routing_group": active.routing_group,
            "routing_reason": "unknown (submitted event lost)",
            "submitted_at": active.submitted_at,
        }
        closed = await self.audit.run(
            functools.partial(
                records.close_query, query_id=active.query_id, fields=fields, fallback=fallback
            ),
            lambda rec: [events.event(events.FINISHED, rec)] if rec else [],
        )
        if closed is None:
            return False
        self.metrics.query_ended(active.cluster or None, state, stats.elapsed_ms)
        self.log.info(
            "Query %s ended user=%s cluster=%s state=%s rows=%s cpu_ms=%s elapsed_ms=%s%s",
            active.query_id,
            active.identity.name,
            active.cluster,
            state,
            stats.output_rows,
            stats.cpu_ms,
            stats.elapsed_ms,
            f" error={error_name}" if error_name else "",
        )
        final = dataclasses.replace(
            stats, state=state, error_name=error_name, error_type=error_type, error=message
        )
        await self.hooks.finished(active.identity, active.info(), state, final)
        return True

    # --------------------------------------------------------------- reconciling

    def prune(self) -> None:
        """Forget the queries no client has followed for ``idle_timeout`` seconds (the
        store still has them open; the reconciler closes them)."""
        now = time.monotonic()
        for query_id, active in list(self.active.items()):
            if now - active.last_seen > self.idle_timeout:
                self.active.pop(query_id, None)

    async def reconcile(self) -> int:
        """Close the open queries nobody follows any more; returns how many were closed."""
        self.prune()
        cutoff = utcnow() - dt.timedelta(seconds=self.reconcile_interval)
        try:
            open_records = await self.audit.run(
                functools.partial(records.open_queries, submitted_before=cutoff)
            )
        except Exception:
            return 0  # logged by the writer
        closed = 0
        now = time.monotonic()
        for record in open_records:
            active = self.active.get(record["query_id"])
            if active is not None and now - active.last_seen < self.reconcile_interval:
                continue  # a client follows it through this process right now
            try:
                closed += await self._reconcile_one(record)
            except Exception:
                self.log.exception("Could not reconcile query %s", record["query_id"])
        return closed

    async def _ask(self, active: ActiveQuery) -> tuple[bool, Mapping[str, Any] | None]:
        """Ask *active*'s cluster about it and close it if it has ended (Trino's final
        state; LOST if the cluster forgot it, or stayed unreachable for ``lost_after``).
        Returns whether this call closed it, and Trino's query info of a query that
        still runs (None when there is none)."""
        cluster = self.clusters.get(active.cluster)
        if cluster is None:
            message = (
                f"Cluster {active.cluster or '(none)'} is no longer configured; the outcome of "
                "the query is unknown."
            )
            lost = (*protocol.QUERY_LOST[:2], message)
            return await self._close(active, state=LOST, error=lost, fetch=False), None
        try:
            code, info = await self._query_info(cluster, active.query_id)
        except ClusterUnreachable as e:
            status = self.monitor.statuses.get(cluster.name)
            since = status.unhealthy_since if status else None
            if since is None or time.monotonic() - since < self.lost_after:
                if status is not None and since is None:
                    self.monitor.mark_unreachable(cluster.name, e.reason)
                return False, None
            message = (
                f"Cluster {cluster.name} has been unreachable for {self.lost_after:.0f} s; the "
                "outcome of the query is unknown."
            )
            lost = (*protocol.QUERY_LOST[:2], message)
            return await self._close(active, state=LOST, error=lost, fetch=False), None
        if code in (404, 410):
            if utcnow() - active.submitted_at < dt.timedelta(seconds=UNLISTED_GRACE):
                return False, None
            message = (
                f"Cluster {cluster.name} no longer knows the query (it restarted, or forgot the "
                "query); its outcome is unknown."
            )
            lost = (*protocol.QUERY_LOST[:2], message)
            return await self._close(active, state=LOST, error=lost, fetch=False), None
        if code != 200 or not isinstance(info, dict):
            return False, None
        if info.get("state") in TRINO_FINAL_STATES:
            return await self._close(active, info=info), None
        return False, info

    async def _reconcile_one(self, record: Mapping[str, Any]) -> int:
        closed, _ = await self._ask(ActiveQuery.from_record(record))
        return int(closed)

    # ------------------------------------------------------------------ watching

    async def watch(self) -> None:
        """One pass of the watcher (see the module docstring)."""
        followed = [q for q in self.active.values() if not q.closed and not q.stop_reason]
        limit = asyncio.Semaphore(8)  # a few requests at a time, whatever the number

        async def watch_one(active: ActiveQuery) -> None:
            async with limit:
                try:
                    await self._watch_one(active)
                except Exception:
                    self.log.exception("Could not watch query %s", active.query_id)

        await asyncio.gather(*(watch_one(q) for q in followed))

    async def _watch_one(self, active: ActiveQuery) -> None:
        closed, info = await self._ask(active)
        if closed or info is None or active.closed or not self.hooks.hooks:
            return
        stats = stats_from_query_info(info)
        reason = await self.hooks.on_running(active.identity, active.info(), stats)
        if reason and not active.closed:
            active.stats = stats
            await self.stop_query(active, reason, None)

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            try:
                await self.watch()
            except Exception:
                self.log.exception("The query watcher failed")

    async def _reconcile_forever(self) -> None:
        while True:
            if self.reconcile_interval <= 0:
                await asyncio.sleep(60)
                self.prune()
                continue
            await asyncio.sleep(self.reconcile_interval)
            try:
                closed = await self.reconcile()
            except Exception:
                self.log.exception("The query reconciler failed")
                continue
            if closed:
                self.log.info("The reconciler closed %d query(ies) nobody followed", closed)

    def start(self) -> None:
        """Start the reconciler (every ``reconcile_interval`` seconds; when that is 0,
        only the pruning of idle queries, every minute) and the watcher (every
        ``watch_interval`` seconds; not when that is 0)."""
        if self._reconciler is None:
            self._reconciler = asyncio.ensure_future(self._reconcile_forever())
        if self._watcher is None and self.watch_interval > 0:
            self._watcher = asyncio.ensure_future(self._watch_forever())

    async def stop(self, timeout: float = 10) -> None:
        """Stop the reconciler and the watcher, and let the closes in flight finish."""
        for task in (self._reconciler, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reconciler = self._watcher = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
