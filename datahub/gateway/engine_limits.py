"""Per-query limits Trino enforces itself, as session properties on every forwarded query.

A limit the engine enforces holds while the query runs, whether or not its client polls:
Trino fails a query past ``query_max_cpu_time`` with ``EXCEEDED_CPU_LIMIT`` even if nobody
ever reads its results. The gateway sets these properties from the admission's
`EngineLimits` in the forwarded ``X-Trino-Session`` header, and a client can only lower
them: its own values for these properties are replaced by the stricter of its value and
the limit.
(A session value only takes effect up to the cluster's own maximum, ``query.max-cpu-time``
and friends in its config.properties.)

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

SESSION_HEADER = "X-Trino-Session"

#: Each limited session property, and the `EngineLimits` field that bounds it. Trino's
#: run time includes queueing and planning; its execution time is part of it, so the
#: run-time limit bounds both.
LIMITED_PROPERTIES: dict[str, str] = {
    "query_max_cpu_time": "cpu_seconds",
    "query_max_run_time": "run_seconds",
    "query_max_execution_time": "run_seconds",
    "query_max_scan_physical_bytes": "scan_bytes",
}

#: The same limits under PrestoDB's session property names (``engine = "presto"``
#: clusters): Presto bounds the raw input bytes a query scans
#: (``query_max_scan_raw_input_bytes``, failing with
#: ``EXCEEDED_SCAN_RAW_BYTES_READ_LIMIT``, which the gateway's translation names
#: ``EXCEEDED_SCAN_LIMIT``); it has no ``query_max_scan_physical_bytes``.
PRESTO_LIMITED_PROPERTIES: dict[str, str] = {
    "query_max_cpu_time": "cpu_seconds",
    "query_max_run_time": "run_seconds",
    "query_max_execution_time": "run_seconds",
    "query_max_scan_raw_input_bytes": "scan_bytes",
}

#: The limited session properties of each engine.
LIMITED_PROPERTIES_BY_ENGINE: dict[str, dict[str, str]] = {
    "trino": LIMITED_PROPERTIES,
    "presto": PRESTO_LIMITED_PROPERTIES,
}

#: Trino's error for a query it stopped at each `EngineLimits` field's limit.
LIMIT_ERRORS: dict[str, str] = {
    "cpu_seconds": "EXCEEDED_CPU_LIMIT",
    "run_seconds": "EXCEEDED_TIME_LIMIT",
    "scan_bytes": "EXCEEDED_SCAN_LIMIT",
}

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)\s*$")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DATA_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB|PB)\s*$")
_DATA_SIZE_UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_DATA_SIZE_UNITS["PB"] = 1 << 50


def parse_duration(text: str) -> float | None:
    """Seconds of a Trino duration (``"2s"``, ``"1.5h"``, ``"500ms"``); None if it is not one."""
    match = _DURATION_RE.match(text)
    if not match:
        return None
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_data_size(text: str) -> float | None:
    """Bytes of a Trino data size (``"10GB"``, ``"512kB"``); None if it is not one."""
    match = _DATA_SIZE_RE.match(text)
    if not match:
        return None
    return float(match.group(1)) * _DATA_SIZE_UNITS[match.group(2)]


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True)
class EngineLimits:
    """Per-query limits for the engine to enforce; None means no limit from DataHub."""

    cpu_seconds: float | None = None
    run_seconds: float | None = None
    scan_bytes: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.cpu_seconds, self.run_seconds, self.scan_bytes))

    def stricter(self, other: EngineLimits) -> EngineLimits:
        """The lower of each limit of *self* and *other*."""
        return EngineLimits(
            cpu_seconds=_min(self.cpu_seconds, other.cpu_seconds),
            run_seconds=_min(self.run_seconds, other.run_seconds),
            scan_bytes=_min(self.scan_bytes, other.scan_bytes),
        )

    def bound(self, prop: str, engine: str = "trino") -> float | None:
        """The limit on session property *prop* (seconds or bytes), or None."""
        field = LIMITED_PROPERTIES_BY_ENGINE[engine].get(prop)
        return getattr(self, field) if field else None

    def to_data(self) -> dict[str, Any]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "run_seconds": self.run_seconds,
            "scan_bytes": self.scan_bytes,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> EngineLimits:
        data = data or {}
        return cls(
            cpu_seconds=data.get("cpu_seconds"),
            run_seconds=data.get("run_seconds"),
            scan_bytes=data.get("scan_bytes"),
        )


def _parse(prop: str, value: str) -> float | None:
    if prop.endswith("_bytes"):
        return parse_data_size(value)
    return parse_duration(value)


def _format(prop: str, amount: float) -> str:
    if prop.endswith("_bytes"):
        return f"{max(1, int(amount))}B"
    # Whole milliseconds: Trino's Duration accepts them, and rounds nothing away that matters.
    return f"{max(1, round(amount * 1000))}ms"


def session_entries(value: str) -> list[tuple[str, str]]:
    """The ``name=value`` entries of one ``X-Trino-Session`` header value, as sent (the
    value still URL-encoded), like Trino splits them."""
    entries = []
    for part in value.split(","):
        name, sep, raw = part.strip().partition("=")
        if sep and name.strip():
            entries.append((name.strip(), raw.strip()))
    return entries


def limited_session_headers(
    headers: Iterable[tuple[str, str]], limits: EngineLimits, engine: str = "trino"
) -> list[tuple[str, str]]:
    """*headers* (a client's, as forwarded) with *limits* in their session properties.

    Every client value of a limited property (`LIMITED_PROPERTIES`) is taken out; the
    property is set again to the stricter of the client's value and the limit, or to
    the client's value when DataHub sets no limit on it. A client value Trino could not
    read is dropped when there is a limit (Trino would refuse the query anyway). The
    other session properties pass as the client sent them, in one header at the place
    of the client's first. *engine* names the properties (`LIMITED_PROPERTIES_BY_ENGINE`).
    """
    properties = LIMITED_PROPERTIES_BY_ENGINE[engine]
    kept: list[str] = []
    client: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    position: int | None = None
    for name, value in headers:
        if name.lower() != SESSION_HEADER.lower():
            out.append((name, value))
            continue
        if position is None:
            position = len(out)
        for prop, raw in session_entries(value):
            if prop.lower() in properties:
                client[prop.lower()] = raw
            else:
                kept.append(f"{prop}={raw}")
    for prop in properties:
        bound = limits.bound(prop, engine)
        asked = client.get(prop)
        if bound is None:
            if asked is not None:
                kept.append(f"{prop}={asked}")
            continue
        wanted = _parse(prop, unquote(asked)) if asked is not None else None
        kept.append(f"{prop}={_format(prop, _min(wanted, bound))}")  # type: ignore[arg-type]
    if kept:
        out.insert(len(out) if position is None else position, (SESSION_HEADER, ",".join(kept)))
    return out


def _client_values(
    headers: Iterable[tuple[str, str]], properties: Mapping[str, str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == SESSION_HEADER.lower():
            for prop, raw in session_entries(value):
                if prop.lower() in properties:
                    values[prop.lower()] = unquote(raw)
    return values


def limit_messages_for(
    headers: Iterable[tuple[str, str]],
    limits: EngineLimits,
    messages: Mapping[str, str],
    engine: str = "trino",
) -> dict[str, str]:
    """Of *messages* (the client's sentence by Trino error name, see `LIMIT_ERRORS`),
    those for the limits of *limits* that stop the query as forwarded: the client's
    *headers* did not lower them (a client that set a lower limit itself hears Trino's
    own message when it stops the query)."""
    properties = LIMITED_PROPERTIES_BY_ENGINE[engine]
    asked = _client_values(headers, properties)
    kept: dict[str, str] = {}
    for field, error in LIMIT_ERRORS.items():
        bound = getattr(limits, field)
        if bound is None or error not in messages:
            continue
        props = [p for p, f in properties.items() if f == field]
        wanted = [_parse(p, asked[p]) for p in props if p in asked]
        if not any(w is not None and w < bound for w in wanted):
            kept[error] = messages[error]
    return kept
