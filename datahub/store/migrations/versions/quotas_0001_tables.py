"""Quotas: policies, users, slots (leases), daily usage, refusals, change audit.

Revision ID: quotas_0001
Revises: 0000
"""

import sqlalchemy as sa
from alembic import op

revision = "quotas_0001"
down_revision = "0000"
branch_labels = ("quotas",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quota_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quota_policies"),
        sa.UniqueConstraint("scope", "name", name="uq_quota_policies_scope"),
        sa.CheckConstraint(
            "scope IN ('default', 'group', 'user')", name=op.f("ck_quota_policies_scope")
        ),
    )
    op.create_table(
        "quota_users",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("last_seen", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_quota_users"),
    )
    op.create_table(
        "quota_slots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("query_id", sa.String(128), nullable=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("admitted_at", _TS, nullable=True),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quota_slots"),
        sa.CheckConstraint("state IN ('queued', 'running')", name=op.f("ck_quota_slots_state")),
    )
    op.create_index("ix_quota_slots_user_state", "quota_slots", ["user_name", "state"])
    op.create_index("ix_quota_slots_expires_at", "quota_slots", ["expires_at"])
    op.create_table(
        "quota_usage",
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.Column("cpu_ms", sa.BigInteger(), nullable=False),
        sa.Column("bytes_scanned", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_name", "day", name="pk_quota_usage"),
    )
    op.create_index("ix_quota_usage_day", "quota_usage", ["day"])
    op.create_table(
        "quota_refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("limit_name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("query_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quota_refusals"),
    )
    op.create_index("ix_quota_refusals_at", "quota_refusals", ["at"])
    op.create_table(
        "quota_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quota_changes"),
    )
    op.create_index("ix_quota_changes_at", "quota_changes", ["at"])


def downgrade() -> None:
    for table in (
        "quota_changes",
        "quota_refusals",
        "quota_usage",
        "quota_slots",
        "quota_users",
        "quota_policies",
    ):
        op.drop_table(table)
