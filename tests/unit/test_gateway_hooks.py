"""The query hooks' contract: order, refusals, stop reasons, exactly-once finished."""

from __future__ import annotations

import asyncio
import logging

import pytest

from datahub.gateway.hooks import (
    Admission,
    HookChain,
    QueryHooks,
    QueryInfo,
    QueryQueued,
    QueryRefused,
    QueryStats,
    Resumed,
    Submission,
)
from datahub.identity import Identity

ALICE = Identity("alice", ("analysts",))
SUBMISSION = Submission(
    sql="SELECT 1",
    source="datahub-sql",
    client_tags=(),
    catalog=None,
    schema=None,
    routing_hint=None,
    routing_group="default",
    routing_reason="default",
)


class Recorder(QueryHooks):
    def __init__(self, name, calls, *, refuse=False, stop=None, fail=False):
        self.name, self.calls, self.refuse, self.stop, self.fail = name, calls, refuse, stop, fail

    async def admit(self, identity, submission):
        self.calls.append((self.name, "admit"))
        if self.refuse:
            raise QueryRefused("50 of 50 queries used today; resets 00:00 UTC")
        return Admission(note=f"{self.name} ok", data={self.name: 1})

    async def on_progress(self, identity, query, stats):
        self.calls.append((self.name, "progress"))
        if self.fail:
            raise RuntimeError("broken hook")
        return self.stop

    async def finished(self, identity, query, final_state, stats):
        self.calls.append((self.name, "finished", final_state))
        if self.fail:
            raise RuntimeError("broken hook")


def run(coroutine):
    return asyncio.run(coroutine)


def query() -> QueryInfo:
    import datetime as dt

    return QueryInfo("q1", "alice", "a", "default", "SELECT 1", None, (), dt.datetime.now(dt.UTC))


def test_admissions_of_all_hooks_are_merged_in_order():
    calls = []
    chain = HookChain([Recorder("a", calls), Recorder("b", calls)], logging.getLogger("t"))
    admission = run(chain.admit(ALICE, SUBMISSION))
    assert admission.note == "a ok; b ok"
    assert dict(admission.data) == {"a": 1, "b": 1}
    assert calls == [("a", "admit"), ("b", "admit")]


def test_a_refusal_finishes_the_hooks_that_had_admitted_and_stops_the_others():
    calls = []
    chain = HookChain(
        [Recorder("a", calls), Recorder("b", calls, refuse=True), Recorder("c", calls)],
        logging.getLogger("t"),
    )
    with pytest.raises(QueryRefused, match="50 of 50"):
        run(chain.admit(ALICE, SUBMISSION))
    assert calls == [("a", "admit"), ("b", "admit"), ("a", "finished", "REJECTED")]


def test_the_first_stop_reason_wins_and_a_broken_hook_is_skipped():
    calls = []
    chain = HookChain(
        [Recorder("broken", calls, fail=True), Recorder("a", calls, stop="too big")],
        logging.getLogger("t"),
    )
    assert run(chain.on_progress(ALICE, query(), QueryStats("RUNNING"))) == "too big"


def test_every_hook_hears_the_end_even_after_one_fails():
    calls = []
    chain = HookChain(
        [Recorder("broken", calls, fail=True), Recorder("a", calls)], logging.getLogger("t")
    )
    run(chain.finished(ALICE, query(), "FINISHED", QueryStats("FINISHED")))
    assert calls == [("broken", "finished", "FINISHED"), ("a", "finished", "FINISHED")]


def test_the_base_hooks_do_nothing():
    hooks = QueryHooks()
    assert run(hooks.admit(ALICE, SUBMISSION)) is None
    assert run(hooks.on_progress(ALICE, query(), QueryStats("RUNNING"))) is None
    assert run(hooks.finished(ALICE, query(), "FINISHED", QueryStats("FINISHED"))) is None


class Queueing(QueryHooks):
    """Queues every query once; keeps the submission with its place, as hooks must."""

    def __init__(self, calls, *, refuse_later=False):
        self.calls, self.refuse_later, self.kept = calls, refuse_later, {}

    async def admit(self, identity, submission):
        self.calls.append(("queue", "admit"))
        self.kept["7"] = submission.to_data()
        raise QueryQueued("Queued: one ahead of you.", "7", waited=0.5)

    async def recheck(self, identity, place):
        self.calls.append(("queue", "recheck"))
        submission = Submission.from_data(self.kept.pop(place))
        if self.refuse_later:
            raise QueryRefused("waited too long", submission=submission)
        return Resumed(submission, Admission(note="waited", data={"queue": place}))

    async def withdraw(self, identity, place):
        self.calls.append(("queue", "withdraw"))
        return Submission.from_data(self.kept.pop(place))


def test_a_queued_query_resumes_after_the_hooks_that_admitted_it_and_runs_the_rest():
    calls = []
    chain = HookChain(
        [Recorder("a", calls), Queueing(calls), Recorder("b", calls)], logging.getLogger()
    )
    with pytest.raises(QueryQueued) as queued:
        run(chain.admit(ALICE, SUBMISSION))
    assert (queued.value.reason, queued.value.place, queued.value.waited) == (
        "Queued: one ahead of you.",
        "1-7",
        0.5,
    )
    resumed = run(chain.recheck(ALICE, queued.value.place))
    assert resumed.submission == SUBMISSION
    assert resumed.admission == Admission(
        note="a ok; waited; b ok", data={"a": 1, "queue": "7", "b": 1}
    )
    assert calls == [("a", "admit"), ("queue", "admit"), ("queue", "recheck"), ("b", "admit")]


@pytest.mark.parametrize("withdraw", [True, False])
def test_a_queued_query_that_never_runs_finishes_the_hooks_that_admitted_it(withdraw):
    calls = []
    chain = HookChain(
        [Recorder("a", calls), Queueing(calls, refuse_later=not withdraw)], logging.getLogger()
    )
    with pytest.raises(QueryQueued) as queued:
        run(chain.admit(ALICE, SUBMISSION))
    if withdraw:
        assert run(chain.withdraw(ALICE, queued.value.place)).sql == "SELECT 1"
        assert calls[-1] == ("a", "finished", "CANCELED")
    else:
        with pytest.raises(QueryRefused):
            run(chain.recheck(ALICE, queued.value.place))
        assert calls[-1] == ("a", "finished", "REJECTED")


def test_a_place_the_chain_never_gave_is_refused():
    chain = HookChain([Recorder("a", [])], logging.getLogger())
    for place in ("5-1", "x-1", "0-"):
        with pytest.raises(QueryRefused, match="unknown to DataHub"):
            run(chain.recheck(ALICE, place))
