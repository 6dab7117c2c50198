"""Alembic environment: runs on the connection `Store.migrate` hands over."""

from alembic import context

from datahub.store.core import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER much
)
with context.begin_transaction():
    context.run_migrations()
