"""Carrying a short query's rows to its last page (``carry.py``), through `Exchange.relay`
and `Exchange.pages` with a stand-in cluster: when the rows wait for the last page, and
every way they go to the client at once instead, losing nothing."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from datahub.gateway import carry, exchange
from datahub.gateway.client import Relayed
from datahub.identity import Identity

from .test_gateway_exchange import BASE, CLUSTER, SIGNER, FakeClient, FakeGateway, FakeResponse

URI = "https://trino:8443/v1/statement/executing/Q1/s/{}"
COLUMNS = [{"name": "_col0", "type": "integer"}]


def signed(token: int) -> str:
    return SIGNER.gateway_uri(BASE, "main", "alice", URI.format(token))


def page(token: int | None, **fields: Any) -> bytes:
    """Trino's page whose nextUri has *token* (None: the last page)."""
    doc: dict[str, Any] = {"id": "Q1", "infoUri": "https://trino:8443/ui/Q1"}
    if token is not None:
        doc["nextUri"] = URI.format(token)
    doc.update(fields)
    return json.dumps(doc, separators=(",", ":")).encode()


ROWS = page(1, columns=COLUMNS, data=[[1]], stats={"state": "RUNNING"})
RUNNING = page(2, stats={"state": "RUNNING"})
FINISHING = page(3, columns=COLUMNS, stats={"state": "FINISHED"})
LAST = page(None, columns=COLUMNS, stats={"state": "FINISHED"}, warnings=[])


@dataclass
class Tracked:
    stop_reason: str | None = None
    limit_messages: Any = None


@dataclass
class FakeTracker:
    pages: list[tuple[str | None, bool, bool]] = field(default_factory=list)
    lost_with: list[str] = field(default_factory=list)

    async def page(self, query, facts, *, delivered=True) -> None:
        self.pages.append((facts.state, facts.has_next, delivered))

    def lost(self, query, message) -> None:
        self.lost_with.append(message)


class FakeUpstream:
    """A cluster that answers the GET of each token with the next response given."""

    def __init__(self, responses: list[FakeResponse], delay: float = 0.0) -> None:
        self.responses = responses
        self.paths: list[str] = []
        self.delay = delay

    async def send(self, cluster, method, path, headers, body=None) -> FakeResponse:
        self.paths.append(path)
        await asyncio.sleep(self.delay)
        return self.responses.pop(0)


@dataclass
class CarryingGateway(FakeGateway):
    page_carry_seconds: float = 30.0
    upstream: Any = None
    tracker: Any = field(default_factory=FakeTracker)


def run(
    first: bytes | FakeResponse,
    *after: bytes | FakeResponse,
    method: str = "POST",
    seconds: float = 30.0,
    delay: float = 0.0,
    first_headers: dict[str, str] | None = None,
) -> tuple[FakeClient, Relayed, CarryingGateway]:
    """Relay *first* (carrying, as a POST's answer is) and follow on through *after*,
    as `submit.submit` does; the client's one answer and what the last relay came to."""

    def response(r: bytes | FakeResponse) -> FakeResponse:
        return r if isinstance(r, FakeResponse) else FakeResponse(200, [r])

    gateway = CarryingGateway(page_carry_seconds=seconds)
    gateway.upstream = FakeUpstream([response(r) for r in after], delay)
    client = FakeClient(method=method)
    ex = exchange.Exchange(gateway, client, Identity("alice"), (), BASE)

    async def scenario() -> Relayed:
        head = response(first)
        if first_headers:
            head.headers.update(first_headers)
        relayed = await ex.relay(CLUSTER, head, collapse=True, carry=True)
        await ex.pages(CLUSTER, Tracked(), relayed, time.monotonic() + 30)
        return relayed

    relayed = asyncio.run(scenario())
    return client, relayed, gateway


def test_a_short_querys_rows_come_on_its_last_page_in_one_answer():
    client, first, gateway = run(
        ROWS, RUNNING, FINISHING, FakeResponse(200, [LAST], headers={"X-Trino-Set-Schema": "s"})
    )
    sent = json.loads(client.body)
    assert sent["data"] == [[1]] and sent["columns"] == COLUMNS
    assert "nextUri" not in sent and sent["stats"] == {"state": "FINISHED"}
    assert client.status == 200 and client.length == len(client.body)
    # The last page's session change reaches the client with the rows.
    assert ("X-Trino-Set-Schema", "s") in client.headers
    assert first.follow == URI.format(1)
    # Each page after the rows was asked for with a short wait, not Trino's second.
    assert [p.split("?")[0] for p in gateway.upstream.paths] == [
        "/v1/statement/executing/Q1/s/1",
        "/v1/statement/executing/Q1/s/2",
        "/v1/statement/executing/Q1/s/3",
    ]
    assert all("maxWait=" in p for p in gateway.upstream.paths)
    # Only the last page counts as delivered; it closes the query.
    assert gateway.tracker.pages == [
        ("RUNNING", True, False),
        ("RUNNING", True, False),
        ("FINISHED", True, False),
        ("FINISHED", False, True),
    ]


def test_more_rows_send_the_rows_held_with_the_way_to_them():
    more = page(2, columns=COLUMNS, data=[[2]], stats={"state": "RUNNING"})
    client, _, gateway = run(ROWS, more)
    sent = json.loads(client.body)
    # The rows held, leading to the page just fetched, which Trino gives again.
    assert sent["data"] == [[1]] and sent["nextUri"] == signed(1)
    # Neither page counts as delivered: the client asks for the second itself.
    assert gateway.tracker.pages == [("RUNNING", True, False)] * 2


def test_an_error_after_the_rows_sends_the_rows_first():
    failed = page(None, stats={"state": "FAILED"}, error={"message": "boom", "errorName": "X"})
    client, _, gateway = run(ROWS, RUNNING, failed)
    sent = json.loads(client.body)
    assert sent["data"] == [[1]] and sent["nextUri"] == signed(2)
    assert client.failed is None
    # The failed page closes the query; the client reads it on its next request.
    assert gateway.tracker.pages[-1] == ("FAILED", False, False)


def test_when_the_time_is_up_the_rows_go_with_the_page_fetched_last():
    client, _, gateway = run(ROWS, RUNNING, FINISHING, LAST, seconds=0.02, delay=0.03)
    sent = json.loads(client.body)
    assert sent["data"] == [[1]] and sent["nextUri"] == signed(1)
    assert len(gateway.upstream.paths) == 1
    # The look-ahead asked Trino to answer within the time left (at least 1 ms).
    assert gateway.upstream.paths[0].endswith("?maxWait=20ms")


def test_a_clusters_failure_after_the_rows_sends_the_rows_and_not_the_failure():
    for answer in (
        FakeResponse(503, [b"Service Unavailable"], content_type="text/plain"),
        FakeResponse(410, [b"{}"]),
    ):
        client, _, gateway = run(ROWS, answer)
        sent = json.loads(client.body)
        assert sent["data"] == [[1]] and sent["nextUri"] == signed(1)
        assert client.failed is None and gateway.monitor.unreachable == []


def test_a_large_page_after_the_rows_is_not_read_but_left_to_the_client():
    rows = [[i, "x" * 100] for i in range(2000)]
    large = page(2, columns=COLUMNS, data=rows, stats={"state": "RUNNING"})
    chunks = [large[i : i + 8192] for i in range(0, len(large), 8192)]
    client, _, _ = run(ROWS, FakeResponse(200, chunks))
    sent = json.loads(client.body)
    assert sent["data"] == [[1]] and sent["nextUri"] == signed(1)


def test_rows_with_news_go_at_once():
    warned = page(1, columns=COLUMNS, data=[[1]], warnings=[{"message": "w"}], stats={})
    for first, headers in (
        (warned, None),
        (ROWS, {"X-Trino-Set-Session": "a=b"}),
        (page(1, columns=COLUMNS, data=[], stats={}), None),
        (page(1, columns=COLUMNS, data=[[1]], updateType="INSERT", stats={}), None),
    ):
        client, relayed, gateway = run(first, RUNNING, first_headers=headers)
        sent, trinos = json.loads(client.body), json.loads(first)
        assert (sent["data"], sent["nextUri"]) == (trinos["data"], signed(1))
        assert sent.get("warnings") == trinos.get("warnings")
        assert relayed.follow is None and gateway.upstream.paths == []


def test_without_carry_the_rows_go_at_once():
    client = FakeClient(method="POST")
    gateway = CarryingGateway()
    ex = exchange.Exchange(gateway, client, Identity("alice"), (), BASE)
    relayed = asyncio.run(ex.relay(CLUSTER, FakeResponse(200, [ROWS]), collapse=True))
    assert relayed.follow is None and json.loads(client.body)["data"] == [[1]]


def test_the_look_ahead_path_keeps_its_query_and_waits_at_least_a_millisecond():
    assert carry.look_ahead("/v1/statement/executing/Q/s/1", 0.05) == (
        "/v1/statement/executing/Q/s/1?maxWait=50ms"
    )
    assert carry.look_ahead("/p?a=1&maxWait=1s", -3) == "/p?a=1&maxWait=1ms"


def test_rows_join_only_a_last_page_without_rows_of_its_own():
    held = json.loads(ROWS)

    def merged(last: bytes) -> dict[str, Any] | None:
        return carry.merged(held, json.loads(last))

    assert merged(page(None, stats={}, data=[[9]])) is None
    assert merged(page(4, stats={})) is None
    assert merged(page(None, stats={}, error={"message": "x"})) is None
    joined = merged(page(None, stats={}, updateType="INSERT"))
    assert joined is not None
    assert joined["data"] == [[1]] and joined["columns"] == COLUMNS
    assert joined["updateType"] == "INSERT"
