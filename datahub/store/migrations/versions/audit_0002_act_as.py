"""Audit: the admin acting as a query's user, and admins' views of users' accounts.

Revision ID: audit_0002
Revises: audit_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0002"
down_revision = "audit_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place (it is a plain ADD COLUMN there).
    with op.batch_alter_table("audit_queries") as batch:
        batch.add_column(sa.Column("acting_admin", sa.String(255), nullable=True))
    op.create_table(
        "audit_admin_access",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admin", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("what", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_admin_access"),
    )
    op.create_index("ix_audit_admin_access_user_at", "audit_admin_access", ["user", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_admin_access_user_at", table_name="audit_admin_access")
    op.drop_table("audit_admin_access")
    with op.batch_alter_table("audit_queries") as batch:
        batch.drop_column("acting_admin")
