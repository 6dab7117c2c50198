"""What the gateway asks its clusters when a query ends, while it runs and when a user is
at their limit: a query whose pages told everything is closed without Trino's query
info, the watcher asks only about queries whose client has not polled lately, and a query
that would be queued first waits for its user's closes in flight, asking no cluster."""

from __future__ import annotations

import asyncio
import logging
import time

from datahub.gateway.admission import (
    Admitted,
    Listeners,
    QueryAdmission,
    QueryListener,
    QueryQueued,
)
from datahub.gateway.closing import pages_tell_all
from datahub.gateway.tracker import QueryTracker
from datahub.identity import Identity
from datahub.query import QueryRecord, QueryState, QueryStats
from datahub.testing import MemoryJournal, memory_tracker

LOG = logging.getLogger("tests")
ALICE = Identity("alice", ())


class OneSlot(QueryAdmission):
    """One query at a time: a new query waits while another is open in the journal."""

    def __init__(self, journal: MemoryJournal) -> None:
        self.journal = journal
        self.rechecks = 0

    async def admit(self, query, ending=()):
        if await self.journal.open_queries(None, query.user):
            raise QueryQueued("Queued: one ahead of you.", "1")
        return Admitted()

    async def recheck(self, identity, place):
        self.rechecks += 1
        if await self.journal.open_queries(None, identity.name):
            raise QueryQueued("Queued: one ahead of you.", place)
        return QueryRecord(identity, sql="SELECT 1"), Admitted()


def make_tracker(fetch_final_stats: bool = True) -> tuple[QueryTracker, list[str]]:
    """A tracker over an in-memory journal; the query ids it asks its cluster about go
    to the returned list (the cluster answers FINISHED)."""
    journal = MemoryJournal()
    t = memory_tracker(
        journal=journal, admission=OneSlot(journal), fetch_final_stats=fetch_final_stats
    )
    asked: list[str] = []

    async def query_info(cluster, query_id):
        asked.append(query_id)
        return 200, {"state": "FINISHED", "queryStats": {"outputPositions": 1}}

    t.closer.query_info = query_info  # type: ignore[method-assign]
    return t, asked


def submitted(t: QueryTracker, query_id: str, **fields) -> QueryRecord:
    query = QueryRecord(ALICE, query_id=query_id, cluster="a", sql="SELECT 1", **fields)
    t.journal.submitted(query)
    t.active[query_id] = query
    return query


def final_page(output_rows: int | None, state: str = "FINISHED") -> QueryStats:
    return QueryStats(state, cpu_ms=3, elapsed_ms=40, output_rows=output_rows)


def test_a_query_whose_pages_told_everything_is_closed_without_asking_its_cluster():
    async def scenario():
        t, asked = make_tracker()
        spooled = submitted(t, "q-spooled")
        # A spooled query: its rows counted from its segments, its last page final.
        assert await t.close(spooled, page_stats=final_page(1))
        direct = submitted(t, "q-direct")
        # A direct-protocol query: only Trino's query info has its output rows.
        assert await t.close(direct, page_stats=final_page(None))
        return t, asked

    t, asked = asyncio.run(scenario())
    assert asked == ["q-direct"]
    assert t.journal.rows["q-spooled"]["state"] == QueryState.FINISHED
    assert t.journal.rows["q-spooled"]["output_rows"] == 1
    assert t.journal.rows["q-direct"]["output_rows"] == 1


def test_what_the_pages_must_tell_for_the_query_info_to_be_skipped():
    query = QueryRecord(ALICE, query_id="q", sql="SELECT 1")
    assert pages_tell_all(query, final_page(0))
    assert not pages_tell_all(query, final_page(None))
    assert not pages_tell_all(query, final_page(1, state="RUNNING"))
    assert not pages_tell_all(query, None)
    # The SQL of a query whose submitted record was lost comes from the query info.
    assert not pages_tell_all(QueryRecord(ALICE, query_id="q"), final_page(1))


def test_a_query_at_the_limit_waits_for_its_users_close_in_flight_and_asks_no_cluster():
    async def scenario():
        t, asked = make_tracker()
        first = submitted(t, "q1")
        t.journal.release.clear()  # the first query's close is on its way
        closing = asyncio.ensure_future(t.close(first, page_stats=final_page(1)))
        await asyncio.sleep(0)
        assert list(t.closing("alice")) == ["q1"] and t.closing("bob") == {}
        asyncio.get_running_loop().call_later(0.05, t.journal.release.set)
        admitted = await t.admit(QueryRecord(ALICE, sql="SELECT 2"))
        assert await closing
        return t, asked, admitted

    t, asked, admitted = asyncio.run(scenario())
    assert isinstance(admitted, Admitted)
    assert asked == []  # no query info: the close in flight freed the slot
    assert t.admission.rechecks == 1
    assert t.closing("alice") == {}


def test_settling_stops_asking_about_running_queries_once_one_has_ended():
    async def scenario():
        t, asked = make_tracker()
        submitted(t, "q-running")
        submitted(t, "q-ended")

        async def query_info(cluster, query_id):
            asked.append(query_id)
            if query_id == "q-ended":
                await asyncio.sleep(0.01)
                return 200, {"state": "FINISHED", "queryStats": {}}
            return 200, {"state": "RUNNING", "queryStats": {}}

        t.closer.query_info = query_info  # type: ignore[method-assign]
        closed = await t.watcher.settle("alice")
        return closed, asked

    closed, asked = asyncio.run(scenario())
    assert closed == 1
    # Without the stop, a running query is asked about every 50 ms for a second.
    assert asked.count("q-running") <= 2 and asked.count("q-ended") == 1


class Running(QueryListener):
    """Remembers the statistics ``on_running`` saw, per query."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def on_running(self, query, stats):
        self.seen[query.query_id] = stats.cpu_ms
        return None


def test_the_watcher_asks_only_about_queries_whose_client_has_not_polled_lately():
    async def scenario():
        t, asked = make_tracker()
        running = Running()
        t.listeners = t.closer.listeners = Listeners([running], LOG)
        polled = submitted(t, "q-polled")
        polled.stats = QueryStats("RUNNING", cpu_ms=5)
        polled.last_seen = time.monotonic()
        quiet = submitted(t, "q-quiet")
        quiet.stats = QueryStats("RUNNING", cpu_ms=5)
        quiet.last_seen = time.monotonic() - 2 * t.watcher.watch_interval

        async def query_info(cluster, query_id):
            asked.append(query_id)
            return 200, {"state": "RUNNING", "queryStats": {"totalCpuTime": "7ms"}}

        t.closer.query_info = query_info  # type: ignore[method-assign]
        await t.watch()
        return asked, running.seen

    asked, seen = asyncio.run(scenario())
    # The polled query's last page is as fresh as the cluster's answer: not asked about,
    # its usage counted from the page; the quiet one's from the cluster.
    assert asked == ["q-quiet"]
    assert seen == {"q-polled": 5, "q-quiet": 7}


def test_settling_does_not_ask_about_a_query_whose_client_waits_for_a_page():
    async def scenario():
        t, asked = make_tracker()
        submitted(t, "q-served")
        submitted(t, "q-idle")
        with t.watcher.serving("q-served"):
            closed = await t.watcher.settle("alice")
        return closed, asked

    closed, asked = asyncio.run(scenario())
    # The idle one is asked about (and found ended); the one being served is reading.
    assert asked == ["q-idle"] and closed == 1
