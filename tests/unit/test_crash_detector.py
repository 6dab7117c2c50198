"""Crash detection's state machine (datahub.events.crashes): open queries per cluster, the
three rules that mark a query lost, how lost queries group into incidents and when an
incident ends, the clock, and duplicates. The real broker and a killed Trino:
tests/integration/test_gateway_crash_watch.py."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from datahub.events.crashes import (
    BY_DETECTOR,
    BY_GATEWAY,
    QUIET,
    RECOVERED,
    CrashDetector,
    CrashRules,
)
from datahub.events.event import FINISHED, LOST, QUEUED, REFUSED, SUBMITTED, query_event

T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
RULES = CrashRules(lost_grace=300, quiet_period=600, max_open=86_400)
_ids = itertools.count(1)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def event(kind: str, query: str, t: float, *, user="alice", cluster="a", **fields):
    """The gateway's event of *kind* for *query* at T0 + *t* seconds."""
    values = {"query_id": query, "user": user, "cluster": cluster, "submitted_at": at(t)}
    values.update(fields)
    if kind in (FINISHED, LOST):
        values.setdefault("state", "FINISHED" if kind == FINISHED else "LOST")
        values.setdefault("finished_at", at(t))
    return query_event(
        kind, values, time=at(t), event_id=f"00000000-0000-4000-8000-{next(_ids):012d}"
    )


def submitted(query: str, t: float, **kw):
    return event(SUBMITTED, query, t, **kw)


def finished(query: str, t: float, submitted_at: float, **kw):
    return event(FINISHED, query, t, submitted_at=at(submitted_at), **kw)


def lost(query: str, t: float, submitted_at: float, **kw):
    return event(LOST, query, t, submitted_at=at(submitted_at), error="Cluster a died.", **kw)


def feed(detector: CrashDetector, *events) -> CrashDetector:
    for e in events:
        detector.feed(e)
    return detector


def only_incident(detector: CrashDetector):
    (incident,) = detector.incidents.values()
    return incident


# -------------------------------------------------------------------- open queries


def test_submitted_queries_stay_open_per_cluster_until_they_end():
    d = feed(
        CrashDetector(RULES),
        submitted("q1", 0),
        submitted("q2", 1, cluster="b"),
        submitted("q3", 2, cluster="b"),
        finished("q2", 3, 1, cluster="b"),
        event(REFUSED, "q4", 4, cluster=None),
        event(QUEUED, "q5", 5, cluster=None),
    )
    assert set(d.open) == {"q1", "q3"}
    assert d.open_per_cluster() == {"a": 1, "b": 1}
    assert not d.incidents and not d.lost


def test_changes_say_which_open_queries_to_write_and_which_to_delete():
    d = feed(CrashDetector(RULES), submitted("q1", 0), submitted("q2", 1))
    first = d.changes()
    assert [q.query_id for q in first.open_queries] == ["q1", "q2"] and not first.open_gone
    feed(d, finished("q1", 2, 0))
    second = d.changes()
    assert (second.open_queries, second.open_gone) == ([], ["q1"])
    assert not d.changes()


# ---------------------------------------------------------------- rule 1: gateway


def test_queries_the_gateway_reports_lost_form_one_incident_with_their_users():
    d = feed(
        CrashDetector(RULES),
        submitted("q1", 0),
        submitted("q2", 5, user="bob"),
        submitted("q3", 6, cluster="b"),
        lost("q1", 40, 0),
        lost("q2", 42, 5, user="bob"),
    )
    incident = only_incident(d)
    assert (incident.cluster, incident.started_at, incident.last_lost_at) == ("a", at(40), at(42))
    assert set(incident.queries) == {"q1", "q2"} and incident.users == ["alice", "bob"]
    assert incident.ongoing
    assert {q.marked_by for q in incident.queries.values()} == {BY_GATEWAY}
    assert incident.queries["q1"].reason == "Cluster a died."
    assert set(d.open) == {"q3"}
    changes = d.changes()
    assert [i.id for i in changes.new_incidents] == [incident.id]
    assert [q.query_id for q in changes.new_lost] == ["q1", "q2"]


def test_a_lost_query_the_detector_never_saw_submitted_still_counts():
    d = feed(CrashDetector(RULES), lost("q1", 40, 0))
    assert set(only_incident(d).queries) == {"q1"}


def test_a_query_lost_before_any_cluster_took_it_makes_no_incident():
    d = feed(CrashDetector(RULES), lost("q1", 40, 0, cluster=None))
    assert not d.incidents


def test_each_cluster_has_its_own_incident():
    d = feed(CrashDetector(RULES), lost("q1", 40, 0), lost("q2", 41, 0, cluster="b"))
    assert sorted(i.cluster for i in d.incidents.values()) == ["a", "b"]


# ------------------------------------------------------------ rule 2: the sweep


def test_queries_open_on_a_crashed_cluster_are_lost_after_the_grace_period():
    d = feed(
        CrashDetector(RULES),
        submitted("q1", 0),
        submitted("q2", 10, user="bob"),
        submitted("q3", 20, cluster="b"),
        lost("q1", 60, 0),
        submitted("q4", 100),  # after the crash: not taken with it
    )
    d.tick(at(60 + 299))
    assert set(only_incident(d).queries) == {"q1"}
    d.tick(at(60 + 300))
    incident = only_incident(d)
    assert set(incident.queries) == {"q1", "q2"}
    swept = incident.queries["q2"]
    assert (swept.marked_by, swept.lost_at, swept.user) == (BY_DETECTOR, at(60), "bob")
    assert incident.users == ["alice", "bob"]
    assert set(d.open) == {"q3", "q4"}


def test_a_query_the_detector_marked_lost_that_finishes_after_all_leaves_its_incident():
    d = feed(CrashDetector(RULES), submitted("q1", 0), submitted("q2", 10), lost("q1", 60, 0))
    d.tick(at(400))
    assert "q2" in only_incident(d).queries
    d.changes()
    feed(d, finished("q2", 500, 10))
    assert set(only_incident(d).queries) == {"q1"}
    assert d.changes().lost_gone == ["q2"]


def test_the_gateway_confirming_a_query_the_detector_marked_keeps_it_in_its_incident():
    d = feed(CrashDetector(RULES), submitted("q1", 0), submitted("q2", 10), lost("q1", 60, 0))
    d.tick(at(400))
    feed(d, lost("q2", 450, 10))
    assert only_incident(d).queries["q2"].marked_by == BY_GATEWAY
    feed(d, finished("q2", 500, 10))  # cannot happen after the gateway's lost; ignored
    assert "q2" in only_incident(d).queries


# --------------------------------------------------------- rule 3: open too long


def test_a_long_running_query_is_never_marked_lost_before_max_open():
    d = feed(CrashDetector(RULES), submitted("long", 0))
    d.tick(at(86_399))
    assert "long" in d.open and not d.incidents
    d.tick(at(86_400))
    incident = only_incident(d)
    assert incident.queries["long"].marked_by == BY_DETECTOR
    assert incident.started_at == at(86_400)


def test_max_open_zero_never_marks_a_query_for_its_age():
    d = feed(CrashDetector(CrashRules(max_open=0)), submitted("long", 0))
    d.tick(at(10 * 86_400))
    assert "long" in d.open and not d.incidents


# ----------------------------------------------------------- when incidents end


def test_an_incident_ends_when_a_query_submitted_after_its_last_loss_finishes():
    d = feed(
        CrashDetector(RULES),
        lost("q1", 60, 0),
        finished("old", 70, 30),  # submitted before the loss: says nothing
    )
    assert only_incident(d).ongoing
    feed(d, finished("new", 90, 80, state="FAILED"))  # not FINISHED: says nothing
    assert only_incident(d).ongoing
    feed(d, finished("new2", 95, 80))
    incident = only_incident(d)
    assert (incident.ended_at, incident.end_reason) == (at(95), RECOVERED)
    assert [i.id for i in d.changes().ended_incidents] == [incident.id]


def test_an_incident_ends_after_a_quiet_period_and_the_next_loss_begins_another():
    d = feed(CrashDetector(RULES), lost("q1", 60, 0), lost("q2", 100, 0))
    d.tick(at(100 + 599))
    assert only_incident(d).ongoing
    d.tick(at(100 + 600))
    first = only_incident(d)
    assert (first.ended_at, first.end_reason) == (at(100), QUIET)
    feed(d, lost("q3", 800, 700))
    assert len(d.incidents) == 2
    assert d.ongoing("a") is not first and set(d.ongoing("a").queries) == {"q3"}


def test_a_finish_on_another_cluster_does_not_end_an_incident():
    d = feed(CrashDetector(RULES), lost("q1", 60, 0), finished("b1", 90, 80, cluster="b"))
    assert only_incident(d).ongoing


# --------------------------------------------------------------------- the clock


def test_time_comes_from_the_events_so_a_replay_marks_nothing_early():
    # Replaying yesterday's events: q1 was submitted and finished an hour later. The
    # detector's clock is the events' time, so q1 is never taken as open for a day.
    d = CrashDetector(CrashRules(max_open=1800))
    feed(d, submitted("q1", 0), finished("q1", 1200, 0))
    assert not d.incidents and d.clock == at(1200)


def test_an_older_tick_does_not_move_the_clock_back():
    d = feed(CrashDetector(RULES), submitted("q1", 100))
    d.tick(at(50))
    assert d.clock == at(100)


# -------------------------------------------------------------------- duplicates


def test_the_same_events_twice_change_nothing():
    events = [
        submitted("q1", 0),
        submitted("q2", 1, user="bob"),
        lost("q1", 60, 0),
        lost("q2", 61, 1, user="bob"),
        submitted("q3", 70),
        finished("q3", 80, 70),
    ]
    once = feed(CrashDetector(RULES), *events)
    once.changes()
    feed(once, *events)
    assert not once.changes()
    assert set(only_incident(once).queries) == {"q1", "q2"} and not once.open


def test_a_resent_submitted_event_after_its_query_ended_does_not_reopen_it():
    # The publisher resends from the first unsent event: submitted, finished again
    # (same ids), or with new ids for a query recorded twice.
    d = feed(CrashDetector(RULES), submitted("q1", 0), finished("q1", 5, 0), submitted("q1", 0))
    assert not d.open


def test_a_restarted_detector_resumes_from_its_saved_state():
    first = feed(CrashDetector(RULES), submitted("q1", 0), submitted("q2", 5), lost("q1", 60, 0))
    changes = first.changes()
    resumed = CrashDetector(RULES, open_queries=changes.open_queries, incidents=changes.incidents)
    # It reads again what was not committed, then goes on.
    feed(resumed, lost("q1", 60, 0), submitted("q2", 5))
    assert set(resumed.open) == {"q2"}
    assert set(only_incident(resumed).queries) == {"q1"}
    resumed.tick(at(400))
    assert set(only_incident(resumed).queries) == {"q1", "q2"}


def test_negative_periods_are_refused():
    with pytest.raises(ValueError, match="quiet_period"):
        CrashRules(quiet_period=-1)
