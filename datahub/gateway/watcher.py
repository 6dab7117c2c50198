"""Asking the clusters about queries: the watcher, the settling before a query would be
queued, and the reconciler.

The watcher looks at every query this process follows, every ``watch_interval``
seconds, whether or not its client polls: it asks the cluster about those whose client
has not polled within that time (a query Trino says has ended is closed at once, its
slot freed); the others' last pages are as fresh. The listeners' ``on_running`` sees
the statistics of the running ones (the quota counts the day's CPU and bytes while they
run, and stops a query that takes its user past a daily limit). Before a query would be queued,
`QueryWatcher.settle` asks the same about the user's open queries: a slot is held only by
a query its cluster says still runs, even when its client stopped reading after the data
(the trino client's ``EXECUTE IMMEDIATE`` probe, ``fetchone()`` then close).

The reconciler finds the queries nobody closed (a cluster or gateway crashed, the client
went away) in the journal and asks their cluster: Trino's final state if it has one,
``LOST`` if it no longer knows the query or has been unreachable for ``lost_after``
seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..query import QueryRecord, QueryState, utcnow
from ..wire import QUERY_LOST
from .health import ClusterMonitor
from .stats import TRINO_FINAL_STATES, stats_from_query_info
from .upstream import ClusterUnreachable

if TYPE_CHECKING:
    from .tracker import QueryTracker

#: Seconds after its submission during which a cluster that does not know a query is not
#: taken to have forgotten it: Trino lists a query only once it is dispatched, at its
#: client's first poll.
UNLISTED_GRACE = 30.0
#: Seconds `QueryWatcher.settle` gives a running query to end. Short: it is paid each time
#: a user at their concurrency limit submits, and only matters for queries that are
#: ending (Trino still calls a query RUNNING for a moment after its client had the page
#: with the data, until its last driver and output buffer finish).
SETTLE_WAIT = 1.0
#: Trino's states of a query that may end at any moment.
ENDING_STATES = frozenset({"RUNNING", "FINISHING"})


class QueryWatcher:
    """The watcher and the reconciler of a tracker's queries; see the module docstring."""

    def __init__(
        self,
        tracker: QueryTracker,
        monitor: ClusterMonitor,
        *,
        reconcile_interval: float = 30.0,
        lost_after: float = 30.0,
        idle_timeout: float = 600.0,
        watch_interval: float = 2.0,
    ) -> None:
        self.tracker = tracker
        self.monitor = monitor
        self.reconcile_interval = reconcile_interval
        self.lost_after = lost_after
        self.idle_timeout = idle_timeout
        self.watch_interval = watch_interval
        self._reconciler: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        #: Requests of their clients in flight here, by query id.
        self._serving: collections.Counter[str] = collections.Counter()

    @property
    def log(self) -> Any:
        return self.tracker.log

    @contextlib.contextmanager
    def serving(self, query_id: str | None) -> Iterator[None]:
        """A request of *query_id*'s client is being answered here (None: no query)."""
        if query_id is None:
            yield
            return
        self._serving[query_id] += 1
        try:
            yield
        finally:
            self._serving[query_id] -= 1
            if not self._serving[query_id]:
                del self._serving[query_id]

    # ------------------------------------------------------------------- asking

    async def _close_lost(self, query: QueryRecord, message: str) -> bool:
        lost = (*QUERY_LOST[:2], message)
        return await self.tracker.close(query, state=QueryState.LOST, error=lost, fetch=False)

    async def ask(self, query: QueryRecord) -> tuple[bool, Mapping[str, Any] | None]:
        """Ask *query*'s cluster about it and close it if it has ended (Trino's final
        state; LOST if the cluster forgot it, or stayed unreachable for ``lost_after``).
        Returns whether this call closed it, and Trino's query info of a query that
        still runs (None when there is none)."""
        cluster = self.tracker.clusters.get(query.cluster or "")
        if cluster is None:
            message = (
                f"Cluster {query.cluster or '(none)'} is no longer configured; the outcome of "
                "the query is unknown."
            )
            return await self._close_lost(query, message), None
        try:
            code, info = await self.tracker.closer.query_info(cluster, query.query_id)
        except ClusterUnreachable as e:
            status = self.monitor.statuses.get(cluster.name)
            since = status.unhealthy_since if status else None
            if since is None or time.monotonic() - since < self.lost_after:
                if status is not None and since is None:
                    self.monitor.mark_unreachable(cluster.name, e.reason, down=e.refused)
                return False, None
            message = (
                f"Cluster {cluster.name} has been unreachable for {self.lost_after:.0f} s; the "
                "outcome of the query is unknown."
            )
            return await self._close_lost(query, message), None
        if code in (404, 410):
            if utcnow() - query.submitted_at < dt.timedelta(seconds=UNLISTED_GRACE):
                return False, None
            message = (
                f"Cluster {cluster.name} no longer knows the query (it restarted, or forgot the "
                "query); its outcome is unknown."
            )
            return await self._close_lost(query, message), None
        if code != 200 or not isinstance(info, dict):
            return False, None
        if info.get("state") in TRINO_FINAL_STATES:
            return await self.tracker.close(query, info=info), None
        return False, info

    # ----------------------------------------------------------------- settling

    async def settle(self, user: str) -> int:
        """Close *user*'s open queries that have ended; returns how many were closed.

        First the closes in flight here (queries whose client already had the last page:
        a client that runs one query after another submits the next one while the last
        one's close is on its way); waiting for them asks the clusters nothing. Only if
        none closed a query are the clusters asked about the user's other open queries
        (followed here or recorded in the journal; not those whose client waits for a
        page here), until one of them is found ended.
        """
        tracker = self.tracker
        closing = tracker.closing(user)
        if closing:
            outcomes = [done for _, done in closing.values()]
            done, _ = await asyncio.wait(outcomes, timeout=SETTLE_WAIT)
            closed = sum(1 for outcome in done if outcome.result())
            if closed:
                return closed
        mine = {q.query_id: q for q in tracker.active.values() if q.user == user}
        try:
            stored = await tracker.journal.open_queries(submitted_before=utcnow(), user=user)
        except Exception:
            stored = []  # logged by the journal; the queries followed here still count
        for query in stored:
            mine.setdefault(query.query_id, query)
        found = asyncio.Event()  # one ended query frees the slot the new one needs
        settled = await asyncio.gather(
            *(
                self._settle_one(q, found)
                for q in mine.values()
                # A query whose client waits for a page here is not one it stopped
                # reading: its end comes with its pages.
                if not q.closed and q.query_id not in closing and q.query_id not in self._serving
            ),
            return_exceptions=True,
        )
        for outcome in settled:
            if isinstance(outcome, Exception):
                self.log.error("Could not settle a query of %s: %r", user, outcome)
        return sum(1 for outcome in settled if outcome is True)

    async def _settle_one(self, query: QueryRecord, found: asyncio.Event) -> bool:
        """Close *query* if it ended; returns whether this call closed it (and then sets
        *found*).

        Trino still calls a query RUNNING for a moment after its client had the page with
        the data (the probe that never asks for the empty rest): a running query is asked
        about again until it ends, for up to SETTLE_WAIT, or until another of the user's
        queries was *found* ended.
        """
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            closed, info = await self.ask(query)
            if closed:
                found.set()
                return True
            if info is None or info.get("state") not in ENDING_STATES:
                return False
            if time.monotonic() > deadline:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(found.wait(), 0.05)
            if found.is_set():
                return False

    # -------------------------------------------------------------- reconciling

    def prune(self) -> None:
        """Forget the queries no client has followed for ``idle_timeout`` seconds (the
        journal still has them open; the reconciler closes them)."""
        now = time.monotonic()
        active = self.tracker.active
        for query_id, query in list(active.items()):
            if now - query.last_seen > self.idle_timeout:
                active.pop(query_id, None)

    async def reconcile(self) -> int:
        """Close the open queries nobody follows any more; returns how many were closed."""
        self.prune()
        cutoff = utcnow() - dt.timedelta(seconds=self.reconcile_interval)
        try:
            open_queries = await self.tracker.journal.open_queries(submitted_before=cutoff)
        except Exception:
            return 0  # logged by the journal
        closed = 0
        now = time.monotonic()
        for stored in open_queries:
            followed = self.tracker.active.get(stored.query_id)
            if followed is not None and now - followed.last_seen < self.reconcile_interval:
                continue  # a client follows it through this process right now
            try:
                done, _ = await self.ask(stored)
                closed += int(done)
            except Exception:
                self.log.exception("Could not reconcile query %s", stored.query_id)
        return closed

    # ------------------------------------------------------------------ watching

    async def watch(self) -> None:
        """One pass of the watcher (see the module docstring)."""
        followed = [q for q in self.tracker.active.values() if not q.closed and not q.stop_reason]
        limit = asyncio.Semaphore(8)  # a few requests at a time, whatever the number

        async def watch_one(query: QueryRecord) -> None:
            async with limit:
                try:
                    await self._watch_one(query)
                except Exception:
                    self.log.exception("Could not watch query %s", query.query_id)

        await asyncio.gather(*(watch_one(q) for q in followed))

    async def _watch_one(self, query: QueryRecord) -> None:
        listeners = self.tracker.listeners
        if query.stats is not None and time.monotonic() - query.last_seen < self.watch_interval:
            # Its client polls: its last page's statistics are as fresh as the cluster's
            # answer would be, and its end comes with its pages. Nothing to ask.
            if query.closed or not listeners:
                return
            stats = query.stats
        else:
            closed, info = await self.ask(query)
            if closed or info is None or query.closed or not listeners:
                return
            stats = stats_from_query_info(info)
        reason = await listeners.on_running(query, stats)
        if reason and not query.closed:
            query.stats = stats
            await self.tracker.stop_query(query, reason, None)

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

    async def stop(self) -> None:
        """Stop the reconciler and the watcher."""
        for task in (self._reconciler, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reconciler = self._watcher = None
