"""A process's writers to a SQLite store take turns (`Store.writing`) instead of meeting
SQLite's busy handler, which sleeps up to 100 ms between tries."""

from __future__ import annotations

import threading

from datahub.store import Store


def test_writers_of_one_process_take_turns_on_sqlite(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        first_in, second_in, let_go = threading.Event(), threading.Event(), threading.Event()

        def first() -> None:
            with store.writing():
                first_in.set()
                let_go.wait(30)

        def second() -> None:
            first_in.wait(30)
            with store.writing():
                second_in.set()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        assert first_in.wait(30)
        # The second writer waits for its turn while the first one holds it...
        assert not second_in.wait(0.2)
        let_go.set()
        # ...and takes it as soon as the first one is done.
        assert second_in.wait(30)
        for t in threads:
            t.join(30)
        # A writer may nest (an operation that writes inside another's turn).
        with store.writing(), store.writing():
            pass
    finally:
        store.dispose()


def test_writers_on_postgresql_do_not_wait_for_each_other():
    # No connection is made: the turn is SQLite's alone.
    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        held, let_go = threading.Event(), threading.Event()

        def hold() -> None:
            with store.writing():
                held.set()
                let_go.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        assert held.wait(30)
        with store.writing():  # not blocked by the other thread's turn
            assert not let_go.is_set()
        let_go.set()
        t.join(30)
    finally:
        store.dispose()
