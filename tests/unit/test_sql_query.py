"""The page loop of datahub.extensions.query against a scripted Trino-protocol server:
paging, session headers, errors and cancellation at each stage, deterministically.

The real-server behaviour (Trino's USER_CANCELED, types, the gateway) is covered by
tests/integration/test_sql_*.py; this pins down the loop itself."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
import trino

from datahub.extensions import query, trino_compat
from datahub.extensions.query import QueryCancelled, cluster_from_uri, run_query
from datahub.results import ResultBuilder
from datahub.testing import serving

COLUMNS = [{"name": "n", "type": "bigint"}, {"name": "s", "type": "varchar"}]


#: The client has taken the slow query's first pages of rows (it asks for the third).
SLOW_ROWS_TAKEN = threading.Event()
#: The slow submit is in the server's hands, and the interrupt has been delivered.
SUBMIT_HELD = threading.Event()
INTERRUPTED = threading.Event()


class _Trino(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    deleted: list[str] = []
    submitted: list[dict] = []

    def _page(self, query: str, token: int, **extra) -> dict:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        page = {
            "id": query,
            "infoUri": f"{base}/ui/{query}",
            "stats": {"state": "RUNNING", "processedRows": token},
        }
        if extra.pop("last", False):
            page["stats"]["state"] = "FINISHED"
        else:
            page["nextUri"] = f"{base}/v1/dh/adhoc/sig/v1/statement/executing/{query}/x/{token + 1}"
        page.update(extra)
        return page

    def do_POST(self):  # noqa: N802 - http.server's name
        sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Trino.submitted.append({"sql": sql, "headers": dict(self.headers)})
        if sql == "FAIL":
            error = {
                "message": "line 1:1: mismatched input 'FAIL'",
                "errorName": "SYNTAX_ERROR",
                "errorType": "USER_ERROR",
                "errorCode": 1,
                "errorLocation": {"lineNumber": 1, "columnNumber": 1},
            }
            return self._send(self._page("qfail", 0, last=True, error=error))
        if sql == "SLOW SUBMIT":
            SUBMIT_HELD.set()
            INTERRUPTED.wait(30)  # answer only once the client was interrupted meanwhile
        return self._send(self._page(sql.replace(" ", "_").lower(), 0))

    def do_GET(self):  # noqa: N802
        parts = self.path.split("/")
        query, token = parts[-3], int(parts[-1])
        if query in ("slow", "slow_submit"):
            if token >= 3:
                SLOW_ROWS_TAKEN.set()
            time.sleep(0.05)
            return self._send(self._page(query, token, columns=COLUMNS, data=[[token, "x"]]))
        if query == "select_big":  # a page large enough to be split, its data first
            rows = [[i, f'"data":[{i}],\\'] for i in range(5000)]
            pages = {1: {"data": rows, "columns": COLUMNS}, 2: {"data": [[5000, None]]}}
            return self._send(self._page(query, token, last=token == 2, **pages[token]))
        pages = {
            1: {"columns": COLUMNS, "data": [[1, "a"], [2, None]]},
            2: {"data": [[3, "c"]]},
            3: {"last": True},
        }
        headers = {"X-Trino-Set-Session": "foo=bar"} if token == 3 else {}
        return self._send(self._page(query, token, **pages[token]), headers)

    def do_DELETE(self):  # noqa: N802
        _Trino.deleted.append(self.path.split("/")[-3])
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, page: dict, headers: dict | None = None) -> None:
        data = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with serving(_Trino) as port:
        yield port


@pytest.fixture
def conn(server):
    return trino.dbapi.connect(host="127.0.0.1", port=server, user="u", http_scheme="http")


def test_pages_become_one_typed_frame_and_stats_are_reported(conn):
    seen = []
    result = run_query(conn, "SELECT pages", stats_callback=seen.append)
    assert result.frame["n"].tolist() == [1, 2, 3]
    assert str(result.frame["n"].dtype) == "Int64" and result.frame["s"].isna().tolist()[1]
    assert result.query_id == "select_pages" and result.cluster == "adhoc"
    assert result.stats["state"] == "FINISHED"
    assert seen[-1]["fetchedRows"] == 3 and seen[-1]["cluster"] == "adhoc"
    assert seen[-1]["queryId"] == "select_pages"


def test_session_changes_carry_over_to_the_connection(conn):
    run_query(conn, "SET pages")
    assert conn._client_session.properties == {"foo": "bar"}


def test_routing_headers_go_on_the_submit(conn):
    run_query(conn, "SELECT headers", http_headers={"X-DataHub-Routing-Group": "etl"})
    assert _Trino.submitted[-1]["headers"]["X-DataHub-Routing-Group"] == "etl"


def test_errors_raise_the_clients_query_error_with_its_location(conn):
    with pytest.raises(trino.exceptions.TrinoUserError) as err:
        run_query(conn, "FAIL")
    assert err.value.error_name == "SYNTAX_ERROR" and err.value.error_location == (1, 1)
    assert err.value.query_id == "qfail"


def _interrupt_when(event: threading.Event) -> None:
    """Interrupt the main thread (as Ctrl+C or a kernel interrupt does) once *event* is set
    (at the latest after 60 s, so a test never hangs), whatever the machine's speed."""
    event.clear()
    INTERRUPTED.clear()

    def interrupt() -> None:
        event.wait(60)
        # A real SIGINT to the main thread, as a terminal's Ctrl+C or the kernel's
        # interrupt sends: it also breaks a blocking socket read.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        INTERRUPTED.set()

    threading.Thread(target=interrupt, daemon=True).start()


def test_interrupt_while_rows_stream_cancels_the_query(conn):
    _interrupt_when(SLOW_ROWS_TAKEN)
    with pytest.raises(QueryCancelled) as cancelled:
        run_query(conn, "SLOW")
    assert cancelled.value.query_id == "slow"
    assert cancelled.value.rows_fetched > 0
    assert "slow" in _Trino.deleted


def test_interrupt_while_the_statement_is_submitted_cancels_it_once_it_exists(conn):
    _interrupt_when(SUBMIT_HELD)
    with pytest.raises(QueryCancelled) as cancelled:
        run_query(conn, "SLOW SUBMIT")
    assert cancelled.value.rows_fetched == 0
    # The submit was still in flight when the interrupt came; the query it created was
    # cancelled as soon as its id was known.
    assert "slow_submit" in _Trino.deleted


def test_an_interrupt_while_the_page_thread_starts_cancels_the_query(conn, monkeypatch):
    # Ctrl+C may land while the caller still waits in Thread.start, the page thread having
    # sent the statement already: the query is cancelled all the same (it once escaped
    # run_query as a bare KeyboardInterrupt, leaving the query running).
    start = query._PageStream.start

    def interrupted(stream) -> None:
        start(stream)
        assert SUBMIT_HELD.wait(30)
        INTERRUPTED.set()
        raise KeyboardInterrupt

    monkeypatch.setattr(query._PageStream, "start", interrupted)
    SUBMIT_HELD.clear()
    INTERRUPTED.clear()
    _Trino.deleted.clear()
    with pytest.raises(QueryCancelled) as cancelled:
        run_query(conn, "SLOW SUBMIT")
    assert cancelled.value.rows_fetched == 0
    assert "slow_submit" in _Trino.deleted


def test_cluster_is_read_from_the_gateways_uris():
    assert cluster_from_uri("http://gw/v1/dh/etl-2/AbC_d/v1/statement/executing/q/x/1") == "etl-2"
    assert cluster_from_uri("https://trino:8443/v1/statement/executing/q/x/1") is None
    assert cluster_from_uri(None) is None


def test_spooled_protocol_pages_are_decoded_by_the_client(conn):
    rows = [[1, "a"], [2, None]]
    data = {
        "encoding": "json",
        "segments": [
            {
                "type": "inline",
                "data": base64.b64encode(json.dumps(rows).encode()).decode(),
                "metadata": {"rowOffset": 0, "rowsCount": 2, "segmentSize": 20},
            }
        ],
    }
    assert trino_compat.spooled_rows(trino_compat.new_request(conn), data) == rows


def test_a_large_direct_page_is_converted_on_a_segment_thread(conn, monkeypatch):
    threads = []
    convert = ResultBuilder.convert

    def recorded(self, rows):
        threads.append(threading.current_thread().name)
        return convert(self, rows)

    monkeypatch.setattr(ResultBuilder, "convert", recorded)
    result = run_query(conn, "SELECT big", spooling=False)
    assert result.frame["n"].tolist() == list(range(5001))
    assert result.frame["s"][7] == '"data":[7],\\' and result.frame["s"].isna().sum() == 1
    assert str(result.frame["n"].dtype) == "Int64" and str(result.frame["s"].dtype) == "string"
    assert threads and all(name.startswith("datahub-sql-segments") for name in threads)
