"""Query events: the lease that lets one publisher at a time send the outbox, when several
service processes share the store.

Revision ID: events_0002
Revises: events_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0002"
down_revision = "events_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lease = op.create_table(
        "event_publisher_lease",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_event_publisher_lease"),
    )
    # The one row a publisher takes with a conditional UPDATE (no insert race).
    op.bulk_insert(lease, [{"name": "event_outbox", "holder": None, "expires_at": None}])


def downgrade() -> None:
    op.drop_table("event_publisher_lease")
