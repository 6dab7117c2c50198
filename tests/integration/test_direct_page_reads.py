"""Direct-protocol pages on their way from Trino and PrestoDB through the real gateway to
``%%sql``'s reader: a large page arrives in a few large chunks (`exchange.RELAY_WRITE`),
the kernel reads each page in one call (`query.read_body`), and a Presto page's rows pass
the gateway's translation as bytes where no value needs translating
(`presto.translate_page`), giving Trino's frame either way.

A gateway runs in-process (`BackgroundGateway`) in front of the test stack's Trino
(routing group ``default``) and the session's PrestoDB (``lake``)."""

from __future__ import annotations

import http.client
import math
from typing import Any

import pandas as pd
import pytest
import requests

from datahub.extensions import query
from datahub.extensions.query import run_query
from datahub.gateway import exchange, presto
from datahub.testing import (
    BackgroundGateway,
    gateway_connection,
    resolver_for,
    user_token,
    wait_for,
)

SECRET = b"direct-page-reads-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}
ORDERS = (
    "SELECT orderkey, custkey, orderstatus, totalprice, orderdate, orderpriority, clerk, "
    "comment{extra} FROM tpch.tiny.orders ORDER BY orderkey"
)


@pytest.fixture(scope="module")
def gateway(stack, presto, tmp_path_factory):
    state = tmp_path_factory.mktemp("direct-page-reads")
    running = BackgroundGateway(
        clusters=[
            {**stack.settings["clusters"][0], "name": "trino", "routing_group": "default"},
            {**presto.cluster_entry(routing_group="lake"), "name": "presto"},
        ],
        default_routing_group="default",
        store_url=f"sqlite:///{state / 'datahub.sqlite'}",
        secret=SECRET,
        identity_resolver_class=resolver_for(TOKENS),
        health_check_interval=0.5,
    )
    statuses = running.service.monitor.statuses
    wait_for(lambda: statuses["trino"].healthy and statuses["presto"].healthy)
    yield running
    running.close()


def fetch(gateway: BackgroundGateway, sql: str, hint: str | None = None) -> pd.DataFrame:
    connection = gateway_connection(gateway, hint=hint)
    return run_query(connection, sql, spooling=False).frame


@pytest.fixture
def reads(monkeypatch) -> list[dict[str, Any]]:
    """Each page the kernel read: its size and the HTTP chunks it came in."""
    pages: list[dict[str, Any]] = []
    chunks = [0]
    next_chunk_size = http.client.HTTPResponse._read_next_chunk_size
    read_body = query.read_body

    def counted(self):
        chunks[0] += 1
        return next_chunk_size(self)

    def recorded(response):
        chunks[0] = 0
        body = read_body(response)
        pages.append({"bytes": len(body), "chunks": chunks[0] - 1})  # not the last, empty one
        return body

    monkeypatch.setattr(http.client.HTTPResponse, "_read_next_chunk_size", counted)
    monkeypatch.setattr(query, "read_body", recorded)
    return pages


@pytest.fixture
def pieces(monkeypatch) -> list[str]:
    """The URLs whose bodies were read through ``requests``' 10 KB pieces."""
    urls: list[str] = []
    iter_content = requests.models.Response.iter_content

    def recorded(self, *args, **kwargs):
        urls.append(self.url)
        return iter_content(self, *args, **kwargs)

    monkeypatch.setattr(requests.models.Response, "iter_content", recorded)
    return urls


@pytest.fixture
def presto_splits(monkeypatch) -> list[bool]:
    """For each Presto page with rows the gateway translated: whether its rows passed as
    bytes."""
    splits: list[bool] = []
    translate_page, with_rows = presto.translate_page, presto._with_rows

    def recorded_with_rows(page, rows):
        splits[-1] = True
        return with_rows(page, rows)

    def recorded(body: bytes):
        if b'"data":[' in body:
            splits.append(False)
        return translate_page(body)

    monkeypatch.setattr(presto, "_with_rows", recorded_with_rows)
    monkeypatch.setattr(presto, "translate_page", recorded)
    return splits


def test_large_direct_pages_reach_the_kernel_in_a_few_chunks_read_in_one_call(
    gateway, reads, pieces
):
    frame = fetch(gateway, "SELECT * FROM tpch.tiny.lineitem ORDER BY orderkey, linenumber")
    assert len(frame) == 60175
    large = [page for page in reads if page["bytes"] > 2 * exchange.RELAY_WRITE]
    assert len(large) >= 5, reads
    for page in large:
        # The gateway's writes, each a chunk of the client's chunked body: the rewritten
        # head, then at least RELAY_WRITE bytes each.
        assert 0 < page["chunks"] <= 1 + math.ceil(page["bytes"] / exchange.RELAY_WRITE), reads
    # Only the submit's answer went through requests' pieces (the trino client reads it).
    assert [url.rsplit("/", 1)[-1] for url in pieces] == ["statement"]


def test_presto_pages_pass_their_rows_as_bytes_and_give_trinos_frame(gateway, presto_splits):
    sql = ORDERS.format(extra="")
    on_presto = fetch(gateway, sql, hint="lake")
    assert presto_splits and all(presto_splits)
    pd.testing.assert_frame_equal(on_presto, fetch(gateway, sql))
    assert len(on_presto) == 15000


def test_presto_pages_whose_values_need_translating_are_translated_whole(gateway, presto_splits):
    sql = ORDERS.format(
        extra=", ARRAY[orderkey, custkey] AS keys, CAST(ROW(clerk) AS ROW(c varchar)) AS r"
    )
    on_presto = fetch(gateway, sql, hint="lake")
    assert presto_splits and not any(presto_splits)
    on_trino = fetch(gateway, sql)
    pd.testing.assert_frame_equal(on_presto, on_trino)
    assert list(on_presto["keys"][0]) == [1, on_presto["custkey"][0]]
