"""A JupyterHub of one's own, and signing in through a hub's login form as a browser does.

For tests and benchmarks that need a hub configured unlike the local stack's (another
authenticator, a slapd of their own, a short refresh age): :class:`HubProcess` runs
``jupyterhub`` on free loopback ports in its own state directory, with the lines of
``jupyterhub_config.py`` it is given after the few every such hub needs, and an API token.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from .process import ManagedProcess, free_port

#: What every hub of its own needs; the caller's configuration comes after it.
BASE_CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.services = [{{"name": "ops", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "ops", "services": ["ops"], "scopes": {scopes!r}}}]
"""


def proxy_command(checkout: Path) -> str:
    """configurable-http-proxy from the checkout's npm install, else from PATH."""
    local = checkout / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise RuntimeError(
            "configurable-http-proxy is not installed; run `npm ci` in the checkout "
            "(the Makefile does this)."
        )
    return found


def login_session() -> requests.Session:
    """A browser-like session for a hub on this machine (no proxy from the environment)."""
    session = requests.Session()
    session.trust_env = False
    return session


def login_form(session: requests.Session, hub_url: str) -> str:
    """GET the hub's login form in ``session``; its ``_xsrf`` value, needed to post it."""
    page = session.get(f"{hub_url}/hub/login", timeout=60)
    page.raise_for_status()
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def post_login(
    session: requests.Session, hub_url: str, username: str, password: str, xsrf: str
) -> requests.Response:
    """POST the login form; a successful sign-in answers 302 away from the login page."""
    return session.post(
        f"{hub_url}/hub/login",
        data={"username": username, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=300,
    )


def sign_in(
    hub_url: str, username: str, password: str
) -> tuple[requests.Session, requests.Response]:
    """Sign in through the hub's login form, as a browser would: ``(session, response)``."""
    session = login_session()
    response = post_login(session, hub_url, username, password, login_form(session, hub_url))
    return session, response


def signed_in(response: requests.Response) -> bool:
    """Whether a :func:`post_login` response is a successful sign-in."""
    return response.status_code == 302 and "/login" not in response.headers.get("Location", "")


def wait_for_server(
    user: Callable[[str], dict[str, Any]], name: str, timeout: float
) -> dict[str, Any]:
    """Poll ``user(name)`` (the hub's user model) until the user's default server is
    ready; that server's model. Raises TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        server = user(name)["servers"].get("")
        if server and server.get("ready"):
            return server
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}'s server did not become ready in {timeout:g}s.")
        time.sleep(0.2)


class HubProcess:
    """``jupyterhub`` on free loopback ports, its state in ``state``, configured by
    :data:`BASE_CONFIG` and then ``config``; :meth:`api` calls its REST API as the service
    ``ops``, which holds ``scopes``."""

    def __init__(
        self,
        state: Path,
        config: str,
        *,
        checkout: Path,
        scopes: Sequence[str] = ("admin:users", "admin:servers", "tokens", "read:users"),
        name: str = "jupyterhub",
    ) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32)
        self.log_file = state / "jupyterhub.log"
        state.mkdir(parents=True, exist_ok=True)
        config_file = state / "jupyterhub_config.py"
        base = BASE_CONFIG.format(
            port=self.port,
            hub_port=free_port(),
            proxy_port=free_port(),
            proxy=proxy_command(checkout),
            state=state,
            token=self.token,
            scopes=list(scopes),
        )
        config_file.write_text(base + config)
        self.process = ManagedProcess(
            name,
            [Path(sys.executable).with_name("jupyterhub"), "-f", config_file],
            log_file=self.log_file,
            cwd=state,
        )

    def start(self, timeout: float = 90) -> None:
        """Start the hub and wait until its API answers."""
        self.process.start()
        self.process.wait_ready(
            lambda: requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200,
            timeout,
            "the hub API",
        )

    def stop(self) -> None:
        self.process.stop()

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to the hub's REST API (``path`` below ``/hub/api``) with the token."""
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs
        )

    def user(self, name: str) -> dict[str, Any]:
        """The hub's model of user ``name``."""
        return self.api("GET", f"/users/{name}").json()

    def sign_in(self, username: str, password: str) -> tuple[requests.Session, requests.Response]:
        """:func:`sign_in` on this hub."""
        return sign_in(self.url, username, password)

    def wait_for_server(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """:func:`wait_for_server` on this hub, with the end of its log on a timeout."""
        try:
            return wait_for_server(self.user, name, timeout)
        except TimeoutError as e:
            raise TimeoutError(f"{e} The hub's log ends:\n{self.process.log_tail()}") from None

    def log(self) -> str:
        """Everything the hub has logged."""
        return self.log_file.read_text(errors="replace")
