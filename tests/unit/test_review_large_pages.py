"""Attacks on the pages larger than the gateway reads whole (`rewrite.WHOLE_PAGE`).

A user makes their query fail with a long message (``SELECT fail(lpad('', 100000, 'x'))``),
so Trino's failed page, which carries Trino's Java stack frames, is larger than that. Such
a page has no rows: it is read whole too and reaches the client without the frames,
whatever its size, its length header or the spooling setting. A page beyond what is read
whole that has no rows (or a spooled one, its cluster segment URIs unsigned) is refused
in one sentence instead of streamed as it is."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from datahub.gateway import exchange, rewrite, spooled
from datahub.identity import Identity

from .test_gateway_exchange import CLUSTER, NEXT, FakeClient, FakeGateway, FakeResponse, page

FRAMES = [f"io.trino.execution.SqlTaskExecution.run(SqlTaskExecution.java:{n})" for n in range(60)]


def failed_page(message: str, **fields: Any) -> bytes:
    failure = {
        "type": "io.trino.spi.TrinoException",
        "message": message,
        "suppressed": [],
        "stack": FRAMES,
        "errorInfo": {"code": 0, "name": "GENERIC_USER_ERROR", "type": "USER_ERROR"},
    }
    error = {
        "message": message,
        "errorCode": 0,
        "errorName": "GENERIC_USER_ERROR",
        "errorType": "USER_ERROR",
        "failureInfo": failure,
    }
    return page(stats={"state": "FAILED"}, error=error, warnings=[], **fields)


def relay(
    body: bytes, *, length: bool, spooling: bool, read: int = 8192, collapse: bool = False
) -> FakeClient:
    """What the client gets of *body*, which the cluster sends in reads of *read* bytes."""
    client = FakeClient(method="GET")
    gateway = FakeGateway(allow_spooling=spooling)
    ex = exchange.Exchange(gateway, client, Identity("alice"), (), "http://gw:8765")
    chunks = [body[i : i + read] for i in range(0, len(body), read)]
    asyncio.run(ex.relay(CLUSTER, FakeResponse(200, chunks, length=length), collapse=collapse))
    return client


@pytest.mark.parametrize("length", [True, False])
@pytest.mark.parametrize("spooling", [True, False])
@pytest.mark.parametrize("columns", [None, [{"name": "_col0", "type": "varchar"}]])
def test_a_large_failed_page_reaches_the_client_without_stack_frames(length, spooling, columns):
    extra = {"columns": columns} if columns else {}
    body = failed_page("x" * 100_000, **extra)
    assert len(body) > rewrite.WHOLE_PAGE
    client = relay(body, length=length, spooling=spooling)
    assert client.finished and client.failed is None
    sent = json.loads(client.body)
    assert ".java:" not in client.body.decode()
    assert sent["error"]["failureInfo"]["stack"] == []
    assert sent["error"]["message"] == "x" * 100_000
    assert client.length in (None, len(client.body))


def test_a_failed_page_beyond_what_is_read_whole_is_one_sentence_not_its_frames():
    body = failed_page("x" * 2 * spooled.SPOOLED_PAGE)
    client = relay(body, length=False, spooling=False, read=4 * 1024 * 1024)
    assert b".java:" not in client.body
    assert client.failed is not None and "x" * 100 not in client.failed[0]


def test_a_large_page_of_rows_still_streams():
    rows = [[i, "x" * 100] for i in range(2000)]
    body = page(nextUri=NEXT, columns=[], data=rows, stats={"state": "RUNNING"})
    client = relay(body, length=True, spooling=True)
    assert json.loads(client.body)["data"] == rows and client.length == len(client.body)


def test_a_spooled_page_beyond_what_is_read_whole_never_shows_the_clusters_segment_uris():
    segment = {
        "type": "spooled",
        "uri": "https://trino:8443/v1/spooled/download/abc=",
        "ackUri": "https://trino:8443/v1/spooled/ack/abc=",
        "metadata": {"segmentSize": 100, "rowOffset": 0, "rowsCount": 1},
    }
    filler = {"type": "inline", "data": "", "metadata": {"pad": "x" * 2 * spooled.SPOOLED_PAGE}}
    body = page(
        nextUri=NEXT,
        columns=[{"name": "x", "type": "integer"}],
        data={"encoding": "json", "segments": [segment, filler]},
        stats={"state": "RUNNING"},
    )
    client = relay(body, length=True, spooling=True, read=4 * 1024 * 1024)
    assert b"https://trino:8443/v1/spooled" not in client.body
    assert client.failed is not None


def test_a_spooled_page_whose_segments_start_late_still_gets_them_signed():
    """A column named with 70,000 characters puts the page's ``data`` beyond the first
    bytes the gateway looks at; the cluster's segment URIs must still be rewritten."""
    segment = {
        "type": "spooled",
        "uri": "https://trino:8443/v1/spooled/download/abc=",
        "ackUri": "https://trino:8443/v1/spooled/ack/abc=",
        "metadata": {"segmentSize": 100, "rowOffset": 0, "rowsCount": 1},
    }
    body = page(
        nextUri=NEXT,
        columns=[{"name": "c" * 70_000, "type": "integer"}],
        data={"encoding": "json", "segments": [segment]},
        stats={"state": "RUNNING"},
    )
    client = relay(body, length=True, spooling=True)
    assert b"https://trino:8443/v1/spooled" not in client.body
    uri = json.loads(client.body)["data"]["segments"][0]["uri"]
    assert uri.startswith("http://gw:8765/v1/dh-segment/main/alice/")


class _PrestoLike(FakeResponse):
    """A Presto cluster's answer (`upstream.PrestoResponse`): translated whole, then read
    whole when small, else streamed from its start."""

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        body = b"".join(self._chunks)
        return (body, True) if len(body) <= limit else (b"", False)


def test_a_large_presto_page_streams_as_before_without_being_parsed_on_the_loop(monkeypatch):
    def parsed(*args):
        raise AssertionError("a large page was parsed on the event loop")

    monkeypatch.setattr(exchange, "prepare_whole", parsed)
    rows = [[i, "x" * 100] for i in range(20_000)]
    body = page(nextUri=NEXT, columns=[], data=rows, stats={"state": "RUNNING"})
    client = FakeClient(method="GET")
    ex = exchange.Exchange(FakeGateway(allow_spooling=True), client, Identity("alice"), (), "")
    asyncio.run(ex.relay(CLUSTER, _PrestoLike(200, [body]), collapse=True))
    assert json.loads(client.body)["data"] == rows


def test_rows_after_columns_beyond_the_first_bytes_still_stream(monkeypatch):
    """A wide table's ``columns`` (hundreds of columns) can outgrow the first bytes read;
    the page is read on only up to its rows, which stream, never parsed on the loop."""

    def parsed(*args):
        raise AssertionError("a large page was parsed on the event loop")

    monkeypatch.setattr(exchange, "prepare_whole", parsed)
    columns = [{"name": f"column_{i:04}", "type": "varchar"} for i in range(2000)]
    rows = [[f"v{i}"] * 2000 for i in range(100)]
    body = page(nextUri=NEXT, columns=columns, data=rows, stats={"state": "RUNNING"})
    assert body.find(b'"data":') > rewrite.WHOLE_PAGE
    client = relay(body, length=True, spooling=True, collapse=True)
    assert json.loads(client.body)["data"] == rows and client.length == len(client.body)


def test_a_large_page_read_whole_is_made_ready_off_the_event_loop(monkeypatch):
    # Each query of a user who makes their message long would otherwise hold up every
    # other request of the gateway while its page is parsed (16 MB: about 140 ms).
    threads: list[tuple[int, str]] = []
    prepare = exchange.prepare_whole

    def recorded(body, *args, **kwargs):
        ready = prepare(body, *args, **kwargs)
        # A large page is written where it is parsed, not later on the loop.
        assert (ready._out is not None) == (len(body) > exchange.LOOP_PAGE)
        threads.append((len(body), threading.current_thread().name))
        return ready

    monkeypatch.setattr(exchange, "prepare_whole", recorded)
    small = relay(failed_page("x" * 100), length=True, spooling=True)
    large = relay(failed_page("x" * 1_000_000), length=True, spooling=True)
    assert [size > exchange.LOOP_PAGE for size, _ in threads] == [False, True]
    assert threads[0][1] == threading.main_thread().name  # the loop's own thread
    assert threads[1][1] != threading.main_thread().name
    for client in (small, large):
        assert b".java:" not in client.body
        assert json.loads(client.body)["error"]["failureInfo"]["stack"] == []
