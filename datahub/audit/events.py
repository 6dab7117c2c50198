"""The event log: one JSON line per query event, for log shippers.

Fluent Bit, Vector or a Singer tap tails the file and carries the lines to Kafka or a
warehouse, as Pinterest does with its Presto query events: a query with a
``query_submitted`` line and no ``query_finished`` line died with its cluster or gateway
(the reconciler then writes the finished line with state ``LOST``). Events:

- ``query_submitted``: a cluster accepted the query (who, where, why, the SQL); who is
  ``user``, and ``acting_admin`` when a hub admin ran it as that user (else null);
- ``query_finished``: the query ended (state, error and Trino's statistics);
- ``query_rejected``: routing or the admission refused the query before any cluster saw it.

The file is opened for each batch of lines, so log rotation (rename, then a new file)
needs no signal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .records import FINISHED_FIELDS

SUBMITTED = "query_submitted"
FINISHED = "query_finished"
REJECTED = "query_rejected"

_IDENTITY = (
    "query_id",
    "user",
    "groups",
    "acting_admin",
    "principal",
    "cluster",
    "routing_group",
)
_SUBMITTED = (
    *_IDENTITY,
    "routing_reason",
    "source",
    "client_tags",
    "admission_note",
    "sql",
    "client_sql",
    "submitted_at",
)
# The submitted time, then every field the audit record's finish sets (one list of them).
_FINISHED = (*_IDENTITY, "submitted_at", *FINISHED_FIELDS)
_REJECTED = (*_SUBMITTED, "state", "error_name", "error")


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def event(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The event of *kind* for an audit record (a dict of its columns, as
    `records.row_of` maps a query to it): the one mapping of a query to its events."""
    keys = {SUBMITTED: _SUBMITTED, FINISHED: _FINISHED, REJECTED: _REJECTED}[kind]
    body = {"event": kind, "time": _iso(dt.datetime.now(dt.UTC))}
    body.update((key, _iso(record.get(key))) for key in keys)
    return body


class EventLogFile:
    """Appends events as JSON lines to *path* (created mode 0600: it holds SQL)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, events: Iterable[Mapping[str, Any]]) -> None:
        lines = "".join(json.dumps(e, default=str, separators=(",", ":")) + "\n" for e in events)
        if not lines:
            return
        data = lines.encode()
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # no directory yet: made then, not at every write
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
