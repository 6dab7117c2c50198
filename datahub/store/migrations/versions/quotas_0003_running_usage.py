"""Quotas: a running query's CPU and bytes are counted while it runs; its slot keeps how
much was counted so far, so its end adds only the rest.

Revision ID: quotas_0003
Revises: quotas_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "quotas_0003"
down_revision = "quotas_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quota_slots") as batch:
        batch.add_column(sa.Column("cpu_ms", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("bytes_scanned", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("quota_slots") as batch:
        batch.drop_column("bytes_scanned")
        batch.drop_column("cpu_ms")
