"""The %%sql magic in a real IPython shell, through the test stack's gateway as alice
(with a hub token of hers), to the real Trino: options, defaults, errors, cancel, progress."""

import _thread
import threading

import pandas as pd
import pytest
import requests
from IPython.utils.capture import capture_output

import datahub.extensions.sql as sql_magic
from datahub.extensions.progress import Progress
from datahub.extensions.sql import PLOTLY_MIMETYPE, SqlError, SqlMagic
from datahub.stack import demo


def run(ip, cell):
    """Run a cell; return (result, captured output)."""
    with capture_output() as captured:
        result = ip.run_cell(cell)
    return result, captured


def test_current_user_is_the_value(ip):
    result, _ = run(ip, "%sql SELECT current_user AS who")
    assert result.error_in_exec is None
    df = result.result
    assert isinstance(df, pd.DataFrame)
    assert df["who"].tolist() == ["alice"]


def test_aggregation_gives_the_dataframe_table_and_a_plotly_chart(ip):
    result, out = run(
        ip,
        "%%sql\nSELECT returnflag, sum(quantity) AS qty\n"
        "FROM tpch.tiny.lineitem GROUP BY 1 ORDER BY 1",
    )
    df = result.result
    assert df["returnflag"].tolist() == ["A", "N", "R"]
    assert df["qty"].tolist() == [380456.0, 774222.0, 381449.0]
    assert ip.user_ns["_"] is df
    charts = [o.data for o in out.outputs if PLOTLY_MIMETYPE in o.data]
    assert len(charts) == 1
    fig = charts[0][PLOTLY_MIMETYPE]
    assert fig["data"][0]["type"] == "bar" and fig["data"][0]["x"] == ["A", "N", "R"]
    # The value is shown as the compact table with count, time and query id.
    bundle = ip.display_formatter.format(df)[0]
    assert "3 rows" in bundle["text/html"] and "query " in bundle["text/html"]


def test_syntax_error_shows_a_caret_and_no_traceback(ip):
    result, out = run(ip, "%%sql\nSELECT *\nFORM tpch.tiny.nation")
    assert isinstance(result.error_in_exec, SqlError)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Syntax error at line 2, column 1: mismatched input 'FORM'")
    assert lines[1:] == ["    FORM tpch.tiny.nation", "    ^"]
    assert "Traceback" not in out.stdout + out.stderr


def test_dash_o_stores_the_dataframe(ip):
    result, _ = run(ip, "%%sql -o nations --no-display\nSELECT * FROM tpch.tiny.nation")
    assert result.result is None
    assert len(ip.user_ns["nations"]) == 25


def test_limit_is_applied_by_trino(ip, trino_query_info):
    result, out = run(ip, "%sql --limit 7 SELECT * FROM tpch.tiny.lineitem")
    df = result.result
    assert len(df) == 7
    # The statement Trino ran is the wrapped one, so the limit was not a client-side cut.
    query_id = ip.display_formatter.format(df)[0]["text/plain"].rsplit("query ", 1)[1]
    info = trino_query_info(query_id.strip())
    assert info["session"]["user"] == "alice"
    assert info["query"].rstrip().endswith("LIMIT 7")


def test_chart_none_draws_no_chart(ip):
    _, out = run(
        ip, "%%sql --chart none\nSELECT returnflag, count(*) FROM tpch.tiny.lineitem GROUP BY 1"
    )
    assert not [o for o in out.outputs if PLOTLY_MIMETYPE in o.data]


def test_explicit_chart_options(ip):
    _, out = run(
        ip,
        "%%sql --chart line --x orderdate --y totalprice\n"
        "SELECT orderdate, totalprice FROM tpch.tiny.orders",
    )
    (fig,) = [o.data[PLOTLY_MIMETYPE] for o in out.outputs if PLOTLY_MIMETYPE in o.data]
    assert fig["data"][0]["mode"] == "lines"
    assert "downsampled" in fig["layout"]["title"]["text"]


def test_interrupt_cancels_the_query_on_trino(ip, trino_query_info):
    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    try:
        result, out = run(ip, "%%sql\nSELECT count(*) FROM tpch.sf1000.lineitem")
    finally:
        timer.cancel()
    err = result.error_in_exec
    assert isinstance(err, SqlError) and err.query_id
    assert err.rows_fetched == 0  # still aggregating: no row had arrived
    assert out.stdout.strip() == "Query cancelled"
    assert "Traceback" not in out.stdout + out.stderr
    info = trino_query_info(err.query_id)
    assert info["state"] == "FAILED"
    assert info["errorCode"]["name"] == "USER_CANCELED"


class _InterruptOnceRowsArrive(Progress):
    """Progress that interrupts the kernel shortly after the first rows arrived."""

    timer: threading.Timer | None = None

    def __call__(self, stats):
        super().__call__(stats)
        if stats.get("fetchedRows") and _InterruptOnceRowsArrive.timer is None:
            _InterruptOnceRowsArrive.timer = threading.Timer(0.3, _thread.interrupt_main)
            _InterruptOnceRowsArrive.timer.start()


def test_interrupt_while_rows_are_fetched_cancels_the_query_on_trino(
    ip, trino_query_info, monkeypatch
):
    monkeypatch.setattr(sql_magic, "Progress", _InterruptOnceRowsArrive)
    try:
        # Six million rows: still streaming long after the interrupt.
        result, out = run(ip, "%%sql\nSELECT * FROM tpch.sf1.lineitem")
    finally:
        if _InterruptOnceRowsArrive.timer is not None:
            _InterruptOnceRowsArrive.timer.cancel()
    err = result.error_in_exec
    assert isinstance(err, SqlError) and err.query_id
    assert 0 < err.rows_fetched < 6_001_215
    assert out.stdout.strip() == "Query cancelled"
    assert "Traceback" not in out.stdout + out.stderr
    info = trino_query_info(err.query_id)
    assert info["state"] == "FAILED"
    assert info["errorCode"]["name"] == "USER_CANCELED"


def test_line_form_returns_a_dataframe_without_a_chart(ip):
    result, out = run(ip, "df = %sql SELECT name FROM tpch.tiny.region ORDER BY 1")
    assert result.error_in_exec is None
    assert isinstance(ip.user_ns["df"], pd.DataFrame)
    assert ip.user_ns["df"]["name"].tolist()[:2] == ["AFRICA", "AMERICA"]
    assert not [o for o in out.outputs if PLOTLY_MIMETYPE in o.data]


def test_summary_line_names_rows_cluster_and_query_id(ip):
    result, out = run(ip, "%sql SELECT * FROM tpch.tiny.nation")
    summary = out.stderr.strip().splitlines()[-1]
    assert summary.startswith("✔ 25 rows · ")
    assert " · cluster trino · query " in summary
    query_id = summary.rsplit("query ", 1)[1]
    footer = ip.display_formatter.format(result.result)[0]["text/plain"].splitlines()[-1]
    assert footer.startswith("showing 10 of 25 rows") and footer.endswith(f"query {query_id}")


def test_catalog_and_schema_options_and_their_configured_defaults(ip):
    result, _ = run(ip, "%sql --catalog tpch --schema tiny SELECT count(*) AS n FROM nation")
    assert result.result["n"].tolist() == [25]
    ip.run_line_magic("config", "SqlMagic.catalog = 'tpch'")
    ip.run_line_magic("config", "SqlMagic.schema = 'tiny'")
    try:
        result, _ = run(ip, "%sql SELECT count(*) AS n FROM region")
        assert result.result["n"].tolist() == [5]
        # The option wins over the default.
        result, _ = run(ip, "%sql --schema sf1 SELECT count(*) AS n FROM nation")
        assert result.result["n"].tolist() == [25]
    finally:
        ip.run_line_magic("config", "SqlMagic.catalog = None")
        ip.run_line_magic("config", "SqlMagic.schema = None")


def test_display_rows_is_configurable(ip):
    ip.run_line_magic("config", "SqlMagic.display_rows = 3")
    try:
        result, _ = run(ip, "%sql SELECT * FROM tpch.tiny.nation")
    finally:
        ip.run_line_magic("config", "SqlMagic.display_rows = 10")
    text = ip.display_formatter.format(result.result)[0]["text/plain"]
    assert "showing 3 of 25 rows" in text
    assert len(result.result) == 25


def test_chart_point_budget_is_configurable(ip):
    ip.run_line_magic("config", "SqlMagic.chart_point_budget = 300")
    try:
        _, out = run(ip, "%%sql\nSELECT orderdate, totalprice FROM tpch.tiny.orders")
    finally:
        ip.run_line_magic("config", "SqlMagic.chart_point_budget = 10000")
    (fig,) = [o.data[PLOTLY_MIMETYPE] for o in out.outputs if PLOTLY_MIMETYPE in o.data]
    assert sum(len(t["y"]) for t in fig["data"]) <= 300
    assert "of 15,000 points" in fig["layout"]["title"]["text"]


def test_explain_shows_the_plan_instead_of_running(ip, trino_query_info):
    result, out = run(ip, "%%sql --explain -o plan\nSELECT count(*) FROM tpch.tiny.lineitem")
    assert result.result is None
    (shown,) = [o.data for o in out.outputs if "text/plain" in o.data]
    assert "Fragment" in shown["text/plain"] and "<pre" in shown["text/html"]
    assert ip.user_ns["plan"] == shown["text/plain"]
    query_id = out.stderr.strip().rsplit("query ", 1)[1]
    info = trino_query_info(query_id)
    assert info["query"].startswith("EXPLAIN SELECT count(*)")
    # EXPLAIN only plans: Trino read no data.
    assert info["queryStats"]["processedInputPositions"] == 0


def test_routing_group_option_is_accepted_and_the_cluster_shown(ip):
    result, out = run(ip, "%sql --routing-group default SELECT 1 AS one")
    assert result.result["one"].tolist() == [1]
    assert "cluster trino" in out.stderr


def test_session_statements_carry_over_to_the_next_cell(ip):
    run(ip, "%sql USE tpch.tiny")
    result, _ = run(ip, "%sql SELECT count(*) AS n FROM region")
    assert result.result["n"].tolist() == [5]


def test_update_statements_report_their_kind(ip):
    table = "memory.default.sql_magic_update"
    run(ip, f"%sql DROP TABLE IF EXISTS {table}")
    result, out = run(ip, f"%sql CREATE TABLE {table} AS SELECT * FROM tpch.tiny.region")
    assert "CREATE TABLE" in out.stderr
    assert result.result["rows"].tolist() == [5]
    result, out = run(ip, f"%sql DROP TABLE {table}")
    assert result.result is None and "✔ DROP TABLE" in out.stderr


@pytest.fixture(scope="module")
def bob(stack, users):
    """bob's magic (not registered, so %config in other tests leaves it alone)."""
    magic = SqlMagic(shell=None)
    magic.gateway_url = stack.settings["gateway_url"]
    magic.token = users.token("bob")
    magic.user = "bob"
    magic.show_progress = False
    return magic


def test_permission_error_is_one_sentence(bob):
    with pytest.raises(SqlError) as err:
        bob.sql("SELECT count(*) FROM tpch.sf1.customer")
    message = err.value.message
    assert message.startswith("Access Denied: Cannot select from ")
    assert "tpch.sf1.customer" in message and "\n" not in message
    assert err.value._render_traceback_() == [message]


def test_syntax_error_inside_the_limit_wrapper_points_at_the_users_line(ip):
    result, out = run(ip, "%%sql --limit 5\nSELECT nope\nFROM tpch.tiny.nation")
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Column not found at line 1, column 8:")
    assert lines[1:] == ["    SELECT nope", "           ^"]


@pytest.fixture
def dave(stack, hub, sign_in):
    """dave's magic, and his daily query quota set by carol (an admin) through the quota
    API; the policy is removed afterwards."""
    tokens = {}
    for name in ("carol", "dave"):
        _, response = sign_in(name, demo.demo_password(name))
        assert response.status_code == 302
        tokens[name] = hub.token_for(name)
    api = requests.Session()
    api.headers["Authorization"] = f"token {tokens['carol']}"
    base = f"{stack.hub_url}/services/datahub/api/quota/"
    magic = SqlMagic(shell=None)
    magic.gateway_url = stack.settings["gateway_url"]
    magic.token = tokens["dave"]
    magic.show_progress = False

    def allow_no_more_queries() -> None:
        used = api.get(base + "users/dave", timeout=60).json()["usage"]["queries"]
        r = api.put(
            base + "policies/user/dave", json={"limits": {"queries_per_day": used}}, timeout=60
        )
        assert r.status_code == 200, r.text

    yield magic, allow_no_more_queries
    api.delete(base + "policies/user/dave", timeout=60)


def test_quota_refusal_is_the_gateways_sentence(dave):
    magic, allow_no_more_queries = dave
    allow_no_more_queries()
    with pytest.raises(SqlError) as err:
        magic.sql("SELECT 1")
    message = err.value.message
    assert message.startswith("QuotaExceeded: ") and "queries used today" in message
    assert err.value._render_traceback_() == [message]
