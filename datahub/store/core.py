"""The store's engine, sessions and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")

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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the gateway read while another process writes; foreign keys are off by
    # default in SQLite; a busy timeout turns lock contention into waiting, not errors.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    """A database URL turned into an engine, sessions and migrations.

    ``Store("sqlite:////var/lib/datahub/datahub.sqlite")`` or
    ``Store("postgresql+psycopg://datahub:…@db:5432/datahub")``.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        kwargs: dict = {"echo": echo, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2)
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

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
        self.engine.dispose()
