"""Health checks of the clusters, and the status the routing choice reads.

Every ``interval`` seconds each cluster is asked for ``GET /v1/info`` (up, and not
``starting``) and, as the service account, ``GET /v1/query?state=…`` (how many queries
run and wait). A cluster that refuses the connection, or says it cannot serve, is unhealthy
at once; one that is merely slow (a check or a request timed out, or broke off) after
``failures`` such failures in a row, so that one slow answer under load does not turn
every new query away. A request that breaks off or times out has its cluster checked at
once, so a crash mid-query takes the cluster out in the time the refused check takes.
An unhealthy cluster gets no new queries until a check passes again. The admins' drain
flags are re-read from the store at the same pace, so every gateway process follows them.
PrestoDB clusters answer the same two requests (their headers translated by
``upstream.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from ..wire import INFO_PATH
from .clusters import Cluster, ClusterStatus, rank_clusters, unavailable_message
from .presto import PRESTO
from .presto import QUEUED_STATES as PRESTO_QUEUED_STATES
from .stats import count_queries
from .upstream import ClusterUnreachable, Upstream

#: The states whose queries count as load: queued (QUEUED, WAITING_FOR_RESOURCES) and
#: running (RUNNING, FINISHING: done, its client still reading). PLANNING, STARTING and
#: DISPATCHING last milliseconds and are left out to keep the check to four small requests.
LOAD_STATES = ("QUEUED", "WAITING_FOR_RESOURCES", "RUNNING", "FINISHING")
#: The states each engine adds to those (PrestoDB's queries wait for prerequisites first).
ENGINE_LOAD_STATES = {PRESTO: tuple(sorted(PRESTO_QUEUED_STATES))}


class ClusterMonitor:
    """The status of every cluster in this process, kept fresh by periodic checks."""

    def __init__(
        self,
        clusters: Mapping[str, Cluster],
        upstream: Upstream,
        *,
        interval: float,
        timeout: float,
        log: logging.Logger,
        failures: int = 1,
        load_draining: Callable[[], Awaitable[set[str]]] | None = None,
    ) -> None:
        self.clusters = clusters
        self.upstream = upstream
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
        self.log = log
        self.load_draining = load_draining
        self.statuses: dict[str, ClusterStatus] = {
            name: ClusterStatus(name=name, routing_group=cluster.routing_group, index=i)
            for i, (name, cluster) in enumerate(clusters.items())
        }
        self._task: asyncio.Task | None = None
        #: The checks `mark_unreachable` started, by cluster (one at a time each).
        self._probes: dict[str, asyncio.Future] = {}
        self._load_warned: set[str] = set()

    # ------------------------------------------------------------- the routing side

    def rank(self, routing_group: str, pinned: str | None = None) -> list[ClusterStatus]:
        """Clusters that may take a new query of *routing_group*, best first."""
        return rank_clusters(self.statuses.values(), routing_group, pinned)

    def unavailable_message(self, routing_group: str, pinned: str | None = None) -> str:
        return unavailable_message(self.statuses.values(), routing_group, pinned)

    def note_submitted(self, name: str) -> None:
        """Count a query this process just sent, until the next check counts it."""
        self.statuses[name].submitted += 1

    def mark_unreachable(self, name: str, error: str, *, down: bool = False) -> None:
        """A request to the cluster failed: unhealthy until a check passes, at once if it
        is *down* (refused the connection, or said it cannot serve), else after
        ``failures`` in a row.

        A failure that does not say which (a reset or dropped connection, a timeout) has
        the cluster checked at once, in the background: a cluster that crashed mid-query
        refuses that check and leaves routing now rather than at the next round, and one
        that is only slow is judged by the usual count.
        """
        self._failed(name, error, down=down)
        if not down and self.statuses[name].healthy and name not in self._probes:
            probe = asyncio.ensure_future(self.check(name))
            self._probes[name] = probe
            probe.add_done_callback(lambda _: self._probes.pop(name, None))

    def _failed(self, name: str, error: str, *, down: bool) -> None:
        status = self.statuses[name]
        in_a_row = 1 if down else self.failures
        if status.record_failure(error, time.monotonic(), in_a_row=in_a_row):
            self.log.warning("Cluster %s is unhealthy: %s", name, error)
        elif status.healthy:
            self.log.info(
                "Cluster %s failed %d of the %d checks or requests in a row that take it "
                "out of routing: %s",
                name,
                status.failures,
                in_a_row,
                error,
            )

    def set_draining(self, name: str, draining: bool) -> None:
        self.statuses[name].draining = draining

    # ---------------------------------------------------------------- the checks

    async def check(self, name: str) -> None:
        """Check one cluster now and record the outcome."""
        cluster = self.clusters[name]
        status = self.statuses[name]
        try:
            code, info = await self.upstream.call(cluster, "GET", INFO_PATH, timeout=self.timeout)
            if code != 200 or not isinstance(info, dict):
                raise _CheckFailed(f"/v1/info answered HTTP {code}")
            if info.get("starting", True):
                raise _CheckFailed(f"{cluster.engine.capitalize()} is starting")
            running, queued = await self._load(cluster)
        except ClusterUnreachable as e:
            self._failed(name, e.reason, down=e.refused)
        except _CheckFailed as e:
            self._failed(name, str(e), down=True)
        else:
            if status.record_success(running, queued, time.monotonic()):
                self.log.info("Cluster %s is healthy again", name)

    async def _load(self, cluster: Cluster) -> tuple[int, int]:
        # One small list per state: the unfiltered list holds every query Trino still
        # remembers (thousands, megabytes), which would cost more than the check is worth.
        answers = await asyncio.gather(
            *(
                self.upstream.call(cluster, "GET", f"/v1/query?state={state}", timeout=self.timeout)
                for state in (*LOAD_STATES, *ENGINE_LOAD_STATES.get(cluster.engine, ()))
            )
        )
        refused = [code for code, _ in answers if code != 200]
        if refused:
            # Up, but the service account may not list queries: healthy, load unknown.
            if cluster.name not in self._load_warned:
                self._load_warned.add(cluster.name)
                self.log.warning(
                    "Cluster %s refused to list queries (HTTP %s) to the service account; "
                    "routing cannot see its load (allow it 'view' on all queries).",
                    cluster.name,
                    refused[0],
                )
            return 0, 0
        return count_queries(
            [q for _, listed in answers if isinstance(listed, list) for q in listed]
        )

    async def check_all(self) -> None:
        """Check every cluster at once, then re-read the drain flags."""
        await asyncio.gather(*(self.check(name) for name in self.statuses))
        if self.load_draining is not None:
            try:
                draining = await self.load_draining()
            except Exception:
                self.log.exception("Could not read the clusters' drain flags from the store")
            else:
                for name, status in self.statuses.items():
                    status.draining = name in draining

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:
                self.log.exception("Cluster health check failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Check now and then every ``interval`` seconds, in the background."""
        if self._task is None and self.statuses:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        for task in [self._task, *self._probes.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None


class _CheckFailed(Exception):
    pass
