"""Relaying a cluster's answer without an HTTP server: what the client receives (through
the `exchange.Client` interface) for whole pages, streamed pages, pages that carry nothing,
a cluster's non-Trino answer and a cluster that breaks off."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from datahub.gateway import exchange
from datahub.gateway.clusters import Cluster
from datahub.gateway.signing import FollowupSigner
from datahub.gateway.upstream import ClusterUnreachable
from datahub.identity import Identity
from datahub.wire import CLUSTER_ERROR, QUERY_LOST

CLUSTER = Cluster("main", "https://trino:8443", user="svc")
SIGNER = FollowupSigner(b"k" * 32)
BASE = "http://gw:8765"
NEXT = "https://trino:8443/v1/statement/executing/Q1/s/1"


@dataclass
class FakeClient:
    method: str = "GET"
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    length: int | None = None
    body: bytes = b""
    failed: tuple[str, tuple[str, str, int], int] | None = None
    finished: bool = False
    aborted: bool = False

    def fail(self, message, error, *, status=200, query_id=None, headers=None) -> None:
        self.failed = (message, error, status)
        self.finished = True

    def begin(self, status, headers) -> None:
        self.status, self.headers = status, headers

    def set_length(self, length: int) -> None:
        self.length = length

    async def send(self, chunk: bytes) -> None:
        self.body += chunk

    def end(self, body: bytes = b"") -> None:
        self.body += body
        self.finished = True

    def abort(self) -> None:
        self.aborted = True


class FakeResponse:
    """A cluster's answer, body in *chunks*; *break_after* chunks, the cluster goes away."""

    def __init__(
        self,
        status: int,
        chunks: list[bytes],
        content_type: str = "application/json",
        length: bool = True,
        break_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status
        self.headers = CIMultiDict({"Content-Type": content_type, **(headers or {})})
        if length:
            self.headers["Content-Length"] = str(sum(map(len, chunks)))
        self._chunks = list(chunks)
        self._break_after = break_after

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        body = b"".join(self._chunks)
        if len(body) <= limit:
            return body, True
        first = self._chunks.pop(0)
        return first, False

    async def chunks(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self._chunks):
            if self._break_after is not None and i >= self._break_after:
                raise ClusterUnreachable(CLUSTER, ConnectionResetError("reset"))
            yield chunk


class FakeMonitor:
    def __init__(self) -> None:
        self.unreachable: list[str] = []

    def mark_unreachable(self, name: str, reason: str) -> None:
        self.unreachable.append(name)


@dataclass
class FakeGateway:
    signer: Any = SIGNER
    monitor: Any = field(default_factory=FakeMonitor)
    log: Any = logging.getLogger("test")
    allow_spooling: bool = False


def relay(response: FakeResponse, method: str = "GET", **kwargs: Any):
    client = FakeClient(method=method)
    gateway = FakeGateway()
    ex = exchange.Exchange(gateway, client, Identity("alice"), (), BASE)
    relayed = asyncio.run(ex.relay(CLUSTER, response, **kwargs))
    return client, relayed, gateway


def page(**fields: Any) -> bytes:
    # Compact, as Trino writes its pages.
    doc = {"id": "Q1", "infoUri": "https://trino:8443/ui/Q1", **fields}
    return json.dumps(doc, separators=(",", ":")).encode()


def test_a_whole_page_reaches_the_client_with_signed_uris_and_its_facts():
    body = page(nextUri=NEXT, stats={"state": "RUNNING"}, data=[[1]])
    client, relayed, _ = relay(FakeResponse(200, [body], headers={"X-Trino-Set-Schema": "s"}))
    sent = json.loads(client.body)
    assert sent["nextUri"] == SIGNER.gateway_uri(BASE, "main", "alice", NEXT)
    assert sent["data"] == [[1]]
    assert client.length == len(client.body) and client.status == 200
    assert ("X-Trino-Set-Schema", "s") in client.headers
    assert (relayed.facts.query_id, relayed.facts.next_uri, relayed.facts.state) == (
        "Q1",
        NEXT,
        "RUNNING",
    )


def test_a_large_page_streams_with_its_length_corrected_for_the_rewrite():
    rows = [[i, "x" * 100] for i in range(2000)]
    body = page(nextUri=NEXT, columns=[], data=rows, stats={"state": "RUNNING"})
    chunks = [body[i : i + 8192] for i in range(0, len(body), 8192)]
    client, relayed, _ = relay(FakeResponse(200, chunks))
    assert len(body) > 64 * 1024
    assert json.loads(client.body)["data"] == rows
    assert client.length == len(client.body)
    assert relayed.facts.state == "RUNNING"


def test_a_page_that_carries_nothing_is_followed_instead_of_sent_when_collapsing():
    body = page(nextUri=NEXT, stats={"state": "QUEUED"})
    seen = []
    client, relayed, _ = relay(FakeResponse(200, [body]), before_finish=seen.append, collapse=True)
    assert relayed.follow == NEXT and not client.finished and client.body == b""
    assert [f.query_id for f in seen] == ["Q1"]
    client, relayed, _ = relay(FakeResponse(200, [body]), collapse=False)
    assert relayed.follow is None and client.finished


def test_a_spooled_querys_answer_to_its_post_stops_before_the_page_that_may_carry_rows():
    # The trino client cannot read spooled rows in the answer to its POST: a page leading
    # to Trino's executing resource is sent; through the queued pages the gateway follows.
    spooled = {"X-Trino-Query-Data-Encoding": "json+zstd"}
    body = page(nextUri=NEXT, stats={"state": "QUEUED"})
    client, relayed, _ = relay(
        FakeResponse(200, [body], headers=spooled), method="POST", collapse=True
    )
    assert relayed.follow is None and client.finished
    queued = page(nextUri="https://trino:8443/v1/statement/queued/Q1/s/2", stats={})
    _, relayed, _ = relay(
        FakeResponse(200, [queued], headers=spooled), method="POST", collapse=True
    )
    assert relayed.follow is not None
    # A follow-up GET (or a direct-protocol POST) is followed to the rows.
    _, relayed, _ = relay(FakeResponse(200, [body], headers=spooled), collapse=True)
    assert relayed.follow == NEXT
    _, relayed, _ = relay(FakeResponse(200, [body]), method="POST", collapse=True)
    assert relayed.follow == NEXT


def test_a_clusters_stack_trace_becomes_one_sentence_and_a_failed_query():
    trace = b"java.lang.IllegalStateException: boom\n\tat io.trino.Foo.bar(Foo.java:1)\n"
    client, relayed, _ = relay(FakeResponse(500, [trace], content_type="text/plain"))
    message, error, status = client.failed
    assert error == CLUSTER_ERROR and status == 200 and "java" not in message
    assert relayed.failure == message
    # A DELETE keeps the cluster's status: clients check it.
    client, _, _ = relay(FakeResponse(500, [trace], content_type="text/plain"), method="DELETE")
    assert client.failed[2] == 500


def test_a_cluster_that_breaks_off_mid_page_closes_the_connection_and_is_marked():
    rows = [[i, "y" * 100] for i in range(2000)]
    body = page(nextUri=NEXT, columns=[], data=rows)
    chunks = [body[i : i + 8192] for i in range(0, len(body), 8192)]
    client, relayed, gateway = relay(FakeResponse(200, chunks, break_after=3))
    assert client.aborted and not client.finished
    assert relayed.broken and relayed.error == QUERY_LOST
    assert gateway.monitor.unreachable == ["main"]


def test_the_handler_as_client_ends_a_taken_delete_with_no_body():
    # A cancelled query's DELETE is answered 204; tornado refuses a 204 with any body,
    # even an empty one (found by the cancel tests through the real stack).
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets
    from tornado.web import Application

    from datahub.gateway.handlers import TrinoProxyHandler

    class Taken(TrinoProxyHandler):
        def delete(self) -> None:
            self.begin(204, [("X-Trino-Clear-Session", "x")])
            self.end()

    async def scenario() -> tuple[int, str | None]:
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(Application([(r"/x", Taken)]))
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        try:
            response = await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}/x", method="DELETE", raise_error=False
            )
            return response.code, response.headers.get("X-Trino-Clear-Session")
        finally:
            server.stop()

    assert asyncio.run(scenario()) == (204, "x")
