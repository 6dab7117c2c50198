"""The crash incidents page and API, for DataHub administrators only (the token's admin
scope, `admin_only`):

- ``{prefix}admin/incidents``: crash incidents and lost queries per day and cluster
  (Plotly), and the incidents with their lost queries and users;
- ``GET {prefix}api/incidents``: the same incidents as JSON.

Both take ``days`` (the incidents begun in the last so many days, ongoing ones always;
default 30) and ``cluster``. They read the store, which the crash watcher
(`datahub.events.watch`) fills, so any service process serves them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tornado import web

from ..web.base import APIHandler, BaseHandler, PageHandler, admin_only
from . import crash_charts, incidents

DEFAULT_DAYS = 30
MOST_DAYS = 3660


class IncidentsHandler(BaseHandler):
    """Common to the page and the API: the arguments and the store reads."""

    def days(self) -> int:
        raw = self.get_argument("days", str(DEFAULT_DAYS))
        if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= MOST_DAYS:
            raise web.HTTPError(400, f"days must be a whole number from 1 to {MOST_DAYS}.")
        return int(raw)

    def cluster(self) -> str | None:
        return self.get_argument("cluster", "").strip() or None

    async def incidents(self, days: int) -> tuple[dt.date, list[incidents.Incident]]:
        """The first day shown, and the incidents begun since (or ongoing)."""
        first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
        since = dt.datetime.combine(first, dt.time(), dt.UTC)
        found = await self.store.run_in_transaction(incidents.recent, since, self.cluster())
        return first, found


class IncidentsAPI(IncidentsHandler, APIHandler):
    """``GET {prefix}api/incidents``."""

    @admin_only
    async def get(self) -> None:
        _, found = await self.incidents(self.days())
        self.write_json({"incidents": [incidents.incident_json(i) for i in found]})


class IncidentsPage(IncidentsHandler, PageHandler):
    """``{prefix}admin/incidents``."""

    @admin_only
    async def get(self) -> None:
        days = self.days()
        first, found = await self.incidents(days)
        since = dt.datetime.combine(first, dt.time(), dt.UTC)
        lost = await self.store.run_in_transaction(incidents.lost_since, since)
        cluster = self.cluster()
        if cluster:
            lost = [(name, at) for name, at in lost if name == cluster]
        counts = crash_charts.daily_counts(found, lost, first, dt.datetime.now(dt.UTC).date())
        self.render_page(
            "incidents.html",
            active="admin/incidents",
            incidents=found,
            figures=crash_charts.figures(counts),
            days=days,
            cluster=cluster or "",
            clusters=sorted(self.settings["datahub_clusters"]),
            lost_total=len(lost),
            when=_when,
        )


def _when(value: dt.datetime | None) -> str:
    """A time as the page shows it (UTC, to the second)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def default_handlers(prefix: str) -> list[tuple[str, Any]]:
    return [
        (prefix + "admin/incidents", IncidentsPage),
        (prefix + "api/incidents", IncidentsAPI),
    ]
