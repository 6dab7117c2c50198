"""Query events: the durable outbox the publisher sends to Kafka from.

Revision ID: events_0001
Revises: 0000
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0001"
down_revision = "0000"
branch_labels = ("events",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("query_id", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_event_outbox"),
        sa.UniqueConstraint("event_id", name="uq_event_outbox_event_id"),
        # seq is never reused, so "sent in the order added" holds after deletes too.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_event_outbox_query_id", "event_outbox", ["query_id"])
    op.create_index("ix_event_outbox_sent_at", "event_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_table("event_outbox")
