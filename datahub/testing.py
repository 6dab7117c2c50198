"""Running the service inside a test or a benchmark: a `DataHubService` serving from a
background event loop, with tokens looked up in a dict instead of asking a hub.

The hub's token check is covered end to end by the tests through the local stack; this
lets integration tests and benchmarks start (and restart) gateways in a second, against
real Trino clusters.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from traitlets import Dict

from . import scopes
from .identity import IdentityResolver
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
    from .audit import records

    def closed() -> dict[str, Any] | None:
        with gateway.service.store.session() as session:
            rec = records.get_query(session, query_id)
        return rec if rec and rec["finished_at"] else None

    return wait_for(closed, timeout, what=f"query {query_id} closed in the audit")
