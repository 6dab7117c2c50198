"""The crash watcher: reads the query events from Kafka, feeds the crash detector
(`datahub.events.crashes`) and keeps what it finds in the store (`incidents`).

One asyncio task, in the DataHub service (``c.CrashWatch.run_in_service``) or in the
foreground (``datahub events watch``). Per batch of records it feeds the detector, writes
the detector's changes in one transaction, and only then commits the consumer's offsets:
a watcher that stops between the two reads the batch again, which changes nothing
(the detector ignores what it has seen). A restarted watcher loads the open queries and
recent incidents from the store and goes on from the committed offsets.

Incidents group queries across partitions (the record key is the query id), so one
watcher must see every partition: the consumer group's assignor
(:class:`OneOwnerAssignor`) gives them all to one member. Other watchers in the group
(other service processes) stand by and take over when it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from traitlets import Bool, Dict, Float, Unicode
from traitlets.config import LoggingConfigurable

from ..store import Store
from . import incidents
from .crashes import Changes, CrashDetector, CrashRules
from .publisher import next_backoff

Consumer = Any  # aiokafka.AIOKafkaConsumer


class OneOwnerAssignor(AbstractPartitionAssignor):
    """Every partition of the subscribed topics to one member of the group (the first by
    member id); the others get none and stand by."""

    name = "datahub-one-owner"
    version = 0

    @classmethod
    def assign(cls, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]) -> dict:
        owner = min(members)
        topics = sorted({topic for m in members.values() for topic in m.subscription})
        owned = [(topic, sorted(cluster.partitions_for_topic(topic) or ())) for topic in topics]
        return {
            member: ConsumerProtocolMemberAssignment(
                cls.version, owned if member == owner else [], b""
            )
            for member in members
        }

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass


def decode(value: bytes | None) -> dict[str, Any] | None:
    """A record's event, or None when it is not a JSON object."""
    try:
        event = json.loads(value or b"")
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def in_time_order(batches: Mapping[Any, list]) -> list:
    """The records of several partitions, merged by their timestamps, each partition's
    own order kept (a query's events are in one partition, in order)."""
    return list(heapq.merge(*batches.values(), key=lambda record: record.timestamp))


class CrashWatcher:
    """Consumes ``topic`` as a member of ``group_id`` and keeps the incidents in ``store``.

    ``lost`` and ``incidents_found`` count, per cluster, the queries found lost and the
    incidents begun since this watcher started (the ``/metrics`` counters).
    """

    def __init__(
        self,
        store: Store,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        rules: CrashRules | None = None,
        consumer_options: Mapping[str, Any] | None = None,
        client_id: str = "datahub-crash-watch",
        batch_size: int = 500,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        log: logging.Logger | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        make_consumer: Callable[[], Consumer] | None = None,
    ) -> None:
        if not bootstrap_servers:
            raise ValueError("The crash watcher needs Kafka's bootstrap servers.")
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group_id = group_id
        self.rules = rules or CrashRules()
        self.consumer_options = dict(consumer_options or {})
        self.client_id = client_id
        self.batch_size = batch_size
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.log = log or logging.getLogger("datahub.events")
        self.now = now
        self._make_consumer = make_consumer or self._aiokafka_consumer
        #: The detector while this watcher owns the topic's partitions, else None.
        self.detector: CrashDetector | None = None
        self.lost: Counter[str] = Counter()
        self.incidents_found: Counter[str] = Counter()
        #: Records read since start.
        self.records = 0
        self.backoff = 0.0
        self._task: asyncio.Task[None] | None = None

    def _aiokafka_consumer(self) -> Consumer:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            **{
                "auto_offset_reset": "earliest",
                # A topic created after the watcher started (by the first event) is
                # noticed within this many milliseconds.
                "metadata_max_age_ms": 10_000,
                **self.consumer_options,
                "group_id": self.group_id,
                "enable_auto_commit": False,
                "partition_assignment_strategy": (OneOwnerAssignor,),
            },
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start watching on the running loop (once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="datahub-crash-watch"
            )

    async def stop(self) -> None:
        """Stop watching (what is saved stays; the next watcher goes on from there)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Watch until cancelled; while Kafka or the store fail, retry after a wait
        (0.5 s, doubling up to ``max_backoff``), from the last committed offsets."""
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.detector = None
                self.backoff = next_backoff(
                    self.backoff, initial=self.initial_backoff, maximum=self.max_backoff
                )
                self.log.warning(
                    "The crash watcher stopped reading %s at %s (%s: %s); next try in %.1fs",
                    self.topic,
                    self.bootstrap_servers,
                    type(error).__name__,
                    error,
                    self.backoff,
                )
                await asyncio.sleep(self.backoff)

    async def _consume(self) -> None:
        consumer = self._make_consumer()
        consumer.subscribe([self.topic], listener=_Rebalance(self))
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=self.batch_size)
                records = in_time_order(batches)
                if self.detector is None:
                    continue  # another watcher owns the partitions
                await self.process(records)
                if records:
                    await consumer.commit()
                self.backoff = 0.0
        finally:
            self.detector = None
            with contextlib.suppress(Exception):
                await consumer.stop()

    # ------------------------------------------------------------------ work

    async def load(self) -> CrashDetector:
        """A detector resuming from the store."""
        now = self.now()
        open_queries, known = await self.store.run_in_transaction(incidents.load, now)
        self.log.info(
            "The crash watcher follows %d open queries and %d recent incidents",
            len(open_queries),
            len(known),
        )
        return CrashDetector(self.rules, open_queries=open_queries, incidents=known)

    async def process(self, records: list) -> Changes:
        """Feed ``records`` to the detector (or, when there are none, tell it the time:
        the reader has caught up) and save what changed. Returns the changes."""
        detector = self.detector
        if detector is None:
            detector = self.detector = await self.load()
        for record in records:
            event = decode(record.value)
            if event is None:
                self.log.warning(
                    "Skipped a record of %s that is not a query event (partition %s, offset %s)",
                    self.topic,
                    record.partition,
                    record.offset,
                )
                continue
            detector.feed(event)
        self.records += len(records)
        if not records:
            detector.tick(self.now())
        changes = detector.changes()
        if changes:
            await self.store.run_in_transaction(incidents.save, changes)
            self._report(changes)
        return changes

    def _report(self, changes: Changes) -> None:
        for incident in changes.new_incidents:
            self.incidents_found[incident.cluster] += 1
            self.log.warning(
                "Crash incident on cluster %s: it lost queries from %s",
                incident.cluster,
                incident.started_at.isoformat(timespec="seconds"),
            )
        for lost in changes.new_lost:
            self.lost[lost.cluster] += 1
            self.log.info(
                "Query %s of %s on cluster %s lost (%s)",
                lost.query_id,
                lost.user,
                lost.cluster,
                lost.reason or lost.marked_by,
            )
        for incident in changes.ended_incidents:
            self.log.info(
                "Crash incident on cluster %s ended (%s): %d queries of %s lost",
                incident.cluster,
                incident.end_reason,
                len(incident.queries),
                ", ".join(incident.users),
            )

    # ------------------------------------------------------------------ metrics

    def collect(self) -> Iterable[Any]:
        """The watcher's metrics (a Prometheus collector: register the watcher)."""
        lost = CounterMetricFamily(
            "datahub_lost_queries",
            "Queries found lost (nobody saw them end), per cluster, since the watcher started",
            labels=["cluster"],
        )
        found = CounterMetricFamily(
            "datahub_crash_incidents",
            "Crash incidents begun (queries a cluster lost together), since the watcher started",
            labels=["cluster"],
        )
        open_queries = GaugeMetricFamily(
            "datahub_open_queries",
            "Queries submitted to the cluster without an end yet, as the crash watcher sees them",
            labels=["cluster"],
        )
        ongoing = GaugeMetricFamily(
            "datahub_crash_incidents_ongoing",
            "1 while the cluster has an ongoing crash incident",
            labels=["cluster"],
        )
        for cluster, count in sorted(self.lost.items()):
            lost.add_metric([cluster], count)
        for cluster, count in sorted(self.incidents_found.items()):
            found.add_metric([cluster], count)
        detector = self.detector
        if detector is not None:
            for cluster, count in sorted(detector.open_per_cluster().items()):
                open_queries.add_metric([cluster], count)
            clusters = {i.cluster for i in detector.incidents.values()}
            for cluster in sorted(clusters):
                ongoing.add_metric([cluster], 1 if detector.ongoing(cluster) else 0)
        return [lost, found, open_queries, ongoing]


class _Rebalance(ConsumerRebalanceListener):
    """Loads the detector from the store when this watcher gets the partitions, drops it
    when it loses them (the new owner loads what was saved)."""

    def __init__(self, watcher: CrashWatcher) -> None:
        self.watcher = watcher

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.watcher.detector = None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        watcher = self.watcher
        if assigned:
            watcher.detector = await watcher.load()
            watcher.log.info(
                "The crash watcher reads %d partitions of %s", len(assigned), watcher.topic
            )
        else:
            watcher.detector = None
            watcher.log.info("Another crash watcher reads %s; this one stands by", watcher.topic)


class CrashWatch(LoggingConfigurable):
    """Crash detection from the query events (``datahub events watch``, or a task in the
    service); reads Kafka as ``c.KafkaEvents`` says."""

    run_in_service = Bool(
        True,
        help="""Run the crash watcher in the DataHub service when query events go to
        Kafka (c.KafkaEvents.bootstrap_servers is set).

        The watcher reads the query events topic as a member of the consumer group
        group_id, keeps per cluster the queries submitted without an end, marks queries
        lost (see lost_grace and max_open), groups them into crash incidents (see
        quiet_period) and keeps them in the store, for the admin page admin/incidents
        and /metrics. Several service processes may all run it: the group gives the
        topic to one of them, the others stand by. Turn it off to run it elsewhere with
        `datahub events watch -f jupyterhub_config.py`. Example::

            c.CrashWatch.run_in_service = False
        """,
    ).tag(config=True)

    group_id = Unicode(
        "datahub-crash-watch",
        help="""The Kafka consumer group of the crash watchers. Its committed offsets say
        how far the incidents in the store go; watchers sharing a store share a group.""",
    ).tag(config=True)

    lost_grace = Float(
        300.0,
        help="""Seconds after a cluster's crash incident begins (a query lost on it) after
        which its queries submitted before the incident and still without an end are
        marked lost too: a crash takes every query running on the cluster. Keep it above
        the gateway's lost_after plus reconcile_interval, within which the gateway itself
        reports the queries it follows as lost.

        Example: c.CrashWatch.lost_grace = 600
        """,
    ).tag(config=True)

    quiet_period = Float(
        600.0,
        help="""Seconds without a lost query after which a cluster's crash incident ends
        (it ends sooner when a query submitted after its last loss finishes there: the
        cluster works again). The next lost query on that cluster begins a new incident.

        Example: c.CrashWatch.quiet_period = 900
        """,
    ).tag(config=True)

    max_open = Float(
        86400.0,
        help="""Seconds after which a query still without an end is marked lost, even when
        its cluster has no incident (its end was never reported). Set it above the longest
        a query may run (Trino's query.max-run-time, the quota's max_run_seconds): a query
        running that long is never marked before. 0 never marks a query for its age alone.

        Example: c.CrashWatch.max_open = 7 * 86400
        """,
    ).tag(config=True)

    consumer_options = Dict(
        help="""More options of the consumer (aiokafka's AIOKafkaConsumer), such as TLS and
        SASL. group_id, enable_auto_commit=False and the one-owner assignor are always
        used; auto_offset_reset defaults to "earliest" (a new group reads the topic from
        its start). Example::

            c.CrashWatch.consumer_options = {
                "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "datahub", "sasl_plain_password": "…",
            }
        """,
    ).tag(config=True)

    def rules(self) -> CrashRules:
        return CrashRules(
            lost_grace=self.lost_grace, quiet_period=self.quiet_period, max_open=self.max_open
        )

    def watcher(
        self, store: Store, bootstrap_servers: str, topic: str, log: logging.Logger | None = None
    ) -> CrashWatcher:
        """The watcher of ``topic`` on the Kafka at ``bootstrap_servers`` (not started)."""
        return CrashWatcher(
            store,
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            group_id=self.group_id,
            rules=self.rules(),
            consumer_options=self.consumer_options,
            log=log or self.log,
        )
