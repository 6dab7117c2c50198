"""A million-row result through the real gateway is charted with a bounded payload."""

import json

from IPython.utils.capture import capture_output

from datahub.extensions.sql import PLOTLY_MIMETYPE


def test_a_million_rows_chart_with_a_bounded_payload_and_says_so(ip):
    with capture_output() as out:
        result = ip.run_cell(
            "%%sql\nSELECT shipdate, extendedprice FROM tpch.sf1.lineitem LIMIT 1000000"
        )
    assert result.error_in_exec is None, out.stdout
    df = result.result
    assert len(df) == 1_000_000
    assert [str(t) for t in df.dtypes] == ["datetime64[s]", "float64"]
    (fig,) = [o.data[PLOTLY_MIMETYPE] for o in out.outputs if PLOTLY_MIMETYPE in o.data]
    # Time and a number: a line, drawn with WebGL, from a bounded sample of the rows.
    (trace,) = fig["data"]
    assert trace["type"] == "scattergl" and trace["mode"] == "lines"
    assert len(trace["x"]) <= 10_000
    assert "downsampled to" in fig["layout"]["title"]["text"]
    assert "of 1,000,000 points" in fig["layout"]["title"]["text"]
    assert len(json.dumps(fig)) < 2_000_000
    # The whole notebook output (table, chart, summary) stays small too.
    table = ip.display_formatter.format(df)[0]
    assert len(json.dumps(table)) < 50_000
