"""A SQLite store's durability setting (``PRAGMA synchronous``) is the configured one on
every connection it opens: NORMAL by default (in WAL mode: consistent, nothing lost when
a process crashes, no fsync per commit), FULL when asked for."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from traitlets import TraitError

from datahub.service.app import DataHubService
from datahub.store import Store

#: SQLite's numbers for the settings.
LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def settings_of_connections(store: Store, count: int) -> list[tuple[str, str]]:
    """``(synchronous, journal_mode)`` of *count* connections open at once (each a new
    connection of the engine's pool)."""
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()
    all_in = threading.Barrier(count, timeout=30)

    def look() -> None:
        with store.engine.connect() as connection:
            level = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            all_in.wait()  # all connections open at once: none reused
            with lock:
                seen.append((LEVELS[level], mode))

    threads = [threading.Thread(target=look) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return seen


@pytest.mark.parametrize("setting", [None, "NORMAL", "FULL", "full"])
def test_every_connection_has_the_configured_setting(tmp_path, setting):
    kwargs = {} if setting is None else {"sqlite_synchronous": setting}
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}", **kwargs)
    try:
        store.migrate()
        expected = (setting or "NORMAL").upper()
        assert settings_of_connections(store, 4) == [(expected, "wal")] * 4
        # The store's own sessions and transactions too.
        with store.session() as session:
            assert LEVELS[session.execute(sa.text("PRAGMA synchronous")).scalar_one()] == expected
        level = store.transaction(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar_one())
        assert LEVELS[level] == expected
    finally:
        store.dispose()


def test_an_unknown_setting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="one of FULL, NORMAL, not 'OFF'"):
        Store(f"sqlite:///{tmp_path / 'store.sqlite'}", sqlite_synchronous="OFF")


def test_the_service_opens_its_store_with_its_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'datahub.sqlite'}"
    default = DataHubService(clusters=[], store_url=url)
    assert default.store_sqlite_synchronous == "NORMAL"
    service = DataHubService(clusters=[], store_url=url, store_sqlite_synchronous="full")
    service.init()
    try:
        assert settings_of_connections(service.store, 2) == [("FULL", "wal")] * 2
    finally:
        service.store.dispose()
    with pytest.raises(TraitError):
        DataHubService(clusters=[], store_sqlite_synchronous="OFF")
