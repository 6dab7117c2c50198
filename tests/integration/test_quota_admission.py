"""Quota admission and policies in the real store, on SQLite and on PostgreSQL.

Exactness is proven across processes (forked workers, each with its own engine, all
deciding at the same moment) and across tasks in one process; the clock is injected to
cross day boundaries and to expire leases.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from datahub.quotas import counters, storage
from datahub.quotas.admission import (
    AdmissionController,
    QuotaPlaceLost,
    QuotaQueued,
    QuotaRefused,
    Ticket,
)
from datahub.quotas.counters import Rules
from datahub.quotas.days import UsageDays
from datahub.quotas.manager import QuotaManager
from datahub.quotas.models import TABLES
from datahub.quotas.policy import PolicyError
from datahub.store import Base, Store

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
ADMINS = "your DataHub admin (datahub-admins)"


class Clock:
    """A settable clock for the store's decisions."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def rules(**kwargs) -> Rules:
    return Rules(days=UsageDays(), configured={}, contact=ADMINS, **kwargs)


def set_user(store: Store, user: str, **limits) -> None:
    storage.set_policy(store, "user", user, limits, "tests", T0)


# ------------------------------------------------------------------ schema


def test_the_quota_models_and_migrations_agree(store):
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    ours = {t.name for t in TABLES}

    def table_of(diff) -> str | None:
        for item in diff if isinstance(diff, list) else [diff]:
            for part in item[1:]:
                name = getattr(part, "name", None)
                table = getattr(part, "table", None)
                if table is not None and getattr(table, "name", None) in ours:
                    return table.name
                if name in ours:
                    return name
        return None

    assert [d for d in diffs if table_of(d)] == []
    # compare_metadata skips check constraints: their names must match too.
    inspector = sa.inspect(store.engine)
    for table in TABLES:
        expected = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        assert {c["name"] for c in inspector.get_check_constraints(table.name)} == expected


# ------------------------------------------------------------------ exact admission


def _race_worker(url: str, barrier, results) -> None:
    store = Store(url)
    try:
        barrier.wait(timeout=60)
        decision = counters.enqueue(store, "race", ["analysts"], rules(), T0)
        results.put((decision.status, decision.slot_id, decision.position))
    finally:
        store.dispose()


def test_parallel_submissions_from_many_processes_take_exactly_the_free_slots(store):
    set_user(store, "race", concurrent_queries=3, queued_queries=20)
    n = 20
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    store.dispose()  # never share pooled connections with forked children
    workers = [
        ctx.Process(target=_race_worker, args=(store.url, barrier, results)) for _ in range(n)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(n)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    statuses = sorted(status for status, _, _ in outcomes)
    assert statuses.count("running") == 3
    assert statuses.count("queued") == 17
    assert sorted(position for status, _, position in outcomes if status == "queued") == list(
        range(1, 18)
    )
    usage = storage.user_usage(store, "race", T0.date(), T0)
    assert (usage["running"], usage["queued"], usage["queries"]) == (3, 17, 3)


def test_queued_queries_run_in_order_as_slots_free_up(store):
    set_user(store, "fifo", concurrent_queries=2, queued_queries=10)
    r = rules()
    first = [counters.enqueue(store, "fifo", [], r, T0) for _ in range(2)]
    waiting = [counters.enqueue(store, "fifo", [], r, T0) for _ in range(3)]
    assert [d.status for d in first] == ["running", "running"]
    assert [d.position for d in waiting] == [1, 2, 3]
    # The youngest waiter polls first, but the oldest gets the freed slot.
    counters.release(store, "fifo", first[0].slot_id, r, T0)
    assert counters.poll(store, "fifo", [], waiting[2].slot_id, r, T0).status == "queued"
    assert counters.poll(store, "fifo", [], waiting[1].slot_id, r, T0).position == 2
    assert counters.poll(store, "fifo", [], waiting[0].slot_id, r, T0).status == "running"
    counters.release(store, "fifo", first[1].slot_id, r, T0)
    assert counters.poll(store, "fifo", [], waiting[1].slot_id, r, T0).status == "running"
    # A newcomer queues behind the remaining waiter even though it polls first.
    late = counters.enqueue(store, "fifo", [], r, T0)
    assert (late.status, late.position) == ("queued", 2)


def test_a_full_queue_refuses_with_the_counts(store):
    set_user(store, "busy", concurrent_queries=1, queued_queries=2)
    r = rules()
    decisions = [counters.enqueue(store, "busy", [], r, T0) for _ in range(4)]
    assert [d.status for d in decisions] == ["running", "queued", "queued", "refused"]
    assert decisions[3].limit == "queued_queries"
    assert decisions[3].message == (
        "QuotaExceeded: 1 of 1 concurrent queries running and 2 of 2 queued; "
        f"wait for one to finish, or ask {ADMINS} for more."
    )
    refusals = storage.recent_refusals(store, user="busy")
    assert refusals[0]["limit_name"] == "queued_queries"
    assert storage.user_usage(store, "busy", T0.date(), T0)["refused"] == 1


def test_a_slot_whose_query_ended_does_not_count_while_its_release_is_on_its_way(store):
    set_user(store, "serial", concurrent_queries=2, queued_queries=5)
    set_user(store, "other", concurrent_queries=1)
    r = rules()
    first, second = (counters.enqueue(store, "serial", [], r, T0) for _ in range(2))
    theirs = counters.enqueue(store, "other", [], r, T0)
    # At the limit, a slot of someone else's named as ended frees nothing.
    blocked = counters.enqueue(store, "serial", [], r, T0, ended={theirs.slot_id})
    assert blocked.status == "queued"
    counters.withdraw(store, "serial", blocked.slot_id)
    # The first query ended (its last page seen) and its release has not come yet.
    after = counters.enqueue(store, "serial", [], r, T0, ended={first.slot_id})
    assert after.status == "running"
    # Still two that run: the second, the new one; the ended one frees no second place.
    again = counters.enqueue(store, "serial", [], r, T0, ended={first.slot_id})
    assert (again.status, again.running) == ("queued", 2)
    counters.release(store, "serial", first.slot_id, r, T0)
    usage = storage.user_usage(store, "serial", T0.date(), T0)
    assert (usage["running"], usage["queries"]) == (2, 3)
    assert second.status == "running"


async def run_when_admitted(controller: AdmissionController, user: str, groups=()) -> Ticket:
    """Admit a query the way the gateway does: a queued one asks again until its turn."""
    try:
        return await controller.admit(user, groups, request={"sql": "SELECT 1"})
    except QuotaQueued as queued:
        slot_id = queued.slot_id
    while True:
        try:
            ticket, request = await controller.recheck(user, groups, slot_id)
        except QuotaQueued:
            continue
        assert request == {"sql": "SELECT 1"}
        return ticket


def test_async_admission_never_runs_more_than_the_limit_and_loses_nothing(store):
    set_user(store, "crowd", concurrent_queries=3, queued_queries=50)
    controller = AdmissionController(store, rules(), poll_interval=0.05)
    running, peak, done = 0, 0, []

    async def query(i: int) -> None:
        nonlocal running, peak
        ticket = await run_when_admitted(controller, "crowd", ["analysts"])
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        await controller.finish(ticket, cpu_ms=10, bytes_scanned=100)
        done.append(i)

    async def main() -> None:
        await asyncio.gather(*(query(i) for i in range(20)))

    try:
        asyncio.run(main())
    finally:
        controller.close()
    assert peak == 3
    assert sorted(done) == list(range(20))
    today = controller.rules.days.day_of(dt.datetime.now(dt.UTC))
    usage = storage.user_usage(store, "crowd", today, dt.datetime.now(dt.UTC))
    assert (usage["queries"], usage["cpu_ms"], usage["bytes_scanned"]) == (20, 200, 2000)
    assert (usage["running"], usage["queued"]) == (0, 0)


def test_a_queued_query_says_why_and_keeps_its_request_until_its_turn(store):
    set_user(store, "why", concurrent_queries=1, queued_queries=5)
    r = rules()
    first = counters.enqueue(store, "why", [], r, T0)
    second = counters.enqueue(store, "why", [], r, T0, request={"sql": "SELECT 2"})
    third = counters.enqueue(store, "why", [], r, T0, request={"sql": "SELECT 3"})
    controller = AdmissionController(store, r, clock=lambda: T0, poll_interval=0.01)
    try:
        with pytest.raises(QuotaQueued) as info:
            asyncio.run(controller.recheck("why", [], third.slot_id))
        assert info.value.message == (
            "Queued: waiting for your only concurrent query slot (1 in use); "
            "1 of your queries ahead of it."
        )
        counters.release(store, "why", first.slot_id, r, T0)
        assert counters.withdraw(store, "why", second.slot_id) == {"sql": "SELECT 2"}
        ticket, request = asyncio.run(controller.recheck("why", [], third.slot_id))
        assert (ticket.slot_id, request) == (third.slot_id, {"sql": "SELECT 3"})
        # Only one request ever takes a queued query out of the queue.
        with pytest.raises(QuotaPlaceLost):
            asyncio.run(controller.recheck("why", [], third.slot_id))
    finally:
        controller.close()


def test_a_queued_query_whose_client_stops_asking_loses_its_place(store):
    set_user(store, "gone", concurrent_queries=1, queued_queries=1)
    r = rules(queue_lease=dt.timedelta(seconds=30))
    first = counters.enqueue(store, "gone", [], r, T0)
    abandoned = counters.enqueue(store, "gone", [], r, T0, request={"sql": "SELECT 1"})
    assert abandoned.status == "queued"
    # Asked for within the lease, it keeps its place (and the queue is full).
    at = T0 + dt.timedelta(seconds=20)
    assert counters.poll(store, "gone", [], abandoned.slot_id, r, at).status == "queued"
    assert counters.enqueue(store, "gone", [], r, at).status == "refused"
    # 30 s without a poll: its place is free for the next query, and it is gone.
    later = at + dt.timedelta(seconds=31)
    newcomer = counters.enqueue(store, "gone", [], r, later, request={"sql": "SELECT 2"})
    assert (newcomer.status, newcomer.position) == ("queued", 1)
    assert counters.poll(store, "gone", [], abandoned.slot_id, r, later).status == "gone"
    counters.release(store, "gone", first.slot_id, r, later)
    assert counters.poll(store, "gone", [], newcomer.slot_id, r, later).status == "running"


def test_withdrawing_a_queued_query_frees_its_place_and_returns_its_request(store):
    set_user(store, "quit", concurrent_queries=1, queued_queries=1)
    r = rules()
    counters.enqueue(store, "quit", [], r, T0)
    queued = counters.enqueue(store, "quit", [], r, T0, request={"sql": "SELECT 9"})
    assert counters.enqueue(store, "quit", [], r, T0).status == "refused"
    assert counters.withdraw(store, "quit", queued.slot_id) == {"sql": "SELECT 9"}
    assert counters.withdraw(store, "quit", queued.slot_id) is None
    assert counters.enqueue(store, "quit", [], r, T0).status == "queued"


def test_a_query_queued_longer_than_max_queue_wait_is_refused(store):
    set_user(store, "patient", concurrent_queries=1, queued_queries=5)
    clock = Clock()
    r = rules(max_queue_wait=dt.timedelta(seconds=300), queue_lease=dt.timedelta(minutes=10))
    controller = AdmissionController(store, r, clock=clock, poll_interval=0.01)

    async def main() -> None:
        first = await controller.admit("patient", [])
        with pytest.raises(QuotaQueued) as info:
            await controller.admit("patient", [], request={"sql": "SELECT 2"})
        slot_id = info.value.slot_id
        clock.advance(seconds=299)
        with pytest.raises(QuotaQueued):
            await controller.recheck("patient", [], slot_id)
        clock.advance(seconds=1)
        with pytest.raises(QuotaRefused) as refused:
            await controller.recheck("patient", [], slot_id)
        assert refused.value.message == (
            "QuotaExceeded: 1 of 1 concurrent queries still running after this one waited "
            f"300 s in your queue; run it again when one finishes, or ask {ADMINS} for more."
        )
        assert refused.value.request == {"sql": "SELECT 2"}
        await controller.finish(first)

    try:
        asyncio.run(main())
    finally:
        controller.close()
    usage = storage.user_usage(store, "patient", clock().date(), clock())
    assert (usage["running"], usage["queued"], usage["refused"]) == (0, 0, 1)


def test_slots_of_a_dead_gateway_process_expire(store):
    set_user(store, "crash", concurrent_queries=1, queued_queries=0)
    r = rules(lease=dt.timedelta(minutes=6))
    assert counters.enqueue(store, "crash", [], r, T0).status == "running"
    assert counters.enqueue(store, "crash", [], r, T0 + dt.timedelta(minutes=5)).status == (
        "refused"
    )
    # Nobody renewed or released the first slot: after its lease it is free again.
    assert counters.enqueue(store, "crash", [], r, T0 + dt.timedelta(minutes=7)).status == (
        "running"
    )


# ------------------------------------------------------------------ daily limits


def test_queries_per_day_refuse_with_usage_reset_and_whom_to_ask_then_roll_over(store):
    set_user(store, "daily", queries_per_day=2)
    clock = Clock(dt.datetime(2025, 6, 1, 23, 58, tzinfo=dt.UTC))
    r = rules()
    for _ in range(2):
        decision = counters.enqueue(store, "daily", [], r, clock())
        counters.release(store, "daily", decision.slot_id, r, clock())
    refused = counters.enqueue(store, "daily", [], r, clock())
    assert refused.status == "refused"
    assert refused.message == (
        f"QuotaExceeded: 2 of 2 queries used today; resets 00:00 UTC; ask {ADMINS} for more."
    )
    clock.advance(minutes=1, seconds=59)  # 23:59:59: still the same usage day
    assert counters.enqueue(store, "daily", [], r, clock()).status == "refused"
    clock.advance(seconds=1)  # 00:00: a new usage day
    assert counters.enqueue(store, "daily", [], r, clock()).status == "running"


def test_the_day_boundary_and_time_zone_are_configurable(store):
    set_user(store, "berlin", queries_per_day=1)
    r = Rules(days=UsageDays.from_config("Europe/Berlin", "06:00"), configured={}, contact=ADMINS)
    at = dt.datetime(2025, 6, 2, 3, 30, tzinfo=dt.UTC)  # 05:30 in Berlin
    counters.release(store, "berlin", counters.enqueue(store, "berlin", [], r, at).slot_id, r, at)
    refused = counters.enqueue(store, "berlin", [], r, at)
    assert "resets 06:00 CEST" in refused.message
    later = at + dt.timedelta(minutes=30)  # 06:00 in Berlin
    assert counters.enqueue(store, "berlin", [], r, later).status == "running"


def test_cpu_and_bytes_per_day_count_finished_queries(store):
    set_user(store, "heavy", cpu_seconds_per_day=10, bytes_scanned_per_day="1MB")
    r = rules()
    d = counters.enqueue(store, "heavy", [], r, T0)
    counters.release(store, "heavy", d.slot_id, r, T0, cpu_ms=10_500, bytes_scanned=5)
    refused = counters.enqueue(store, "heavy", [], r, T0)
    assert refused.limit == "cpu_seconds_per_day"
    assert refused.message.startswith("QuotaExceeded: 10 of 10 CPU seconds used today;")
    set_user(store, "heavy", bytes_scanned_per_day="1MB")
    d = counters.enqueue(store, "heavy", [], r, T0)
    counters.release(store, "heavy", d.slot_id, r, T0, bytes_scanned=2_000_000)
    refused = counters.enqueue(store, "heavy", [], r, T0)
    assert refused.limit == "bytes_scanned_per_day"
    assert refused.message.startswith("QuotaExceeded: 2 MB of 1 MB scanned today;")


def test_a_running_querys_usage_counts_while_it_runs_and_its_end_adds_only_the_rest(store):
    r = rules()
    d = counters.enqueue(store, "busy", [], r, T0)
    so_far = counters.count_running(
        store, "busy", d.slot_id, r, T0, cpu_ms=4000, bytes_scanned=100, query_id="q1"
    )
    assert (so_far["cpu_ms"], so_far["bytes_scanned"]) == (4000, 100)
    # The same numbers again (another gateway process watching it too) add nothing.
    again = counters.count_running(
        store, "busy", d.slot_id, r, T0, cpu_ms=4000, bytes_scanned=100, query_id="q1"
    )
    assert again == so_far
    # Counting renews the slot's lease: the query outlives its first lease.
    later = T0 + r.lease - dt.timedelta(seconds=1)
    counters.count_running(store, "busy", d.slot_id, r, later, cpu_ms=6000, bytes_scanned=100)
    after_first_lease = storage.user_usage(store, "busy", T0.date(), T0 + r.lease)
    assert (after_first_lease["running"], after_first_lease["cpu_ms"]) == (1, 6000)
    counters.release(store, "busy", d.slot_id, r, later, cpu_ms=9000, bytes_scanned=150)
    today = storage.user_usage(store, "busy", r.days.day_of(later), later)
    assert (today["cpu_ms"], today["bytes_scanned"]) == (9000, 150)
    # A slot already freed (the query's end was counted) counts nothing more.
    assert (
        counters.count_running(store, "busy", d.slot_id, r, later, cpu_ms=1, bytes_scanned=1)
        is None
    )


def test_a_running_query_that_used_nothing_more_costs_the_store_nothing_until_its_lease_is_due(
    store,
):
    """The watcher counts every running query every few seconds; one that waits in its
    cluster's queue (nothing used) must not cost a write transaction each time."""
    clock = Clock()
    r = rules()
    controller = AdmissionController(store, r, clock=clock)
    calls: list[str] = []
    run = store.run

    async def counting_run(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return await run(fn, *args, **kwargs)

    store.run = counting_run

    def expires(slot: int) -> dt.datetime:
        with store.engine.connect() as conn:
            row = conn.execute(
                sa.select(counters.slots_t.c.expires_at).where(counters.slots_t.c.id == slot)
            ).one()
        return row.expires_at.replace(tzinfo=dt.UTC)

    async def count(ticket: Ticket, cpu_ms: int) -> str | None:
        return await controller.count_running(
            ticket, cpu_ms=cpu_ms, bytes_scanned=0, query_id="q-idle"
        )

    async def scenario() -> None:
        ticket = await controller.admit("idle", [])
        calls.clear()
        clock.advance(seconds=10)
        assert await count(ticket, 0) is None  # queued in Trino: nothing used
        assert calls == [] and expires(ticket.slot_id) == T0 + r.lease
        assert await count(ticket, 700) is None  # it runs: counted, lease renewed
        assert calls == ["count_running"] and expires(ticket.slot_id) == clock.now + r.lease
        counted_at = clock.now
        clock.advance(seconds=10)
        assert await count(ticket, 700) is None  # nothing more
        assert calls == ["count_running"] and expires(ticket.slot_id) == counted_at + r.lease
        clock.advance(seconds=r.lease.total_seconds() / 4)
        assert await count(ticket, 700) is None  # its lease is due: renewed all the same
        assert calls == ["count_running"] * 2 and expires(ticket.slot_id) == clock.now + r.lease
        usage = storage.user_usage(store, "idle", T0.date(), clock.now)
        assert (usage["cpu_ms"], usage["running"]) == (700, 1)

    asyncio.run(scenario())


def test_a_running_query_past_a_daily_limit_is_stopped_with_the_reason(store):
    set_user(store, "spender", cpu_seconds_per_day=5)
    controller = AdmissionController(store, rules(), clock=Clock())

    async def scenario() -> tuple[str | None, str | None, str | None]:
        ticket = await controller.admit("spender", [])
        within = await controller.count_running(
            ticket, cpu_ms=5000, bytes_scanned=0, query_id="q-spender"
        )
        past = await controller.count_running(
            ticket, cpu_ms=5001, bytes_scanned=0, query_id="q-spender"
        )
        # The next page of the query hears the same reason.
        page = await controller.progress(ticket, query_id="q-spender")
        await asyncio.gather(*controller._tasks)
        return within, past, page

    within, past, page = asyncio.run(scenario())
    assert within is None
    assert (
        past
        == page
        == (
            "QuotaExceeded: 5 of 5 CPU seconds used today, so this query was cancelled; "
            f"resets 00:00 UTC; ask {ADMINS} for more."
        )
    )
    log = storage.recent_refusals(store, user="spender")
    assert [(row["action"], row["limit_name"], row["query_id"]) for row in log] == [
        ("cancelled", "cpu_seconds_per_day", "q-spender")
    ]


def test_a_queued_query_is_refused_if_the_day_runs_out_while_it_waits(store):
    set_user(store, "wait", concurrent_queries=1, queued_queries=5, queries_per_day=1)
    r = rules()
    first = counters.enqueue(store, "wait", [], r, T0)
    # queries_per_day is checked at entry too, so let the second in before the first counts.
    storage.reset_usage(store, "wait", T0.date(), "tests", T0)
    second = counters.enqueue(store, "wait", [], r, T0)
    assert second.status == "queued"
    counters.release(store, "wait", first.slot_id, r, T0)
    storage.set_policy(store, "user", "wait", {"queries_per_day": 0}, "tests", T0, merge=True)
    decision = counters.poll(store, "wait", [], second.slot_id, r, T0)
    assert decision.status == "refused"
    assert decision.limit == "queries_per_day"


def test_routing_groups_outside_the_policy_are_refused(store):
    storage.set_policy(store, "group", "analysts", {"routing_groups": ["adhoc"]}, "tests", T0)
    r = rules()
    assert counters.enqueue(store, "rg", ["analysts"], r, T0, routing_group="adhoc").status == (
        "running"
    )
    refused = counters.enqueue(store, "rg", ["analysts"], r, T0, routing_group="etl")
    assert refused.message == (
        "QuotaExceeded: routing group 'etl' is not in your quota (yours: adhoc); "
        f"ask {ADMINS} for access."
    )


def test_async_refusals_raise_with_the_sentence(store):
    set_user(store, "none", concurrent_queries=0)
    controller = AdmissionController(store, rules())
    try:
        with pytest.raises(QuotaRefused, match="allows no queries"):
            asyncio.run(controller.admit("none", []))
    finally:
        controller.close()


# ------------------------------------------------------------------ policies and audit


def test_policy_edits_are_audited_with_who_when_before_and_after(store):
    before, after = storage.set_policy(
        store, "group", "analysts", {"concurrent_queries": 4}, "carol", T0
    )
    assert before is None
    assert after == {"limits": {"concurrent_queries": 4}}
    storage.set_policy(
        store, "group", "analysts", {"queries_per_day": "unlimited"}, "carol", T0, merge=True
    )
    storage.reset_policy(store, "group", "analysts", "dave", T0 + dt.timedelta(hours=1))
    changes = storage.recent_changes(store)
    assert [(c["actor"], c["action"], c["scope"], c["name"]) for c in changes] == [
        ("dave", "reset", "group", "analysts"),
        ("carol", "set", "group", "analysts"),
        ("carol", "set", "group", "analysts"),
    ]
    assert changes[1]["before"] == {"limits": {"concurrent_queries": 4}}
    assert changes[1]["after"] == {"limits": {"concurrent_queries": 4, "queries_per_day": None}}
    assert changes[0]["after"] is None
    assert changes[0]["at"] == T0 + dt.timedelta(hours=1)
    assert storage.get_policy(store, "group", "analysts") is None


def test_resetting_usage_is_audited_too(store):
    set_user(store, "again", queries_per_day=1)
    r = rules()
    counters.release(store, "again", counters.enqueue(store, "again", [], r, T0).slot_id, r, T0)
    assert counters.enqueue(store, "again", [], r, T0).status == "refused"
    before = storage.reset_usage(store, "again", T0.date(), "carol", T0)
    assert before["queries"] == 1
    assert counters.enqueue(store, "again", [], r, T0).status == "running"
    change = storage.recent_changes(store)[0]
    assert (change["action"], change["name"], change["before"]["queries"]) == (
        "reset-usage",
        "again",
        1,
    )


def test_bad_policies_are_refused_and_not_stored(store):
    with pytest.raises(PolicyError):
        storage.set_policy(store, "user", "x", {"concurrent_queries": -2}, "carol", T0)
    with pytest.raises(PolicyError):
        storage.set_policy(store, "team", "x", {}, "carol", T0)
    assert storage.list_policies(store) == []
    assert storage.recent_changes(store) == []


def test_the_overview_shows_users_and_groups_with_usage_against_limits(store):
    manager = QuotaManager(store=store, default_limits={"concurrent_queries": 2})
    manager.clock = lambda: T0
    storage.set_policy(store, "group", "analysts", {"queries_per_day": 10}, "carol", T0)
    r = manager.rules
    counters.enqueue(store, "ann", ["analysts"], r, T0)
    counters.enqueue(store, "ben", ["analysts", "etl"], r, T0)
    users = {u["name"]: u for u in storage.users_overview(store, T0.date(), T0, r.configured)}
    assert users["ann"]["policy"]["limits"]["queries_per_day"] == 10
    assert users["ann"]["policy"]["sources"]["concurrent_queries"] == "configuration"
    assert users["ann"]["usage"]["running"] == 1
    groups = {g["name"]: g for g in storage.groups_overview(store, T0.date(), T0)}
    assert groups["analysts"]["members"] == ["ann", "ben"]
    assert groups["analysts"]["usage"]["queries"] == 2
    assert groups["analysts"]["policy"] == {"queries_per_day": 10}
    assert groups["etl"]["usage"]["running"] == 1
