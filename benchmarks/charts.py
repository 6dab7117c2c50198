"""Chart benchmark: a chart of a 1,000,000-row result, DataHub's way vs plotly.express.

For each chart kind the ``%%sql`` magic draws — line (time and a number), scatter (two
numbers), bar (a few categories and a number), histogram (one number) — it measures the
time to build the figure and serialise it to JSON (what goes into the notebook and over
the wire to the browser) and the JSON size, for:

* DataHub: :func:`datahub.charts.build_figure` (binning, aggregation, min/max or even
  downsampling to a point budget, WebGL traces), serialised with ``orjson``;
* ``plotly.express`` on the full frame (``px.line`` / ``px.scatter`` / ``px.bar`` /
  ``px.histogram``) and ``fig.to_json()``, which ship every row to the browser.

The frame is synthetic but shaped like ``tpch.sf1.lineitem`` (dates over seven years,
prices, quantities, a three-valued flag), so it needs no stack::

    /opt/datahub/venv/bin/python benchmarks/charts.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

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


CASES: dict[str, tuple[ChartSpec, Callable[[Any, pd.DataFrame], Any]]] = {
    "line": (
        ChartSpec("line", x="shipdate", y=["extendedprice"]),
        lambda px, df: px.line(df.sort_values("shipdate"), x="shipdate", y="extendedprice"),
    ),
    "scatter": (
        ChartSpec("scatter", x="quantity", y=["extendedprice"]),
        lambda px, df: px.scatter(df, x="quantity", y="extendedprice"),
    ),
    "bar": (
        ChartSpec("bar", x="returnflag", y=["extendedprice"]),
        lambda px, df: px.bar(df, x="returnflag", y="extendedprice"),
    ),
    "histogram": (
        ChartSpec("histogram", x="extendedprice"),
        lambda px, df: px.histogram(df, x="extendedprice"),
    ),
}


def ours(df: pd.DataFrame, spec: ChartSpec) -> tuple[float, int, str]:
    start = time.perf_counter()
    full = complete_spec(df, spec.kind, spec.x, spec.y, spec.color)
    payload = orjson.dumps(build_figure(df, full))
    elapsed = time.perf_counter() - start
    fig = orjson.loads(payload)
    kinds = "+".join(sorted({t["type"] for t in fig["data"]}))
    return elapsed, len(payload), kinds


def express(px: Any, df: pd.DataFrame, make: Callable[[Any, pd.DataFrame], Any]) -> tuple:
    start = time.perf_counter()
    fig = make(px, df)
    payload = fig.to_json()
    elapsed = time.perf_counter() - start
    kinds = "+".join(sorted({t.type for t in fig.data}))
    return elapsed, len(payload), kinds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(CASES), help="comma list of chart kinds")
    args = parser.parse_args(argv)

    import plotly.express as px

    df = lineitem_like(args.rows)
    print(
        f"{args.rows:,} rows, median of {args.runs} runs "
        "(build the figure + serialise it to JSON):\n"
    )
    print(
        "| chart (traces) | DataHub time | DataHub JSON | plotly.express time "
        "| plotly.express JSON | time DataHub/px | JSON px/DataHub |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in args.kinds.split(","):
        spec, make = CASES[kind]
        a = [ours(df, spec) for _ in range(args.runs)]
        b = [express(px, df, make) for _ in range(args.runs)]
        ta, sa = statistics.median(r[0] for r in a), a[0][1]
        tb, sb = statistics.median(r[0] for r in b), b[0][1]
        print(
            f"| {kind} ({a[0][2]} vs {b[0][2]}) | {ta:.2f} s | {_size(sa)} | {tb:.2f} s "
            f"| {_size(sb)} | {ta / tb:.2f}× | {sb / sa:,.0f}× |",
            flush=True,
        )


def _size(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} kB" if n >= 1e3 else f"{n} B"


if __name__ == "__main__":
    main()
