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
    QueryRefused,
    QueryStats,
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
