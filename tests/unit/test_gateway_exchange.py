"""Relaying a cluster's answer without an HTTP server: what the client receives (through
the `client.Client` interface) for whole pages, streamed pages, pages that carry nothing,
a cluster's non-Trino answer and a cluster that breaks off."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from datahub.gateway import exchange
from datahub.gateway.client import Relayed
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

    async def aclose(self) -> None:
        pass

    async def chunks(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self._chunks):
            if self._break_after is not None and i >= self._break_after:
                raise ClusterUnreachable(CLUSTER, ConnectionResetError("reset"))
            yield chunk


class FakeMonitor:
    def __init__(self) -> None:
        self.unreachable: list[tuple[str, bool]] = []

    def mark_unreachable(self, name: str, reason: str, *, down: bool = False) -> None:
        self.unreachable.append((name, down))


@dataclass
class FakeGateway:
    signer: Any = SIGNER
    monitor: Any = field(default_factory=FakeMonitor)
    log: Any = logging.getLogger("test")
    allow_spooling: bool = False
    segment_uri_seconds: int = 60


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


class CountingSigner(FollowupSigner):
    """The gateway's signer, counting the URIs it signs."""

    def __init__(self) -> None:
        super().__init__(b"k" * 32)
        self.signed: list[str] = []

    def gateway_uri(self, base_url: str, cluster: str, user: str, upstream_uri: str) -> str:
        self.signed.append(upstream_uri)
        return super().gateway_uri(base_url, cluster, user, upstream_uri)


def test_a_page_that_carries_nothing_is_neither_signed_nor_written():
    # Most pages the gateway reads whole while it follows a short query never reach the
    # client: signing and writing them would be work for nothing on every query's path.
    body = page(nextUri=NEXT, partialCancelUri=NEXT + "/0", stats={"state": "QUEUED"})
    for method in ("GET", "POST"):
        signer = CountingSigner()
        client = FakeClient(method=method)
        ex = exchange.Exchange(FakeGateway(signer=signer), client, Identity("alice"), (), BASE)
        relayed = asyncio.run(ex.relay(CLUSTER, FakeResponse(200, [body]), collapse=True))
        assert relayed.follow == NEXT and signer.signed == []
    # The same page sent: its three URIs signed, once each.
    client, signer = FakeClient(), CountingSigner()
    ex = exchange.Exchange(FakeGateway(signer=signer), client, Identity("alice"), (), BASE)
    asyncio.run(ex.relay(CLUSTER, FakeResponse(200, [body]), collapse=False))
    assert sorted(signer.signed) == sorted([NEXT, NEXT + "/0", "https://trino:8443/ui/Q1"])
    assert json.loads(client.body)["nextUri"] == SIGNER.gateway_uri(BASE, "main", "alice", NEXT)


def spooled_page(*segments: dict[str, Any], **fields: Any) -> bytes:
    return page(
        nextUri=NEXT,
        columns=[{"name": "x", "type": "integer"}],
        stats={"state": "RUNNING"},
        data={"encoding": "json+zstd", "segments": list(segments)},
        **fields,
    )


def inline(rows: Any, offset: int = 0, **metadata: Any) -> dict[str, Any]:
    encoded = base64.b64encode(json.dumps(rows).encode()).decode()
    size = len(json.dumps(rows))
    return {
        "type": "inline",
        "data": encoded,
        "metadata": {"segmentSize": size, "rowOffset": offset, "rowsCount": len(rows), **metadata},
    }


def spooled_segment(offset: int, count: int) -> dict[str, Any]:
    return {
        "type": "spooled",
        "uri": "https://trino:8443/v1/spooled/download/abc=",
        "ackUri": "https://trino:8443/v1/spooled/ack/abc=",
        "metadata": {"segmentSize": 100, "rowOffset": offset, "rowsCount": count},
    }


SPOOLED = {"X-Trino-Query-Data-Encoding": "json+zstd"}
SIGNED_NEXT = SIGNER.gateway_uri(BASE, "main", "alice", NEXT)


def post_relays(*bodies: bytes) -> tuple[FakeClient, list[Relayed]]:
    """Relay *bodies* one after another for one client POST, collapsing, as
    `Exchange.pages` does (the last one answers it)."""
    client = FakeClient(method="POST")
    ex = exchange.Exchange(FakeGateway(allow_spooling=True), client, Identity("alice"), (), BASE)
    relayed = [
        asyncio.run(ex.relay(CLUSTER, FakeResponse(200, [b], headers=SPOOLED), collapse=True))
        for b in bodies
    ]
    return client, relayed


def test_a_posts_answer_has_a_spooled_pages_small_inline_rows_as_direct_protocol_rows():
    queued = page(nextUri="https://trino:8443/v1/statement/queued/Q1/s/1", stats={})
    rows = [[1, "x", None, [1, 2], {"k": 2.5}], [2, "é", "NaN", [], {}]]
    client, relayed = post_relays(queued, spooled_page(inline(rows[:1]), inline(rows[1:], 1)))
    assert relayed[0].follow is not None
    sent = json.loads(client.body)
    assert sent["data"] == rows
    assert sent["nextUri"] == SIGNED_NEXT
    assert sent["columns"] == [{"name": "x", "type": "integer"}]
    assert client.length == len(client.body)
    # The rows are counted from the segments, as for any spooled page.
    assert relayed[1].facts.spooled_rows == 2 and not relayed[1].held_back


def test_a_posts_answer_stops_before_a_spooled_page_it_cannot_give_as_rows():
    queued = page(nextUri="https://trino:8443/v1/statement/queued/Q1/s/1", stats={})
    executing = page(nextUri=NEXT, stats={"state": "RUNNING"})
    unreadable = [
        spooled_page(spooled_segment(0, 10)),
        spooled_page(inline([[1]]), spooled_segment(1, 10)),
        spooled_page(inline([[1]], uncompressedSize=9)),  # compressed
        spooled_page(inline([["x" * 1000]] * 70)),  # larger than INLINE_AS_ROWS
        page(nextUri=NEXT, stats={}, data={"encoding": "arrow+zstd", "segments": [inline([])]}),
    ]
    for body in unreadable:
        client, relayed = post_relays(queued, executing, body)
        # The client gets the page before, leading to the one held back (Trino answers
        # a repeated request for its last page with that page again).
        sent = json.loads(client.body)
        assert (sent["nextUri"], sent["stats"], "data" in sent) == (
            SIGNED_NEXT,
            {"state": "RUNNING"},
            False,
        )
        assert relayed[-1].held_back and relayed[-1].facts.next_uri == NEXT
    # With no page before it, such a page is the answer as it is.
    client, relayed = post_relays(spooled_page(spooled_segment(0, 10)))
    assert isinstance(json.loads(client.body)["data"], dict) and not relayed[0].held_back


def test_a_follow_up_gets_spooled_pages_as_they_are():
    body = spooled_page(inline([[1]]))
    client = FakeClient(method="GET")
    ex = exchange.Exchange(FakeGateway(allow_spooling=True), client, Identity("alice"), (), BASE)
    asyncio.run(ex.relay(CLUSTER, FakeResponse(200, [body], headers=SPOOLED), collapse=True))
    assert json.loads(client.body)["data"]["segments"][0]["type"] == "inline"


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
    # Counted as one failure, not taken as down: a break mid-page may be a busy cluster.
    assert gateway.monitor.unreachable == [("main", False)]


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


def test_the_headers_to_a_cluster_are_built_once_per_client_request(monkeypatch):
    built, sent = [], []

    class Upstream:
        async def send(self, cluster, method, path, headers, body=None):
            sent.append(list(headers))

    def build(*args, **kwargs):
        built.append(args)
        return [("X-Trino-User", "alice"), ("Authorization", "Basic c3Zj")]

    monkeypatch.setattr(exchange.protocol, "upstream_request_headers", build)
    gateway = FakeGateway()
    gateway.upstream = Upstream()
    ex = exchange.Exchange(
        gateway, FakeClient(), Identity("alice"), (("X-Trino-Catalog", "c"),), BASE
    )
    for path in ("/v1/statement/queued/Q1/s/1", "/v1/statement/executing/Q1/s/0"):
        asyncio.run(ex.send(CLUSTER, "GET", path))
    assert len(built) == 1 and sent[0] == sent[1] == [
        ("X-Trino-User", "alice"),
        ("Authorization", "Basic c3Zj"),
    ]
    # A queued query's stored headers are its own.
    asyncio.run(ex.send(CLUSTER, "POST", "/v1/statement", b"SELECT 1", (("X-Trino-Schema", "s"),)))
    assert len(built) == 2 and built[1][0] == (("X-Trino-Schema", "s"),)
