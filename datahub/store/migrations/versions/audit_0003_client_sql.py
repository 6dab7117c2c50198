"""Audit: the statement as the client sent it, when the SQL that ran differs (EXECUTE of a
prepared statement, EXECUTE IMMEDIATE).

Revision ID: audit_0003
Revises: audit_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0003"
down_revision = "audit_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place (it is a plain ADD COLUMN there).
    with op.batch_alter_table("audit_queries") as batch:
        batch.add_column(sa.Column("client_sql", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_queries") as batch:
        batch.drop_column("client_sql")
