"""Crash detection: the crash watcher's incidents, their lost queries, and the queries it
follows (datahub/events/incidents.py).

Revision ID: events_0003
Revises: events_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0003"
down_revision = "events_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crash_open_queries",
        sa.Column("query_id", sa.String(255), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("query_id", name="pk_crash_open_queries"),
    )
    op.create_table(
        "crash_incidents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_lost_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_crash_incidents"),
    )
    op.create_index("ix_crash_incidents_cluster", "crash_incidents", ["cluster"])
    op.create_index("ix_crash_incidents_started_at", "crash_incidents", ["started_at"])
    op.create_table(
        "crash_lost_queries",
        sa.Column("query_id", sa.String(255), nullable=False),
        sa.Column("incident_id", sa.String(32), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lost_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marked_by", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("query_id", name="pk_crash_lost_queries"),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["crash_incidents.id"],
            name="fk_crash_lost_queries_incident_id_crash_incidents",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_crash_lost_queries_incident_id", "crash_lost_queries", ["incident_id"])
    op.create_index("ix_crash_lost_queries_lost_at", "crash_lost_queries", ["lost_at"])


def downgrade() -> None:
    op.drop_table("crash_lost_queries")
    op.drop_table("crash_incidents")
    op.drop_table("crash_open_queries")
