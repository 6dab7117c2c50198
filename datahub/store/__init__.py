"""DataHub's store: query audit, quota policies and usage, shared notebooks.

SQLite by default (one file, nothing to run), PostgreSQL in production, with the same
code through SQLAlchemy 2 and the same schema through Alembic migrations, which the
DataHub service applies when it starts (`Store.migrate`).

Each feature owns its tables and its own chain of migrations, an Alembic *branch* labelled
with the feature's name (``audit``, ``quotas``, ``sharing``), all growing from the empty
base revision ``0000``. Features can then evolve independently; `migrate` upgrades every
head.
"""

from .core import Base, Store, StoreError

__all__ = ["Base", "Store", "StoreError"]
