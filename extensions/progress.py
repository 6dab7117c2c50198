"""Live query progress for the ``%%sql`` magic.

:func:`format_progress` and :func:`format_summary` are pure; :class:`Progress` shows them:
in Jupyter one output updated in place (``display_id``), in a terminal a plain line on
stderr when the state changes or every few seconds, so logs stay readable.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from IPython.display import display

__all__ = ["Progress", "format_progress", "format_summary", "human_bytes", "human_count"]


def human_count(n: float) -> str:
    """``1234567`` → ``"1.23M"``; small numbers stay exact."""
    n = float(n)
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{int(n)}"


def human_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def human_seconds(s: float) -> str:
    """``0.42`` → ``"0.42 s"``, ``75`` → ``"1 min 15 s"``."""
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec} s"


def _percent(stats: dict[str, Any]) -> float | None:
    if stats.get("progressPercentage") is not None:
        return float(stats["progressPercentage"])
    total = stats.get("totalSplits") or 0
    if total:
        return 100.0 * (stats.get("completedSplits") or 0) / total
    return None


def format_progress(stats: dict[str, Any], elapsed: float) -> str:
    """One line of live progress from Trino's query stats."""
    parts = [str(stats.get("state", "QUEUED"))]
    pct = _percent(stats)
    if pct is not None:
        parts.append(
            f"{pct:.0f}% of {stats.get('totalSplits', 0):,} splits"
            if stats.get("totalSplits")
            else f"{pct:.0f}%"
        )
    parts.append(f"{human_count(stats.get('processedRows') or 0)} rows")
    parts.append(human_bytes(stats.get("processedBytes") or 0))
    parts.append(human_seconds(elapsed))
    return " · ".join(parts)


def format_summary(
    rows: int, elapsed: float, query_id: str | None, stats: dict[str, Any] | None = None
) -> str:
    """The one line that replaces the progress when the query is done."""
    stats = stats or {}
    parts = [f"{rows:,} row{'s' if rows != 1 else ''}", human_seconds(elapsed)]
    if stats.get("processedBytes"):
        parts.append(f"{human_bytes(stats['processedBytes'])} scanned")
    if query_id:
        parts.append(f"query {query_id}")
    return "✔ " + " · ".join(parts)


class Progress:
    """Shows progress for one query; call it with stats (it is a ``stats_callback``)."""

    #: Seconds between updates: often enough to feel live, rarely enough to cost nothing.
    jupyter_interval = 0.25
    terminal_interval = 5.0
    terminal_quiet = 2.0

    def __init__(self, jupyter: bool, enabled: bool = True):
        self.jupyter = jupyter
        self.enabled = enabled
        self.start = time.perf_counter()
        self._last = 0.0
        self._last_state: str | None = None
        self._handle: Any = None

    def __call__(self, stats: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        state = stats.get("state")
        if self.jupyter:
            if state == self._last_state and now - self._last < self.jupyter_interval:
                return
        elif now - self.start < self.terminal_quiet or now - self._last < self.terminal_interval:
            # A terminal keeps every line: stay quiet for quick queries, then report rarely.
            return
        self._last, self._last_state = now, state
        self._show(format_progress(stats, now - self.start))

    def _show(self, line: str) -> None:
        if self.jupyter:
            bundle = {
                "text/plain": line,
                "text/html": (
                    f'<div class="datahub-sql-progress"><code>{html.escape(line)}</code></div>'
                ),
            }
            if self._handle is None:
                self._handle = display(bundle, raw=True, display_id=True)
            else:
                self._handle.update(bundle, raw=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def done(self, summary: str) -> None:
        """Replace the progress by the summary line (or print it in a terminal)."""
        if not self.enabled:
            return
        self._show(summary)

    def clear(self) -> None:
        """Remove the progress output (the query failed or was cancelled)."""
        if self.jupyter and self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
