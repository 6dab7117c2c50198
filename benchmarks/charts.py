"""Chart benchmark: DataHub's chart of a million-row result against a careful
``plotly.express`` user who reduces the data first, with the same chart data checked.

The ``%%sql`` magic draws a chart of the whole result it fetched
(:func:`datahub.charts.build_figure`: at most ``--budget`` points, WebGL traces, serialised
with ``orjson``). A careful plotly.express user does not hand ``px`` a million rows (the
notebook would grow by tens of MB per chart); they reduce the frame with pandas or numpy
first, then draw the result and serialise it (``fig.to_json()``). Per chart, both start
from the same DataFrame and must end with the same points (x and y of every trace, dates
compared as instants, numbers to 1e-9 relative), or the benchmark stops:

* ``line-sum``: the sum per day (``%%sql --chart line --agg sum``) vs ``groupby().sum()`` +
  ``px.line``;
* ``line``: a line over a million points (the magic's automatic chart) reduced to the
  lowest and highest point of each of ``budget / 2`` equal buckets of consecutive rows
  (spikes survive) vs the same buckets with ``groupby().idxmin()/idxmax()`` + ``px.line``;
* ``scatter``: ``budget`` evenly spaced rows vs ``df.iloc[positions]`` + ``px.scatter``;
* ``bar``: the sum per category vs ``groupby().sum()`` + ``px.bar``;
* ``histogram``: 50 equal bins over the range vs ``numpy.histogram`` + ``px.bar``.

The frame is synthetic but shaped like ``tpch.sf1.lineitem`` as the magic returns it
(``datetime64`` dates, float prices and quantities, an Arrow string flag), so no stack is
needed. The two sides take turns, ``--runs`` times; medians of wall and CPU time::

    /opt/datahub-dev/venv/bin/python benchmarks/charts.py                 # 1,000,000 rows
    /opt/datahub-dev/venv/bin/python benchmarks/charts.py --rows 100000 --runs 3
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

import measure
import numpy as np
import orjson
import pandas as pd

from datahub.charts import ChartSpec, build_figure, complete_spec


def lineitem_like(rows: int, seed: int = 0) -> pd.DataFrame:
    """A frame with lineitem's chartable columns and dtypes as the magic returns them."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 7 * 365, rows)
    return pd.DataFrame(
        {
            "shipdate": (np.datetime64("1992-01-02") + days.astype("timedelta64[D]")).astype(
                "datetime64[s]"
            ),
            "extendedprice": rng.uniform(900, 105_000, rows).round(2),
            "quantity": rng.integers(1, 51, rows).astype("float64"),
            "returnflag": pd.array(rng.choice(["A", "N", "R"], rows), dtype="string"),
        }
    )


# --------------------------------------------------------------------------- careful px user


def px_line_sum(px: Any, df: pd.DataFrame, budget: int) -> Any:
    daily = df.groupby("shipdate", sort=True)["extendedprice"].sum().reset_index()
    return px.line(daily, x="shipdate", y="extendedprice")


def px_line_envelope(px: Any, df: pd.DataFrame, budget: int) -> Any:
    """The lowest and highest point of each of about budget / 2 buckets of rows."""
    s = df[["shipdate", "extendedprice"]].sort_values("shipdate", kind="stable")
    s = s.reset_index(drop=True)
    n = len(s)
    size = -(-n // max((budget - 2) // 2, 1))
    by_bucket = s["extendedprice"].groupby(np.arange(n) // size)
    keep = np.unique(np.concatenate([by_bucket.idxmin(), by_bucket.idxmax(), [0, n - 1]]))
    return px.line(s.iloc[keep], x="shipdate", y="extendedprice", render_mode="webgl")


def px_scatter_sample(px: Any, df: pd.DataFrame, budget: int) -> Any:
    positions = np.unique(np.linspace(0, len(df) - 1, num=budget).round().astype(np.int64))
    return px.scatter(df.iloc[positions], x="quantity", y="extendedprice", render_mode="webgl")


def px_bar_sum(px: Any, df: pd.DataFrame, budget: int) -> Any:
    sums = df.groupby("returnflag", observed=True)["extendedprice"].sum().reset_index()
    return px.bar(sums, x="returnflag", y="extendedprice")


def px_histogram_binned(px: Any, df: pd.DataFrame, budget: int) -> Any:
    counts, edges = np.histogram(df["extendedprice"].to_numpy(), bins=50)
    return px.bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, labels={"x": "extendedprice"})


CASES: dict[str, tuple[ChartSpec, Callable[[Any, pd.DataFrame, int], Any], str]] = {
    "line-sum": (
        ChartSpec("line", x="shipdate", y=["extendedprice"], agg="sum"),
        px_line_sum,
        "sum per day: `groupby().sum()` + `px.line`",
    ),
    "line": (
        ChartSpec("line", x="shipdate", y=["extendedprice"]),
        px_line_envelope,
        "min and max per bucket: `groupby().idxmin()/idxmax()` + `px.line`",
    ),
    "scatter": (
        ChartSpec("scatter", x="quantity", y=["extendedprice"]),
        px_scatter_sample,
        "evenly spaced sample: `df.iloc[positions]` + `px.scatter`",
    ),
    "bar": (
        ChartSpec("bar", x="returnflag", y=["extendedprice"]),
        px_bar_sum,
        "sum per category: `groupby().sum()` + `px.bar`",
    ),
    "histogram": (
        ChartSpec("histogram", x="extendedprice"),
        px_histogram_binned,
        "50 bins: `numpy.histogram` + `px.bar`",
    ),
}


# --------------------------------------------------------------------------- measuring


def timed(make: Callable[[], tuple[Any, bytes | str]]) -> tuple[float, float, Any, int]:
    cpu, start = time.process_time(), time.perf_counter()
    figure, payload = make()
    return time.perf_counter() - start, time.process_time() - cpu, figure, len(payload)


def ours(df: pd.DataFrame, spec: ChartSpec, budget: int):
    full = complete_spec(df, spec.kind, spec.x, spec.y, spec.color, spec.agg)
    figure = build_figure(df, full, budget)
    return figure, orjson.dumps(figure)


def theirs(px: Any, df: pd.DataFrame, make: Callable, budget: int):
    figure = make(px, df, budget)
    return figure, figure.to_json()


def _points(values: Any) -> np.ndarray:
    """A trace's x or y as numbers: dates as nanoseconds, numbers as floats, text as is."""
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]").astype("int64").astype("float64")
    if arr.dtype.kind in "iuf":
        return arr.astype("float64")
    text = arr.astype(str)
    if len(text) and all(re.match(r"\d{4}-\d\d-\d\d", v) for v in text[:10]):
        stamps = pd.to_datetime(pd.Series(text), format="ISO8601").astype("datetime64[ns]")
        return stamps.astype("int64").to_numpy(dtype="float64")
    return text


def chart_data(figure: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every trace's (x, y), sorted by x, from a DataHub figure dict or a plotly Figure."""
    traces = (
        figure["data"] if isinstance(figure, dict) else [t.to_plotly_json() for t in figure.data]
    )
    out = []
    for trace in traces:
        x, y = _points(trace["x"]), _points(trace["y"])
        order = np.argsort(x, kind="stable")
        out.append((x[order], y[order]))
    return out


def check_same_chart(kind: str, a: Any, b: Any) -> None:
    da, db = chart_data(a), chart_data(b)
    if len(da) != len(db):
        raise SystemExit(f"CHART DATA DIFFER ({kind}): {len(da)} traces against {len(db)}")
    for (xa, ya), (xb, yb) in zip(da, db, strict=True):
        same_x = (
            np.array_equal(xa, xb)
            if xa.dtype.kind not in "f"
            else len(xa) == len(xb) and np.allclose(xa, xb, rtol=1e-9)
        )
        same_y = len(ya) == len(yb) and np.allclose(ya, yb, rtol=1e-9)
        if not (same_x and same_y):
            raise SystemExit(
                f"CHART DATA DIFFER ({kind}): {len(xa)} points against {len(xb)}; "
                f"x equal: {same_x}, y equal: {same_y}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the frame")
    parser.add_argument("--runs", type=int, default=5, help="runs per side, taking turns")
    parser.add_argument("--budget", type=int, default=10_000, help="DataHub's point budget")
    parser.add_argument("--kinds", default=",".join(CASES), help="comma list of charts")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CASES]
    if unknown:
        parser.error(f"unknown charts {unknown}; choose from {list(CASES)}")

    import plotly.express as px

    env = measure.environment("plotly", "pandas", "numpy", "orjson")
    df = lineitem_like(args.rows)
    lines = [
        f"A {args.rows:,}-row frame, median of {args.runs} runs per side taking turns; the "
        f"same chart data on both sides (checked). {measure.describe_environment(env)}; "
        f"load average {env['load_average']}.",
        "",
        "| chart | careful plotly.express user | points | DataHub wall / CPU "
        "| px user wall / CPU | DataHub JSON | px user JSON | wall DataHub/px |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in kinds:
        spec, make, how = CASES[kind]
        a: list[tuple] = []
        b: list[tuple] = []
        for _ in range(args.runs):
            a.append(timed(lambda spec=spec: ours(df, spec, args.budget)))
            b.append(timed(lambda make=make: theirs(px, df, make, args.budget)))
        check_same_chart(kind, a[0][2], b[0][2])
        points = sum(len(x) for x, _ in chart_data(a[0][2]))
        wa, ca = measure.median(r[0] for r in a), measure.median(r[1] for r in a)
        wb, cb = measure.median(r[0] for r in b), measure.median(r[1] for r in b)
        lines.append(
            f"| {kind} | {how} | {points:,} | {wa:.3f} s / {ca:.3f} s | {wb:.3f} s / {cb:.3f} s "
            f"| {_size(a[0][3])} | {_size(b[0][3])} | {wa / wb:.2f}× |"
        )
    print("\n".join(lines))


def _size(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} kB" if n >= 1e3 else f"{n} B"


if __name__ == "__main__":
    main()
