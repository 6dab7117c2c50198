"""The hub and users' servers, as the sharing feature talks to them.

Two kinds of credentials, never mixed:

- `HubDirectory` uses the **service's own** token only to ask whether a hub user or
  group exists (scopes ``read:users:name`` and ``read:groups:name``, granted to the
  service in jupyterhub_config.py's ``load_roles``).
- `UserServer` acts on the signed-in user's own server with **that user's** token (the
  one their request came with: an API token, or the OAuth token behind the page
  cookie, which the hub issues with the service's ``oauth_client_allowed_scopes``:
  ``read:servers!user``, ``start:servers!user``, ``access:servers!user``). The service
  thus holds no power over anyone's server; a request can only reach its sender's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx

from .errors import SharingError
from .notebooks import check_workspace_path, numbered_file_name
from .permissions import Share

log = logging.getLogger("datahub.sharing")


def _quote_path(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.split("/") if part)


class HubDirectory:
    """Whether hub users and groups exist, asked with the service's own token."""

    def __init__(self, api_url: str, token: str, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._headers = {"Authorization": f"token {token}"}
        self.timeout = timeout

    async def missing(self, shares: Iterable[Share]) -> list[Share]:
        """The shares whose user or group the hub does not know."""
        shares = list(shares)
        if not shares:
            return []
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
            found = await asyncio.gather(*(self._exists(client, share) for share in shares))
        return [share for share, ok in zip(shares, found, strict=True) if not ok]

    async def _exists(self, client: httpx.AsyncClient, share: Share) -> bool:
        collection = "users" if share.kind == "user" else "groups"
        url = f"{self.api_url}/{collection}/{quote(share.name, safe='')}"
        try:
            response = await client.get(url)
        except httpx.HTTPError as e:
            log.error("Could not ask the hub about %s %s: %s", share.kind, share.name, e)
            raise SharingError(
                "The hub did not answer while checking who to share with; try again shortly.",
                status=503,
            ) from None
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        log.error(
            "The hub answered %d to GET %s/%s: the DataHub service needs the scopes "
            "read:users:name and read:groups:name (load_roles)",
            response.status_code,
            collection,
            share.name,
        )
        raise SharingError(
            "DataHub may not look up hub users and groups, so it cannot share right now; "
            "ask an admin to check the service's role.",
            status=503,
        )


class UserServer:
    """A user's own default server (the contents API of their JupyterLab), reached
    through the hub's proxy with the user's own token."""

    def __init__(
        self,
        *,
        user: str,
        token: str,
        hub_url: str,
        hub_api_url: str,
        base_url: str = "/",
        timeout: float = 30.0,
    ) -> None:
        self.user = user
        self.hub_api_url = hub_api_url.rstrip("/")
        self.server_url = f"{hub_url.rstrip('/')}{base_url}user/{quote(user, safe='')}"
        self.timeout = timeout
        self._token = token

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout,
            headers={"Authorization": f"token {self._token}"},
            follow_redirects=False,
        )

    # ------------------------------------------------------------------ the server's state

    async def state(self) -> str:
        """``ready``, ``pending``, ``stopped``, or ``unknown`` (the token may not read it)."""
        async with self._client() as client:
            response = await self._call(client, "GET", f"{self.hub_api_url}/user")
        model = response.json()
        if "servers" not in model:
            return "unknown"
        server = (model.get("servers") or {}).get("")
        if not server:
            return "stopped"
        if server.get("ready"):
            return "ready"
        return "pending"

    async def ensure_running(self, timeout: float) -> None:
        """Start the user's server unless it runs, and wait until it is ready."""
        state = await self.state()
        if state in ("ready", "unknown"):
            return  # unknown: a server's own token, used from inside the running server
        if state == "stopped":
            async with self._client() as client:
                response = await client.post(
                    f"{self.hub_api_url}/users/{quote(self.user, safe='')}/server"
                )
            if response.status_code == 403:
                raise SharingError(
                    "Your server is not running and this sign-in may not start it; start "
                    "it from the hub's home page and try again.",
                    status=403,
                )
            if response.status_code not in (201, 202, 400):  # 400: already starting
                raise self._failure("start your server", response)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.state() == "ready":
                return
            await asyncio.sleep(0.5)
        raise SharingError(
            f"Your server did not start within {int(timeout)} seconds; start it from the "
            "hub's home page and try again.",
            status=504,
        )

    # ------------------------------------------------------------------ contents

    def _contents_url(self, path: str) -> str:
        return f"{self.server_url}/api/contents/{_quote_path(path)}"

    async def exists(self, path: str) -> bool:
        async with self._client() as client:
            response = await self._call(
                client, "GET", self._contents_url(path), params={"content": "0"}, ok=(200, 404)
            )
        return response.status_code == 200

    async def read_notebook(self, path: str) -> dict[str, Any]:
        """The notebook at ``path`` as nbformat JSON."""
        async with self._client() as client:
            response = await self._call(
                client,
                "GET",
                self._contents_url(path),
                params={"type": "notebook", "content": "1"},
                ok=(200, 404, 400),
            )
        if response.status_code != 200:
            raise SharingError(f"There is no notebook {path!r} in your workspace.", status=404)
        return response.json()["content"]

    async def list_notebooks(
        self, limit: int = 500, max_depth: int = 4, max_folders: int = 200
    ) -> list[str]:
        """Paths of the notebooks in the workspace, breadth first, hidden folders skipped;
        at most ``limit`` notebooks from at most ``max_folders`` folders."""
        found: list[str] = []
        folders = [("", 0)]
        visited = 0
        async with self._client() as client:
            while folders and len(found) < limit and visited < max_folders:
                folder, depth = folders.pop(0)
                visited += 1
                response = await self._call(
                    client, "GET", self._contents_url(folder), params={"content": "1"}
                )
                items = sorted(response.json().get("content") or [], key=lambda i: i["path"])
                for item in items:
                    if item["name"].startswith("."):
                        continue
                    if item["type"] == "notebook" and len(found) < limit:
                        found.append(item["path"])
                    elif item["type"] == "directory" and depth + 1 < max_depth:
                        folders.append((item["path"], depth + 1))
        return found

    async def save_notebook(self, directory: str, file_name: str, notebook: dict[str, Any]) -> str:
        """Write ``notebook`` as ``directory/file_name`` without replacing anything: a
        taken name gets a number. Returns the path written."""
        if directory:
            check_workspace_path(directory, notebook=False)
            await self._make_directories(directory)
        for n in range(1, 1000):
            name = file_name if n == 1 else numbered_file_name(file_name, n)
            path = f"{directory}/{name}" if directory else name
            check_workspace_path(path)
            if await self.exists(path):
                continue
            async with self._client() as client:
                await self._call(
                    client,
                    "PUT",
                    self._contents_url(path),
                    json={"type": "notebook", "format": "json", "content": notebook},
                    ok=(200, 201),
                )
            return path
        raise SharingError(
            f"Too many copies named {file_name!r} in {directory!r}; tidy it up and try again.",
            status=409,
        )

    async def _make_directories(self, directory: str) -> None:
        parts = directory.split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if await self.exists(path):
                continue
            async with self._client() as client:
                await self._call(
                    client,
                    "PUT",
                    self._contents_url(path),
                    json={"type": "directory"},
                    ok=(200, 201),
                )

    # ------------------------------------------------------------------ plumbing

    async def _call(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        ok: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            log.error("%s %s for %s failed: %s", method, url.split("?")[0], self.user, e)
            raise SharingError(
                "Your server did not answer; check it runs (hub home page) and try again.",
                status=502,
            ) from None
        if response.status_code in ok:
            return response
        raise self._failure(f"{method} {url.split('?')[0]}", response)

    def _failure(self, what: str, response: httpx.Response) -> SharingError:
        status = response.status_code
        if status in (401, 403):
            return SharingError(
                "This sign-in does not let DataHub use your server; sign out, sign in again "
                "and retry (an API token needs access to your server).",
                status=403,
            )
        if status in (302, 404, 424, 503):
            # The proxy sends requests for a stopped server to the hub (redirect or 424).
            return SharingError(
                "Your server is not running; start it from the hub's home page and try again.",
                status=409,
            )
        log.error("%s for %s answered %d: %s", what, self.user, status, response.text[:300])
        return SharingError(
            f"Your server refused the request ({status}); try again or ask an admin.", status=502
        )
