"""The store's tables for shared notebooks (migrations: ``sharing_*.py``, branch
``sharing``)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..store import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class SharedNotebook(Base):
    """A published notebook: its settings and counters; content lives in its versions."""

    __tablename__ = "shared_notebooks"
    __table_args__ = (
        # One shared notebook per owner and workspace path: publishing the same file
        # again adds a version.
        sa.UniqueConstraint("owner", "source_path", name="uq_shared_notebooks_owner_source_path"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    public: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    source_path: Mapped[str | None] = mapped_column(sa.String(1024), nullable=True)
    latest_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    views: Mapped[int] = mapped_column(sa.Integer, default=0)
    copies: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, index=True
    )

    versions: Mapped[list[NotebookVersion]] = relationship(
        back_populates="notebook",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="NotebookVersion.number",
    )
    shares: Mapped[list[NotebookShare]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="NotebookShare.name"
    )
    tags: Mapped[list[NotebookTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="NotebookTag.position"
    )


class NotebookVersion(Base):
    """One publish: the notebook's content then, who published it, and its SQL."""

    __tablename__ = "shared_notebook_versions"
    __table_args__ = (
        sa.UniqueConstraint(
            "notebook_id", "number", name="uq_shared_notebook_versions_notebook_id_number"
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    notebook_id: Mapped[int] = mapped_column(
        sa.ForeignKey("shared_notebooks.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(sa.Integer)
    author: Mapped[str] = mapped_column(sa.String(255))
    message: Mapped[str] = mapped_column(sa.String(500), default="")
    #: The notebook as nbformat v4 JSON text (validated, trust marks removed).
    content: Mapped[str] = mapped_column(sa.Text)
    size: Mapped[int] = mapped_column(sa.Integer)
    #: The SQL of its cells (see notebooks.sql_text), for search and diffs.
    sql: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    notebook: Mapped[SharedNotebook] = relationship(back_populates="versions")


class NotebookShare(Base):
    """A grant: a hub user or group may view (or edit) a shared notebook."""

    __tablename__ = "shared_notebook_shares"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('user', 'group')", name="kind"),
        sa.CheckConstraint("role IN ('viewer', 'editor')", name="role"),
        sa.Index("ix_shared_notebook_shares_kind_name", "kind", "name"),
    )

    notebook_id: Mapped[int] = mapped_column(
        sa.ForeignKey("shared_notebooks.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(10), default="viewer")


class NotebookTag(Base):
    """A tag on a shared notebook (lower case, in the order the owner gave them)."""

    __tablename__ = "shared_notebook_tags"

    notebook_id: Mapped[int] = mapped_column(
        sa.ForeignKey("shared_notebooks.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(sa.String(40), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(sa.Integer, default=0)
