"""Quotas: a queued query's request is kept with its slot, so any gateway process can
submit it when its turn comes; slot ids are never reused (a client names its slot by id).

Revision ID: quotas_0002
Revises: quotas_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "quotas_0002"
down_revision = "quotas_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Recreated on SQLite, with AUTOINCREMENT; PostgreSQL's sequence never reuses ids.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "quota_slots",
        table_kwargs={"sqlite_autoincrement": True},
        recreate="always" if sqlite else "auto",
    ) as batch:
        batch.add_column(sa.Column("request", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quota_slots") as batch:
        batch.drop_column("request")
