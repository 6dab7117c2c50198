"""Pages and REST API of the shared-notebook gallery, mounted under the service prefix.

REST API (JSON; ``Authorization: token <hub token>``, or the pages' cookie + XSRF):

- ``GET api/notebooks?q=&filter=all|mine|shared&sort=recent|views|copies&limit=&offset=``:
  search what you may see;
- ``POST api/notebooks``: publish (a new notebook, or a new version of the one published
  from the same workspace ``path``, or of ``id``);
- ``GET|PATCH|DELETE api/notebooks/{id}``: details with your permissions and the history;
  change title, description, tags, shares, public (owner); unpublish (owner or admin);
- ``GET|POST api/notebooks/{id}/versions``: the history; publish a version (owner, editor);
- ``GET api/notebooks/{id}/versions/{n}``: one version with its notebook;
- ``GET api/notebooks/{id}/diff?from=&to=``: the SQL changes between two versions;
- ``POST api/notebooks/{id}/copy``: open a copy in your own workspace;
- ``GET api/workspace/notebooks``: the notebooks in your own workspace.

Pages: ``gallery`` (search), ``gallery/publish``, ``gallery/{id}`` (view, history,
settings), ``gallery/{id}/diff``, ``gallery/{id}/v{n}.ipynb`` (download), and the forms'
POST targets ``gallery/{id}/copy|settings|unpublish``.

Handlers are thin: rules live in `permissions`, checks in `metadata`/`notebooks`,
rendering in `render`, storage in `store` (called through ``Store.run``, never on the
event loop), the hub and servers in `hub`. A notebook the requester may not see answers
404 everywhere.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import plotly
from tornado import web

from ..web.base import APIHandler, BaseHandler, PageHandler
from .context import SharingContext
from .copies import inert_copy
from .errors import SharingError
from .hub import HubDirectory, UserServer
from .metadata import clean_message, parse_settings, publish_form_settings, shares_from_text
from .notebooks import (
    canonical_notebook,
    check_size,
    check_workspace_path,
    safe_file_name,
    sql_diff,
    sql_text,
    unified_diff_text,
)
from .permissions import Access, Share, Viewer, access_for
from .render import render_notebook
from .search import FILTERS, SORTS, check_filter, check_sort, parse_query
from .store import NewVersion, NotebookRecord, SharedNotebookStore, VersionRecord

STATIC_DIR = Path(__file__).with_name("static")
PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"
STATIC_FILES = ("notebook.js", "notebook.css")
#: A shared notebook's page carries its author's content, so it may load nothing but
#: DataHub's own scripts, styles and fonts (the hub's stylesheet and icon font,
#: Bootstrap, the theme toggle, notebook.js, plotly.js), images only from data: URLs (the
#: author's images, Bootstrap's icons, Plotly's), connect nowhere, post forms only to the
#: service, and be framed by no page. Even markup that slipped through the sanitiser
#: could not make the viewer's browser send a request (a GET of /hub/logout, of an admin
#: page): author markup has no CSS to load a font with.
NOTEBOOK_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; img-src data:; connect-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _file_version(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "0"


FILTER_LABELS = {"all": "Everything I can see", "mine": "Mine", "shared": "Shared with me"}
SORT_LABELS = {"recent": "Recently published", "views": "Most viewed", "copies": "Most copied"}
assert set(FILTER_LABELS) == set(FILTERS) and set(SORT_LABELS) == set(SORTS)

STATIC_VERSIONS = {name: _file_version(STATIC_DIR / name) for name in STATIC_FILES} | {
    "plotly.min.js": plotly.__version__
}


def sharing_errors(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn SharingError into the HTTP error the API and pages show."""

    @functools.wraps(method)
    async def wrapper(self: web.RequestHandler, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except SharingError as e:
            raise web.HTTPError(e.status, "%s", e.message) from None

    return wrapper


def _quote_path(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.split("/"))


class SharingHandler(BaseHandler):
    """Base of this feature's handlers (before PageHandler or APIHandler): the feature's
    part (``datahub_sharing``: options and notebook store) and its helpers."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Author content is in our JSON and downloads: never let a browser sniff it as HTML.
        self.set_header("X-Content-Type-Options", "nosniff")

    @property
    def sharing(self) -> SharingContext:
        return self.settings["datahub_sharing"]

    @property
    def notebooks(self) -> SharedNotebookStore:
        """The shared notebooks in the store: call its methods through ``self.store.run``."""
        return self.sharing.notebooks

    @property
    def viewer(self) -> Viewer:
        user = self.current_user
        if user.get("kind", "user") != "user":
            raise SharingError(
                "Shared notebooks belong to people: use a hub user's token, not a service's.",
                status=403,
            )
        return Viewer(
            name=self.user_name,
            groups=frozenset(self.user_groups),
            admin=self.is_admin,
        )

    @property
    def base_url(self) -> str:
        """The hub's base URL (``/``), from its prefix (``/hub/``)."""
        prefix = self.hub_auth.hub_prefix
        return prefix[: -len("hub/")] if prefix.endswith("hub/") else "/"

    def page_url(self, notebook_id: int, **query: Any) -> str:
        url = f"{self.prefix}gallery/{notebook_id}"
        query = {k: v for k, v in query.items() if v is not None}
        return f"{url}?{urlencode(query)}" if query else url

    def lab_url(self, path: str) -> str:
        return (
            f"{self.base_url}user/{quote(self.viewer.name, safe='')}/lab/tree/{_quote_path(path)}"
        )

    async def visible(self, notebook_id: int | str) -> tuple[NotebookRecord, Access]:
        """The notebook and the viewer's access; 404 when it does not exist or they may
        not see it (the same answer, so that existence does not leak)."""
        record = await self.store.run(self.notebooks.get, int(notebook_id))
        if record is not None:
            access = access_for(self.viewer, record.owner, record.public, record.shares)
            if access.can_view:
                return record, access
        raise SharingError(
            f"There is no shared notebook {notebook_id} that you can see.", status=404
        )

    async def version_of(self, record: NotebookRecord, number: Any = None) -> VersionRecord:
        if number in (None, ""):
            number = None
        else:
            try:
                number = int(number)
            except (TypeError, ValueError):
                raise SharingError(f"Version {number!r} is not a number.") from None
        version = await self.store.run(self.notebooks.version, record.id, number)
        if version is None:
            raise SharingError(
                f"{record.title!r} has no version {number} (its latest is "
                f"{record.latest_version}).",
                status=404,
            )
        return version

    def directory(self) -> HubDirectory:
        return HubDirectory(
            self.hub_auth.api_url,
            self.hub_auth.api_token,
            timeout=self.sharing.config.request_timeout,
        )

    def user_server(self) -> UserServer:
        """The requester's own server, reached with the requester's own token."""
        token = self.hub_auth.get_token(self)
        if not token:
            raise SharingError("Sign in again: DataHub has no token for your server.", status=403)
        config = self.sharing.config
        return UserServer(
            user=self.viewer.name,
            token=token,
            hub_url=config.hub_url,
            hub_api_url=self.hub_auth.api_url,
            base_url=self.base_url,
            timeout=config.request_timeout,
        )

    async def check_shares(self, shares: tuple[Share, ...] | None) -> None:
        """SharingError naming every share whose hub user or group does not exist."""
        if not shares:
            return
        missing = await self.directory().missing(shares)
        if missing:
            names = ", ".join(share.spec for share in missing)
            raise SharingError(
                f"The hub has no {names} (users appear once they have signed in); check "
                "the names and publish again."
            )

    async def publish(
        self,
        content: Any,
        data: dict[str, Any],
        *,
        source_path: str | None = None,
        target_id: int | None = None,
    ) -> tuple[NotebookRecord, VersionRecord, bool]:
        """Publish ``content``: a new version of ``target_id``, of the requester's
        notebook from ``source_path``, or a new shared notebook. Everything is checked
        before the one transaction that stores it. Returns (notebook, version, created)."""
        viewer = self.viewer
        notebooks = self.notebooks
        target: tuple[NotebookRecord, Access] | None = None
        if target_id is not None:
            target = await self.visible(target_id)
        elif source_path:
            source_path = check_workspace_path(source_path)
            existing = await self.store.run(notebooks.find_by_source, viewer.name, source_path)
            if existing is not None:
                target = existing, access_for(viewer, existing.owner, False, ())
        if target is not None and not target[1].can_publish:
            raise SharingError(
                f"You may view {target[0].title!r} but not publish versions of it; ask "
                f"{target[0].owner} to make you an editor.",
                status=403,
            )
        text = canonical_notebook(content, self.sharing.config.max_notebook_size)
        version = NewVersion(
            content=text, sql=sql_text(json.loads(text)), message=clean_message(data.get("message"))
        )
        if target is not None:
            record, access = target
            settings = parse_settings(data, owner=record.owner)
            if not settings.empty and not access.can_edit:
                raise SharingError(
                    f"Only {record.owner} can change the title, description, tags or sharing "
                    f"of {record.title!r}; publish the version without them.",
                    status=403,
                )
            await self.check_shares(settings.shares)
            record, added = await self.store.run(
                notebooks.add_version,
                record.id,
                viewer.name,
                version,
                None if settings.empty else settings,
            )
            return record, added, False
        if not data.get("title") and source_path:
            data = {**data, "title": Path(source_path).stem}
        settings = parse_settings(data, owner=viewer.name)
        if not settings.title:
            raise SharingError("Give the notebook a title (--title in %datahub publish).")
        await self.check_shares(settings.shares)
        record, added = await self.store.run(
            notebooks.create, viewer.name, settings, version, source_path
        )
        return record, added, True

    async def open_copy(self, record: NotebookRecord, number: Any = None) -> str:
        """Write a version into the requester's workspace (starting their server if
        needed); return its path there."""
        version = await self.version_of(record, number)
        config = self.sharing.config
        server = self.user_server()
        await server.ensure_running(config.server_start_timeout)
        # Untrusted, and loading nothing in the copier's JupyterLab (see copies.py).
        notebook = inert_copy(json.loads(version.content or "{}"))
        path = await server.save_notebook(
            config.copy_directory, safe_file_name(record.title), notebook
        )
        await self.store.run(self.notebooks.count, record.id, "copies")
        return path

    async def diff(self, record: NotebookRecord, old: Any, new: Any) -> dict[str, Any]:
        """The SQL changes between two versions (default: the latest and the one before)."""
        new_version = await self.version_of(record, new)
        if old in (None, ""):
            old = max(new_version.number - 1, 1)
        old_version = await self.version_of(record, old)
        lines = sql_diff(old_version.sql, new_version.sql)
        return {
            "from": old_version.number,
            "to": new_version.number,
            "changed": any(line.kind in ("add", "remove") for line in lines),
            "lines": [{"kind": line.kind, "text": line.text} for line in lines],
            "diff": unified_diff_text(lines),
        }


# --------------------------------------------------------------------------- JSON


def _time(value: Any) -> str:
    return value.isoformat()


def notebook_json(
    handler: SharingHandler, record: NotebookRecord, access: Access, **extra: Any
) -> dict[str, Any]:
    body = {
        "id": record.id,
        "title": record.title,
        "description": record.description,
        "owner": record.owner,
        "tags": list(record.tags),
        "public": record.public,
        "latest_version": record.latest_version,
        "views": record.views,
        "copies": record.copies,
        "created": _time(record.created_at),
        "updated": _time(record.updated_at),
        "url": handler.page_url(record.id),
        "access": access.as_dict(),
    }
    if access.can_edit or access.admin:
        body["shares"] = [share.spec for share in record.shares]
        body["source_path"] = record.source_path
    body.update(extra)
    return body


def version_json(version: VersionRecord, content: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": version.number,
        "author": version.author,
        "message": version.message,
        "size": version.size,
        "created": _time(version.created_at),
        "sql": version.sql,
    }
    if content and version.content is not None:
        body["content"] = json.loads(version.content)
    return body


def _int_argument(handler: web.RequestHandler, name: str, default: int, top: int) -> int:
    value = handler.get_argument(name, str(default))
    try:
        number = int(value)
    except ValueError:
        raise SharingError(f"{name} must be a whole number, not {value!r}.") from None
    if not 0 <= number <= top:
        raise SharingError(f"{name} must be between 0 and {top}.")
    return number


class NotebooksAPI(SharingHandler, APIHandler):
    """``GET`` search, ``POST`` publish."""

    @web.authenticated
    @sharing_errors
    async def get(self) -> None:
        config = self.sharing.config
        viewer = self.viewer
        page = await self.store.run(
            self.notebooks.search,
            viewer,
            parse_query(self.get_argument("q", "")),
            filter=check_filter(self.get_argument("filter", "all")),
            sort=check_sort(self.get_argument("sort", "recent")),
            limit=_int_argument(self, "limit", config.page_size, 500) or config.page_size,
            offset=_int_argument(self, "offset", 0, 10**9),
        )
        self.write_json(
            {
                "total": page.total,
                "notebooks": [
                    notebook_json(self, r, access_for(viewer, r.owner, r.public, r.shares))
                    for r in page.notebooks
                ],
            }
        )

    @web.authenticated
    @sharing_errors
    async def post(self) -> None:
        """Body: ``content`` (the notebook JSON), and optional ``title``,
        ``description``, ``tags``, ``shares``, ``public``, ``message``, ``path`` (its
        path in your workspace: publishing the same path again adds a version) and
        ``id`` (publish a new version of that notebook)."""
        if len(self.request.body) > self.sharing.config.max_notebook_size + 64 * 1024:
            # Refuse before parsing: the notebook is almost all of the body.
            check_size(len(self.request.body), self.sharing.config.max_notebook_size)
        data = self.body_json()
        if not isinstance(data, dict) or "content" not in data:
            raise SharingError('Send a JSON object with the notebook in "content".')
        target = data.get("id")
        if target is not None and not isinstance(target, int):
            raise SharingError('"id" must be the number of a shared notebook.')
        record, version, created = await self.publish(
            data["content"],
            {k: v for k, v in data.items() if k not in ("content", "id", "path")},
            source_path=data.get("path"),
            target_id=target,
        )
        access = access_for(self.viewer, record.owner, record.public, record.shares)
        self.write_json(
            notebook_json(
                self,
                record,
                access,
                version=version.number,
                created=created,
                version_url=self.page_url(record.id, version=version.number),
            ),
            status=201,
        )


class NotebookAPI(SharingHandler, APIHandler):
    """One shared notebook: ``GET``, ``PATCH`` settings, ``DELETE`` unpublish."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        versions = await self.store.run(self.notebooks.versions, record.id)
        self.write_json(
            notebook_json(self, record, access, versions=[version_json(v) for v in versions])
        )

    @web.authenticated
    @sharing_errors
    async def patch(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        if not access.can_edit:
            raise SharingError(f"Only {record.owner} can change {record.title!r}.", status=403)
        data = self.body_json()
        if not isinstance(data, dict):
            raise SharingError("Send a JSON object with the settings to change.")
        settings = parse_settings(data, owner=record.owner)
        await self.check_shares(settings.shares)
        record = await self.store.run(self.notebooks.update_settings, record.id, settings)
        self.write_json(notebook_json(self, record, access))

    @web.authenticated
    @sharing_errors
    async def delete(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        if not access.can_unpublish:
            raise SharingError(
                f"Only {record.owner} or an admin can unpublish {record.title!r}.", status=403
            )
        await self.store.run(self.notebooks.unpublish, record.id)
        self.set_status(204)
        self.finish()


class VersionsAPI(SharingHandler, APIHandler):
    """``GET`` the history, ``POST`` a new version (owner or editor)."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str) -> None:
        record, _ = await self.visible(notebook_id)
        versions = await self.store.run(self.notebooks.versions, record.id)
        self.write_json({"versions": [version_json(v) for v in versions]})

    @web.authenticated
    @sharing_errors
    async def post(self, notebook_id: str) -> None:
        data = self.body_json()
        if not isinstance(data, dict) or "content" not in data:
            raise SharingError('Send a JSON object with the notebook in "content".')
        record, version, _ = await self.publish(
            data["content"],
            {k: v for k, v in data.items() if k not in ("content", "id", "path")},
            target_id=int(notebook_id),
        )
        self.write_json(version_json(version) | {"url": self.page_url(record.id)}, status=201)


class VersionAPI(SharingHandler, APIHandler):
    """``GET`` one version with its notebook (``content``)."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str, number: str) -> None:
        record, _ = await self.visible(notebook_id)
        self.write_json(version_json(await self.version_of(record, number), content=True))


class DiffAPI(SharingHandler, APIHandler):
    """``GET ?from=N&to=M``: the SQL changes between two versions."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str) -> None:
        record, _ = await self.visible(notebook_id)
        self.write_json(
            await self.diff(record, self.get_argument("from", None), self.get_argument("to", None))
        )


class CopyAPI(SharingHandler, APIHandler):
    """``POST {"version": n}``: copy into your workspace; answers its path and Lab URL."""

    @web.authenticated
    @sharing_errors
    async def post(self, notebook_id: str) -> None:
        record, _ = await self.visible(notebook_id)
        data = self.body_json() or {}
        if not isinstance(data, dict):
            raise SharingError('Send a JSON object, e.g. {"version": 2}, or nothing.')
        path = await self.open_copy(record, data.get("version"))
        self.write_json({"path": path, "url": self.lab_url(path)}, status=201)


class WorkspaceAPI(SharingHandler, APIHandler):
    """``GET``: the notebooks in your own workspace (through your running server)."""

    @web.authenticated
    @sharing_errors
    async def get(self) -> None:
        server = self.user_server()
        state = await server.state()
        if state not in ("ready", "unknown"):
            raise SharingError(
                "Your server is not running; start it to list your notebooks.", status=409
            )
        paths = await server.list_notebooks(self.sharing.config.workspace_scan_limit)
        self.write_json({"notebooks": paths})


# --------------------------------------------------------------------------- pages


class SharingPage(SharingHandler, PageHandler):
    def render_sharing(self, template: str, status: int = 200, **context: Any) -> None:
        self.set_status(status)
        self.render_page(
            template,
            active="gallery",
            static=lambda name: (
                f"{self.prefix}gallery/static/{name}?v={STATIC_VERSIONS.get(name, '0')}"
            ),
            **context,
        )

    async def show(
        self,
        record: NotebookRecord,
        access: Access,
        number: Any = None,
        status: int = 200,
        error: str | None = None,
        form: dict[str, Any] | None = None,
    ) -> None:
        """Render the notebook page (version ``number``, default the latest)."""
        version = await self.version_of(record, number)
        versions = await self.store.run(self.notebooks.versions, record.id)
        # Rendering is CPU work on the author's content: off the event loop too.
        cells = await asyncio.to_thread(render_notebook, json.loads(version.content or "{}"))
        self.page_csp = NOTEBOOK_PAGE_CSP
        self.render_sharing(
            "notebook.html",
            status=status,
            notebook=record,
            access=access,
            version=version,
            versions=versions,
            cells=cells,
            has_charts=any(o.kind == "chart" for c in cells for o in c.outputs),
            error=error,
            form=form
            or {
                "title": record.title,
                "description": record.description,
                "tags": ", ".join(record.tags),
                "shares": "\n".join(share.spec for share in record.shares),
                "public": record.public,
            },
            base=self.page_url(record.id),
        )


class GalleryPage(SharingPage):
    """``gallery``: search, filters, sort."""

    @web.authenticated
    @sharing_errors
    async def get(self) -> None:
        config = self.sharing.config
        viewer = self.viewer
        q = self.get_argument("q", "")
        filter_ = self.get_argument("filter", "all")
        sort = self.get_argument("sort", "recent")
        page_number = max(_int_argument(self, "page", 1, 10**6), 1)
        try:
            page = await self.store.run(
                self.notebooks.search,
                viewer,
                parse_query(q),
                filter=check_filter(filter_),
                sort=check_sort(sort),
                limit=config.page_size,
                offset=(page_number - 1) * config.page_size,
            )
            error = None
        except SharingError as e:
            page, error = None, e.message
        items = []
        for record in page.notebooks if page else []:
            items.append((record, access_for(viewer, record.owner, record.public, record.shares)))
        pages = -(-page.total // config.page_size) if page else 0
        self.render_sharing(
            "gallery.html",
            status=400 if error else 200,
            q=q,
            filter=filter_,
            sort=sort,
            filters=FILTER_LABELS,
            sorts=SORT_LABELS,
            items=items,
            total=page.total if page else 0,
            page=page_number,
            pages=pages,
            page_link=lambda n: (
                "?" + urlencode({"q": q, "filter": filter_, "sort": sort, "page": n})
            ),
            error=error,
        )


class PublishPage(SharingPage):
    """``gallery/publish``: pick a notebook of your workspace and publish it."""

    async def _render_form(self, status: int = 200, error: str | None = None, **form: Any) -> None:
        viewer = self.viewer
        server = self.user_server()
        state = await server.state()
        paths: list[str] = []
        if state in ("ready", "unknown"):
            paths = await server.list_notebooks(self.sharing.config.workspace_scan_limit)
        mine = await self.store.run(self.notebooks.search, viewer, filter="all", limit=200)
        editable = [
            record
            for record in mine.notebooks
            if access_for(viewer, record.owner, record.public, record.shares).can_publish
        ]
        self.render_sharing(
            "gallery_publish.html",
            status=status,
            server_state=state,
            spawn_url=f"{self.base_url}hub/spawn/{quote(viewer.name, safe='')}?"
            + urlencode({"next": f"{self.prefix}gallery/publish"}),
            paths=paths,
            editable=editable,
            error=error,
            form=form,
        )

    @web.authenticated
    @sharing_errors
    async def get(self) -> None:
        await self._render_form(path=self.get_argument("path", ""), target="new")

    @web.authenticated
    @sharing_errors
    async def post(self) -> None:
        form = {
            name: self.get_argument(name, "")
            for name in ("path", "target", "title", "description", "tags", "shares", "message")
        }
        form["public"] = bool(self.get_argument("public", ""))
        try:
            path = check_workspace_path(form["path"])
            content = await self.user_server().read_notebook(path)
            data: dict[str, Any] = {"message": form["message"]}
            target = form["target"] if form["target"] not in ("", "new") else None
            if target is None or (await self.visible(target))[0].owner == self.viewer.name:
                # Settings come with a new notebook, or from its owner; an editor's
                # version leaves them as they are.
                data |= publish_form_settings(form)
            record, version, _ = await self.publish(
                content,
                data,
                source_path=path if target is None else None,
                target_id=int(target) if target else None,
            )
        except SharingError as e:
            await self._render_form(status=e.status, error=e.message, **form)
            return
        self.redirect(self.page_url(record.id, version=version.number))


class NotebookPage(SharingPage):
    """``gallery/{id}``: the rendered notebook, its history, and (for its owner) its
    settings."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        number = self.get_argument("version", None)
        await self.show(record, access, number)
        if record.owner != self.viewer.name:
            await self.store.run(self.notebooks.count, record.id, "views")


class SettingsAction(SharingPage):
    """``POST gallery/{id}/settings`` (owner)."""

    @web.authenticated
    @sharing_errors
    async def post(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        if not access.can_edit:
            raise SharingError(f"Only {record.owner} can change {record.title!r}.", status=403)
        form = {n: self.get_argument(n, "") for n in ("title", "description", "tags", "shares")}
        form["public"] = bool(self.get_argument("public", ""))
        try:
            settings = parse_settings(
                {**form, "shares": shares_from_text(form["shares"])}, owner=record.owner
            )
            await self.check_shares(settings.shares)
            await self.store.run(self.notebooks.update_settings, record.id, settings)
        except SharingError as e:
            await self.show(record, access, status=e.status, error=e.message, form=form)
            return
        self.redirect(self.page_url(record.id))


class UnpublishAction(SharingPage):
    """``POST gallery/{id}/unpublish`` (owner or admin)."""

    @web.authenticated
    @sharing_errors
    async def post(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        if not access.can_unpublish:
            raise SharingError(
                f"Only {record.owner} or an admin can unpublish {record.title!r}.", status=403
            )
        await self.store.run(self.notebooks.unpublish, record.id)
        self.redirect(f"{self.prefix}gallery")


class CopyAction(SharingPage):
    """``POST gallery/{id}/copy``: copy into your workspace and open it in JupyterLab."""

    @web.authenticated
    @sharing_errors
    async def post(self, notebook_id: str) -> None:
        record, _ = await self.visible(notebook_id)
        path = await self.open_copy(record, self.get_argument("version", None))
        self.redirect(self.lab_url(path))


class DiffPage(SharingPage):
    """``gallery/{id}/diff?from=&to=``: the SQL changes between two versions."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str) -> None:
        record, access = await self.visible(notebook_id)
        diff = await self.diff(
            record, self.get_argument("from", None), self.get_argument("to", None)
        )
        self.render_sharing(
            "notebook_diff.html",
            notebook=record,
            access=access,
            diff=diff,
            versions=await self.store.run(self.notebooks.versions, record.id),
            base=self.page_url(record.id),
        )


class DownloadHandler(SharingPage):
    """``gallery/{id}/v{n}.ipynb``: a version as a file (never shown by the browser)."""

    @web.authenticated
    @sharing_errors
    async def get(self, notebook_id: str, number: str) -> None:
        record, _ = await self.visible(notebook_id)
        version = await self.version_of(record, number)
        name = safe_file_name(record.title)
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header(
            "Content-Disposition",
            f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        )
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        self.finish(version.content or "")


class StaticHandler(web.StaticFileHandler):
    """The gallery's own scripts and styles, and plotly.js from the plotly package; no
    sign-in needed, cached for a year when asked for with ``?v=``."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return 365 * 24 * 3600 if self.get_argument("v", None) else 0


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler], dict] | tuple]:
    api = prefix + "api/notebooks"
    page = prefix + "gallery"
    return [
        (api, NotebooksAPI),
        (api + r"/(\d+)", NotebookAPI),
        (api + r"/(\d+)/versions", VersionsAPI),
        (api + r"/(\d+)/versions/(\d+)", VersionAPI),
        (api + r"/(\d+)/diff", DiffAPI),
        (api + r"/(\d+)/copy", CopyAPI),
        (prefix + "api/workspace/notebooks", WorkspaceAPI),
        (page, GalleryPage),
        (page + "/publish", PublishPage),
        (page + r"/(\d+)", NotebookPage),
        (page + r"/(\d+)/settings", SettingsAction),
        (page + r"/(\d+)/unpublish", UnpublishAction),
        (page + r"/(\d+)/copy", CopyAction),
        (page + r"/(\d+)/diff", DiffPage),
        (page + r"/(\d+)/v(\d+)\.ipynb", DownloadHandler),
        (page + r"/static/(plotly\.min\.js)", StaticHandler, {"path": str(PLOTLY_DIR)}),
        (page + r"/static/(notebook\.(?:js|css))", StaticHandler, {"path": str(STATIC_DIR)}),
    ]
