"""Audit: every query the gateway ran; the clusters' drain flags.

Revision ID: audit_0001
Revises: 0000
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = "0000"
branch_labels = ("audit",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_queries",
        sa.Column("query_id", sa.String(100), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("auth_via", sa.String(16), nullable=True),
        sa.Column("principal", sa.String(255), nullable=True),
        sa.Column("cluster", sa.String(64), nullable=True),
        sa.Column("routing_group", sa.String(64), nullable=True),
        sa.Column("routing_reason", sa.String(255), nullable=True),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("client_tags", sa.JSON(), nullable=False),
        sa.Column("admission_note", sa.Text(), nullable=True),
        sa.Column("admission", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("error_name", sa.String(100), nullable=True),
        sa.Column("error_type", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("elapsed_ms", sa.BigInteger(), nullable=True),
        sa.Column("queued_ms", sa.BigInteger(), nullable=True),
        sa.Column("cpu_ms", sa.BigInteger(), nullable=True),
        sa.Column("wall_ms", sa.BigInteger(), nullable=True),
        sa.Column("processed_rows", sa.BigInteger(), nullable=True),
        sa.Column("processed_bytes", sa.BigInteger(), nullable=True),
        sa.Column("physical_bytes", sa.BigInteger(), nullable=True),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("output_rows", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("query_id", name="pk_audit_queries"),
    )
    op.create_index("ix_audit_queries_cluster", "audit_queries", ["cluster"])
    op.create_index("ix_audit_queries_state", "audit_queries", ["state"])
    op.create_index("ix_audit_queries_submitted_at", "audit_queries", ["submitted_at"])
    op.create_index("ix_audit_queries_finished_at", "audit_queries", ["finished_at"])
    op.create_index("ix_audit_queries_user_submitted_at", "audit_queries", ["user", "submitted_at"])
    op.create_table(
        "gateway_cluster_states",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=True),
        sa.Column("changed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_gateway_cluster_states"),
    )


def downgrade() -> None:
    op.drop_table("gateway_cluster_states")
    op.drop_index("ix_audit_queries_user_submitted_at", table_name="audit_queries")
    op.drop_index("ix_audit_queries_finished_at", table_name="audit_queries")
    op.drop_index("ix_audit_queries_submitted_at", table_name="audit_queries")
    op.drop_index("ix_audit_queries_state", table_name="audit_queries")
    op.drop_index("ix_audit_queries_cluster", table_name="audit_queries")
    op.drop_table("audit_queries")
