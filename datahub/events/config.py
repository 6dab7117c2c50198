"""The query events' options (``c.KafkaEvents.*``) and the parts built from them."""

from __future__ import annotations

import logging

from traitlets import Dict, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..store import Store
from .publisher import EventPublisher
from .recorder import QueryEvents


class KafkaEvents(LoggingConfigurable):
    """Query events on a Kafka topic (off unless ``bootstrap_servers`` is set)."""

    bootstrap_servers = Unicode(
        "",
        help="""Kafka's bootstrap servers (host:port, comma-separated) for the query events.

        Empty (the default): no events go to Kafka and nothing else changes. Set: the
        publisher (datahub.events) sends the store's event outbox (query_submitted,
        query_queued, query_refused, query_finished, query_lost; schema in
        datahub/events/schema/query-event-v1.json) to `topic`, keyed by query id, with an
        idempotent producer and acks=all; while Kafka is down the events wait in the
        outbox and go out in order once it is back, also after a restart. The gateway
        writes each query's events into the outbox in the same transaction as its audit
        record, so a query never waits on Kafka. With several service processes on one
        store, one of them at a time sends (see `lease_seconds`).
        `datahub up --kafka` starts a local broker and writes its address to the stack's
        settings file (kafka.bootstrap_servers), which jupyterhub_config.py uses. Example::

            c.KafkaEvents.bootstrap_servers = "kafka-1.example.com:9093"
        """,
    ).tag(config=True)

    topic = Unicode(
        "datahub.query-events",
        help="""The topic the query events go to (one record per event, key = query id).

        Create it with as many partitions as you need consumers; a query's events always
        land in one partition, in order.
        """,
    ).tag(config=True)

    client_id = Unicode(
        "datahub-gateway",
        help="The producer's client id, as Kafka's logs, quotas and metrics name it.",
    ).tag(config=True)

    producer_options = Dict(
        help="""More options of the producer (aiokafka's AIOKafkaProducer), such as TLS
        and SASL. acks="all" and enable_idempotence=True are always used. Example::

            c.KafkaEvents.producer_options = {
                "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "datahub", "sasl_plain_password": "…",
            }
        """,
    ).tag(config=True)

    batch_size = Integer(
        500,
        help="At most this many outbox events are handed to the producer at a time.",
    ).tag(config=True)

    poll_interval = Float(
        5.0,
        help="""Seconds between looks at the outbox when no new event woke the publisher
        (events written by another gateway process are found this way).""",
    ).tag(config=True)

    max_backoff = Float(
        30.0,
        help="""While Kafka is unreachable the publisher retries after 0.5 s, doubling up
        to this many seconds; the events wait in the outbox meanwhile.""",
    ).tag(config=True)

    lease_seconds = Float(
        30.0,
        help="""With several service processes on one store, only the holder of the
        store's publisher lease sends the outbox (one producer, in order); it renews the
        lease every third of this time at least and gives it up when it stops. A process that stops
        renewing (killed, hung, cut off from the store) loses the lease this many seconds
        after its last renewal, and another process takes over from the first unsent
        event. Keep the processes' clocks in sync to well under this.""",
    ).tag(config=True)

    linger_seconds = Float(
        0.1,
        help="""Seconds the publisher waits after being told of new events before it
        sends them, so events written close together (a quick query's submitted and
        finished) go to Kafka in one batch. Queries never wait for it.""",
    ).tag(config=True)

    sent_retention = Float(
        86400.0,
        help="""Seconds a sent event stays in the outbox (to look at with SQL) before the
        publisher deletes it; unsent events are never deleted. 0 deletes them at the
        next pruning (every 10 minutes).""",
    ).tag(config=True)

    @property
    def enabled(self) -> bool:
        return bool(self.bootstrap_servers.strip())

    def publisher(self, store: Store, log: logging.Logger | None = None) -> EventPublisher:
        """The publisher of the outbox in ``store``, as configured (not started)."""
        return EventPublisher(
            store,
            bootstrap_servers=self.bootstrap_servers,
            topic=self.topic,
            client_id=self.client_id,
            batch_size=self.batch_size,
            poll_interval=self.poll_interval,
            max_backoff=self.max_backoff,
            lease_seconds=self.lease_seconds,
            linger=self.linger_seconds,
            sent_retention=self.sent_retention,
            producer_options=self.producer_options,
            log=log or self.log,
        )

    def query_events(self, store: Store, publisher: EventPublisher) -> QueryEvents:
        """What the query path records its events with."""
        return QueryEvents(store, publisher)
