"""Trino's query statistics turned into `QueryStats`: pure functions, no I/O.

Two sources: the ``stats`` object of every result page (numbers in milliseconds and
bytes), and Trino's query info (``GET /v1/query/{id}``), whose ``queryStats`` writes
durations and sizes as strings (``"128.30ms"``, ``"2734B"``, ``"1.5GB"``) and is the only
place with the number of output rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..query import QueryState, QueryStats

#: Trino states of a query that has not ended, by what they mean for load.
#: (WAITING_FOR_PREREQUISITES is PrestoDB's state before QUEUED.)
QUEUED_STATES = frozenset(
    {"QUEUED", "WAITING_FOR_RESOURCES", "DISPATCHING", "WAITING_FOR_PREREQUISITES"}
)
RUNNING_STATES = frozenset({"PLANNING", "STARTING", "RUNNING", "FINISHING"})
#: Trino's own final states.
TRINO_FINAL_STATES = frozenset({"FINISHED", "FAILED"})

_DURATION_UNITS = {
    "ns": 1e-6,
    "us": 1e-3,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
}
_SIZE_UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "PB": 1 << 50}
_QUANTITY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration_ms(value: Any) -> int:
    """Milliseconds in an airlift Duration (``"2.56s"``, ``"351.44us"``); 0 if unparsable."""
    if isinstance(value, int | float):
        return int(value)
    match = _QUANTITY_RE.match(str(value or ""))
    if not match or match.group(2) not in _DURATION_UNITS:
        return 0
    return round(float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_data_size(value: Any) -> int:
    """Bytes in an airlift DataSize (``"2734B"``, ``"1.50MB"``: powers of 1024); 0 if
    unparsable."""
    if isinstance(value, int | float):
        return int(value)
    match = _QUANTITY_RE.match(str(value or ""))
    if not match or match.group(2) not in _SIZE_UNITS:
        return 0
    return round(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def final_state(trino_state: str | None, error_name: str | None) -> str:
    """The audit's final state for Trino's: a cancelled query is CANCELED, not FAILED."""
    if error_name == "USER_CANCELED":
        return QueryState.CANCELED
    if trino_state == "FINISHED" and not error_name:
        return QueryState.FINISHED
    return QueryState.FAILED


def stats_from_page(
    stats: Mapping[str, Any],
    error: Mapping[str, Any] | None = None,
    *,
    output_rows: int | None = None,
) -> QueryStats:
    """`QueryStats` from a result page's ``stats`` (and ``error``, on a failed query);
    *output_rows* only for a spooled query (counted from its segments)."""
    error = error or {}
    return QueryStats(
        state=str(stats.get("state") or "UNKNOWN"),
        elapsed_ms=_int(stats.get("elapsedTimeMillis")),
        queued_ms=_int(stats.get("queuedTimeMillis")),
        cpu_ms=_int(stats.get("cpuTimeMillis")),
        wall_ms=_int(stats.get("wallTimeMillis")),
        processed_rows=_int(stats.get("processedRows")),
        processed_bytes=_int(stats.get("processedBytes")),
        physical_bytes=_int(stats.get("physicalInputBytes")),
        peak_memory_bytes=_int(stats.get("peakMemoryBytes")),
        output_rows=output_rows,
        error_name=error.get("errorName"),
        error_type=error.get("errorType"),
        error=error.get("message"),
        raw=stats,
    )


def stats_from_query_info(info: Mapping[str, Any]) -> QueryStats:
    """`QueryStats` from Trino's query info (``GET /v1/query/{id}``)."""
    qs = info.get("queryStats") or {}
    error_code = info.get("errorCode") or {}
    failure = info.get("failureInfo") or {}
    return QueryStats(
        state=str(info.get("state") or "UNKNOWN"),
        elapsed_ms=parse_duration_ms(qs.get("elapsedTime")),
        queued_ms=parse_duration_ms(qs.get("queuedTime")),
        cpu_ms=parse_duration_ms(qs.get("totalCpuTime")),
        wall_ms=parse_duration_ms(qs.get("totalScheduledTime")),
        # The page's processedRows/Bytes are Trino's raw input, as here.
        processed_rows=_int(qs.get("rawInputPositions")),
        processed_bytes=parse_data_size(qs.get("rawInputDataSize")),
        physical_bytes=parse_data_size(qs.get("physicalInputDataSize")),
        peak_memory_bytes=parse_data_size(
            qs.get("peakUserMemoryReservation") or qs.get("peakTotalMemoryReservation")
        ),
        output_rows=_int(qs.get("outputPositions")) if "outputPositions" in qs else None,
        error_name=error_code.get("name"),
        error_type=error_code.get("type") or info.get("errorType"),
        error=failure.get("message"),
        raw=qs,
    )


def merge_final(page: QueryStats | None, info: QueryStats | None) -> QueryStats | None:
    """The best final statistics from the last page and the query info (either may be
    missing): the page's numbers, completed with the info's output rows and errors (a
    spooled query's output rows are the page's: Trino's count is of its segments)."""
    if info is None:
        return page
    if page is None:
        return info
    return QueryStats(
        state=info.state if info.state in TRINO_FINAL_STATES else page.state,
        elapsed_ms=max(page.elapsed_ms, info.elapsed_ms),
        queued_ms=page.queued_ms or info.queued_ms,
        cpu_ms=max(page.cpu_ms, info.cpu_ms),
        wall_ms=max(page.wall_ms, info.wall_ms),
        processed_rows=max(page.processed_rows, info.processed_rows),
        processed_bytes=max(page.processed_bytes, info.processed_bytes),
        physical_bytes=max(page.physical_bytes, info.physical_bytes),
        peak_memory_bytes=max(page.peak_memory_bytes, info.peak_memory_bytes),
        output_rows=info.output_rows if page.output_rows is None else page.output_rows,
        error_name=page.error_name or info.error_name,
        error_type=page.error_type or info.error_type,
        error=page.error or info.error,
        raw=page.raw,
    )


def count_queries(infos: Any) -> tuple[int, int]:
    """(running, queued) queries in Trino's query list (``GET /v1/query``)."""
    running = queued = 0
    for info in infos if isinstance(infos, list) else ():
        state = info.get("state") if isinstance(info, dict) else None
        if state in RUNNING_STATES:
            running += 1
        elif state in QUEUED_STATES:
            queued += 1
    return running, queued
