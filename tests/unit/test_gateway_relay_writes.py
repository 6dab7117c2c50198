"""A streamed direct-protocol page reaches the client in a few large writes, whatever the
sizes of the cluster's reads (`exchange.RELAY_WRITE`), with the same bytes and length."""

from __future__ import annotations

import asyncio
import json
import math

from datahub.gateway import exchange
from datahub.gateway.clusters import Cluster
from datahub.identity import Identity

from .test_gateway_exchange import NEXT, FakeClient, FakeGateway, FakeResponse, page

CLUSTER = Cluster("main", "https://trino:8443", user="svc")


class CountingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__(method="GET")
        self.writes: list[int] = []

    async def send(self, chunk: bytes) -> None:
        self.writes.append(len(chunk))
        await super().send(chunk)


def relay(chunks: list[bytes], *, length: bool) -> CountingClient:
    client = CountingClient()
    ex = exchange.Exchange(FakeGateway(), client, Identity("alice"), (), "http://gw:8765")
    asyncio.run(ex.relay(CLUSTER, FakeResponse(200, chunks, length=length)))
    return client


def a_page(size: int) -> bytes:
    rows, body = [], b""
    while len(body) < size:
        rows.extend([[i, "ünï " + "x" * 90] for i in range(len(rows), len(rows) + 1000)])
        body = page(nextUri=NEXT, columns=[], data=rows, stats={"state": "RUNNING"})
    return body


def test_a_page_in_small_reads_goes_out_in_a_few_large_writes():
    body = a_page(1024 * 1024)
    for length in (True, False):
        # 8 KB reads, one cut inside a two-byte character.
        client = relay([body[i : i + 8191] for i in range(0, len(body), 8191)], length=length)
        sent = json.loads(client.body)
        assert sent["data"] == json.loads(body)["data"] and client.finished
        assert len(client.writes) <= 1 + math.ceil(len(body) / exchange.RELAY_WRITE)
        # The rewritten head goes at once, every write after it is a large one.
        assert all(n >= exchange.RELAY_WRITE for n in client.writes[1:])
        assert client.length == (len(client.body) if length else None)
