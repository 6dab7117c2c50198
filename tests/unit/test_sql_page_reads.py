"""How the kernel reads direct-protocol pages (`query.fetch_page`, `query.read_body`):
each body in one call, never through ``requests``' 10 KB pieces, whether it comes chunked
(the gateway relays Trino's pages so, cut anywhere, even inside a character), with a
length, or gzip-compressed (Trino itself, straight); an empty answer asked for again; a
body cut short fails as a connection error, in the client's words."""

from __future__ import annotations

import gzip
import json
from http.server import BaseHTTPRequestHandler

import pytest
import requests
import trino

from datahub.extensions.query import run_query
from datahub.testing import serving

COLUMNS = [{"name": "n", "type": "bigint"}, {"name": "s", "type": "varchar"}]
#: Two- to four-byte characters, so that cuts every few bytes split some.
TEXT = "ünï ✓ 𝄞 ß"


def rows(start: int, count: int) -> list[list]:
    return [[i, f"{TEXT} {i}"] for i in range(start, start + count)]


class _Trino(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: Follow-up requests per query, in order.
    asked: dict[str, int] = {}

    def _page(self, query: str, token: int, **extra) -> bytes:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        page = {"id": query, "infoUri": f"{base}/ui/{query}", "stats": {"state": "RUNNING"}}
        if token < 3:
            page["nextUri"] = f"{base}/v1/statement/executing/{query}/x/{token + 1}"
        page.update(extra)
        return json.dumps(page, ensure_ascii=False).encode()

    def do_POST(self):  # noqa: N802 - http.server's name
        sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self._send(self._page(sql.lower(), 0))

    def do_GET(self):  # noqa: N802
        parts = self.path.split("/")
        query, token = parts[-3], int(parts[-1])
        _Trino.asked[query] = _Trino.asked.get(query, 0) + 1
        if query == "empty" and _Trino.asked[query] == 1:
            return self._send(b"")
        if token == 1:  # chunked, cut every 7 bytes
            body = self._page(query, 1, columns=COLUMNS, data=rows(0, 3000))
            if query == "broken":
                return self._send(body[: len(body) // 2], length=len(body), close=True)
            return self._send_chunked([body[i : i + 7] for i in range(0, len(body), 7)])
        if token == 2:  # compressed, with a length
            body = self._page(query, 2, data=rows(3000, 2000))
            return self._send(gzip.compress(body), headers={"Content-Encoding": "gzip"})
        body = self._page(query, 3, data=rows(5000, 1))
        self._send(body, headers={"X-Trino-Set-Session": "foo=bar"})

    def _send(self, body, *, length=None, close=False, headers=None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length or len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if close:
            self.close_connection = True

    def _send_chunked(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with serving(_Trino) as port:
        yield port


@pytest.fixture
def conn(server):
    return trino.dbapi.connect(host="127.0.0.1", port=server, user="u", http_scheme="http")


@pytest.fixture
def pieces(monkeypatch):
    """The URLs whose bodies were read through ``requests``' pieces (``iter_content``)."""
    read = []
    iter_content = requests.models.Response.iter_content

    def recorded(self, *args, **kwargs):
        read.append(self.url)
        return iter_content(self, *args, **kwargs)

    monkeypatch.setattr(requests.models.Response, "iter_content", recorded)
    return read


def test_pages_chunked_cut_inside_characters_or_compressed_are_read_whole(conn, pieces):
    result = run_query(conn, "Q1", spooling=False)
    assert result.frame["n"].tolist() == list(range(5001))
    assert result.frame["s"].tolist() == [f"{TEXT} {i}" for i in range(5001)]
    # Read in one call each: only the submit's answer and the page that changes the
    # session (the client's own processing reads those) went through the pieces.
    assert [url.rsplit("/", 1)[-1] for url in pieces] == ["statement", "3"]
    assert conn._client_session.properties == {"foo": "bar"}


def test_an_empty_answer_is_asked_for_again(conn):
    assert len(run_query(conn, "EMPTY", spooling=False).frame) == 5001
    assert _Trino.asked["empty"] == 4  # the first page twice


def test_a_body_cut_short_is_a_connection_error_in_the_clients_words(conn):
    with pytest.raises(trino.exceptions.TrinoConnectionError, match="failed to fetch"):
        run_query(conn, "BROKEN", spooling=False)
