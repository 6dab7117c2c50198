"""The empty base every feature's branch grows from.

Revision ID: 0000
"""

revision = "0000"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
