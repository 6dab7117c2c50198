"""What the query history API and pages show: pure functions over audit records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..query import FINAL_STATES

#: Longest page of the API (``limit``) and of the pages.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50

#: States a filter may ask for: the final ones and Trino's while a query runs.
STATES = (
    "QUEUED",
    "RUNNING",
    "FINISHED",
    "FAILED",
    "CANCELED",
    "LOST",
    "REJECTED",
)


class FilterError(ValueError):
    """A filter argument is unusable; the message says how to write it."""


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z (``2025-01-31T09:30:00.123Z``), or None."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(name: str, text: str | None) -> dt.datetime | None:
    """An ISO-8601 time from a filter argument; without a zone it is UTC."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise FilterError(
            f"{name} must be an ISO-8601 time like 2025-01-31T09:30:00Z, not {text!r}."
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def parse_limit(text: str | None) -> int:
    if not text:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise FilterError(f"limit must be a number from 1 to {MAX_LIMIT}, not {text!r}.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit must be a number from 1 to {MAX_LIMIT}, not {limit}.")
    return limit


def parse_state(text: str | None) -> str | None:
    if not text:
        return None
    state = text.strip().upper()
    if state == "CANCELLED":
        state = "CANCELED"
    if state not in STATES:
        raise FilterError(f"state must be one of {', '.join(STATES)}, not {text!r}.")
    return state


def api_query(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as ``GET api/queries`` lists it (the contract of the %sql history magic)."""
    return {
        "query_id": record["query_id"],
        "user": record["user"],
        "acting_admin": record.get("acting_admin"),
        "cluster": record.get("cluster"),
        "state": record["state"],
        "sql": record.get("sql") or "",
        "submitted": iso(record.get("submitted_at")),
        "finished": iso(record.get("finished_at")),
        "elapsed_ms": record.get("elapsed_ms"),
        "rows": record.get("output_rows"),
        "error": record.get("error"),
        "source": record.get("source"),
    }


def api_query_detail(record: Mapping[str, Any]) -> dict[str, Any]:
    """Every audited field of one query (``GET api/queries/{id}``)."""
    detail = {
        key: (iso(value) if isinstance(value, dt.datetime) else value)
        for key, value in record.items()
        if key != "admission"  # hooks' private data
    }
    detail.update(api_query(record))
    return detail


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def page_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record ready for the history pages' tables (text, no markup)."""
    sql = " ".join((record.get("sql") or "").split())
    submitted = record.get("submitted_at")
    return {
        "query_id": record["query_id"],
        "user": record["user"],
        "cluster": record.get("cluster") or "",
        "routing_group": record.get("routing_group") or "",
        "state": record["state"],
        "final": record["state"] in FINAL_STATES,
        "submitted": submitted.strftime("%Y-%m-%d %H:%M:%S") if submitted else "",
        "elapsed": _duration(record.get("elapsed_ms")),
        "rows": "" if record.get("output_rows") is None else f"{record['output_rows']:,}",
        "sql": sql if len(sql) <= 120 else sql[:117] + "…",
        "error": record.get("error") or "",
        "run_by": run_by(record),
    }


def run_by(record: Mapping[str, Any]) -> str:
    """Who ran a query on its user's behalf, as the history shows it ("" if they did)."""
    admin = record.get("acting_admin")
    return f"run by {admin} (admin)" if admin else ""


def page_access(record: Mapping[str, Any]) -> dict[str, str]:
    """An admin's view of a user's account, for that user's history page."""
    return {
        "at": record["at"].strftime("%Y-%m-%d %H:%M:%S"),
        "admin": record["admin"],
        "what": record["what"],
    }


def page_detail(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of every audited field, for the query page."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return iso(value) or ""
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return str(value)

    return [
        ("State", text(record["state"])),
        ("Sent by the client as", text(record.get("client_sql"))),
        ("User", text(record["user"])),
        ("Run by admin", text(record.get("acting_admin"))),
        ("Groups", text(record.get("groups"))),
        (
            "Authenticated as",
            f"{text(record.get('principal'))} (via {text(record.get('auth_via'))})",
        ),
        ("Cluster", text(record.get("cluster"))),
        ("Routing group", text(record.get("routing_group"))),
        ("Routing reason", text(record.get("routing_reason"))),
        ("Source", text(record.get("source"))),
        ("Client tags", text(record.get("client_tags"))),
        ("Admission", text(record.get("admission_note"))),
        ("Submitted", text(record.get("submitted_at"))),
        ("Finished", text(record.get("finished_at"))),
        ("Elapsed", _duration(record.get("elapsed_ms"))),
        ("Queued", _duration(record.get("queued_ms"))),
        ("CPU time", _duration(record.get("cpu_ms"))),
        ("Output rows", text(record.get("output_rows"))),
        ("Processed rows", text(record.get("processed_rows"))),
        ("Processed bytes", _size(record.get("processed_bytes"))),
        ("Physical input", _size(record.get("physical_bytes"))),
        ("Peak memory", _size(record.get("peak_memory_bytes"))),
        (
            "Error",
            " ".join(filter(None, [text(record.get("error_name")), text(record.get("error"))])),
        ),
        ("Stopped because", text(record.get("stop_reason"))),
    ]
