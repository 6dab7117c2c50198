"""Shared fixtures: the real local stack (slapd, Trino, JupyterHub, proxy, gateway), once
per test session, and small clients to drive it as a person and as a kernel would.

A service that cannot start fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import websocket

from datahub.stack import demo
from datahub.stack.install import stale_files
from datahub.stack.kafka import KafkaServer
from datahub.stack.local import LocalStack
from datahub.stack.postgres import PostgresServer
from datahub.stack.presto import PrestoServer
from datahub.store import Store

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="save the browser tests' screenshots in DIR (default: a scratch folder; "
        "`make screenshots` uses this to refresh docs/screenshots)",
    )


def pytest_sessionstart(session):
    """Refuse to test anything but this checkout's code: the hub and the users' servers
    import ``datahub`` from the installed venv, which may be a stale or another
    checkout's copy."""
    stale = stale_files(REPO)
    if stale:
        where = stale[0] + (f" and {len(stale) - 1} more files" if len(stale) > 1 else "")
        pytest.exit(
            f"The installed datahub package is not this checkout's code (it differs in "
            f"{where}); run `make install` first.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def reset_demo_workspaces() -> None:
    """Empty the demo users' workspaces left by earlier runs (their system accounts
    outlive a test session), so every session starts from a new user's workspace."""
    for person in demo.PEOPLE:
        try:
            account = pwd.getpwnam(f"jupyter-{person.uid}")
        except KeyError:
            continue
        if _has_processes(account.pw_uid):
            continue  # another test session on this machine is using this workspace
        home = Path(account.pw_dir)
        for child in home.iterdir() if home.is_dir() else []:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _has_processes(uid: int) -> bool:
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(rf"^Uid:\s+{uid}\s", text, re.M):
            return True
    return False


@pytest.fixture(scope="session", autouse=True)
def python_handles_interrupts():
    """Python's own SIGINT handler, as a kernel has, for the tests that interrupt a running
    query: a suite started in the background by a non-interactive shell inherits SIGINT
    ignored, and then ``_thread.interrupt_main()`` does nothing and such a test waits for
    its query (hours on tpch.sf1000) instead of cancelling it."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def stop_at_the_end():
    """``stop_at_the_end(stop)``: call a session service's *stop* (and its checks) when the
    session ends, at the same time as the other services' (each mostly waits for its
    process to exit) instead of one after another; set up first, this fixture is torn
    down last, waiting for every stop and failing with the first that failed."""
    pool = ThreadPoolExecutor(8, thread_name_prefix="stop")
    stops: list = []
    yield lambda stop: stops.append(pool.submit(stop))
    pool.shutdown(wait=True)
    for stop in stops:
        stop.result()


def stack_needs_presto(session: pytest.Session) -> bool:
    """Whether a test of this run uses `stack_presto`: then the stack's gateway knows the
    session's PrestoDB as cluster ``presto`` (routing group ``presto``). Other runs do
    not wait the minute PrestoDB takes to start."""
    return any("stack_presto" in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory, stop_at_the_end):
    """The whole DataHub, started once for the session (with the session's PrestoDB as a
    cluster when a test of the run uses `stack_presto`)."""
    reset_demo_workspaces()
    state = tmp_path_factory.mktemp("datahub-stack")
    presto = request.getfixturevalue("presto") if stack_needs_presto(request.session) else False
    local = LocalStack(state, REPO / "jupyterhub_config.py", hub_port=0, presto=presto)
    local.start()
    yield local
    stop_at_the_end(local.stop)


# Debian's Chromium, driven by Playwright. One browser per test module: Playwright's sync
# API cannot run twice at once in a process, and while it runs it holds an asyncio loop
# in the main thread, which other tests' asyncio.run() must not meet.
CHROMIUM = "/usr/bin/chromium"
# Chromium reaches for Google's services at start; this machine has no such network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory, stop_at_the_end):
    """A Kafka broker (one KRaft node), started on first use and once for the session.

    A test that stops it starts it again before it ends (same ports, same data).
    """
    server = KafkaServer(tmp_path_factory.mktemp("kafka"))
    server.start()
    yield server
    stop_at_the_end(server.stop)


@pytest.fixture(scope="session")
def presto(tmp_path_factory, stop_at_the_end):
    """A PrestoDB coordinator (cluster ``presto``: HTTPS, the service account's password,
    the demo's access rules), started on first use and once for the session; its
    ``cluster_entry()`` is what the gateway's configuration takes."""
    server = PrestoServer(tmp_path_factory.mktemp("presto"), secrets=demo.new_service_secrets())
    server.start()
    yield server
    pid, port = server._process.pid, server.https_port

    def stop() -> None:
        server.stop()
        # It stops cleanly (an error at teardown otherwise): its JVM gone, its port closed.
        assert not server.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "PrestoDB still listens after stop"

    stop_at_the_end(stop)


@pytest.fixture(scope="session")
def stack_presto(stack, presto):
    """The session's PrestoDB as the stack's cluster ``presto`` (routing group
    ``presto``): a run with a test using this fixture starts the stack with it."""
    assert stack.presto is presto
    return presto


@pytest.fixture(scope="session")
def postgres(stop_at_the_end):
    """A private PostgreSQL server, started once for the session."""
    server = PostgresServer().start()
    yield server
    stop_at_the_end(server.stop)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty, migrated store on SQLite and on PostgreSQL (each test runs on both)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'datahub.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").url
        _drop_everything(url)
    db = Store(url)
    db.migrate()
    yield db
    db.dispose()


def _drop_everything(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


class Hub:
    """The hub's REST API with the local stack's operator token."""

    def __init__(self, stack: LocalStack):
        self.url = stack.hub_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {stack.settings['ops_token']}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=60, **kwargs)

    def user(self, name: str) -> dict:
        r = self.api("GET", f"/users/{name}")
        r.raise_for_status()
        return r.json()

    def token_for(self, name: str) -> str:
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "tests", "expires_in": 7200})
        r.raise_for_status()
        return r.json()["token"]

    def start_server(self, name: str, timeout: float = 120) -> dict:
        r = self.api("POST", f"/users/{name}/server")
        assert r.status_code in (201, 202, 400), r.text  # 400: already running
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.user(name)["servers"].get("")
            if server and server.get("ready"):
                return server
            time.sleep(0.5)
        raise AssertionError(f"{name}'s server did not become ready in {timeout}s")


@pytest.fixture(scope="session")
def hub(stack) -> Hub:
    return Hub(stack)


def login(hub_url: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Sign in through the hub's login form, as a browser would."""
    session = requests.Session()
    page = session.get(f"{hub_url}/hub/login", timeout=30)
    page.raise_for_status()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{hub_url}/hub/login",
        data={"username": username, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=60,
    )
    return session, response


@pytest.fixture(scope="session")
def trino_query_info(stack):
    """``trino_query_info(query_id) -> dict``: Trino's own record of a query, read with
    the service account (which may view every query), waiting until it has ended."""
    trino_server = stack.trino
    session = trino_server.http_session()
    session.auth = (trino_server.service_user, trino_server.service_password)

    def info(query_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            r = session.get(f"{trino_server.url}/v1/query/{query_id}", timeout=30)
            r.raise_for_status()
            body = r.json()
            if body["state"] in ("FINISHED", "FAILED") or time.monotonic() > deadline:
                return body
            time.sleep(0.2)

    return info


@pytest.fixture(scope="session")
def sign_in(stack):
    """``sign_in(username, password) -> (session, response)`` through the login form."""
    return lambda username, password: login(stack.hub_url, username, password)


class Kernel:
    """A kernel in a user's server, driven through the proxy like JupyterLab drives it.

    A test may leave a kernel unused for minutes, and the single-user server closes a
    websocket whose client does not answer its pings (``websocket_ping_timeout``). So a
    reader thread receives all the time (websocket-client answers pings while it reads)
    and queues the messages, and a closed websocket is reopened with the same
    ``session_id``, for which the server replays what it buffered meanwhile.
    """

    def __init__(self, hub_url: str, user: str, token: str):
        self.base = f"{hub_url}/user/{user}"
        self.headers = {"Authorization": f"token {token}"}
        r = requests.post(
            f"{self.base}/api/kernels", json={"name": "python3"}, headers=self.headers, timeout=60
        )
        r.raise_for_status()
        self.id = r.json()["id"]
        self.session = uuid.uuid4().hex
        self.ws_url = (
            self.base.replace("http://", "ws://")
            + f"/api/kernels/{self.id}/channels?session_id={self.session}"
        )
        self._token = token
        self._messages: queue.Queue = queue.Queue()
        self._ws: websocket.WebSocket | None = None
        self._closing = False
        #: How many times a websocket of this client closed (by either side).
        self.closed_websockets = 0
        self._connect()

    def _connect(self) -> None:
        ws = websocket.create_connection(
            self.ws_url, header=[f"Authorization: token {self._token}"], timeout=60
        )
        ws.settimeout(None)  # the reader blocks; deadlines apply to the queue
        self._ws = ws
        threading.Thread(target=self._read, args=(ws,), daemon=True).start()

    def _read(self, ws: websocket.WebSocket) -> None:
        while True:
            try:
                text = ws.recv()  # answers the server's pings as it reads
            except (websocket.WebSocketException, OSError):
                text = ""
            if not text:  # closed, by either side
                ws.shutdown()  # so that ``connected`` says it at once
                self.closed_websockets += 1
                self._messages.put((ws, None))
                return
            self._messages.put((ws, json.loads(text)))

    @property
    def connected(self) -> bool:
        """Whether the websocket is open (it reopens on the next use if not)."""
        return self._ws is not None and self._ws.connected

    def _send(self, message: dict) -> None:
        if not self.connected:
            self._connect()
        try:
            self._ws.send(json.dumps(message))
        except (websocket.WebSocketException, OSError):
            self._connect()
            self._ws.send(json.dumps(message))

    def _receive(self, deadline: float, what: str) -> dict:
        """The next message from the kernel; reconnects when the websocket closed."""
        while True:
            try:
                ws, message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"kernel did not finish in time: {what}") from None
            if message is not None:
                return message
            if ws is self._ws and not self._closing:
                self._connect()  # the server replays what it buffered for this session

    def execute(self, code: str, timeout: float = 180) -> dict:
        """Run ``code``; return its outputs, the reply status and any error."""
        msg_id = uuid.uuid4().hex
        self._send(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "tests",
                    "session": self.session,
                    "msg_type": "execute_request",
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
        result = {"outputs": [], "status": None, "stdout": "", "stderr": ""}
        idle = False
        deadline = time.monotonic() + timeout
        while not (idle and result["status"]):
            msg = self._receive(deadline, code[:80])
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                result["status"] = content["status"]
                result["reply"] = content
            elif kind == "stream":
                result[content["name"]] += content["text"]
            elif kind in ("display_data", "execute_result", "update_display_data", "error"):
                result["outputs"].append({"type": kind, **content})
        return result

    def value(self, expression: str):
        """Evaluate a Python expression in the kernel and return it through JSON."""
        out = self.execute(f"import json as _j; print(_j.dumps({expression}, default=str))")
        assert out["status"] == "ok", out
        return json.loads(out["stdout"].strip().splitlines()[-1])

    def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            self._ws.close()
        requests.delete(f"{self.base}/api/kernels/{self.id}", headers=self.headers, timeout=30)


class Users:
    """Signs demo users in (through the form) and starts their servers, once each."""

    def __init__(self, stack: LocalStack, hub: Hub):
        self.stack, self.hub = stack, hub
        self.tokens: dict[str, str] = {}
        self.kernels: dict[str, Kernel] = {}

    def token(self, name: str) -> str:
        if name not in self.tokens:
            session, response = login(self.stack.hub_url, name, demo.demo_password(name))
            assert response.status_code == 302, response.text[:500]
            self.hub.start_server(name)
            self.tokens[name] = self.hub.token_for(name)
        return self.tokens[name]

    def kernel(self, name: str) -> Kernel:
        """``name``'s kernel shared by the session's tests (started on first use)."""
        if name not in self.kernels:
            self.kernels[name] = self.new_kernel(name)
        return self.kernels[name]

    def new_kernel(self, name: str) -> Kernel:
        """A kernel of ``name``'s of its own, for a test that closes it."""
        return Kernel(self.stack.hub_url, name, self.token(name))

    def close(self) -> None:
        for kernel in self.kernels.values():
            kernel.close()


@pytest.fixture(scope="session")
def users(stack, hub):
    registry = Users(stack, hub)
    yield registry
    registry.close()
