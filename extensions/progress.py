"""Live query progress for the ``%%sql`` magic.

:func:`format_progress` and :func:`format_summary` are pure; :class:`Progress` shows them:

* in Jupyter, one output (``display_id``) updated in place — a bar and the line — which
  becomes the summary line when the query ends;
* in a terminal (a TTY), one line rewritten in place with ``\\r``, replaced by the summary;
* anywhere else (logs, pipes), a plain line when the query has run a while and then every
  few seconds, so logs stay readable, and the summary at the end.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any, TextIO

from IPython.display import display

__all__ = [
    "Progress",
    "format_progress",
    "format_summary",
    "human_bytes",
    "human_count",
    "human_seconds",
]


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
    if m >= 60:
        h, m = divmod(m, 60)
        return f"{h} h {m} min"
    return f"{m} min {sec} s"


def percent_done(stats: dict[str, Any]) -> float | None:
    """Trino's progress in percent (its own estimate, else completed/total splits)."""
    if stats.get("progressPercentage") is not None:
        return float(stats["progressPercentage"])
    total = stats.get("totalSplits") or 0
    if total:
        return 100.0 * (stats.get("completedSplits") or 0) / total
    return None


def _where(stats: dict[str, Any]) -> list[str]:
    parts = []
    if stats.get("cluster"):
        parts.append(f"cluster {stats['cluster']}")
    if stats.get("queryId"):
        parts.append(f"query {stats['queryId']}")
    return parts


def format_progress(stats: dict[str, Any], elapsed: float) -> str:
    """One line of live progress from Trino's query stats (plus ``cluster``/``queryId``)."""
    if stats.get("state") == "QUEUED" and stats.get("datahubQueueReason"):
        # Waiting in the user's DataHub quota queue: the gateway says why.
        return " · ".join([str(stats["datahubQueueReason"]), human_seconds(elapsed)])
    parts = [str(stats.get("state") or "QUEUED")]
    pct = percent_done(stats)
    if pct is not None:
        total = stats.get("totalSplits")
        parts.append(f"{pct:.0f}% of {total:,} splits" if total else f"{pct:.0f}%")
    parts.append(f"{human_count(stats.get('processedRows') or 0)} rows")
    parts.append(human_bytes(stats.get("processedBytes") or 0))
    parts.append(human_seconds(elapsed))
    parts.extend(_where(stats))
    return " · ".join(parts)


def format_summary(
    rows: int | None,
    elapsed: float,
    query_id: str | None,
    stats: dict[str, Any] | None = None,
    cluster: str | None = None,
    what: str | None = None,
) -> str:
    """The one line that replaces the progress when the query is done."""
    stats = stats or {}
    parts = [what] if what else []
    if rows is not None:
        parts.append(f"{rows:,} row{'s' if rows != 1 else ''}")
    parts.append(human_seconds(elapsed))
    if stats.get("processedBytes"):
        parts.append(f"{human_bytes(stats['processedBytes'])} scanned")
    parts.extend(_where({"cluster": cluster, "queryId": query_id}))
    return "✔ " + " · ".join(parts)


class Progress:
    """Shows progress for one query; call it with stats (it is a ``stats_callback``)."""

    #: Seconds between updates: often enough to feel live, rarely enough to cost nothing.
    jupyter_interval = 0.25
    tty_interval = 0.25
    #: A terminal that is not a TTY keeps every line: stay quiet for quick queries, then
    #: report rarely.
    log_quiet = 2.0
    log_interval = 5.0

    def __init__(self, jupyter: bool, enabled: bool = True, stream: TextIO | None = None):
        self.jupyter = jupyter
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = not jupyter and _isatty(self.stream)
        self.start = time.perf_counter()
        self._last = 0.0
        self._last_state: str | None = None
        self._handle: Any = None
        self._tty_shown = False

    def __call__(self, stats: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        state = stats.get("state")
        if self.jupyter or self.tty:
            interval = self.jupyter_interval if self.jupyter else self.tty_interval
            if state == self._last_state and now - self._last < interval:
                return
        elif now - self.start < self.log_quiet or now - self._last < self.log_interval:
            return
        self._last, self._last_state = now, state
        self._show(format_progress(stats, now - self.start), percent_done(stats))

    def _show(self, line: str, pct: float | None = None, final: bool = False) -> None:
        if self.jupyter:
            bar = ""
            if pct is not None and not final:
                bar = f'<progress value="{pct:.0f}" max="100" style="width:12em"></progress> '
            bundle = {
                "text/plain": line,
                "text/html": (
                    f'<div class="datahub-sql-progress">{bar}<code>{html.escape(line)}</code></div>'
                ),
            }
            if self._handle is None:
                self._handle = display(bundle, raw=True, display_id=True)
            else:
                self._handle.update(bundle, raw=True)
        elif self.tty:
            # Rewrite the line in place; the summary ends it.
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
            self.stream.flush()
            self._tty_shown = not final
        else:
            print(line, file=self.stream, flush=True)

    def done(self, summary: str) -> None:
        """Replace the progress by the summary line (or print it in a terminal)."""
        if not self.enabled:
            return
        self._show(summary, final=True)

    def clear(self) -> None:
        """Remove the progress output (the query failed or was cancelled)."""
        if self.jupyter and self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
        elif self.tty and self._tty_shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._tty_shown = False


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
