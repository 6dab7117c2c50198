"""Shared notebooks: notebooks, their versions, shares and tags.

Revision ID: sharing_0001
Revises: 0000
"""

import sqlalchemy as sa
from alembic import op

revision = "sharing_0001"
down_revision = "0000"
branch_labels = ("sharing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_notebooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("source_path", sa.String(1024), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("copies", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shared_notebooks"),
        sa.UniqueConstraint("owner", "source_path", name="uq_shared_notebooks_owner_source_path"),
    )
    op.create_index("ix_shared_notebooks_owner", "shared_notebooks", ["owner"])
    op.create_index("ix_shared_notebooks_updated_at", "shared_notebooks", ["updated_at"])

    op.create_table(
        "shared_notebook_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notebook_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notebook_id"],
            ["shared_notebooks.id"],
            name="fk_shared_notebook_versions_notebook_id_shared_notebooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_shared_notebook_versions"),
        sa.UniqueConstraint(
            "notebook_id", "number", name="uq_shared_notebook_versions_notebook_id_number"
        ),
    )
    op.create_index(
        "ix_shared_notebook_versions_notebook_id", "shared_notebook_versions", ["notebook_id"]
    )

    op.create_table(
        "shared_notebook_shares",
        sa.Column("notebook_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.CheckConstraint("kind IN ('user', 'group')", name="ck_shared_notebook_shares_kind"),
        sa.CheckConstraint("role IN ('viewer', 'editor')", name="ck_shared_notebook_shares_role"),
        sa.ForeignKeyConstraint(
            ["notebook_id"],
            ["shared_notebooks.id"],
            name="fk_shared_notebook_shares_notebook_id_shared_notebooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notebook_id", "kind", "name", name="pk_shared_notebook_shares"),
    )
    op.create_index(
        "ix_shared_notebook_shares_kind_name", "shared_notebook_shares", ["kind", "name"]
    )

    op.create_table(
        "shared_notebook_tags",
        sa.Column("notebook_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notebook_id"],
            ["shared_notebooks.id"],
            name="fk_shared_notebook_tags_notebook_id_shared_notebooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notebook_id", "tag", name="pk_shared_notebook_tags"),
    )
    op.create_index("ix_shared_notebook_tags_tag", "shared_notebook_tags", ["tag"])


def downgrade() -> None:
    op.drop_table("shared_notebook_tags")
    op.drop_table("shared_notebook_shares")
    op.drop_table("shared_notebook_versions")
    op.drop_table("shared_notebooks")
