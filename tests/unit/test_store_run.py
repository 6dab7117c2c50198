"""`Store.run`: store calls from the event loop run in the store's bounded pool of threads,
so a slow one never holds the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa

from datahub.store import Store


@pytest.fixture
def store(tmp_path):
    db = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}", threads=2)
    yield db
    db.dispose()


def test_run_returns_the_calls_result_and_raises_its_exception(store):
    async def main():
        assert await store.run(lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(KeyError, match="missing"):
            await store.run({}.__getitem__, "missing")

    asyncio.run(main())


def test_a_blocked_store_call_leaves_the_event_loop_running(store):
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait()
        return "done"

    async def main():
        call = asyncio.ensure_future(store.run(slow))
        while not started.is_set():
            await asyncio.sleep(0)
        # The loop goes on serving others while the call waits in its thread.
        ticks = 0
        for _ in range(50):
            await asyncio.sleep(0)
            ticks += 1
        assert not call.done() and ticks == 50
        release.set()
        assert await call == "done"

    asyncio.run(main())


def test_calls_beyond_the_pool_wait_for_a_free_thread(store):
    release = threading.Event()
    running: list[int] = []
    both = threading.Barrier(3)

    def held(n: int) -> int:
        running.append(n)
        if n < 2:
            both.wait()
            release.wait()
        return n

    async def main():
        first = [asyncio.ensure_future(store.run(held, n)) for n in range(2)]
        await asyncio.get_running_loop().run_in_executor(None, both.wait)
        third = asyncio.ensure_future(store.run(held, 2))
        await asyncio.sleep(0)
        # Both threads are taken: the third call has not started.
        assert sorted(running) == [0, 1] and not third.done()
        release.set()
        assert await asyncio.gather(*first, third) == [0, 1, 2]
        assert sorted(running) == [0, 1, 2]

    asyncio.run(main())


def test_run_in_transaction_commits_or_rolls_back_the_whole_operation(store):
    def create(connection: sa.Connection) -> None:
        connection.execute(sa.text("CREATE TABLE t (n INTEGER)"))

    def insert(connection: sa.Connection, n: int, fail: bool = False) -> int:
        connection.execute(sa.text("INSERT INTO t VALUES (:n)"), {"n": n})
        if fail:
            raise ValueError("refused")
        return n

    def count(connection: sa.Connection) -> int:
        return connection.execute(sa.text("SELECT count(*) FROM t")).scalar_one()

    async def main():
        await store.run_in_transaction(create)
        assert await store.run_in_transaction(insert, 1) == 1
        with pytest.raises(ValueError, match="refused"):
            await store.run_in_transaction(insert, 2, fail=True)
        assert await store.run_in_transaction(count) == 1

    asyncio.run(main())


def test_a_store_needs_a_thread(tmp_path):
    with pytest.raises(ValueError, match="at least one thread"):
        Store(f"sqlite:///{tmp_path / 'x.sqlite'}", threads=0)
