"""Shared notebooks in the store: publish (new notebook or new version), settings,
search, counters, unpublish. Every change is one transaction: it is stored whole or not
at all.

Records come back as frozen dataclasses, detached from the session. Permission checks
are the callers' (handlers use `permissions.access_for`); only `search` filters by
viewer, in SQL, with the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from ..store import Store
from .errors import SharingError
from .metadata import NotebookSettings
from .models import NotebookShare, NotebookTag, NotebookVersion, SharedNotebook, utcnow
from .permissions import Share, Viewer
from .search import SearchQuery


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class NotebookRecord:
    """A shared notebook's settings and counters."""

    id: int
    owner: str
    title: str
    description: str
    public: bool
    source_path: str | None
    latest_version: int
    views: int
    copies: int
    created_at: datetime
    updated_at: datetime
    tags: tuple[str, ...]
    shares: tuple[Share, ...]

    @classmethod
    def of(cls, row: SharedNotebook) -> NotebookRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            title=row.title,
            description=row.description,
            public=row.public,
            source_path=row.source_path,
            latest_version=row.latest_version,
            views=row.views,
            copies=row.copies,
            created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
            tags=tuple(t.tag for t in row.tags),
            shares=tuple(Share(s.kind, s.name, s.role) for s in row.shares),
        )


@dataclass(frozen=True)
class VersionRecord:
    """One version; ``content`` (the notebook JSON text) only when asked for."""

    notebook_id: int
    number: int
    author: str
    message: str
    size: int
    sql: str
    created_at: datetime
    content: str | None = None

    @classmethod
    def of(cls, row: NotebookVersion, with_content: bool = False) -> VersionRecord:
        return cls(
            notebook_id=row.notebook_id,
            number=row.number,
            author=row.author,
            message=row.message,
            size=row.size,
            sql=row.sql,
            created_at=_aware(row.created_at),
            content=row.content if with_content else None,
        )


@dataclass(frozen=True)
class NewVersion:
    """What a publish brings: the content (canonical JSON text), its SQL, a message."""

    content: str
    sql: str
    message: str = ""


@dataclass(frozen=True)
class SearchPage:
    notebooks: list[NotebookRecord]
    total: int


def _apply_settings(session: Session, row: SharedNotebook, settings: NotebookSettings) -> None:
    if settings.title is not None:
        row.title = settings.title
    if settings.description is not None:
        row.description = settings.description
    if settings.public is not None:
        row.public = settings.public
    if settings.tags is not None:
        row.tags.clear()
        session.flush()  # delete before insert: a kept tag keeps its primary key
        row.tags.extend(NotebookTag(tag=t, position=i) for i, t in enumerate(settings.tags))
    if settings.shares is not None:
        row.shares.clear()
        session.flush()
        row.shares.extend(
            NotebookShare(kind=s.kind, name=s.name, role=s.role) for s in settings.shares
        )


def _conflict() -> SharingError:
    return SharingError(
        "Someone published this notebook at the same moment; publish again.", status=409
    )


class SharedNotebookStore:
    """Shared notebooks on top of the service's `Store` (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _load(self, session: Session, notebook_id: int, lock: bool = False) -> SharedNotebook:
        query = (
            sa.select(SharedNotebook)
            .where(SharedNotebook.id == notebook_id)
            .options(selectinload(SharedNotebook.tags), selectinload(SharedNotebook.shares))
        )
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise SharingError(f"There is no shared notebook {notebook_id}.", status=404)
        return row

    # ------------------------------------------------------------------ reading

    def get(self, notebook_id: int) -> NotebookRecord | None:
        with self.store.session() as session:
            try:
                return NotebookRecord.of(self._load(session, notebook_id))
            except SharingError:
                return None

    def find_by_source(self, owner: str, source_path: str) -> NotebookRecord | None:
        """The owner's shared notebook published from this workspace path, if any."""
        with self.store.session() as session:
            row = session.execute(
                sa.select(SharedNotebook)
                .where(SharedNotebook.owner == owner, SharedNotebook.source_path == source_path)
                .options(selectinload(SharedNotebook.tags), selectinload(SharedNotebook.shares))
            ).scalar_one_or_none()
            return NotebookRecord.of(row) if row else None

    def versions(self, notebook_id: int) -> list[VersionRecord]:
        """Every version, newest first (without content)."""
        with self.store.session() as session:
            rows = session.execute(
                sa.select(NotebookVersion)
                .where(NotebookVersion.notebook_id == notebook_id)
                .order_by(NotebookVersion.number.desc())
            ).scalars()
            return [VersionRecord.of(row) for row in rows]

    def version(self, notebook_id: int, number: int | None = None) -> VersionRecord | None:
        """One version with its content; the latest when ``number`` is None."""
        with self.store.session() as session:
            query = sa.select(NotebookVersion).where(NotebookVersion.notebook_id == notebook_id)
            if number is None:
                query = query.order_by(NotebookVersion.number.desc()).limit(1)
            else:
                query = query.where(NotebookVersion.number == number)
            row = session.execute(query).scalar_one_or_none()
            return VersionRecord.of(row, with_content=True) if row else None

    @staticmethod
    def _visible(viewer: Viewer) -> sa.ColumnElement[bool]:
        """SQL for permissions.access_for(...).can_view."""
        if viewer.admin:
            return sa.true()
        return sa.or_(
            SharedNotebook.owner == viewer.name,
            SharedNotebook.public.is_(True),
            _shared_with(viewer),
        )

    def search(
        self,
        viewer: Viewer,
        query: SearchQuery | None = None,
        filter: str = "all",
        sort: str = "recent",
        limit: int = 50,
        offset: int = 0,
    ) -> SearchPage:
        """Notebooks ``viewer`` may see that match ``query``, one page of them."""
        query = query or SearchQuery()
        latest = aliased(NotebookVersion)
        select = sa.select(SharedNotebook.id).join(
            latest,
            sa.and_(
                latest.notebook_id == SharedNotebook.id,
                latest.number == SharedNotebook.latest_version,
            ),
        )
        select = select.where(self._visible(viewer))
        if filter == "mine":
            select = select.where(SharedNotebook.owner == viewer.name)
        elif filter == "shared":
            select = select.where(SharedNotebook.owner != viewer.name, _shared_with(viewer))
        for word in query.words:
            select = select.where(
                sa.or_(
                    sa.func.lower(SharedNotebook.title).contains(word, autoescape=True),
                    sa.func.lower(SharedNotebook.description).contains(word, autoescape=True),
                    SharedNotebook.owner.contains(word, autoescape=True),
                    sa.func.lower(latest.sql).contains(word, autoescape=True),
                    sa.exists().where(
                        NotebookTag.notebook_id == SharedNotebook.id,
                        NotebookTag.tag.contains(word, autoescape=True),
                    ),
                )
            )
        if query.owners:
            select = select.where(SharedNotebook.owner.in_(query.owners))
        for tag in query.tags:
            select = select.where(
                sa.exists().where(
                    NotebookTag.notebook_id == SharedNotebook.id, NotebookTag.tag == tag
                )
            )
        order = {
            "recent": [SharedNotebook.updated_at.desc()],
            "views": [SharedNotebook.views.desc(), SharedNotebook.updated_at.desc()],
            "copies": [SharedNotebook.copies.desc(), SharedNotebook.updated_at.desc()],
        }[sort]
        with self.store.session() as session:
            total = session.execute(
                sa.select(sa.func.count()).select_from(select.subquery())
            ).scalar_one()
            ids = (
                session.execute(
                    select.order_by(*order, SharedNotebook.id.desc()).limit(limit).offset(offset)
                )
                .scalars()
                .all()
            )
            rows = {
                row.id: row
                for row in session.execute(
                    sa.select(SharedNotebook)
                    .where(SharedNotebook.id.in_(ids))
                    .options(selectinload(SharedNotebook.tags), selectinload(SharedNotebook.shares))
                ).scalars()
            }
            return SearchPage([NotebookRecord.of(rows[i]) for i in ids], total)

    # ------------------------------------------------------------------ writing

    def create(
        self,
        owner: str,
        settings: NotebookSettings,
        version: NewVersion,
        source_path: str | None = None,
    ) -> tuple[NotebookRecord, VersionRecord]:
        """A new shared notebook with its first version, in one transaction."""
        if not settings.title:
            raise SharingError("Give the notebook a title.")
        try:
            with self.store.session() as session:
                now = utcnow()
                row = SharedNotebook(
                    owner=owner,
                    title=settings.title,
                    description=settings.description or "",
                    public=bool(settings.public),
                    source_path=source_path,
                    latest_version=0,
                    views=0,
                    copies=0,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                _apply_settings(session, row, settings)
                added = self._add_version(session, row, owner, version)
                return NotebookRecord.of(row), added
        except IntegrityError:
            raise _conflict() from None

    def add_version(
        self,
        notebook_id: int,
        author: str,
        version: NewVersion,
        settings: NotebookSettings | None = None,
    ) -> tuple[NotebookRecord, VersionRecord]:
        """A new version (and, for the owner, settings changes) in one transaction."""
        try:
            with self.store.session() as session:
                row = self._load(session, notebook_id, lock=True)
                if settings is not None:
                    _apply_settings(session, row, settings)
                added = self._add_version(session, row, author, version)
                return NotebookRecord.of(row), added
        except IntegrityError:
            raise _conflict() from None

    @staticmethod
    def _add_version(
        session: Session, row: SharedNotebook, author: str, version: NewVersion
    ) -> VersionRecord:
        number = row.latest_version + 1
        added = NotebookVersion(
            notebook_id=row.id,
            number=number,
            author=author,
            message=version.message,
            content=version.content,
            size=len(version.content.encode()),
            sql=version.sql,
            created_at=utcnow(),
        )
        session.add(added)
        row.latest_version = number
        row.updated_at = added.created_at
        session.flush()
        return VersionRecord.of(added)

    def update_settings(self, notebook_id: int, settings: NotebookSettings) -> NotebookRecord:
        """Change title, description, tags, shares or visibility, in one transaction."""
        try:
            with self.store.session() as session:
                row = self._load(session, notebook_id, lock=True)
                _apply_settings(session, row, settings)
                session.flush()
                return NotebookRecord.of(row)
        except IntegrityError:
            raise _conflict() from None

    def unpublish(self, notebook_id: int) -> None:
        """Remove a shared notebook with all its versions, shares and tags."""
        with self.store.session() as session:
            session.delete(self._load(session, notebook_id))

    def count(self, notebook_id: int, counter: str) -> None:
        """Add one to ``views`` or ``copies`` (atomically, in the database)."""
        column = {"views": SharedNotebook.views, "copies": SharedNotebook.copies}[counter]
        with self.store.session() as session:
            session.execute(
                sa.update(SharedNotebook)
                .where(SharedNotebook.id == notebook_id)
                .values({column: column + 1})
            )


def _shared_with(viewer: Viewer) -> sa.ColumnElement[bool]:
    """SQL: the notebook is shared with ``viewer`` by name or through one of their groups."""
    grants = [sa.and_(NotebookShare.kind == "user", NotebookShare.name == viewer.name)]
    if viewer.groups:
        grants.append(
            sa.and_(NotebookShare.kind == "group", NotebookShare.name.in_(sorted(viewer.groups)))
        )
    return sa.exists().where(NotebookShare.notebook_id == SharedNotebook.id, sa.or_(*grants))


def share_specs(shares: Iterable[Share]) -> list[str]:
    return [share.spec for share in shares]
