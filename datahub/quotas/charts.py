"""Usage over time for the admin pages: totals per day, top users and groups, and the
Plotly figures drawing them. Pure functions, no I/O.

Figures are plain ``{"data": [...], "layout": {...}}`` dicts (as in `datahub.charts`); the
usage page puts them in a JSON data block that a static script hands to plotly.js.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

#: The counters charted, with their axis titles and the factor from stored units.
SERIES = (
    ("queries", "Queries", 1),
    ("cpu_ms", "CPU seconds", 1 / 1000),
    ("bytes_scanned", "GB scanned", 1 / 1e9),
)


def summarize(
    rows: Iterable[Mapping[str, Any]], first_day: dt.date, last_day: dt.date, top: int = 10
) -> dict[str, Any]:
    """Totals per day (every day in the range, zeros included) and the top users and
    groups of the range by queries, from `storage.usage_history` rows.

    A user's usage counts towards each of their groups (as last seen), so group totals
    may add up to more than the overall total.
    """
    n_days = (last_day - first_day).days + 1
    days = [first_day + dt.timedelta(days=i) for i in range(n_days)]
    counters = ("queries", "cpu_ms", "bytes_scanned", "refused", "cancelled")
    per_day = {day: dict.fromkeys(counters, 0) for day in days}
    users: dict[str, dict[str, int]] = {}
    groups: dict[str, dict[str, int]] = {}
    for row in rows:
        day = row["day"]
        if day not in per_day:
            continue
        for key in counters:
            per_day[day][key] += row[key]
            users.setdefault(row["user"], dict.fromkeys(counters, 0))[key] += row[key]
            for group in row.get("groups") or ():
                groups.setdefault(group, dict.fromkeys(counters, 0))[key] += row[key]

    def ranked(table: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
        order = sorted(table.items(), key=lambda kv: (-kv[1]["queries"], -kv[1]["cpu_ms"], kv[0]))
        return [{"name": name, **values} for name, values in order[:top]]

    return {
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "days": [{"day": day.isoformat(), **per_day[day]} for day in days],
        "top_users": ranked(users),
        "top_groups": ranked(groups),
    }


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "height": 300,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        **extra,
    }


def figures(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The usage page's charts: one bar chart per counter over the days (refusals and
    quota cancellations overlaid on queries), then the top users and groups."""
    days = [d["day"] for d in summary["days"]]
    result = []
    for key, title, factor in SERIES:
        traces = [
            {
                "type": "bar",
                "name": title,
                "x": days,
                "y": [round(d[key] * factor, 3) for d in summary["days"]],
            }
        ]
        if key == "queries":
            for extra, label in (("refused", "Refused"), ("cancelled", "Cancelled by quota")):
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": label,
                        "x": days,
                        "y": [d[extra] for d in summary["days"]],
                    }
                )
        result.append(
            {
                "data": traces,
                "layout": _layout(
                    f"{title} per day",
                    xaxis={"type": "date"},
                    yaxis={"title": {"text": title}, "rangemode": "tozero"},
                    showlegend=key == "queries",
                ),
            }
        )
    for table, title in (("top_users", "Top users"), ("top_groups", "Top groups")):
        rows = list(reversed(summary[table]))  # largest at the top of a horizontal bar
        result.append(
            {
                "data": [
                    {
                        "type": "bar",
                        "orientation": "h",
                        "name": "Queries",
                        "x": [r["queries"] for r in rows],
                        "y": [r["name"] for r in rows],
                        "customdata": [
                            [round(r["cpu_ms"] / 1000, 1), round(r["bytes_scanned"] / 1e9, 3)]
                            for r in rows
                        ],
                        "hovertemplate": (
                            "%{y}: %{x} queries, %{customdata[0]} CPU s, "
                            "%{customdata[1]} GB<extra></extra>"
                        ),
                    }
                ],
                "layout": _layout(
                    f"{title} by queries ({summary['first_day']} to {summary['last_day']})",
                    height=max(200, 40 + 28 * len(rows)),
                    margin={"l": 120, "r": 20, "t": 50, "b": 40},
                    xaxis={"title": {"text": "Queries"}, "rangemode": "tozero"},
                ),
            }
        )
    return result
