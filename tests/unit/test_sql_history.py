"""``%sql history`` and ``%sql clusters`` (datahub.extensions.history) against canned JSON
in the gateway API's contract, served by a small local HTTP server."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from IPython.testing import globalipapp

from datahub.extensions import history
from datahub.extensions.sql import SqlError, SqlMagic, result_mimebundle
from datahub.testing import serving

QUERIES = {
    "queries": [
        {
            "query_id": "20240601_120002_00002_abcde",
            "user": "alice",
            "cluster": "adhoc",
            "state": "FAILED",
            "sql": "SELECT *\nFROM tpch.sf1.customer <script>alert(1)</script>",
            "submitted": "2024-06-01T12:00:02Z",
            "finished": "2024-06-01T12:00:03.500Z",
            "elapsed_ms": 1500,
            "rows": None,
            "error": "Access Denied: Cannot select from table tpch.sf1.customer",
            "source": "datahub-sql",
        },
        {
            "query_id": "20240601_120000_00001_abcde",
            "user": "alice",
            "cluster": "etl",
            "state": "RUNNING",
            "sql": "SELECT count(*) FROM tpch.sf1.lineitem " + "x" * 200,
            "submitted": "2024-06-01T12:00:00+00:00",
            "finished": None,
            "elapsed_ms": 65000,
            "rows": 1234567,
            "error": None,
            "source": "trino-cli",
            "acting_admin": "carol",
        },
    ]
}
CLUSTERS = {
    "clusters": [
        {
            "name": "adhoc",
            "engine": "trino",
            "routing_group": "default",
            "healthy": True,
            "draining": False,
            "running": 3,
            "queued": 0,
        },
        {
            "name": "etl",
            "engine": "presto",
            "routing_group": "batch",
            "healthy": False,
            "draining": True,
            "running": 0,
            "queued": 12,
        },
    ]
}
TOKEN = "canned-token"


class _Api(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict, str | None]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        _Api.requests.append((url.path, parse_qs(url.query), self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"token {TOKEN}":
            return self._send(401, {"error": "no"})
        routes = {
            "/services/datahub/api/queries": QUERIES,
            "/services/datahub/api/clusters": CLUSTERS,
            "/services/datahub/api/quota/me": {"user": "alice", "resets": "00:00 UTC", "lines": []},
            "/broken/queries": "not json",
            "/fails/queries": None,
        }
        if url.path not in routes:
            return self._send(404, {"error": "not found"})
        if routes[url.path] is None:
            return self._send(500, {"error": "database is locked"})
        return self._send(200, routes[url.path])

    def _send(self, status, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api():
    with serving(_Api) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def magic(api):
    """A magic of its own on the test shell (the shared one stays as the other tests set it)."""
    globalipapp.start_ipython()  # once per process; later calls return None
    m = SqlMagic(shell=globalipapp.get_ipython())
    m.gateway_url = api
    m.token = TOKEN
    return m


def test_history_frame_is_typed_and_keeps_the_apis_order():
    df = history.history_frame(QUERIES["queries"])
    assert list(df.columns) == history.HISTORY_COLUMNS
    assert df["query_id"].tolist() == [q["query_id"] for q in QUERIES["queries"]]
    assert str(df["submitted"].dtype) == "datetime64[us, UTC]"
    assert df["submitted"][0] == pd.Timestamp("2024-06-01 12:00:02", tz="UTC")
    assert df["finished"][1] is pd.NaT
    assert df["elapsed"][1] == pd.Timedelta(seconds=65)
    assert str(df["rows"].dtype) == "Int64" and df["rows"][0] is pd.NA
    assert df["error"][1] is pd.NA
    assert df["acting_admin"].tolist() == [pd.NA, "carol"]


def test_history_marks_queries_an_admin_ran_on_the_users_behalf():
    page = history.render_history(history.history_frame(QUERIES["queries"]))["text/plain"]
    lines = page.splitlines()
    marked = [line for line in lines if "[run by carol (admin)]" in line]
    assert len(marked) == 1 and "SELECT count(*) FROM tpch.sf1.lineitem" in marked[0]


def test_history_renders_a_compact_escaped_table_and_text():
    bundle = history.render_history(history.history_frame(QUERIES["queries"]))
    page = bundle["text/html"]
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "2024-06-01 12:00:02" in page and "1 min 5 s" in page and "1,234,567" in page
    # Long SQL is cut in the cell, whole in the tooltip; newlines are folded.
    assert "SELECT * FROM tpch.sf1.customer" in page
    assert "x" * 200 in page and "x" * 200 not in page.split("title=")[0]
    text = bundle["text/plain"].splitlines()
    assert text[0] == "Your last 2 queries"
    assert text[1].split()[:3] == ["submitted", "(UTC)", "state"]
    assert "FAILED" in text[2] and "adhoc" in text[2]
    assert "RUNNING" in text[3] and "etl" in text[3]


def test_empty_history_says_so():
    assert history.render_history(history.history_frame([]))["text/plain"] == "No queries yet."


def test_clusters_render_health_and_load():
    df = history.clusters_frame(CLUSTERS["clusters"])
    assert df["healthy"].tolist() == [True, False] and str(df["queued"].dtype) == "Int64"
    bundle = history.render_clusters(df)
    lines = bundle["text/plain"].splitlines()
    assert lines[0].split() == [
        "cluster",
        "engine",
        "routing",
        "group",
        "health",
        "running",
        "queued",
    ]
    assert "✔ healthy" in lines[1] and "3" in lines[1] and "trino" in lines[1]
    assert "✖ unhealthy · draining" in lines[2] and "12" in lines[2] and "presto" in lines[2]
    assert "<table" in bundle["text/html"]


def test_history_magic_asks_for_my_queries_with_the_hub_token(magic):
    _Api.requests.clear()
    df = magic.sql("history 2")
    path, query, auth = _Api.requests[-1]
    assert path == "/services/datahub/api/queries"
    assert query == {"user": ["me"], "limit": ["2"]}
    assert auth == f"token {TOKEN}"
    assert df["state"].tolist() == ["FAILED", "RUNNING"]
    assert result_mimebundle(df)["text/plain"].startswith("Your last 2 queries")


def test_history_without_a_number_uses_the_configured_default(magic):
    magic.history_rows = 7
    magic.sql("history")
    assert _Api.requests[-1][1]["limit"] == ["7"]


def test_clusters_magic_lists_the_clusters(magic):
    df = magic.sql("clusters")
    assert df["name"].tolist() == ["adhoc", "etl"]
    assert "routing group" in result_mimebundle(df)["text/plain"]


def test_quota_magic_asks_the_same_api_with_the_hub_token(magic, capsys):
    _Api.requests.clear()
    assert magic.sql("quota") is None
    assert _Api.requests[-1][0] == "/services/datahub/api/quota/me"
    assert _Api.requests[-1][2] == f"token {TOKEN}"
    assert "Quota of alice" in capsys.readouterr().out


def test_dash_o_stores_the_history(magic):
    assert magic.sql("-o recent --no-display history 1") is None
    assert magic.shell.user_ns["recent"]["cluster"].tolist() == ["adhoc", "etl"]


@pytest.mark.parametrize(
    ("api_path", "token", "message"),
    [
        ("/services/datahub/api", "wrong", "DataHub refused your token; restart your server"),
        ("/nowhere", TOKEN, "has no API to show your query history (HTTP 404 for queries)"),
        (
            "/fails",
            TOKEN,
            "answered HTTP 500 when asked to show your query history: "
            '{"error": "database is locked"}',
        ),
        ("/broken", TOKEN, "answered something not JSON when asked to show your query history"),
    ],
)
def test_api_failures_are_one_sentence(magic, api, api_path, token, message):
    magic.api_url = api + api_path
    magic.token = token
    with pytest.raises(SqlError) as err:
        magic.sql("history")
    assert message in err.value.message
    assert err.value._render_traceback_() == [err.value.message]


def test_unreachable_gateway_is_one_sentence(magic):
    magic.api_url = "http://127.0.0.1:9/services/datahub/api"
    reach = "Cannot reach the DataHub service at http://127.0.0.1:9 to list the clusters"
    with pytest.raises(SqlError, match=reach):
        magic.sql("clusters")


def test_api_url_follows_the_gateway_url():
    m = SqlMagic(shell=None)
    m.gateway_url = "http://gw:8765/"
    assert m.api_url == "http://gw:8765/services/datahub/api"
