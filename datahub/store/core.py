"""The store's engine, sessions, migrations, and its threads for the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")

P = ParamSpec("P")
T = TypeVar("T")

#: Store calls that may run at once from the event loop (`Store.run`), by default.
DEFAULT_THREADS = 8

#: SQLite's durability settings a store may run with (``PRAGMA synchronous``), and the
#: default: in WAL mode NORMAL keeps the database consistent and loses no commit when a
#: process crashes, only the last ones on power loss or an OS crash, and its commits
#: wait for no fsync (FULL's do: milliseconds on each query's path).
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")
DEFAULT_SQLITE_SYNCHRONOUS = "NORMAL"

# Stable constraint names, so migrations can refer to them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every table in the store."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class StoreError(RuntimeError):
    """The store cannot be used (unreachable database, schema from a newer DataHub, …)."""


def _sqlite_pragmas(synchronous: str) -> Callable[..., None]:
    """The settings of each SQLite connection the store opens, *synchronous* one of
    `SQLITE_SYNCHRONOUS`."""

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the gateway read while another process writes; foreign keys are off
        # by default in SQLite; a busy timeout turns lock contention into waiting, not
        # errors.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return on_connect


class Store:
    """A database URL turned into an engine, sessions and migrations.

    ``Store("sqlite:////var/lib/datahub/datahub.sqlite")`` or
    ``Store("postgresql+psycopg://datahub:…@db:5432/datahub")``.

    On SQLite, *sqlite_synchronous* is every connection's ``PRAGMA synchronous``
    (`SQLITE_SYNCHRONOUS`); PostgreSQL's durability is its server's
    ``synchronous_commit``, the operator's choice.

    Store calls block (the database driver is synchronous), so code on the event loop
    never makes them itself: ``await store.run(fn, *args)`` runs one in the store's own
    pool of at most *threads* threads and waits for it without blocking the loop. A slow
    call (a big search, a locked table) then holds one of those threads, never the
    loop: every other request, and every query's result pages, go on meanwhile. The
    bound keeps a burst of requests from opening more database connections than the
    engine's pool holds.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        threads: int = DEFAULT_THREADS,
        sqlite_synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS,
    ) -> None:
        if threads < 1:
            raise ValueError(f"A store needs at least one thread, not {threads}.")
        synchronous = sqlite_synchronous.upper()
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(
                f"SQLite's synchronous setting is one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                f"not {sqlite_synchronous!r}."
            )
        self.url = url
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="datahub-store")
        kwargs: dict = {"echo": echo}
        if url.startswith("sqlite"):
            # A SQLite connection never goes stale: no ping before each use (a query's
            # path checks out a connection several times).
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(synchronous))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_turn = threading.RLock()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def writing(self) -> Iterator[None]:
        """This process's turn to write: around a transaction that writes, on the hot
        path (admission, the audit's writer).

        SQLite lets one transaction write at a time, and a thread that finds the
        database locked sleeps in SQLite's busy handler, up to 100 ms between tries, even
        when the lock was freed a moment later; threads of one process wait for their
        turn here instead, each taking it as the one before commits. Other processes
        still meet the busy handler. No-op on PostgreSQL (rows are locked, not the
        database).
        """
        if not self.is_sqlite:
            yield
            return
        with self._write_turn:
            yield

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back when it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the blocking ``fn(*args, **kwargs)`` in the store's threads and wait for
        its result (or exception) without blocking the event loop.

        The one way code on the event loop uses the store: handlers, pages and features'
        hooks alike. Calls beyond ``threads`` wait their turn. Example::

            page = await self.store.run(notebooks.search, viewer, query, limit=20)
        """
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def run_in_transaction(
        self,
        op: Callable[Concatenate[sa.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``op(connection, *args, **kwargs)`` in one transaction (committed when it
        returns, rolled back when it raises), in the store's threads like `run`: for
        functions over a connection, such as those of `datahub.audit.records`::

            rows = await self.store.run_in_transaction(records.list_queries, where=where)
        """
        return await self.run(self.transaction, op, *args, **kwargs)

    def transaction(
        self, op: Callable[Concatenate[sa.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``op(connection, *args, **kwargs)`` in one transaction, in this thread."""
        with self.engine.begin() as connection:
            return op(connection, *args, **kwargs)

    def _alembic_config(self, connection: sa.Connection) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def migrate(self) -> None:
        """Bring the schema up to date: apply every feature's pending migrations."""
        with self.engine.begin() as connection:
            command.upgrade(self._alembic_config(connection), "heads")

    def current_heads(self) -> set[str]:
        """The revisions the database is at."""
        with self.engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())

    def expected_heads(self) -> set[str]:
        """The newest revision of every feature, as shipped with this DataHub."""
        with self.engine.connect() as connection:
            script = ScriptDirectory.from_config(self._alembic_config(connection))
            return set(script.get_heads())

    def dispose(self) -> None:
        """Stop the store's threads (calls already running finish) and close the
        connections of the engine's pool."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()
