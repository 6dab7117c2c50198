"""``%sql history [N]`` and ``%sql clusters``: the service's REST API, as tables.

The DataHub service serves, with the same hub token the queries use (asked through
:class:`~datahub.extensions.service_client.ServiceClient`):

* ``GET {api}/queries?user=me&limit=N`` →
  ``{"queries": [{"query_id", "user", "acting_admin", "cluster", "state", "sql",
  "submitted", "finished", "elapsed_ms", "rows", "error", "source"}]}``, newest first
  (times ISO-8601 UTC; ``acting_admin`` names the admin who ran it on the user's behalf);
* ``GET {api}/clusters`` →
  ``{"clusters": [{"name", "engine", "routing_group", "healthy", "draining", "running",
  "queued"}]}``.

:func:`fetch_history` and :func:`fetch_clusters` ask the service; the rest turns the
JSON into typed DataFrames and renders them as a compact HTML table with a plain-text
twin.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

from datahub.extensions.progress import human_seconds
from datahub.extensions.service_client import ServiceClient

__all__ = [
    "clusters_frame",
    "fetch_clusters",
    "fetch_history",
    "history_frame",
    "render_clusters",
    "render_history",
]

HISTORY_COLUMNS = [
    "submitted",
    "state",
    "elapsed",
    "rows",
    "cluster",
    "sql",
    "error",
    "query_id",
    "finished",
    "user",
    "acting_admin",
    "source",
]
CLUSTER_COLUMNS = ["name", "engine", "routing_group", "healthy", "draining", "running", "queued"]
#: Characters of SQL shown per row; the whole statement is in the DataFrame (and tooltip).
SQL_PREVIEW = 80


def fetch_history(client: ServiceClient, limit: int) -> pd.DataFrame:
    """My most recent ``limit`` queries, newest first."""
    return history_frame([q for q in client.queries(limit) if isinstance(q, dict)])


def fetch_clusters(client: ServiceClient) -> pd.DataFrame:
    """The gateway's clusters and their health."""
    return clusters_frame([c for c in client.clusters() if isinstance(c, dict)])


def _times(values: Sequence[Any]) -> Any:
    series = pd.Series(values, dtype=object)
    return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")


def history_frame(queries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Typed DataFrame of history entries (as the API sends them), in the given order."""
    get = lambda key: [q.get(key) for q in queries]  # noqa: E731
    elapsed = pd.to_timedelta(pd.Series(get("elapsed_ms"), dtype="Float64"), unit="ms")
    df = pd.DataFrame(
        {
            "submitted": _times(get("submitted")),
            "state": pd.array(get("state"), dtype="string"),
            "elapsed": elapsed.to_numpy(),
            "rows": pd.array(get("rows"), dtype="Int64"),
            "cluster": pd.array(get("cluster"), dtype="string"),
            "sql": pd.array(get("sql"), dtype="string"),
            "error": pd.array(get("error"), dtype="string"),
            "query_id": pd.array(get("query_id"), dtype="string"),
            "finished": _times(get("finished")),
            "user": pd.array(get("user"), dtype="string"),
            "acting_admin": pd.array(get("acting_admin"), dtype="string"),
            "source": pd.array(get("source"), dtype="string"),
        },
        columns=HISTORY_COLUMNS,
    )
    return df


def clusters_frame(clusters: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Typed DataFrame of the gateway's clusters."""
    get = lambda key: [c.get(key) for c in clusters]  # noqa: E731
    return pd.DataFrame(
        {
            "name": pd.array(get("name"), dtype="string"),
            "engine": pd.array(get("engine"), dtype="string"),
            "routing_group": pd.array(get("routing_group"), dtype="string"),
            "healthy": pd.array(get("healthy"), dtype="boolean"),
            "draining": pd.array(get("draining"), dtype="boolean"),
            "running": pd.array(get("running"), dtype="Int64"),
            "queued": pd.array(get("queued"), dtype="Int64"),
        },
        columns=CLUSTER_COLUMNS,
    )


# --------------------------------------------------------------------------- rendering


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def _time(v: Any) -> str:
    return "" if _missing(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")


def _duration(v: Any) -> str:
    return "" if _missing(v) else human_seconds(pd.Timedelta(v).total_seconds())


def _count(v: Any) -> str:
    return "" if _missing(v) else f"{int(v):,}"


def _text(v: Any) -> str:
    return "" if _missing(v) else str(v)


def sql_preview(sql: Any, width: int = SQL_PREVIEW) -> str:
    """The statement on one line, cut to ``width`` characters."""
    one_line = " ".join(_text(sql).split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


_STATE_COLOURS = {"FINISHED": "#1a7f37", "FAILED": "#cf222e"}


def _table(
    headers: list[str],
    rows: list[list[str]],
    titles: list[list[str | None]] | None = None,
    styles: list[list[str | None]] | None = None,
    caption: str = "",
) -> dict[str, str]:
    """A compact HTML table and its aligned plain-text twin."""
    head = "".join(f'<th style="text-align:left">{html.escape(h)}</th>' for h in headers)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            title = titles[r][c] if titles else None
            style = styles[r][c] if styles else None
            attrs = ' style="text-align:left' + (f";{style}" if style else "") + '"'
            if title and title != value:
                attrs += f' title="{html.escape(title)}"'
            cells.append(f"<td{attrs}>{html.escape(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    table = (
        f'<table class="datahub-sql-table">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if caption:
        lines.insert(0, caption)
    return {"text/html": table, "text/plain": "\n".join(lines)}


def run_by_note(acting_admin: Any) -> str:
    """Marks a query an admin ran on the user's behalf (see ``%%sql --as``)."""
    return "" if _missing(acting_admin) else f"[run by {acting_admin} (admin)] "


def render_history(df: pd.DataFrame) -> dict[str, str]:
    """My recent queries as a compact table: when, state, time, rows, cluster, SQL."""
    if len(df) == 0:
        return {"text/plain": "No queries yet.", "text/html": "<p>No queries yet.</p>"}
    headers = ["submitted (UTC)", "state", "time", "rows", "cluster", "query", "error"]
    rows, titles, styles = [], [], []
    for q in df.itertuples(index=False):
        state = _text(q.state)
        rows.append(
            [
                _time(q.submitted),
                state,
                _duration(q.elapsed),
                _count(q.rows),
                _text(q.cluster),
                run_by_note(q.acting_admin) + sql_preview(q.sql),
                sql_preview(q.error, 60),
            ]
        )
        titles.append([None, None, None, None, None, _text(q.sql), _text(q.error)])
        colour = _STATE_COLOURS.get(state)
        styles.append(
            [
                None,
                f"color:{colour}" if colour else None,
                None,
                None,
                None,
                "font-family:monospace",
                None,
            ]
        )
    # Query ids are long; they are in the DataFrame, and here as tooltips of the state.
    for i, q in enumerate(df.itertuples(index=False)):
        titles[i][1] = f"query {_text(q.query_id)}"
    return _table(headers, rows, titles, styles, caption=f"Your last {len(df)} queries")


def render_clusters(df: pd.DataFrame) -> dict[str, str]:
    """The clusters behind the gateway: engine, routing group, health, load."""
    if len(df) == 0:
        return {"text/plain": "No clusters.", "text/html": "<p>No clusters.</p>"}
    headers = ["cluster", "engine", "routing group", "health", "running", "queued"]
    rows, styles = [], []
    for c in df.itertuples(index=False):
        healthy = bool(c.healthy) if not _missing(c.healthy) else False
        draining = bool(c.draining) if not _missing(c.draining) else False
        health = ("✔ healthy" if healthy else "✖ unhealthy") + (" · draining" if draining else "")
        rows.append(
            [
                _text(c.name),
                _text(c.engine),
                _text(c.routing_group),
                health,
                _count(c.running),
                _count(c.queued),
            ]
        )
        colour = "#cf222e" if not healthy else ("#9a6700" if draining else "#1a7f37")
        styles.append([None, None, None, f"color:{colour}", None, None])
    return _table(headers, rows, styles=styles)
