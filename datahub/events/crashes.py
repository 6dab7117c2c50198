"""Crash detection from the query events (pure: no I/O): which queries each cluster lost,
grouped into incidents.

:class:`CrashDetector` is fed the query events in the topic's order and keeps, per
cluster, the queries submitted there without an end. The rules, each in one place here:

**Open.** A ``query_submitted`` event naming a cluster opens the query on it;
``query_finished``, ``query_refused`` and ``query_lost`` close it.

**Lost.** A query is lost when

1. the gateway says so (``query_lost``: its cluster forgot it, or stayed unreachable for
   the gateway's ``lost_after``); or
2. its cluster has an incident, it was submitted there before the incident began, and it
   is still open ``lost_grace`` seconds after the incident began: a crash takes every
   query running on the cluster with it. The gateway reports those it follows within
   its ``lost_after`` plus ``reconcile_interval``; this catches the others (their gateway
   died too, or its events never came). Marked lost at the incident's start; or
3. it has been open for ``max_open`` seconds (0: never). This is the only rule that can
   mark a query lost on a cluster without an incident, so it must be longer than any
   query may run (Trino's ``query.max-run-time``, the quotas' ``max_run_seconds``): a
   long-running query is never marked lost by it before then. Marked lost at
   submission + ``max_open``.

A query the detector marked lost (2, 3) that finishes after all was not lost: it leaves
its incident (an incident left without queries is dropped). A ``query_lost`` from the
gateway is final.

**Incidents.** A lost query joins its cluster's ongoing incident, or begins a new one
(``started_at`` = when it was lost). An incident ends when

- a query submitted to its cluster after the incident's last loss finishes there with
  state FINISHED: the cluster works again (``ended_at`` = that query's end,
  ``end_reason`` "recovered"); or
- no query was lost on the cluster for ``quiet_period`` seconds (``ended_at`` = its last
  loss, ``end_reason`` "quiet").

**Clock.** The detector's time is that of the newest event it read (the event's
``time``), or the wall clock when its reader has caught up (:meth:`CrashDetector.tick`),
so a reader replaying old events never marks a query lost for a silence it has not seen
the end of.

**Duplicates.** Delivery is at least once: an event whose ``event_id`` was seen is
ignored, and so is the opening of a query that already ended, so feeding an event twice
changes nothing.

What changed since the last call (to be saved) comes out of :meth:`CrashDetector.changes`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .event import FINISHED, LOST, REFUSED, SUBMITTED

#: Who said a query was lost.
BY_GATEWAY = "gateway"
BY_DETECTOR = "detector"
#: Why an incident ended.
RECOVERED = "recovered"
QUIET = "quiet"

#: Event ids remembered against duplicates (the newest ones).
SEEN_EVENTS = 100_000
#: Seconds ended queries and incidents are remembered (against late and repeated events).
MEMORY = 86_400.0


@dataclass(frozen=True)
class CrashRules:
    """The detector's periods, in seconds (see the module docstring)."""

    lost_grace: float = 300.0
    quiet_period: float = 600.0
    max_open: float = 86_400.0

    def __post_init__(self) -> None:
        for name in ("lost_grace", "quiet_period", "max_open"):
            if getattr(self, name) < 0:
                raise ValueError(f"The crash detector's {name} must not be negative.")


@dataclass(frozen=True)
class OpenQuery:
    """A query submitted to a cluster, not yet seen ending."""

    query_id: str
    cluster: str
    user: str
    submitted_at: dt.datetime


@dataclass
class LostQuery:
    """A query nobody saw end, in its incident."""

    query_id: str
    cluster: str
    user: str
    submitted_at: dt.datetime | None
    lost_at: dt.datetime
    incident_id: str
    marked_by: str = BY_GATEWAY
    reason: str | None = None


@dataclass
class Incident:
    """Queries one cluster lost together (see the module docstring for its span)."""

    id: str
    cluster: str
    started_at: dt.datetime
    last_lost_at: dt.datetime
    ended_at: dt.datetime | None = None
    end_reason: str | None = None
    queries: dict[str, LostQuery] = field(default_factory=dict)

    @property
    def ongoing(self) -> bool:
        return self.ended_at is None

    @property
    def users(self) -> list[str]:
        """The users whose queries were lost, sorted."""
        return sorted({q.user for q in self.queries.values()})


@dataclass
class Changes:
    """What changed since the last :meth:`CrashDetector.changes`: rows to write (or
    delete, for ids listed under ``*_gone``), and what is new, for logs and counters."""

    open_queries: list[OpenQuery] = field(default_factory=list)
    open_gone: list[str] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    incidents_gone: list[str] = field(default_factory=list)
    lost: list[LostQuery] = field(default_factory=list)
    lost_gone: list[str] = field(default_factory=list)
    new_incidents: list[Incident] = field(default_factory=list)
    new_lost: list[LostQuery] = field(default_factory=list)
    ended_incidents: list[Incident] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (self.open_queries, self.open_gone, self.incidents, self.incidents_gone)
            + (self.lost, self.lost_gone)
        )


def parse_time(value: Any) -> dt.datetime | None:
    """An event's RFC 3339 time (``2026-12-02T09:30:00.123Z``) as an aware datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


class CrashDetector:
    """The crash detection state machine (see the module docstring).

    Start it empty, or from saved state (``open_queries``, ``incidents`` with their lost
    queries) to resume after a restart.
    """

    def __init__(
        self,
        rules: CrashRules | None = None,
        *,
        open_queries: Iterable[OpenQuery] = (),
        incidents: Iterable[Incident] = (),
        now: dt.datetime | None = None,
    ) -> None:
        self.rules = rules or CrashRules()
        self.open: dict[str, OpenQuery] = {q.query_id: q for q in open_queries}
        self.incidents: dict[str, Incident] = {i.id: i for i in incidents}
        self.lost: dict[str, LostQuery] = {
            q.query_id: q for i in self.incidents.values() for q in i.queries.values()
        }
        self.clock: dt.datetime | None = now
        self._ended: dict[str, dt.datetime] = {}  # query id -> when it was seen ending
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._swept: set[str] = set()  # incidents whose rule-2 sweep is done
        self._changes = Changes()
        self._dirty_open: set[str] = set()
        self._dirty_incidents: set[str] = set()
        self._dirty_lost: set[str] = set()

    # ------------------------------------------------------------------ reading

    def ongoing(self, cluster: str) -> Incident | None:
        """The cluster's ongoing incident, if any."""
        for incident in self.incidents.values():
            if incident.cluster == cluster and incident.ongoing:
                return incident
        return None

    def open_per_cluster(self) -> Counter[str]:
        """How many queries are open on each cluster."""
        return Counter(q.cluster for q in self.open.values())

    def changes(self) -> Changes:
        """What changed since the last call (and forget it)."""
        changes, self._changes = self._changes, Changes()
        for query_id in sorted(self._dirty_open):
            if query_id in self.open:
                changes.open_queries.append(self.open[query_id])
            else:
                changes.open_gone.append(query_id)
        for incident_id in sorted(self._dirty_incidents):
            if incident_id in self.incidents:
                changes.incidents.append(self.incidents[incident_id])
            else:
                changes.incidents_gone.append(incident_id)
        for query_id in sorted(self._dirty_lost):
            if query_id in self.lost:
                changes.lost.append(self.lost[query_id])
            else:
                changes.lost_gone.append(query_id)
        self._dirty_open.clear()
        self._dirty_incidents.clear()
        self._dirty_lost.clear()
        return changes

    # ------------------------------------------------------------------ feeding

    def feed(self, event: Mapping[str, Any]) -> None:
        """Take one query event (a decoded record of the topic). Events of unknown kinds
        or without the fields this needs are ignored."""
        event_id = event.get("event_id")
        if event_id:
            if event_id in self._seen:
                return
            self._seen[event_id] = None
            if len(self._seen) > SEEN_EVENTS:
                self._seen.popitem(last=False)
        at = parse_time(event.get("time"))
        query_id, kind = event.get("query_id"), event.get("event")
        if at is None or not query_id:
            return
        self.tick(at)
        if kind == SUBMITTED:
            self._submitted(event, query_id, at)
        elif kind == LOST:
            self._lost_by_gateway(event, query_id, at)
        elif kind in (FINISHED, REFUSED):
            self._finished(event, query_id, at)

    def tick(self, now: dt.datetime) -> None:
        """Move the clock to ``now`` (if later) and apply the rules that depend on time:
        the sweep of crashed clusters (rule 2), quiet incidents ending, queries open for
        too long (rule 3)."""
        if self.clock is not None and now <= self.clock:
            return
        self.clock = now
        rules = self.rules
        for incident in list(self.incidents.values()):
            if incident.id not in self._swept and now >= incident.started_at + _seconds(
                rules.lost_grace
            ):
                self._swept.add(incident.id)
                self._sweep(incident)
        for incident in list(self.incidents.values()):
            if incident.ongoing and now >= incident.last_lost_at + _seconds(rules.quiet_period):
                self._end(incident, incident.last_lost_at, QUIET)
        if rules.max_open > 0:
            for query in sorted(self.open.values(), key=lambda q: q.submitted_at):
                lost_at = query.submitted_at + _seconds(rules.max_open)
                if now >= lost_at:
                    reason = f"Open for {rules.max_open:.0f} s without an end."
                    self._mark_lost(query, lost_at, BY_DETECTOR, reason)
        self._forget_before(now - _seconds(max(MEMORY, rules.lost_grace, rules.quiet_period)))

    # ------------------------------------------------------------------ rules

    def _submitted(self, event: Mapping[str, Any], query_id: str, at: dt.datetime) -> None:
        cluster, user = event.get("cluster"), event.get("user")
        if not cluster or not user or query_id in self._ended or query_id in self.lost:
            return
        if query_id not in self.open:
            submitted_at = parse_time(event.get("submitted_at")) or at
            self.open[query_id] = OpenQuery(query_id, cluster, user, submitted_at)
            self._dirty_open.add(query_id)

    def _finished(self, event: Mapping[str, Any], query_id: str, at: dt.datetime) -> None:
        self._close(query_id, at)
        lost = self.lost.get(query_id)
        if lost is not None and lost.marked_by == BY_DETECTOR:
            self._unlose(lost)  # it ended after all
        cluster = event.get("cluster")
        if event.get("state") != "FINISHED" or not cluster:
            return
        incident = self.ongoing(cluster)
        submitted_at = parse_time(event.get("submitted_at"))
        if incident is not None and submitted_at and submitted_at > incident.last_lost_at:
            self._end(incident, parse_time(event.get("finished_at")) or at, RECOVERED)

    def _lost_by_gateway(self, event: Mapping[str, Any], query_id: str, at: dt.datetime) -> None:
        known = self.lost.get(query_id)
        if known is not None:  # marked by the detector first: the gateway confirms it
            if known.marked_by != BY_GATEWAY:
                known.marked_by, known.reason = BY_GATEWAY, event.get("error")
                self._dirty_lost.add(query_id)
            return
        if query_id in self._ended:
            return
        cluster, user = event.get("cluster"), event.get("user")
        opened = self.open.get(query_id)
        if opened is None and (not cluster or not user):
            return  # lost before any cluster took it: no cluster crashed
        query = opened or OpenQuery(
            query_id, cluster, user, parse_time(event.get("submitted_at")) or at
        )
        lost_at = parse_time(event.get("finished_at")) or at
        self._mark_lost(query, lost_at, BY_GATEWAY, event.get("error"))

    def _sweep(self, incident: Incident) -> None:
        """Rule 2: the queries open on a crashed cluster since before the crash."""
        for query in list(self.open.values()):
            if query.cluster == incident.cluster and query.submitted_at < incident.started_at:
                reason = (
                    f"Still open {self.rules.lost_grace:.0f} s after cluster {incident.cluster} "
                    "lost queries."
                )
                self._mark_lost(query, incident.started_at, BY_DETECTOR, reason, incident)

    # ------------------------------------------------------------------ state

    def _close(self, query_id: str, at: dt.datetime) -> None:
        if self.open.pop(query_id, None) is not None:
            self._dirty_open.add(query_id)
        self._ended[query_id] = at

    def _mark_lost(
        self,
        query: OpenQuery,
        lost_at: dt.datetime,
        marked_by: str,
        reason: str | None,
        incident: Incident | None = None,
    ) -> None:
        self._close(query.query_id, lost_at)
        incident = incident or self.ongoing(query.cluster)
        if incident is None:
            incident = Incident(uuid.uuid4().hex, query.cluster, lost_at, lost_at)
            self.incidents[incident.id] = incident
            self._changes.new_incidents.append(incident)
        lost = LostQuery(
            query.query_id,
            query.cluster,
            query.user,
            query.submitted_at,
            lost_at,
            incident.id,
            marked_by,
            reason,
        )
        incident.queries[lost.query_id] = lost
        incident.started_at = min(incident.started_at, lost_at)
        incident.last_lost_at = max(incident.last_lost_at, lost_at)
        self.lost[lost.query_id] = lost
        self._changes.new_lost.append(lost)
        self._dirty_lost.add(lost.query_id)
        self._dirty_incidents.add(incident.id)

    def _unlose(self, lost: LostQuery) -> None:
        del self.lost[lost.query_id]
        self._dirty_lost.add(lost.query_id)
        incident = self.incidents.get(lost.incident_id)
        if incident is None:
            return
        incident.queries.pop(lost.query_id, None)
        self._dirty_incidents.add(incident.id)
        if not incident.queries:
            del self.incidents[incident.id]
            return
        times = [q.lost_at for q in incident.queries.values()]
        incident.started_at, incident.last_lost_at = min(times), max(times)

    def _end(self, incident: Incident, at: dt.datetime, reason: str) -> None:
        incident.ended_at, incident.end_reason = max(at, incident.last_lost_at), reason
        self._dirty_incidents.add(incident.id)
        self._changes.ended_incidents.append(incident)

    def _forget_before(self, limit: dt.datetime) -> None:
        """Forget ended queries and incidents older than ``limit`` (the store keeps them)."""
        for query_id, at in list(self._ended.items()):
            if at < limit:
                del self._ended[query_id]
        for incident in list(self.incidents.values()):
            if incident.ended_at is not None and incident.ended_at < limit:
                del self.incidents[incident.id]
                self._swept.discard(incident.id)
                for query_id in incident.queries:
                    self.lost.pop(query_id, None)
