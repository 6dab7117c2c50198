"""A query event, version 1 (``schema/query-event-v1.json``): kinds and how one is built.

Pure: no I/O. :func:`query_event` is the one mapping of a query's fields to an event; the
JSON it is serialised to (:func:`encode`) is what the outbox keeps and Kafka carries, so a
repeated record is byte for byte the same.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..query import QUEUED_AS, STATS_FIELDS

SCHEMA_VERSION = 1
SCHEMA_FILE = f"query-event-v{SCHEMA_VERSION}.json"

SUBMITTED = "query_submitted"
QUEUED = "query_queued"
REFUSED = "query_refused"
FINISHED = "query_finished"
LOST = "query_lost"
KINDS = (SUBMITTED, QUEUED, REFUSED, FINISHED, LOST)

_IDENTITY = ("query_id", "user", "acting_admin", "principal", "groups")
_ROUTING = ("cluster", "routing_group", "routing_reason", "source", "client_tags")
_REQUEST = (*_IDENTITY, *_ROUTING, "admission_note", "sql", "client_sql", "submitted_at")
_END = ("state", "error_name", "error_type", "error", "stop_reason", "finished_at", *STATS_FIELDS)

#: The fields each kind of event carries (all of them always present, null when unknown).
FIELDS: dict[str, tuple[str, ...]] = {
    SUBMITTED: (*_REQUEST, "state", "queued_as"),
    QUEUED: (*_REQUEST, "state"),
    REFUSED: (*_REQUEST, "state", "error_name", "error"),
    FINISHED: (*_IDENTITY, *_ROUTING, "submitted_at", *_END, "queued_as"),
    LOST: (*_IDENTITY, *_ROUTING, "submitted_at", *_END, "queued_as"),
}


def schema() -> dict[str, Any]:
    """The JSON Schema of this version's events."""
    text = resources.files(__package__).joinpath("schema", SCHEMA_FILE).read_text()
    return json.loads(text)


#: Short names of the kinds, for the fields table.
_SHORT = {
    SUBMITTED: "submitted",
    QUEUED: "queued",
    REFUSED: "refused",
    FINISHED: "finished",
    LOST: "lost",
}
_ENVELOPE = ("schema_version", "event_id", "event", "time")


def _type_of(spec: Mapping[str, Any]) -> str:
    if "const" in spec:
        return f"`{spec['const']}`"
    kinds = spec.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    text = " or ".join(
        "time" if k == "string" and spec.get("format") == "date-time" else k for k in kinds
    )
    return text.replace("array", "list of strings")


def fields_table() -> str:
    """The README's table of the fields (from the schema; which events carry each, from
    `FIELDS`): one Markdown row per field, in the schema's order."""
    rows = ["| field | type | in | meaning |", "|---|---|---|---|"]
    for name, spec in schema()["properties"].items():
        carried = [kind for kind in KINDS if name in _ENVELOPE or name in FIELDS[kind]]
        where = "all" if len(carried) == len(KINDS) else ", ".join(_SHORT[k] for k in carried)
        meaning = spec.get("description", "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_of(spec)} | {where} | {meaning} |")
    return "\n".join(rows)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # the store's naive datetimes are UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, tuple | list | frozenset | set):
        return [str(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum such as QueryState
        return value.value
    return value


def _field(fields: Mapping[str, Any], name: str) -> Any:
    """The value of event field *name* in a query's *fields* (``queued_as`` travels in
    the admission data)."""
    if name == "queued_as" and name not in fields:
        return (fields.get("admission") or {}).get(QUEUED_AS)
    return fields.get(name)


def query_event(
    kind: str,
    fields: Mapping[str, Any],
    *,
    event_id: str | None = None,
    time: dt.datetime | None = None,
) -> dict[str, Any]:
    """The event of ``kind`` for a query described by ``fields`` (its audit columns:
    ``query_id``, ``user``, ``cluster``, ``state``…; those this kind does not carry are
    left out, those it carries and ``fields`` lacks are null)."""
    if kind not in FIELDS:
        raise ValueError(f"Unknown query event {kind!r}; expected one of {', '.join(KINDS)}.")
    for required in ("query_id", "user"):
        if not fields.get(required):
            raise ValueError(f"A {kind} event needs the query's {required}.")
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id or str(uuid.uuid4()),
        "event": kind,
        "time": _json_value(time or dt.datetime.now(dt.UTC)),
    }
    body.update((name, _json_value(_field(fields, name))) for name in FIELDS[kind])
    if kind == LOST:
        body["state"] = "LOST"
    return body


def encode(event: Mapping[str, Any]) -> str:
    """The event as the compact JSON the outbox keeps and Kafka carries."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)
