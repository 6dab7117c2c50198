"""Options of the shared-notebook gallery: ``c.SharedNotebooks.*`` in jupyterhub_config.py."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from traitlets import Float, Integer, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .errors import SharingError
from .notebooks import check_workspace_path


class SharedNotebooks(LoggingConfigurable):
    """How the DataHub service stores, shows and copies shared notebooks."""

    max_notebook_size = Integer(
        10 * 1024 * 1024,
        help="""Largest notebook (bytes of .ipynb JSON) that may be published.

        Every version is kept in the store and rendered on each view, so big outputs
        (long tables, images, charts with many points) cost space and time for every
        viewer. Publishing a larger notebook is refused with a message asking to clear
        outputs. Example: c.SharedNotebooks.max_notebook_size = 20 * 1024 * 1024
        """,
    ).tag(config=True)

    copy_directory = Unicode(
        "gallery",
        help="""Folder of the viewer's workspace where "Open a copy" puts notebooks
        (created when missing; a name already taken gets " (2)", " (3)", …).

        Relative to the workspace root, without '..' or hidden parts; empty puts copies
        at the root. Example: c.SharedNotebooks.copy_directory = "Shared with me"
        """,
    ).tag(config=True)

    @validate("copy_directory")
    def _validate_copy_directory(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"].strip().strip("/")
        if value:
            try:
                check_workspace_path(value, notebook=False)
            except SharingError as e:
                raise TraitError(f"SharedNotebooks.copy_directory: {e.message}") from None
        return value

    hub_url = Unicode(
        help="""Where the service reaches the hub's proxy, to talk to users' own servers
        (``{hub_url}/user/<name>/api/contents``): listing a user's notebooks for the
        publish page and writing "Open a copy" into their workspace.

        Defaults to the origin of $JUPYTERHUB_PUBLIC_HUB_URL when the hub sets it (it
        does when c.JupyterHub.public_url is set), else http://127.0.0.1:8000, the
        hub's default address. Example: c.SharedNotebooks.hub_url = "http://127.0.0.1:8000"
        """,
    ).tag(config=True)

    @default("hub_url")
    def _default_hub_url(self) -> str:
        public = urlsplit(os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL", ""))
        if public.scheme and public.netloc:
            return f"{public.scheme}://{public.netloc}"
        return "http://127.0.0.1:8000"

    @validate("hub_url")
    def _validate_hub_url(self, proposal: dict[str, Any]) -> str:
        parts = urlsplit(proposal["value"])
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TraitError(
                "SharedNotebooks.hub_url must be an http(s) URL like http://127.0.0.1:8000."
            )
        return f"{parts.scheme}://{parts.netloc}"

    server_start_timeout = Float(
        90.0,
        help="""Seconds to wait for a viewer's server to start when "Open a copy" needs
        it (the copy is written through the server). Keep it below the proxy's and
        browser's request timeouts. Example: c.SharedNotebooks.server_start_timeout = 120
        """,
    ).tag(config=True)

    request_timeout = Float(
        30.0,
        help="""Seconds to wait for one answer from the hub API or a user's server
        before telling the user to try again. Example: c.SharedNotebooks.request_timeout = 10
        """,
    ).tag(config=True)

    page_size = Integer(
        50,
        help="""Notebooks per gallery page (and the API's default limit).

        Example: c.SharedNotebooks.page_size = 100
        """,
    ).tag(config=True)

    workspace_scan_limit = Integer(
        500,
        help="""Most notebooks the publish page lists from a user's workspace (it walks
        folders through their server, at most four levels deep, hidden folders skipped).

        Example: c.SharedNotebooks.workspace_scan_limit = 2000
        """,
    ).tag(config=True)
