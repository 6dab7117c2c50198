"""Load DataHub's query events from Kafka into a pandas DataFrame.

Reads the topic from its start up to its end as of now (a snapshot; nothing is committed,
so it never disturbs other consumers), keeps each event once (delivery is at least once: a
repeated record carries the same ``event_id``), parses the times and prints a summary::

    python examples/events_to_pandas.py --bootstrap-servers localhost:9092
    python examples/events_to_pandas.py --bootstrap-servers localhost:9092 \\
        --topic datahub.query-events --csv events.csv

From Python (a notebook, say)::

    from events_to_pandas import read_events, to_frame
    frame = to_frame(read_events("localhost:9092", "datahub.query-events"))
    frame[frame.event == "query_finished"].groupby("user").cpu_ms.sum()

The events' fields: datahub/events/schema/query-event-v1.json (README: "Query events on
Kafka"). Needs ``aiokafka`` and ``pandas`` (both installed with DataHub).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd
from aiokafka import AIOKafkaConsumer, TopicPartition

TIME_COLUMNS = ("time", "submitted_at", "finished_at")


async def _read(bootstrap_servers: str, topic: str, timeout: float) -> list[dict[str, Any]]:
    # No group: every partition, from the start, nothing committed.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        ends = await consumer.end_offsets(assigned)
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                positions = [await consumer.position(tp) for tp in assigned]
                if all(at >= ends[tp] for at, tp in zip(positions, assigned, strict=True)):
                    return events
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    events.extend(json.loads(record.value) for record in records)
    finally:
        await consumer.stop()


def read_events(
    bootstrap_servers: str, topic: str = "datahub.query-events", *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every record on *topic* up to its current end, as dicts (repeats included)."""
    return asyncio.run(_read(bootstrap_servers, topic, timeout))


def to_frame(events: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The events as a DataFrame, one row per ``event_id`` (the first copy), times as
    UTC timestamps, ordered by the time each event was recorded."""
    frame = pd.DataFrame(list(events))
    if frame.empty:
        return frame
    frame = frame.drop_duplicates("event_id", keep="first")
    for column in TIME_COLUMNS:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def summary(frame: pd.DataFrame) -> str:
    """A few lines: events by kind, and queries and CPU by user."""
    if frame.empty:
        return "No query events on the topic yet."
    lines = [f"{len(frame)} events of {frame.query_id.nunique()} queries", ""]
    lines.append(frame.event.value_counts().to_string())
    finished = frame[frame.event.isin(["query_finished", "query_lost"])]
    if not finished.empty:
        by_user = finished.groupby("user").agg(
            queries=("query_id", "nunique"), cpu_ms=("cpu_ms", "sum")
        )
        lines += ["", by_user.to_string()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Load DataHub's query events from Kafka into a pandas DataFrame "
        "and print a summary (or save them)."
    )
    parser.add_argument(
        "--bootstrap-servers", required=True, help="Kafka's host:port (comma-separated)"
    )
    parser.add_argument(
        "--topic", default="datahub.query-events", help="the topic (c.KafkaEvents.topic)"
    )
    parser.add_argument("--csv", metavar="FILE", help="also write the events to this CSV file")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up reading after this many seconds"
    )
    args = parser.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # failures: our one sentence
    try:
        frame = to_frame(read_events(args.bootstrap_servers, args.topic, timeout=args.timeout))
    except TimeoutError:
        print(f"Could not read {args.topic} within {args.timeout:g} s.", file=sys.stderr)
        return 1
    except (Exception, asyncio.CancelledError) as error:  # one sentence, no stack trace
        where = f"{args.topic} from {args.bootstrap_servers}"
        print(f"Could not read {where}: {error}", file=sys.stderr)
        return 1
    print(summary(frame))
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"\nWrote {len(frame)} events to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
