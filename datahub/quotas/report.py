"""Usage against limits, line by line, as people read it (API, pages, CLI, ``%sql quota``).
Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .policy import LIMITS, format_bytes, format_limit, format_seconds

#: Limits shown with today's usage: (limit, usage key, factor from the stored unit).
USED = {
    "concurrent_queries": ("running", 1),
    "queued_queries": ("queued", 1),
    "queries_per_day": ("queries", 1),
    "cpu_seconds_per_day": ("cpu_ms", 1 / 1000),
    "bytes_scanned_per_day": ("bytes_scanned", 1),
}


def _format_used(limit: str, value: float) -> str:
    kind = LIMITS[limit].kind
    if kind == "bytes":
        return format_bytes(value)
    if kind == "seconds":
        return format_seconds(value)
    return f"{int(value):,}"


def usage_lines(
    limits: Mapping[str, Any],
    usage: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One line per limit: label, what is used (for limits that count something), the
    limit, both as text, the share used in percent (None when unlimited or not
    counted) and the policy the limit comes from. *limits* and *sources* as in
    ``EffectivePolicy``'s JSON; *usage* as from `storage.user_usage`."""
    lines = []
    for name, spec in LIMITS.items():
        allowed = limits.get(name)
        if isinstance(allowed, list):
            allowed = tuple(allowed)
        used = None
        if name in USED:
            key, factor = USED[name]
            used = float(usage.get(key) or 0) * factor
        percent = None
        if used is not None and allowed is not None:
            percent = 100.0 if allowed == 0 else min(100.0, round(100 * used / allowed, 1))
        lines.append(
            {
                "limit": name,
                "label": spec.label,
                "applies": spec.applies,
                "used": used,
                "allowed": list(allowed) if isinstance(allowed, tuple) else allowed,
                "used_text": None if used is None else _format_used(name, used),
                "allowed_text": format_limit(name, allowed),
                "percent": percent,
                "source": (sources or {}).get(name),
            }
        )
    return lines
