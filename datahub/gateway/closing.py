"""The end of a query: its final state and statistics, recorded once, heard once.

`QueryCloser.close` completes an ended query's `QueryRecord` (its last page's final
statistics; Trino's query info only when the pages did not tell everything: the output
rows of a direct-protocol query, which the gateway does not count, or the SQL of a query
whose submitted event was lost), closes it in the journal and, only when that call closed
it (`QueryJournal.close`: one closer across gateway processes), counts the metric, logs
the end and tells the listeners.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from ..query import QueryRecord, QueryState, QueryStats
from .admission import Listeners
from .clusters import Cluster
from .journal import QueryJournal
from .metrics import GatewayMetrics
from .statements import resolve_query_info
from .stats import TRINO_FINAL_STATES, final_state, merge_final, stats_from_query_info
from .upstream import ClusterUnreachable, Upstream

#: An error as (Trino's error name, its type, the message).
Error = tuple[str | None, str | None, str | None]


def pages_tell_all(query: QueryRecord, page_stats: QueryStats | None) -> bool:
    """Whether *query*'s pages told everything its record needs, so Trino's query info
    is not asked for: the final state and statistics of its last page, its output rows
    (counted from a spooled query's segments), and its SQL."""
    return (
        bool(query.sql)
        and page_stats is not None
        and page_stats.state in TRINO_FINAL_STATES
        and page_stats.output_rows is not None
    )


class QueryCloser:
    """Closes queries; see the module docstring."""

    def __init__(
        self,
        *,
        journal: QueryJournal,
        listeners: Listeners,
        metrics: GatewayMetrics,
        upstream: Upstream,
        clusters: Mapping[str, Cluster],
        log: logging.Logger,
        fetch_final_stats: bool = True,
        request_timeout: float = 10.0,
    ) -> None:
        self.journal = journal
        self.listeners = listeners
        self.metrics = metrics
        self.upstream = upstream
        self.clusters = clusters
        self.log = log
        self.fetch_final_stats = fetch_final_stats
        self.request_timeout = request_timeout

    async def query_info(self, cluster: Cluster, query_id: str) -> tuple[int, Any]:
        """Trino's query info of *query_id* (status code and body), as the service account."""
        return await self.upstream.call(
            cluster, "GET", f"/v1/query/{query_id}?pruned=true", timeout=self.request_timeout
        )

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
        """End *query* (*state*, else Trino's final state from its statistics; *error*,
        else Trino's) and close it; returns True if this call closed it. *info* is
        Trino's query info when the caller has it; else it is fetched (unless not *fetch*
        or ``fetch_final_stats`` is off)."""
        cluster = self.clusters.get(query.cluster or "")
        if (
            info is None
            and fetch
            and self.fetch_final_stats
            and cluster is not None
            and not pages_tell_all(query, page_stats)
        ):
            # Only Trino's query info has a direct-protocol query's output rows (and the
            # SQL, if the submitted event was lost); a short wait after the client has
            # its last page.
            try:
                code, body = await self.query_info(cluster, query.query_id)
                info = body if code == 200 and isinstance(body, dict) else None
            except ClusterUnreachable:
                info = None
        stats = merge_final(page_stats, stats_from_query_info(info) if info else None)
        if stats is None:
            stats = QueryStats(state or QueryState.LOST)
        if state is None:
            state = final_state(stats.state, stats.error_name)
        error_name, error_type, message = error or (stats.error_name, stats.error_type, stats.error)
        if info and not query.sql:
            session = info.get("session") or {}
            # What ran: Trino's preparedQuery for an EXECUTE, not the EXECUTE itself.
            ran = resolve_query_info(info.get("query") or "", info.get("preparedQuery"))
            query.sql, query.client_sql = ran.sql, ran.client_sql
            query.source = session.get("source")
            query.client_tags = tuple(session.get("clientTags") or ())
        if query.principal is None and cluster is not None:
            query.principal = cluster.user
        final = dataclasses.replace(
            stats, state=state, error_name=error_name, error_type=error_type, error=message
        )
        query.end(state, error=(error_name, error_type, message), stats=final)
        if not await self.journal.close(query):
            return False
        self.metrics.query_ended(query.cluster or None, state, stats.elapsed_ms)
        self.log.info(
            "Query %s ended user=%s cluster=%s group=%s state=%s rows=%s cpu_ms=%s elapsed_ms=%s%s",
            query.query_id,
            query.user,
            query.cluster or "",
            query.routing_group or "",
            state,
            stats.output_rows,
            stats.cpu_ms,
            stats.elapsed_ms,
            f" error={error_name}" if error_name else "",
        )
        await self.listeners.on_finished(query)
        return True
