"""Query events on Kafka: every query's ``query_submitted`` and ``query_finished`` (and
``query_queued``, ``query_refused``, ``query_lost``) as JSON records, keyed by query id.

- ``event.py`` (pure): the event kinds, the schema version and the one function that builds
  an event from a query's fields; the schema itself is ``schema/query-event-v1.json``.
- ``outbox.py``: the durable outbox in the store (Alembic branch ``events``). The query path
  writes an event there and never waits on Kafka.
- ``publisher.py``: the task that sends the outbox's unsent events to Kafka in order
  (idempotent producer, ``acks=all``), marks them sent, and backs off while Kafka is down.
- ``config.py``: the ``KafkaEvents`` options; without ``bootstrap_servers`` nothing is sent.

Delivery is at least once: an event sent but not yet marked when the process stopped is
sent again, with the same ``event_id``.
"""
