"""Running the service inside a test or a benchmark: a `DataHubService` serving from a
background event loop, with tokens looked up in a dict instead of asking a hub.

The hub's token check is covered end to end by the tests through the local stack; this
lets integration tests and benchmarks start (and restart) gateways in a second, against
real Trino clusters.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Dict

from . import scopes
from .audit import records
from .identity import IdentityResolver
from .query import QueryRecord
from .wire import ROUTING_HEADER

T = TypeVar("T")

SCOPE = "access:services!service=datahub"


def user_token(name: str, *groups: str, admin: bool = False) -> dict[str, Any]:
    """The hub's model of a user token carrying the gateway scope (and, for an *admin*,
    DataHub's admin scopes, as a token created with all of an admin's scopes does)."""
    held = [SCOPE, *(scopes.ALL if admin else ())]
    return {"kind": "user", "name": name, "scopes": held, "groups": list(groups), "admin": admin}


class StaticIdentityResolver(IdentityResolver):
    """Looks tokens up in ``tokens`` instead of asking a hub (tests and benchmarks only)."""

    tokens = Dict(
        help="""Token -> the hub's model of its owner (see user_token), for tests and
        benchmarks that run a gateway without a hub.

        Example: c.StaticIdentityResolver.tokens = {"t1": user_token("alice", "analysts")}
        """,
    ).tag(config=True)

    async def user_model(self, token: str) -> dict[str, Any] | None:
        return self.tokens.get(token)


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of a request made with hub token *token*."""
    return {"Authorization": f"Bearer {token}"}


#: A query whose result (tiny.orders' 15,000 keys, over 100 KB of JSON) is larger than
#: a page of rows the gateway may hold for the query's last page (``carry.py``): the
#: answer to its POST always has a nextUri, for tests of follow-up URIs.
FOLLOWED_SQL = "SELECT orderkey FROM tpch.tiny.orders"
#: Trino session properties that spool ``tpch.tiny.lineitem`` (60,175 rows, which Trino
#: makes up in a fraction of sf1's time) in about ten segments of 1 MB instead of Trino's
#: 8 to 16 MB.
SMALL_SEGMENTS = {"spooling_initial_segment_size": "1MB", "spooling_max_segment_size": "1MB"}
#: The headers of a client asking for ``json+zstd`` segments of `SMALL_SEGMENTS`.
ZSTD_SMALL_SEGMENTS = {
    "X-Trino-Query-Data-Encoding": "json+zstd",
    "X-Trino-Session": ",".join(f"{k}={v}" for k, v in SMALL_SEGMENTS.items()),
}


def resolver_for(tokens: Mapping[str, dict[str, Any]]) -> type[StaticIdentityResolver]:
    """A StaticIdentityResolver subclass knowing *tokens*."""
    return type("Resolver", (StaticIdentityResolver,), {"tokens": Dict(dict(tokens))})


def wait_for(
    condition: Callable[[], T],
    timeout: float = 60,
    interval: float = 0.1,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """*condition*'s first true value, polled every *interval* seconds; after *timeout*
    seconds an AssertionError naming *what* (a string, or a function describing the state
    at the time of failure). The timeout catches something broken, not something slow."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"{described}: not seen within {timeout:g} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server of *handler* on 127.0.0.1 (a fake Trino, service or API
    for unit tests) for as long as the block runs; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class BackgroundGateway:
    """A DataHubService listening on 127.0.0.1:*port*, served from its own thread.

    *traits* configure the service (clusters, store_url, secret, identity_resolver_class,
    routing rules, ...). ``call(coroutine)`` runs a coroutine on the gateway's loop (to
    drain a cluster, run the reconciler now, ...).
    """

    def __init__(self, *, port: int | None = None, **traits: Any) -> None:
        from .service.app import DataHubService

        self.port = port or free_port()
        self.service = DataHubService(ip="127.0.0.1", port=self.port, **traits)
        self.service.init()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._servers = self._loop.run_until_complete(self.service.serve())
            except BaseException as e:
                failure.append(e)
                started.set()
                return
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"gateway-{self.port}", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise TimeoutError("The gateway did not start within 30 s.")
        if failure:
            raise failure[0]

    def call(self, coroutine: Awaitable[T], timeout: float = 60) -> T:
        """Run *coroutine* on the gateway's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop serving (closing what is in flight into the audit) and end the thread."""
        if not self._thread.is_alive():
            return
        self.call(self.service.stop(self._servers), timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.service.store.dispose()

    @classmethod
    def signing_in(
        cls,
        tokens: Mapping[str, dict[str, Any]],
        *,
        clusters: Sequence[Mapping[str, Any]],
        state_dir: Path,
        secret: bytes | str,
        **traits: Any,
    ) -> BackgroundGateway:
        """A gateway on *clusters* whose users sign in with the bearer tokens of *tokens*
        (`resolver_for`), its SQLite store in *state_dir*."""
        return cls(
            clusters=list(clusters),
            store_url=f"sqlite:///{state_dir / 'datahub.sqlite'}",
            secret=secret,
            identity_resolver_class=resolver_for(tokens),
            **traits,
        )

    def __enter__(self) -> BackgroundGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gateway_connection(
    gateway: BackgroundGateway,
    user: str = "alice",
    token: str | None = None,
    hint: str | None = None,
    **kwargs: Any,
) -> Any:
    """A trino client connection to *gateway* as *user* with hub token *token* (by default
    ``"<user>-token"``, the tests' convention), asking for routing group *hint* if given.
    *kwargs* go to ``trino.dbapi.connect`` (catalog, http_session, roles, ...)."""
    import trino
    from trino.auth import JWTAuthentication

    return trino.dbapi.connect(
        host="127.0.0.1",
        port=gateway.port,
        http_scheme="http",
        user=user,
        auth=JWTAuthentication(token or f"{user}-token"),
        allow_insecure_auth=True,
        http_headers={ROUTING_HEADER: hint} if hint else None,
        **kwargs,
    )


def closed_record(gateway: BackgroundGateway, query_id: str, timeout: float = 60) -> dict[str, Any]:
    """The audit record of query *query_id* in *gateway*'s store, once it is closed (has
    ``finished_at``); an AssertionError if it is not closed within *timeout* seconds."""

    def closed() -> dict[str, Any] | None:
        with gateway.service.store.session() as session:
            rec = records.get_query(session, query_id)
        return rec if rec and rec["finished_at"] else None

    return wait_for(closed, timeout, what=f"query {query_id} closed in the audit")


def cluster_api(server: Any) -> Any:
    """A ``requests`` session to the REST API of a local stack's coordinator (a
    `datahub.stack.trino.Coordinator`: Trino or PrestoDB) as its service account, which
    may see every query."""
    session = server.http_session()
    session.auth = (server.service_user, server.service_password)
    return session


def running_query_id(server: Any, marker: str, timeout: float = 120) -> str:
    """The id of the query on coordinator *server* whose SQL holds *marker*, once it runs
    there; an AssertionError if none does within *timeout* seconds."""
    api = cluster_api(server)

    def running() -> str | None:
        for query in api.get(f"{server.url}/v1/query", timeout=30).json():
            if marker in query["query"] and query["state"] == "RUNNING":
                return query["queryId"]
        return None

    return wait_for(running, timeout, 0.2, f"a running query with {marker} on {server.url}")


def interrupted(kernel: Any, server: Any, cell: str) -> tuple[dict[str, Any], str]:
    """Execute the ``%%sql`` *cell* in *kernel* (the tests' Kernel, in a user's server) and
    interrupt the kernel, as JupyterLab's stop button does, once coordinator *server* runs
    the cell's query; the kernel's reply and the query's id on *server*."""
    import requests

    marker = uuid.uuid4().hex
    seen: list[str] = []

    def interrupt_once_it_runs() -> None:
        seen.append(running_query_id(server, marker))
        requests.post(
            f"{kernel.base}/api/kernels/{kernel.id}/interrupt", headers=kernel.headers, timeout=30
        ).raise_for_status()

    thread = threading.Thread(target=interrupt_once_it_runs)
    thread.start()
    out = kernel.execute(f"{cell} -- {marker}")
    thread.join()
    assert seen, f"the query of {cell!r} never ran on {server.url}"
    return out, seen[0]


def assert_cancelled(out: dict[str, Any]) -> None:
    """*out*, a kernel's reply to an interrupted ``%%sql`` cell, says in one line that
    the query was cancelled: no traceback, no KeyboardInterrupt."""
    assert out["status"] == "error", out
    (error,) = [o for o in out["outputs"] if o["type"] == "error"]
    assert error["ename"] == "SqlError" and error["traceback"] == ["Query cancelled"], error
    shown = json.dumps(out["outputs"]) + out["stdout"] + out["stderr"]
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown, shown


def assert_value_and_null(column: Any, dtype: str, value: Any, null: Any) -> None:
    """*column*, of a frame with a row of values and a row of NULLs (the ``%%sql`` type
    tests), has the pandas *dtype*, *value* first (NaN for NaN; a str only where *value*
    is one) and then *null*: None, or ``pandas.NA`` or ``NaT`` themselves, else NaN."""
    import numpy as np
    import pandas as pd

    assert str(column.dtype) == dtype, column.dtype
    got, missing = column.iloc[0], column.iloc[1]
    if isinstance(value, float) and np.isnan(value):
        assert np.isnan(got), got
    else:
        assert got == value, (got, value)
        assert type(got) is not str or isinstance(value, str), (got, value)
    if null is None:
        assert missing is None, missing
    elif null is pd.NA or null is pd.NaT:
        assert missing is null, missing
    else:
        assert np.isnan(missing), missing


class MemoryJournal:
    """A `datahub.gateway.journal.QueryJournal` in memory, closing each query once as the
    audit does: the audit rows by query id (:attr:`rows`), the queries queued and ended
    early in order; a close waits for :attr:`release` (set: clear it to hold closes on
    their way)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.early: list[QueryRecord] = []
        self.waiting: list[QueryRecord] = []
        self.release = asyncio.Event()
        self.release.set()

    def submitted(self, query: Any) -> None:
        self.rows[query.query_id] = records.row_of(query)

    def queued(self, query: Any) -> None:
        self.waiting.append(query)

    def ended_early(self, query: Any) -> None:
        self.early.append(query)

    def running(self, query: Any) -> None:
        self.rows[query.query_id]["state"] = str(query.state)

    async def close(self, query: Any) -> bool:
        await self.release.wait()
        row = self.rows.get(query.query_id)
        if row is not None and row["finished_at"] is not None:
            return False
        self.rows[query.query_id] = records.row_of(query)
        return True

    async def find(self, query_id: str) -> Any:
        row = self.rows.get(query_id)
        return records.record_of(row) if row else None

    async def open_queries(self, submitted_before: Any, user: str | None = None) -> list[Any]:
        return [
            records.record_of(r)
            for r in self.rows.values()
            if r["finished_at"] is None and (user is None or r["user"] == user)
        ]


def memory_tracker(
    *,
    journal: MemoryJournal | None = None,
    admission: Any = None,
    listeners: Sequence[Any] = (),
    fetch_final_stats: bool = False,
) -> Any:
    """A `datahub.gateway.tracker.QueryTracker` for unit tests of a query's life: its
    journal in memory (*journal*, a new :class:`MemoryJournal` by default), one cluster
    ``a`` on 127.0.0.1:1 where nothing answers, *admission* (admitting everything by
    default) and *listeners*."""
    import logging

    from .gateway.admission import Listeners, QueryAdmission
    from .gateway.clusters import Cluster
    from .gateway.health import ClusterMonitor
    from .gateway.metrics import GatewayMetrics
    from .gateway.tracker import QueryTracker
    from .gateway.upstream import Upstream

    log = logging.getLogger("tests")
    cluster = Cluster("a", "http://127.0.0.1:1", user="svc")
    upstream = Upstream({"a": cluster}, connect_timeout=1, read_timeout=1, max_connections=1)
    return QueryTracker(
        journal=journal or MemoryJournal(),
        admission=admission or QueryAdmission(),
        listeners=Listeners(list(listeners), log),
        metrics=GatewayMetrics(),
        monitor=ClusterMonitor({"a": cluster}, upstream, interval=60, timeout=1, log=log),
        upstream=upstream,
        clusters={"a": cluster},
        log=log,
        fetch_final_stats=fetch_final_stats,
    )


#: Eight threads each take memory from malloc and hold it; then the process counts the
#: malloc arenas (glibc's ``malloc_info``: one ``<heap nr=…>`` per arena) and prints how
#: many. Python code: for ``python -c`` or a kernel.
MALLOC_ARENAS_PROBE = """
import ctypes, os, tempfile, threading
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
both = threading.Barrier(9)
held = []
def work():
    held.append(bytearray(64 * 1024))  # above pymalloc's sizes, below mmap's
    both.wait()
    both.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
both.wait()
path = os.path.join(tempfile.mkdtemp(), "malloc.xml")
f = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, f)
libc.fclose(f)
both.wait()
for t in threads:
    t.join()
print(open(path).read().count("<heap nr="))
"""
