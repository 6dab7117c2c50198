"""The publisher: sends the outbox's unsent events to Kafka in order, then marks them sent.

One asyncio task on the service's loop. It reads a batch of unsent events (through
``Store.run``), hands them all to the producer (idempotent, ``acks=all``; the record's key
is the query id, so a query's events stay in one partition, in order), waits for Kafka's
acknowledgements and marks the acknowledged prefix of the batch sent. When Kafka is down or
refuses, it closes the producer, waits (doubling up to ``max_backoff`` seconds) and starts
again from the first unsent event. Nobody waits for it: the query path only adds to the
outbox and calls :meth:`EventPublisher.wake`.

Several service processes may share the store: only the one holding the store's lease
(`lease`) sends, renewing it before every batch; the others stand by and look every
``lease_seconds / 3`` whether it has run out (its holder stopped renewing), then take it
over. The holder also deletes the events sent more than ``sent_retention`` seconds ago,
every ``prune_interval`` seconds.

An event acknowledged by Kafka but not yet marked when the process stops is sent again by
the next publisher, with the same ``event_id`` (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..store import Store
from . import lease, outbox

Producer = Any  # aiokafka.AIOKafkaProducer (imported when a producer is made)

#: Options of every producer: what the events' guarantees rest on.
REQUIRED_PRODUCER_OPTIONS: Mapping[str, Any] = {"acks": "all", "enable_idempotence": True}


def acknowledged_prefix(outcomes: Sequence[BaseException | None]) -> int:
    """How many outcomes, from the first, are successes: the events that may be marked
    sent without any earlier one still unsent (``None`` is a success)."""
    for index, outcome in enumerate(outcomes):
        if outcome is not None:
            return index
    return len(outcomes)


def next_backoff(current: float, *, initial: float, maximum: float) -> float:
    """The wait after another failure: ``initial``, then doubling up to ``maximum``."""
    return initial if current <= 0 else min(maximum, current * 2)


class EventPublisher:
    """Sends the outbox to ``topic`` on the Kafka at ``bootstrap_servers``.

    ``producer_options`` go to ``aiokafka.AIOKafkaProducer`` (TLS, SASL, ``linger_ms``…);
    :data:`REQUIRED_PRODUCER_OPTIONS` always win over them.
    """

    def __init__(
        self,
        store: Store,
        *,
        bootstrap_servers: str,
        topic: str,
        client_id: str = "datahub",
        batch_size: int = 500,
        poll_interval: float = 5.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        close_timeout: float = 5.0,
        lease_seconds: float = 30.0,
        linger: float = 0.0,
        sent_retention: float = 86400.0,
        prune_interval: float = 600.0,
        producer_options: Mapping[str, Any] | None = None,
        log: logging.Logger | None = None,
        make_producer: Callable[[], Producer] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not bootstrap_servers:
            raise ValueError("The event publisher needs Kafka's bootstrap servers.")
        if lease_seconds <= 0 or sent_retention < 0:
            raise ValueError(
                "The event publisher's lease must be positive, its retention not negative."
            )
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.client_id = client_id
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.lease_seconds = lease_seconds
        self.linger = linger
        self.clock = clock
        self.sent_retention = sent_retention
        self.prune_interval = prune_interval
        #: This publisher's name in the lease (unique per process and start).
        self.holder = lease.new_holder()
        self.producer_options = dict(producer_options or {})
        self.log = log or logging.getLogger("datahub.events")
        self._make_producer = make_producer or self._aiokafka_producer
        self._producer: Producer | None = None
        self._wakeup = asyncio.Event()
        #: Set by `stop`: the task ends after the batch in hand (sent *and* marked).
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Events sent since start (acknowledged by Kafka and marked).
        self.sent = 0
        #: Seconds of the current wait after a failure (0 while Kafka is fine).
        self.backoff = 0.0
        #: Whether this publisher held the lease at its last look (it alone sends).
        self.holds_lease = False
        self._renewed_at = 0.0  # monotonic time of the last renewal that held
        #: Sent events deleted from the outbox since start.
        self.pruned = 0
        self._next_prune = 0.0

    def _aiokafka_producer(self) -> Producer:
        from aiokafka import AIOKafkaProducer

        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            **{**self.producer_options, **REQUIRED_PRODUCER_OPTIONS},
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the publishing task on the running loop (once)."""
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name="datahub-event-publisher")

    def wake(self) -> None:
        """Say that events were added: the task looks now rather than at its next poll.
        Safe from any thread (the audit's writer calls it after its commit)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started: it looks at the outbox first thing when it starts
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wakeup.set)

    async def stop(self) -> None:
        """Stop the task once the batch in hand is sent and marked sent (waiting at most
        ``close_timeout`` seconds: a batch cut off between Kafka's acknowledgement and
        the mark would be sent again by the process taking over), then the producer,
        then give the lease up so another process takes over at once; unsent events stay
        in the outbox."""
        if self._task is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.close_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except asyncio.CancelledError:
                if not self._task.done():
                    raise  # stop itself was cancelled
            self._task = None
        await self._close_producer()
        if self.holds_lease:
            self.holds_lease = False
            try:
                await self.store.run_in_transaction(lease.release, self.holder)
            except Exception:  # it runs out by itself then
                self.log.warning("Could not give the query events' lease up", exc_info=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ work

    async def _pause(self, seconds: float) -> None:
        """Wait *seconds*, or less if `stop` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not await self.take_lease():
                    # Another process sends: look again well before its lease could run
                    # out (new events here do not matter: that process finds them).
                    await self._pause(self.lease_seconds / 3)
                    continue
                # News from here on wakes the wait below (none is lost during the pass).
                self._wakeup.clear()
                sent = await self.publish_pending()
                await self.prune_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.backoff = next_backoff(
                    self.backoff, initial=self.initial_backoff, maximum=self.max_backoff
                )
                self.log.warning(
                    "Query events wait for Kafka at %s (%s: %s); next try in %.1fs",
                    self.bootstrap_servers,
                    type(error).__name__,
                    error,
                    self.backoff,
                )
                await self._close_producer()
                await self._pause(self.backoff)
                continue
            if self.backoff:
                self.log.info("Kafka at %s takes query events again", self.bootstrap_servers)
                self.backoff = 0.0
            if sent < self.batch_size and not self._stopping.is_set():
                # Caught up: wait for news (or the stop), renewing in time.
                wait = min(self.poll_interval, self.lease_seconds / 3)
                news = asyncio.ensure_future(self._wakeup.wait())
                stopping = asyncio.ensure_future(self._stopping.wait())
                try:
                    await asyncio.wait(
                        {news, stopping}, timeout=wait, return_when="FIRST_COMPLETED"
                    )
                finally:
                    news.cancel()
                    stopping.cancel()
                if self._wakeup.is_set() and not self._stopping.is_set():
                    # Woken by news: let the events that follow at once (a quick
                    # query's finished after its submitted) join the same batch.
                    await self._pause(self.linger)

    async def take_lease(self) -> bool:
        """Take or renew the store's lease; True if this publisher holds it (and may
        send). A lease renewed less than a third of its time ago counts as held without
        asking the store (a batch per query would otherwise cost a transaction more).
        Logs when it starts or stops being the one that sends."""
        now = self.clock()
        if self.holds_lease and now - self._renewed_at < self.lease_seconds / 3:
            return True
        held = await self.store.run_in_transaction(lease.acquire, self.holder, self.lease_seconds)
        if held != self.holds_lease:
            if held:
                self.log.info("Sending query events to Kafka at %s", self.bootstrap_servers)
            else:
                self.log.info("Another DataHub process sends the query events now")
                await self._close_producer()
        self.holds_lease = held
        if held:
            self._renewed_at = now
        return held

    async def prune_if_due(self) -> int:
        """Delete the events sent more than ``sent_retention`` seconds ago, if the last
        pruning was ``prune_interval`` seconds ago or more; return how many."""
        now = self.clock()
        if now < self._next_prune:
            return 0
        self._next_prune = now + self.prune_interval
        before = lease.utcnow() - dt.timedelta(seconds=self.sent_retention)
        pruned = await self.store.run_in_transaction(outbox.forget_sent, before)
        if pruned:
            self.log.debug("Forgot %d query events sent before %s", pruned, before)
        self.pruned += pruned
        return pruned

    async def publish_pending(self) -> int:
        """Send one batch of unsent events and mark those Kafka acknowledged; return how
        many. Raises the first failure after marking the acknowledged prefix."""
        pending = await self.store.run_in_transaction(outbox.unsent, self.batch_size)
        if not pending:
            return 0
        producer = await self._started_producer()
        deliveries = []
        for event in pending:
            deliveries.append(
                await producer.send(
                    self.topic, value=event.payload.encode(), key=event.key.encode()
                )
            )
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        failures = [o if isinstance(o, BaseException) else None for o in outcomes]
        done = acknowledged_prefix(failures)
        if done:
            await self.store.run_in_transaction(
                outbox.mark_sent, [event.seq for event in pending[:done]]
            )
            self.sent += done
        if done < len(pending):
            error = failures[done]
            assert error is not None  # the prefix ended at a failure
            raise error
        return done

    async def _started_producer(self) -> Producer:
        if self._producer is None:
            producer = self._make_producer()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        # A producer flushes what it holds before it stops, which never ends while Kafka
        # is down; what it held is still unsent in the outbox, so give up after a while.
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.stop(), self.close_timeout)
        except TimeoutError:
            self.log.info(
                "Stopped waiting for Kafka at %s to take the last events; they stay in the outbox",
                self.bootstrap_servers,
            )
        except Exception:
            self.log.debug("Closing the Kafka producer failed", exc_info=True)
