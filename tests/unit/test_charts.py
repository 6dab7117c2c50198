"""Chart inference and bounded Plotly figure specs (datahub.charts)."""

import json
from decimal import Decimal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from datahub.charts import ChartSpec, build_figure, complete_spec, infer_chart


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_time_and_numbers_make_a_line(rng):
    df = pd.DataFrame({"day": pd.date_range("2020", periods=50), "n": rng.random(50)})
    assert infer_chart(df) == ChartSpec("line", x="day", y=["n"])


def test_few_categories_and_numbers_make_a_bar():
    df = pd.DataFrame({"flag": pd.array(["A", "N", "R"], dtype="string"), "qty": [1.0, 2.0, 3.0]})
    assert infer_chart(df) == ChartSpec("bar", x="flag", y=["qty"])


def test_decimal_columns_count_as_numbers():
    df = pd.DataFrame({"flag": ["A", "B"], "total": [Decimal("1.5"), Decimal("2.5")]})
    spec = infer_chart(df)
    assert spec is not None and spec.kind == "bar"
    assert build_figure(df, spec)["data"][0]["y"] == [1.5, 2.5]


def test_two_numbers_make_a_scatter(rng):
    df = pd.DataFrame({"a": rng.random(20), "b": rng.random(20)})
    assert infer_chart(df) == ChartSpec("scatter", x="a", y=["b"])


def test_one_number_makes_a_histogram(rng):
    df = pd.DataFrame({"a": rng.random(20)})
    assert infer_chart(df) == ChartSpec("histogram", x="a")


def test_nothing_sensible_gives_no_chart():
    assert infer_chart(pd.DataFrame({"user": ["alice", "bob"]})) is None
    assert infer_chart(pd.DataFrame({"n": [1]})) is None  # a single value: read the table
    many = pd.DataFrame({"name": [f"n{i}" for i in range(100)], "id": ["x"] * 100})
    assert infer_chart(many) is None


def test_explicit_choices_override_inference(rng):
    df = pd.DataFrame({"a": rng.random(20), "b": rng.random(20), "c": ["x", "y"] * 10})
    spec = complete_spec(df, "line", x="b", y=["a"], color="c")
    assert spec == ChartSpec("line", x="b", y=["a"], color="c")
    assert complete_spec(df, "histogram", x="b").x == "b"
    with pytest.raises(ValueError, match="no column 'zz'"):
        complete_spec(df, "bar", x="zz")


def test_figure_is_valid_plotly_json(rng):
    df = pd.DataFrame(
        {
            "t": pd.date_range("2020", periods=30, tz="UTC"),
            "v": rng.random(30),
            "c": ["a", "b", "c"] * 10,
        }
    )
    for spec in [
        ChartSpec("line", x="t", y=["v"], color="c"),
        ChartSpec("bar", x="c", y=["v"]),
        ChartSpec("scatter", x="v", y=["v"]),
        ChartSpec("histogram", x="v", color="c"),
        ChartSpec("histogram", x="t"),
    ]:
        fig = build_figure(df, spec)
        json.dumps(fig)  # the mimebundle must be plain JSON
        go.Figure(fig)  # and valid for Plotly


def test_large_results_are_downsampled_to_the_budget_with_webgl(rng):
    n = 1_000_000
    df = pd.DataFrame({"a": rng.random(n), "b": rng.random(n)})
    fig = build_figure(df, ChartSpec("scatter", x="a", y=["b"]), point_budget=5000)
    trace = fig["data"][0]
    assert trace["type"] == "scattergl"
    assert len(trace["x"]) <= 5000
    assert "downsampled to 5,000 of 1,000,000 points" in fig["layout"]["title"]["text"]
    assert len(json.dumps(fig)) < 2_000_000


def test_large_histogram_sends_bins_not_rows(rng):
    df = pd.DataFrame({"a": rng.normal(size=1_000_000)})
    fig = build_figure(df, ChartSpec("histogram", x="a"))
    assert len(fig["data"][0]["y"]) == 50
    assert sum(fig["data"][0]["y"]) == 1_000_000
    assert len(json.dumps(fig)) < 10_000


def test_bar_with_repeated_categories_sums_them():
    df = pd.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]})
    fig = build_figure(df, ChartSpec("bar", x="k", y=["v"]))
    trace = fig["data"][0]
    assert dict(zip(trace["x"], trace["y"], strict=True)) == {"a": 4, "b": 2}
    assert "sum of v per k" in fig["layout"]["title"]["text"]


def test_bar_with_too_many_categories_keeps_the_largest():
    df = pd.DataFrame({"k": [f"k{i}" for i in range(5000)], "v": np.arange(5000)})
    fig = build_figure(df, ChartSpec("bar", x="k", y=["v"]), point_budget=200)
    assert len(fig["data"][0]["x"]) == 200
    assert "k4999" in fig["data"][0]["x"]


def test_nulls_and_infinities_become_json_nulls():
    df = pd.DataFrame({"x": pd.array([1, 2, None], dtype="Int64"), "y": [np.nan, np.inf, 1.0]})
    fig = build_figure(df, ChartSpec("scatter", x="x", y=["y"]))
    assert fig["data"][0]["x"] == [1.0, 2.0, None]
    assert fig["data"][0]["y"] == [None, None, 1.0]


def test_downsampled_lines_keep_spikes_and_dips(rng):
    n = 1_000_000
    y = rng.normal(size=n)
    y[123_457], y[876_543] = 1000.0, -1000.0
    df = pd.DataFrame({"t": pd.date_range("2020", periods=n, freq="s"), "y": y})
    fig = build_figure(df, ChartSpec("line", x="t", y=["y"]), point_budget=2000)
    trace = fig["data"][0]
    assert trace["type"] == "scattergl" and len(trace["y"]) <= 2000
    assert max(trace["y"]) == 1000.0 and min(trace["y"]) == -1000.0
    assert trace["x"] == sorted(trace["x"])  # still in time order
    assert "lowest and highest point per bucket" in fig["layout"]["title"]["text"]


def test_payload_stays_under_the_byte_bound_even_with_long_labels(rng):
    n = 50_000
    df = pd.DataFrame({"label": [f"{i:08d}" + "x" * 200 for i in range(n)], "v": rng.random(n)})
    fig = build_figure(df, ChartSpec("scatter", x="label", y=["v"]), max_bytes=500_000)
    assert len(json.dumps(fig)) <= 500_000
    assert "downsampled" in fig["layout"]["title"]["text"]


def test_dates_are_sent_without_a_time_of_day():
    df = pd.DataFrame({"d": pd.to_datetime(["2020-01-01", "2020-01-02"]), "v": [1.0, 2.0]})
    fig = build_figure(df, ChartSpec("line", x="d", y=["v"]))
    assert fig["data"][0]["x"] == ["2020-01-01", "2020-01-02"]
