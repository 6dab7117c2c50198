"""Crashes and lost queries over time, per cluster, for the incidents page: counts per
day and the Plotly figures drawing them. Pure functions, no I/O.

Figures are plain ``{"data": [...], "layout": {...}}`` dicts, drawn by the same static
script as the usage page's (``static/quotas/usage-charts.js``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from .crashes import Incident


def daily_counts(
    incidents: Iterable[Incident],
    lost: Iterable[tuple[str, dt.datetime]],
    first_day: dt.date,
    last_day: dt.date,
) -> dict[str, Any]:
    """Incidents begun and queries lost per UTC day and cluster, every day of the range
    (zeros included); clusters sorted by name. ``lost`` holds (cluster, lost at)."""
    days = [first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    index = {day: i for i, day in enumerate(days)}
    per_cluster: dict[str, dict[str, list[int]]] = {}

    def count(kind: str, cluster: str, at: dt.datetime) -> None:
        day = at.astimezone(dt.UTC).date()
        if day in index:
            series = per_cluster.setdefault(
                cluster, {"incidents": [0] * len(days), "lost": [0] * len(days)}
            )
            series[kind][index[day]] += 1

    for incident in incidents:
        count("incidents", incident.cluster, incident.started_at)
    for cluster, at in lost:
        count("lost", cluster, at)
    return {
        "days": [day.isoformat() for day in days],
        "clusters": {name: per_cluster[name] for name in sorted(per_cluster)},
    }


def figures(counts: dict[str, Any]) -> list[dict[str, Any]]:
    """Two stacked bar charts over the days, one bar colour per cluster: incidents, then
    lost queries."""
    result = []
    for key, title in (("incidents", "Crash incidents per day"), ("lost", "Lost queries per day")):
        traces = [
            {"type": "bar", "name": cluster, "x": counts["days"], "y": series[key]}
            for cluster, series in counts["clusters"].items()
        ]
        per_day = [sum(day) for day in zip(*(t["y"] for t in traces), strict=True)]
        yaxis: dict[str, Any] = {"title": {"text": key.capitalize()}, "rangemode": "tozero"}
        if max(per_day, default=0) <= 10:
            yaxis["dtick"] = 1  # counts: no ticks between whole numbers
        result.append(
            {
                "data": traces,
                "layout": {
                    "title": {"text": title},
                    "barmode": "stack",
                    "height": 300,
                    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
                    "xaxis": {"type": "date"},
                    "yaxis": yaxis,
                    "showlegend": True,
                    "legend": {"title": {"text": "Cluster"}},
                },
            }
        )
    return result
