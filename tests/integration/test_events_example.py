"""The README's ways to read the query events, on the real broker: the pandas example
(examples/events_to_pandas.py, as a program and as a module) and Kafka's console consumer
(examples/kafka-console-consumer.sh, with kafka-tools from Maven Central)."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
from aiokafka import AIOKafkaProducer

from datahub.events import outbox
from datahub.events.event import FINISHED, REFUSED, SUBMITTED
from datahub.events.publisher import EventPublisher
from datahub.events.recorder import QueryEvents

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GIVE_UP_AFTER = 120


def example_module():
    spec = importlib.util.spec_from_file_location(
        "events_to_pandas", EXAMPLES / "events_to_pandas.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def publish(store, kafka, topic: str) -> list[dict]:
    """Three events of two queries on *topic*, then the first one again (as a publisher
    that stopped before marking it would resend it)."""

    async def scenario() -> list[dict]:
        publisher = EventPublisher(
            store, bootstrap_servers=kafka.bootstrap_servers, topic=topic, poll_interval=0.2
        )
        events = QueryEvents(store, publisher)
        publisher.start()
        try:
            recorded = [
                await events.record(SUBMITTED, {"query_id": "q1", "user": "alice"}),
                await events.record(
                    REFUSED, {"query_id": "q2", "user": "bob", "state": "REJECTED", "error": "No."}
                ),
                await events.record(
                    FINISHED, {"query_id": "q1", "user": "alice", "state": "FINISHED", "cpu_ms": 7}
                ),
            ]
            async with asyncio.timeout(GIVE_UP_AFTER):
                while await store.run_in_transaction(outbox.backlog):
                    await asyncio.sleep(0.1)
        finally:
            await publisher.stop()
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
        await producer.start()
        try:
            first = json.dumps(recorded[0], separators=(",", ":")).encode()
            await producer.send_and_wait(topic, first, key=b"q1")
        finally:
            await producer.stop()
        return recorded

    return asyncio.run(scenario())


def test_the_pandas_example_loads_each_event_once_and_the_console_consumer_reads_them(
    tmp_path, kafka
):
    from datahub.store import Store

    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    topic = f"query-events-{uuid.uuid4().hex[:12]}"
    try:
        recorded = publish(store, kafka, topic)
    finally:
        store.dispose()
    ids = [event["event_id"] for event in recorded]

    # As a program: a summary, and the CSV with each event once.
    out = tmp_path / "events.csv"
    program = subprocess.run(
        [
            sys.executable,
            EXAMPLES / "events_to_pandas.py",
            "--bootstrap-servers",
            kafka.bootstrap_servers,
            "--topic",
            topic,
            "--csv",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=GIVE_UP_AFTER,
    )
    assert program.returncode == 0, program.stderr
    assert program.stdout.startswith("3 events of 2 queries")
    assert "Wrote 3 events" in program.stdout
    with out.open() as f:
        assert sorted(row["event_id"] for row in csv.DictReader(f)) == sorted(ids)

    # As a module: one row per event id, times parsed, in the order of their times, each
    # query's events in the order recorded (events of different queries recorded in the
    # same millisecond, the times' precision, come in the order they were read: their
    # partitions differ).
    example = example_module()
    raw = example.read_events(kafka.bootstrap_servers, topic)
    assert len(raw) == 4  # the repeated record too
    frame = example.to_frame(raw)
    assert sorted(frame.event_id) == sorted(ids)
    assert isinstance(frame.time.dtype, pd.DatetimeTZDtype)
    assert frame.time.is_monotonic_increasing
    by_query = {q: list(rows.event_id) for q, rows in frame.groupby("query_id", sort=False)}
    assert by_query == {"q1": [ids[0], ids[2]], "q2": [ids[1]]}
    assert dict(zip(frame.event_id, frame.event, strict=True)) == {
        ids[0]: "query_submitted",
        ids[1]: "query_refused",
        ids[2]: "query_finished",
    }
    assert frame.loc[frame.event == "query_finished", "cpu_ms"].tolist() == [7]

    # A bad address is one sentence.
    bad = subprocess.run(
        [
            sys.executable,
            EXAMPLES / "events_to_pandas.py",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=GIVE_UP_AFTER,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("Could not read datahub.query-events")

    # Kafka's console consumer, as the README shows it: key, tab, the event's JSON.
    console = subprocess.run(
        [
            EXAMPLES / "kafka-console-consumer.sh",
            "--bootstrap-server",
            kafka.bootstrap_servers,
            "--topic",
            topic,
            "--from-beginning",
            "--property",
            "print.key=true",
            "--max-messages",
            "4",
            "--timeout-ms",
            "60000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert console.returncode == 0, console.stderr
    lines = [line.split("\t", 1) for line in console.stdout.splitlines() if "\t" in line]
    assert len(lines) == 4
    assert all(json.loads(value)["query_id"] == key for key, value in lines)
    assert {json.loads(value)["event_id"] for _, value in lines} == set(ids)
