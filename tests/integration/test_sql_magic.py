"""The %%sql magic in a real IPython shell, through the test stack's gateway as alice
(with a hub token of hers), to the real Trino."""

import _thread
import datetime as dt
import threading
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

from datahub.extensions.sql import PLOTLY_MIMETYPE, SqlError


@pytest.fixture(scope="module")
def ip(stack, users):
    shell = start_ipython()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    shell.run_line_magic("config", f"SqlMagic.gateway_url = {stack.settings['gateway_url']!r}")
    shell.run_line_magic("config", f"SqlMagic.token = {users.token('alice')!r}")
    shell.run_line_magic("config", "SqlMagic.user = 'alice'")
    return shell


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


def test_every_type_gets_its_dtype_and_nulls(ip):
    result, out = run(
        ip,
        """%%sql --chart none
SELECT CAST(NULL AS bigint) AS n_big, 42 AS i, TINYINT '1' AS ti, SMALLINT '2' AS si,
  REAL '1.5' AS r, nan() AS d_nan, CAST(NULL AS double) AS d_null,
  DECIMAL '12345678901234567890.123456789' AS dec, CAST(NULL AS decimal(10,2)) AS dec_null,
  'x' AS s, CAST(NULL AS varchar) AS s_null, true AS b, CAST(NULL AS boolean) AS b_null,
  DATE '2020-02-03' AS d, TIMESTAMP '2020-01-01 00:00:00.123' AS ts,
  TIMESTAMP '2020-01-01 00:00:00 UTC' AS tstz, CAST(NULL AS timestamp(3)) AS ts_null,
  TIME '01:02:03' AS t, JSON '{"a":1}' AS j, UUID '12151fd2-7586-11e9-8f9e-2a86e4085a59' AS u,
  X'0102' AS bin, ARRAY[1,2] AS arr, MAP(ARRAY['a'], ARRAY[1]) AS m,
  CAST(ROW(1,'x') AS ROW(a int, b varchar)) AS rw, CAST(NULL AS array(integer)) AS arr_null
""",
    )
    assert result.error_in_exec is None, out.stdout
    row = result.result.iloc[0]
    dtypes = {k: str(v) for k, v in result.result.dtypes.items()}
    assert dtypes["n_big"] == "Int64" and row["n_big"] is pd.NA
    assert dtypes["i"] == "Int32" and dtypes["ti"] == "Int8" and dtypes["si"] == "Int16"
    assert dtypes["r"] == "float32" and np.isnan(row["d_nan"]) and np.isnan(row["d_null"])
    assert row["dec"] == Decimal("12345678901234567890.123456789") and row["dec_null"] is None
    assert dtypes["s"] == "string" and row["s"] == "x" and row["s_null"] is pd.NA
    assert dtypes["b"] == "boolean" and row["b"] and row["b_null"] is pd.NA
    assert dtypes["d"] == "datetime64[s]" and row["d"] == pd.Timestamp("2020-02-03")
    assert dtypes["ts"] == "datetime64[us]" and row["ts_null"] is pd.NaT
    assert row["ts"] == pd.Timestamp("2020-01-01 00:00:00.123")
    assert dtypes["tstz"] == "datetime64[us, UTC]"
    assert row["tstz"] == pd.Timestamp("2020-01-01", tz="UTC")
    assert row["t"] == dt.time(1, 2, 3)
    assert row["j"] == '{"a":1}' and row["u"] == "12151fd2-7586-11e9-8f9e-2a86e4085a59"
    assert row["bin"] == b"\x01\x02"
    assert row["arr"] == [1, 2] and row["m"] == {"a": 1} and row["rw"] == {"a": 1, "b": "x"}
    assert row["arr_null"] is None
    assert not [o for o in out.outputs if PLOTLY_MIMETYPE in o.data]


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
    assert out.stdout.strip() == "Query cancelled"
    info = trino_query_info(err.query_id)
    assert info["state"] == "FAILED"
    assert info["errorCode"]["name"] == "USER_CANCELED"
