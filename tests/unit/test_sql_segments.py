"""%%sql's fetch under the spooling protocol, against a fake Trino serving spooled pages:
the encoding it asks for, segments downloaded and decoded in order into typed columns,
acknowledged, and a refused download as the gateway's sentence."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler

import lz4.block
import pytest
import requests
import trino
import zstandard

from datahub.extensions import segments
from datahub.extensions.query import QueryCancelled, run_query
from datahub.testing import free_port, serving

#: A bound on waiting for a thread, not a measure of its speed.
GIVE_UP_AFTER = 30

COLUMNS = [{"name": "n", "type": "bigint"}, {"name": "d", "type": "date"}]
#: Rows of each segment: the first inline, the others spooled.
SEGMENTS = [
    [[i, f"2024-01-{1 + i % 28:02d}"] for i in range(s * 1000, s * 1000 + 1000)] for s in range(6)
]


def zstd(rows) -> bytes:
    return zstandard.ZstdCompressor().compress(json.dumps(rows).encode())


#: The slow query's segment download is in the server's hands; the query was cancelled.
SLOW_SEGMENT_ASKED = threading.Event()
CANCELLED = threading.Event()


class _SpoolingTrino(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.seen.append(("POST", sql, dict(self.headers)))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        special = {"REFUSED": "refused", "SLOW": "slow"}.get(sql)

        def meta(rows):
            return {"rowsCount": len(rows), "uncompressedSize": len(json.dumps(rows).encode())}

        spooled = [
            {
                "type": "spooled",
                "uri": f"{base}/seg/{special or i}",
                "ackUri": f"{base}/ack/{i}",
                "metadata": meta(SEGMENTS[i]),
            }
            for i in range(1, len(SEGMENTS))
        ]
        inline = {
            "type": "inline",
            "data": base64.b64encode(zstd(SEGMENTS[0])).decode(),
            "metadata": meta(SEGMENTS[0]),
        }
        data = {"encoding": "json+zstd", "segments": [inline, *spooled[:2]]}
        page = {"id": "q", "columns": COLUMNS, "data": data, "nextUri": f"{base}/v1/next/{sql}"}
        self._send(json.dumps(page).encode())
        self.server.rest = spooled[2:]

    def do_GET(self):  # noqa: N802
        self.seen.append(("GET", self.path, dict(self.headers)))
        if self.path.startswith("/seg/slow"):
            SLOW_SEGMENT_ASKED.set()
            CANCELLED.wait(30)  # answers only once the query was cancelled
            return self._send(b"", "text/plain", status=503)
        if self.path.startswith("/seg/refused"):
            error = {"error": {"message": "This result segment URI has expired; run it again."}}
            return self._send(json.dumps(error).encode(), status=410)
        if self.path.startswith("/seg/"):
            return self._send(
                zstd(SEGMENTS[int(self.path.split("/")[-1])]), "application/octet-stream"
            )
        if self.path.startswith("/ack/"):
            return self._send(b"", "text/plain")
        if self.path == "/v1/next/SLOW":  # still running until cancelled
            time.sleep(0.05)
            running = {"id": "q", "nextUri": f"{self._base()}{self.path}", "stats": {}}
            return self._send(json.dumps(running).encode())
        rest = {"encoding": "json+zstd", "segments": self.server.rest}
        page = {"id": "q", "columns": COLUMNS, "data": rest, "stats": {"state": "FINISHED"}}
        self._send(json.dumps(page).encode())

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def do_DELETE(self):  # noqa: N802
        self.seen.append(("DELETE", self.path, dict(self.headers)))
        CANCELLED.set()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, body: bytes, content_type="application/json", status=200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def conn():
    with serving(_SpoolingTrino) as port:
        yield trino.dbapi.connect(host="127.0.0.1", port=port, user="u", http_scheme="http")


def test_the_statement_asks_for_the_best_encoding_first():
    assert segments.accepted_encodings() == "json+zstd,json+lz4,json"


def test_spooled_segments_become_one_typed_frame_in_order_and_are_acknowledged(conn):
    _SpoolingTrino.seen.clear()
    result = run_query(conn, "SELECT spooled")
    post = next(headers for method, _, headers in _SpoolingTrino.seen if method == "POST")
    assert post["X-Trino-Query-Data-Encoding"] == "json+zstd,json+lz4,json"
    assert result.frame["n"].tolist() == list(range(6000))
    assert str(result.frame["n"].dtype) == "Int64"
    assert str(result.frame["d"].dtype).startswith("datetime64")

    def acked():
        return sorted(path for _, path, _ in _SpoolingTrino.seen if path.startswith("/ack/"))

    deadline = time.monotonic() + 30  # acknowledgements go out on their own
    while len(acked()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert acked() == [f"/ack/{i}" for i in range(1, 6)]
    downloads = [h for m, path, h in _SpoolingTrino.seen if path.startswith("/seg/")]
    assert {h.get("Accept-Encoding") for h in downloads} == {"identity"}


def test_without_spooling_the_encoding_is_not_asked_for(conn):
    _SpoolingTrino.seen.clear()
    run_query(conn, "SELECT direct", spooling=False)
    post = next(headers for method, _, headers in _SpoolingTrino.seen if method == "POST")
    assert "X-Trino-Query-Data-Encoding" not in post


def test_a_refused_segment_is_the_gateways_sentence(conn):
    with pytest.raises(trino.exceptions.HttpError) as raised:
        run_query(conn, "REFUSED")
    assert str(raised.value) == "error 410: This result segment URI has expired; run it again."


def test_lz4_and_plain_json_segments_decode_too():
    rows = [[1, "a"], [2, None]]
    raw = json.dumps(rows).encode()
    meta = {"uncompressedSize": len(raw)}
    assert list(segments.decode("json", raw, meta)) == [rows]
    compressed = lz4.block.compress(raw, store_size=False)
    assert list(segments.decode("json+lz4", compressed, meta)) == [rows]
    with pytest.raises(ValueError, match="cannot read"):
        segments.decode("arrow", raw, meta)


def test_a_segment_below_trinos_compression_threshold_is_read_as_plain_json():
    # Trino sends small segments uncompressed, and then without an uncompressedSize.
    rows = [[1, "a"], [2, None]]
    raw = json.dumps(rows).encode()
    assert list(segments.decode("json+zstd", raw, {"rowsCount": 2, "segmentSize": len(raw)})) == [
        rows
    ]


def test_rows_are_parsed_in_chunks_cut_only_between_rows():
    # Strings and nested arrays that look like row boundaries must not cut a chunk.
    rows = [
        [i, "a],[b" * (i % 3), [[i, i + 1], [i + 2]], {"k": "],["}, None, "\\"] for i in range(2000)
    ]
    raw = json.dumps(rows, separators=(",", ":")).encode()
    chunks = list(segments.rows_in_chunks(raw, chunk=1000))
    assert len(chunks) > 50
    assert [row for chunk in chunks for row in chunk] == rows
    assert list(segments.rows_in_chunks(b"[]", chunk=1)) == [[]]
    assert list(segments.rows_in_chunks(b"[[1]]", chunk=1)) == [[[1]]]


def test_an_interrupt_while_segments_download_cancels_the_query(conn):
    _SpoolingTrino.seen.clear()

    def interrupt_when_asked() -> None:
        if SLOW_SEGMENT_ASKED.wait(30):
            # A real SIGINT to the main thread, as the kernel's interrupt sends.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt_when_asked, daemon=True).start()
    with pytest.raises(QueryCancelled):
        run_query(conn, "SLOW")
    # The client retries a DELETE whose connection broke; one is enough.
    assert {path for method, path, _ in _SpoolingTrino.seen if method == "DELETE"} == {
        "/v1/next/SLOW"
    }


def test_a_page_with_more_segments_than_room_is_read_whole_and_in_order():
    # Room for 2 segments at a time, a page of 9: the page thread must not wait for room
    # that only reading the page (which it has not handed over yet) would make.
    parts = [[[i * 10 + j] for j in range(3)] for i in range(9)]
    page = {
        "encoding": "json",
        "segments": [
            {"type": "inline", "data": base64.b64encode(json.dumps(rows).encode()).decode()}
            for rows in parts
        ],
    }
    reader = segments.SegmentReader(requests.Session(), threading.Event(), max_pending=2)
    submitted: list = []
    thread = threading.Thread(
        target=lambda: submitted.append(reader.submit(page, json.loads)), daemon=True
    )
    thread.start()
    thread.join(GIVE_UP_AFTER)
    assert submitted, "submitting a page of 9 segments with room for 2 did not return"
    read = [row for pending in submitted[0] for row in reader.result(pending)]
    assert read == [row for rows in parts for row in rows]
    reader.close()


def test_credentials_go_only_to_the_server_that_answered_the_statement(conn):
    # A segment URI of another origin (an object store's presigned URI, as Trino's
    # STORAGE retrieval mode hands out) must not get the user's token.
    _SpoolingTrino.seen.clear()
    port = conn.port
    session = requests.Session()
    session.auth = ("alice", "hub-token")
    reader = segments.SegmentReader(
        session, threading.Event(), server=f"http://127.0.0.1:{port}/v1/statement"
    )

    def spooled(host: str, i: int) -> dict:
        return {
            "type": "spooled",
            "uri": f"http://{host}:{port}/seg/{i}",
            "ackUri": f"http://{host}:{port}/ack/{i}",
            "metadata": {"uncompressedSize": len(json.dumps(SEGMENTS[i]).encode())},
        }

    page = {"encoding": "json+zstd", "segments": [spooled("127.0.0.1", 1), spooled("localhost", 2)]}
    read = [reader.result(pending) for pending in reader.submit(page, json.loads)]
    assert read == [SEGMENTS[1], SEGMENTS[2]]
    deadline = time.monotonic() + GIVE_UP_AFTER  # acknowledgements go out on their own
    while len([p for _, p, _ in _SpoolingTrino.seen if p.startswith("/ack/")]) < 2:
        assert time.monotonic() < deadline, "the segments were not acknowledged"
        time.sleep(0.05)
    reader.close()
    authorized = {path: "Authorization" in headers for _, path, headers in _SpoolingTrino.seen}
    assert authorized == {"/seg/1": True, "/ack/1": True, "/seg/2": False, "/ack/2": False}


def test_the_object_storage_refusing_or_missing_is_named_as_such(conn):
    # A pre-signed segment URI is read from the cluster's storage, not the gateway: when
    # the storage refuses it (an expired link) or cannot be reached, the sentence says so
    # instead of blaming the gateway, and gives no part of the signed URI away.
    port = conn.port
    reader = segments.SegmentReader(
        requests.Session(), threading.Event(), server=f"http://127.0.0.1:{port}/v1/statement"
    )
    closed_port = free_port()  # nothing listens there

    def spooled(uri: str) -> dict:
        return {"type": "spooled", "uri": uri, "ackUri": f"http://127.0.0.1:{port}/ack/0"}

    refused = f"http://localhost:{port}/seg/refused?X-Amz-Signature=secret"
    (pending,) = reader.submit({"encoding": "json+zstd", "segments": [spooled(refused)]}, len)
    with pytest.raises(segments.StorageError) as error:
        reader.result(pending)
    assert str(error.value) == segments.storage_refused(410)
    assert "result storage refused part of the result (HTTP 410)" in str(error.value)

    missing = f"http://localhost:{closed_port}/spooling/x?X-Amz-Signature=secret"
    (pending,) = reader.submit({"encoding": "json+zstd", "segments": [spooled(missing)]}, len)
    with pytest.raises(segments.StorageError) as error:
        reader.result(pending)
    assert str(error.value) == segments.storage_unreachable(missing)
    assert f"result storage at http://localhost:{closed_port} " in str(error.value)
    assert "secret" not in str(error.value)
    reader.close()
