"""Prometheus metrics of the gateway, served at ``/metrics`` on its listeners.

Each service process has its own registry (Prometheus scrapes every process). Labels
carry clusters, routing groups, states and reasons, never user names or SQL.

- ``datahub_queries_submitted_total{cluster, routing_group}``: queries sent to a cluster.
- ``datahub_queries_ended_total{cluster, state}``: queries that ended, by final state
  (FINISHED, FAILED, CANCELED, LOST); ``cluster="none"`` for queries no cluster took.
- ``datahub_queries_rejected_total{reason}``: refused before reaching a cluster
  (``routing``, ``quota``, ``internal``).
- ``datahub_failovers_total{cluster}``: submissions a cluster could not take, sent on.
- ``datahub_query_duration_seconds{cluster}``: Trino's elapsed time of ended queries.
- ``datahub_gateway_request_duration_seconds{kind}``: how long the gateway took to
  answer a protocol request (``submit``, ``followup``), the cluster's time included.
- ``datahub_cluster_healthy``, ``datahub_cluster_draining``,
  ``datahub_cluster_queries{cluster, state=running|queued}``: the last health check.
- ``datahub_gateway_active_queries``: queries this process is following.
- With the crash watcher running in this process (``datahub.events.watch``, which
  registers itself here): ``datahub_lost_queries_total{cluster}``,
  ``datahub_crash_incidents_total{cluster}``, ``datahub_open_queries{cluster}``,
  ``datahub_crash_incidents_ongoing{cluster}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .clusters import ClusterStatus

QUERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _ClusterCollector:
    """Gauges read from the cluster statuses at scrape time."""

    def __init__(
        self, statuses: Callable[[], Iterable[ClusterStatus]], active: Callable[[], int]
    ) -> None:
        self._statuses = statuses
        self._active = active

    def collect(self) -> Iterable[Any]:
        healthy = GaugeMetricFamily(
            "datahub_cluster_healthy",
            "1 if the cluster passed its last health check",
            labels=["cluster"],
        )
        draining = GaugeMetricFamily(
            "datahub_cluster_draining", "1 if an admin drained the cluster", labels=["cluster"]
        )
        queries = GaugeMetricFamily(
            "datahub_cluster_queries",
            "Queries running or queued on the cluster at its last health check",
            labels=["cluster", "state"],
        )
        for status in self._statuses():
            healthy.add_metric([status.name], 1 if status.healthy else 0)
            draining.add_metric([status.name], 1 if status.draining else 0)
            queries.add_metric([status.name, "running"], status.running)
            queries.add_metric([status.name, "queued"], status.queued)
        active = GaugeMetricFamily(
            "datahub_gateway_active_queries", "Queries this gateway process is following"
        )
        active.add_metric([], self._active())
        return [healthy, draining, queries, active]


class GatewayMetrics:
    """The gateway's metrics in a registry of its own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        statuses: Callable[[], Iterable[ClusterStatus]] = tuple,
        active: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submitted = Counter(
            "datahub_queries_submitted",
            "Queries sent to a cluster",
            ["cluster", "routing_group"],
            registry=r,
        )
        self.ended = Counter(
            "datahub_queries_ended",
            "Queries that ended, by cluster and final state",
            ["cluster", "state"],
            registry=r,
        )
        self.rejected = Counter(
            "datahub_queries_rejected",
            "Queries refused before reaching a cluster, by reason",
            ["reason"],
            registry=r,
        )
        self.failovers = Counter(
            "datahub_failovers",
            "Submissions a cluster could not take, sent to the next one",
            ["cluster"],
            registry=r,
        )
        self.query_duration = Histogram(
            "datahub_query_duration_seconds",
            "Trino's elapsed time of ended queries",
            ["cluster"],
            buckets=QUERY_BUCKETS,
            registry=r,
        )
        self.request_duration = Histogram(
            "datahub_gateway_request_duration_seconds",
            "Time the gateway took to answer a Trino protocol request, the cluster's included",
            ["kind"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        r.register(_ClusterCollector(statuses, active))

    def query_ended(self, cluster: str | None, state: str, elapsed_ms: int | None) -> None:
        label = cluster or "none"
        self.ended.labels(label, state).inc()
        if elapsed_ms:
            self.query_duration.labels(label).observe(elapsed_ms / 1000)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
