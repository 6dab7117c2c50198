"""Chart inference and Plotly figure specs for query results.

Pure functions, no I/O. :func:`infer_chart` looks at a DataFrame's column kinds and picks a
chart that suits it (or none); :func:`build_figure` turns a frame and a :class:`ChartSpec`
into a Plotly figure as a plain dict (``{"data": [...], "layout": {...}}``), the payload of
the ``application/vnd.plotly.v1+json`` mimetype that JupyterLab renders natively.

The figure is built from column arrays directly rather than with ``plotly.express``:
express validates and copies every row, which is far too slow for a million-row result, and
the payload would grow with the data. Here the number of points sent is bounded by a
*point budget* whatever the row count: histograms are binned in numpy, bar charts are
aggregated per category, lines keep the lowest and highest point of each of evenly spaced
buckets (so spikes survive), scatter data is sampled evenly; the title says so. Large
traces use WebGL (``scattergl``). As a last guard the figure's JSON is measured and, if it
is above ``max_bytes`` (long labels, many series), rebuilt with half the points.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

__all__ = [
    "AGGREGATIONS",
    "CHART_KINDS",
    "ChartSpec",
    "column_kind",
    "infer_chart",
    "build_figure",
    "aggregate",
    "numeric_values",
]

ChartKind = Literal["line", "bar", "scatter", "histogram"]
CHART_KINDS: tuple[str, ...] = ("line", "bar", "scatter", "histogram")
#: How rows sharing an x (and colour) value become one point: ``--agg``.
AGGREGATIONS: tuple[str, ...] = ("sum", "mean", "count", "min", "max")

#: At most this many distinct values make a column a category (bar axis or colour).
MAX_CATEGORIES = 30
#: At most this many numeric series in one automatic chart.
MAX_SERIES = 5
#: Histogram bins.
HISTOGRAM_BINS = 50
#: Above this many points a trace switches to WebGL.
WEBGL_THRESHOLD = 1000
#: Default bound on the figure's JSON size.
MAX_BYTES = 2_000_000


@dataclass
class ChartSpec:
    """What to draw: ``kind`` with ``x``, one or more ``y`` columns and an optional
    ``color`` column that splits the data into one trace per value; ``agg`` (one of
    :data:`AGGREGATIONS`) makes one point per x (and colour) value from its rows."""

    kind: ChartKind
    x: str | None = None
    y: list[str] = field(default_factory=list)
    color: str | None = None
    agg: str | None = None


def column_kind(s: pd.Series) -> Literal["time", "number", "category", "other"]:
    """Classify a column for charting: time, number, category (text/boolean) or other."""
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "category"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "time"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if isinstance(dtype, pd.StringDtype):
        return "category"
    if dtype == np.dtype(object):
        first = s.dropna().head(1)
        if len(first) and isinstance(first.iloc[0], decimal.Decimal):
            return "number"
        if len(first) and isinstance(first.iloc[0], str):
            return "category"
    return "other"


def _few_values(s: pd.Series, limit: int = MAX_CATEGORIES) -> bool:
    # A sample settles most columns (ids, free text) without hashing a million values.
    if len(s) > 10 * limit and s.iloc[: 10 * limit].nunique(dropna=False) > limit:
        return False
    return s.nunique(dropna=False) <= limit


def infer_chart(df: pd.DataFrame) -> ChartSpec | None:
    """Pick a chart for ``df``, or ``None`` when nothing sensible fits.

    - a time column and numbers → line (numbers over time)
    - a text column with few (≤ 30) distinct values and numbers → bar
    - two or more numbers → scatter of the first two
    - exactly one number → histogram
    A second few-valued text column becomes the colour. Results with fewer than two rows
    get no chart: a single value is better read in the table.
    """
    if len(df) < 2 or len(set(df.columns)) != len(df.columns):
        return None
    kinds = {str(c): column_kind(df[c]) for c in df.columns}
    times = [c for c, k in kinds.items() if k == "time"]
    numbers = [c for c, k in kinds.items() if k == "number"]
    categories = [c for c, k in kinds.items() if k == "category" and _few_values(df[c])]
    if times and numbers:
        color = categories[0] if categories and len(numbers) == 1 else None
        return ChartSpec("line", x=times[0], y=numbers[:MAX_SERIES], color=color)
    if categories and numbers:
        color = categories[1] if len(categories) > 1 and len(numbers) == 1 else None
        return ChartSpec("bar", x=categories[0], y=numbers[:MAX_SERIES], color=color)
    if len(numbers) >= 2:
        return ChartSpec(
            "scatter", x=numbers[0], y=[numbers[1]], color=categories[0] if categories else None
        )
    if len(numbers) == 1:
        return ChartSpec("histogram", x=numbers[0], color=categories[0] if categories else None)
    return None


def complete_spec(
    df: pd.DataFrame,
    kind: str | None = None,
    x: str | None = None,
    y: Sequence[str] = (),
    color: str | None = None,
    agg: str | None = None,
) -> ChartSpec | None:
    """Combine explicit choices (any may be missing) with inference; ``agg`` is kept.

    ``kind=None`` or ``"auto"`` infers the kind; an explicit x/y/colour always wins over
    the inferred one. Raises ``ValueError`` for a column that does not exist.
    """
    for col in [x, color, *y]:
        if col is not None and col not in df.columns:
            raise ValueError(
                f"no column {col!r} in the result (columns: {', '.join(map(str, df.columns))})"
            )
    inferred = infer_chart(df)
    if kind in (None, "auto"):
        if inferred is None and not (x or y):
            return None
        kind = inferred.kind if inferred else ("line" if x and y else "histogram")
    spec = ChartSpec(kind)  # type: ignore[arg-type]
    same_kind = inferred is not None and inferred.kind == kind
    spec.x = x or (inferred.x if inferred and (same_kind or kind != "histogram") else None)
    spec.y = list(y) or (inferred.y if same_kind and inferred else [])
    spec.color = color or (inferred.color if same_kind and inferred else None)
    if spec.x is None or (not spec.y and kind != "histogram"):
        spec = _fill_missing(df, spec)
    spec.agg = agg
    return spec


def _fill_missing(df: pd.DataFrame, spec: ChartSpec) -> ChartSpec:
    cols = [str(c) for c in df.columns]
    numbers = [c for c in cols if column_kind(df[c]) == "number"]
    if spec.kind == "histogram":
        spec.x = spec.x or (spec.y[0] if spec.y else (numbers[0] if numbers else cols[0]))
        spec.y = []
        return spec
    if spec.x is None:
        rest = [c for c in cols if c not in spec.y]
        spec.x = rest[0] if rest else cols[0]
    if not spec.y:
        spec.y = [c for c in numbers if c != spec.x][:MAX_SERIES]
    return spec


# --------------------------------------------------------------------------- figures


def _json_values(s: pd.Series) -> list[Any]:
    """A column as JSON-ready Python values (None for missing)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dtype, "tz", None) is not None:
            # Plotly.js ignores offsets; show the wall-clock time of the column's zone.
            s = s.dt.tz_localize(None)
        valid = s.dropna()
        # Dates as dates, times without a zero fraction: shorter payload, same axis.
        if len(valid) and (valid == valid.dt.normalize()).all():
            fmt = "%Y-%m-%d"
        elif len(valid) and (valid.dt.microsecond == 0).all() and (valid.dt.nanosecond == 0).all():
            fmt = "%Y-%m-%d %H:%M:%S"
        else:
            fmt = "%Y-%m-%d %H:%M:%S.%f"
        return [None if v is None or v is pd.NA else v for v in s.dt.strftime(fmt).tolist()]
    if s.dtype == object:
        return [_scalar(v) for v in s.tolist()]
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        arr = s.to_numpy(dtype="float64", na_value=np.nan)
        return [None if np.isnan(v) or np.isinf(v) else v for v in arr.tolist()]
    return [_scalar(v) for v in s.astype(object).tolist()]


def _scalar(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)


def numeric_values(s: pd.Series) -> pd.Series:
    """A column in numeric terms: decimals as floats, booleans as 0/1 (others as they are)."""
    if s.dtype == object:
        return pd.to_numeric(
            s.map(lambda v: float(v) if isinstance(v, decimal.Decimal) else v), errors="coerce"
        )
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64")
    return s


def _even_sample(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced row positions out of ``n`` (first and last included)."""
    return np.unique(np.linspace(0, n - 1, num=k).round().astype(np.int64))


def _min_max_sample(values: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` row positions: the lowest and highest value of each of about ``k // 2``
    equal buckets of consecutive rows, in order — a line through them keeps every spike and
    dip that even sampling would skip. Missing values are never picked over present ones."""
    n = len(values)
    buckets = max((k - 2) // 2, 1)  # two points each, plus the first and the last row
    size = -(-n // buckets)  # ceil: rows per bucket
    buckets = -(-n // size)
    pad = buckets * size - n
    missing = np.isnan(values)
    # One reshape and one argmin/argmax per bucket row, all in numpy: no sort needed.
    low = np.concatenate([np.where(missing, np.inf, values), np.full(pad, np.inf)])
    high = np.concatenate([np.where(missing, -np.inf, values), np.full(pad, -np.inf)])
    starts = np.arange(buckets) * size
    lows = starts + low.reshape(buckets, size).argmin(axis=1)
    highs = starts + high.reshape(buckets, size).argmax(axis=1)
    picked = np.concatenate([lows, highs, [0, n - 1]])
    return np.unique(picked[picked < n])


def _color_groups(
    df: pd.DataFrame, color: str | None
) -> tuple[list[tuple[Any, pd.DataFrame]], str]:
    if color is None:
        return [(None, df)], ""
    counts = df[color].value_counts(dropna=False)
    note = ""
    if len(counts) > MAX_CATEGORIES:
        keep = set(counts.index[:MAX_CATEGORIES])
        df = df[df[color].isin(keep)]
        note = f"top {MAX_CATEGORIES} of {len(counts):,} {color} values"
    groups = [(k, g) for k, g in df.groupby(color, sort=True, dropna=False, observed=True)]
    return groups, note


def _label(key: Any) -> str:
    if isinstance(key, tuple):
        key = key[0]
    return (
        "null"
        if key is None or key is pd.NA or (isinstance(key, float) and np.isnan(key))
        else str(key)
    )


def build_figure(
    df: pd.DataFrame,
    spec: ChartSpec,
    point_budget: int = 10_000,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """Build a Plotly figure dict for ``df`` as described by ``spec``.

    At most about ``point_budget`` points are sent in total, so the payload stays bounded
    whatever the row count; when data was binned, aggregated or downsampled the title says
    how. If the figure's JSON is still above ``max_bytes`` it is rebuilt with half the
    points until it fits.
    """
    point_budget = max(int(point_budget), 100)
    while True:
        fig = _build_figure(df, spec, point_budget)
        if point_budget <= 100 or len(orjson.dumps(fig, default=str)) <= max_bytes:
            return fig
        point_budget //= 2


def aggregate(df: pd.DataFrame, spec: ChartSpec) -> tuple[pd.DataFrame, ChartSpec]:
    """One row per x (and colour) value with ``spec.agg`` of each y column, in x order,
    and the spec of the aggregated frame (``count`` draws one y column, ``count``).

    Raises ``ValueError`` for an unknown aggregation or one a histogram cannot take.
    """
    if spec.agg is None:
        return df, spec
    if spec.agg not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {spec.agg!r}; use one of {', '.join(AGGREGATIONS)}")
    if spec.kind == "histogram":
        raise ValueError("a histogram counts values itself; --agg is for line, bar and scatter")
    assert spec.x is not None
    keys = list(dict.fromkeys([spec.x, *([spec.color] if spec.color else [])]))
    grouped = df.groupby(keys, sort=True, dropna=False, observed=True)
    if spec.agg == "count":
        out = grouped.size().rename("count").reset_index()
        return out, replace(spec, y=["count"])
    ys = [y for y in spec.y if y not in keys]
    if not ys:
        raise ValueError(f"--agg {spec.agg} needs a y column other than x and colour")
    work = df[keys].copy()
    for y in ys:
        work[y] = numeric_values(df[y]).astype("float64")
    out = work.groupby(keys, sort=True, dropna=False, observed=True)[ys].agg(spec.agg)
    return out.reset_index(), replace(spec, y=ys)


def _build_figure(df: pd.DataFrame, spec: ChartSpec, point_budget: int) -> dict[str, Any]:
    builders = {
        "line": _line_or_scatter,
        "scatter": _line_or_scatter,
        "bar": _bar,
        "histogram": _histogram,
    }
    if spec.kind not in builders:
        raise ValueError(f"unknown chart kind {spec.kind!r}; use one of {', '.join(CHART_KINDS)}")
    df, spec = aggregate(df, spec)
    data, title, notes = builders[spec.kind](df, spec, point_budget)
    if spec.agg and spec.agg != "count":
        title = f"{spec.agg} of {title}"
    if notes:
        title = f"{title}<br><sub>{'; '.join(notes)}</sub>"
    layout: dict[str, Any] = {
        "title": {"text": title},
        "xaxis": {"title": {"text": str(spec.x) if spec.x is not None else ""}},
        "yaxis": {"title": {"text": ", ".join(spec.y) if spec.y else "count"}},
        "margin": {"t": 60 if not notes else 80},
        "showlegend": len(data) > 1,
    }
    if spec.kind == "bar" and len(data) > 1:
        layout["barmode"] = "group"
    return {"data": data, "layout": layout}


def _line_or_scatter(df: pd.DataFrame, spec: ChartSpec, budget: int) -> tuple[list, str, list[str]]:
    assert spec.x is not None
    notes: list[str] = []
    work = df[[c for c in dict.fromkeys([spec.x, *spec.y, spec.color]) if c is not None]]
    if spec.kind == "line" and not work[spec.x].is_monotonic_increasing:
        # Often already sorted (ORDER BY); checking is one pass, sorting several.
        work = work.sort_values(spec.x, kind="stable")
    groups, note = _color_groups(work, spec.color)
    if note:
        notes.append(note)
    n_series = max(len(groups) * len(spec.y), 1)
    per_series = max(budget // n_series, 2)
    total = len(work)
    shown = 0
    traces = []
    method = "evenly sampled"
    for key, g in groups:
        even = g.iloc[_even_sample(len(g), per_series)] if len(g) > per_series else g
        x = _json_values(even[spec.x])
        for ycol in spec.y:
            y_all = numeric_values(g[ycol])
            if len(g) <= per_series:
                xs, ys = x, _json_values(y_all)
            elif spec.kind == "line":
                values = pd.Series(y_all).to_numpy(dtype="float64", na_value=np.nan)
                picked = g.iloc[_min_max_sample(values, per_series)]
                xs, ys = _json_values(picked[spec.x]), _json_values(numeric_values(picked[ycol]))
                method = "lowest and highest point per bucket"
            else:
                xs, ys = x, _json_values(numeric_values(even[ycol]))
            shown += len(ys)
            name = (
                ycol
                if spec.color is None
                else (_label(key) if len(spec.y) == 1 else f"{_label(key)} {ycol}")
            )
            trace = {
                "type": "scattergl" if len(ys) > WEBGL_THRESHOLD or len(g) > budget else "scatter",
                "mode": "lines" if spec.kind == "line" else "markers",
                "name": name,
                "x": xs,
                "y": ys,
            }
            traces.append(trace)
    points = total * len(spec.y)
    if shown < points:
        notes.insert(0, f"downsampled to {shown:,} of {points:,} points ({method})")
    what = ", ".join(spec.y)
    title = f"{what} over {spec.x}" if spec.kind == "line" else f"{what} vs {spec.x}"
    return traces, title, notes


def _bar(df: pd.DataFrame, spec: ChartSpec, budget: int) -> tuple[list, str, list[str]]:
    assert spec.x is not None
    notes: list[str] = []
    keys = [spec.x] + ([spec.color] if spec.color and spec.color != spec.x else [])
    work = df[list(dict.fromkeys([*keys, *spec.y]))].copy()
    for ycol in spec.y:
        work[ycol] = numeric_values(work[ycol])
    if work.duplicated(subset=keys).any():
        # Several rows per bar: one bar each would overlap, so sum them.
        work = (
            work.groupby(keys, sort=False, dropna=False, observed=True)[spec.y].sum().reset_index()
        )
        notes.append(f"sum of {', '.join(spec.y)} per {spec.x}")
    n_x = work[spec.x].nunique(dropna=False)
    max_bars = max(budget // max(len(spec.y), 1), 1)
    limit = min(max_bars, 1000)
    if n_x > limit:
        # Far too many bars to read: keep the largest by the first measure.
        top = (
            work.groupby(spec.x, dropna=False, observed=True)[spec.y[0]].sum().nlargest(limit).index
        )
        work = work[work[spec.x].isin(top)]
        notes.append(f"top {limit:,} of {n_x:,} {spec.x} values by {spec.y[0]}")
    groups, note = _color_groups(work, spec.color if spec.color != spec.x else None)
    if note:
        notes.append(note)
    traces = []
    for key, g in groups:
        x = _json_values(g[spec.x])
        for ycol in spec.y:
            name = (
                ycol
                if key is None
                else (_label(key) if len(spec.y) == 1 else f"{_label(key)} {ycol}")
            )
            traces.append({"type": "bar", "name": name, "x": x, "y": _json_values(g[ycol])})
    return traces, f"{', '.join(spec.y)} by {spec.x}", notes


def _histogram(df: pd.DataFrame, spec: ChartSpec, budget: int) -> tuple[list, str, list[str]]:
    assert spec.x is not None
    values = numeric_values(df[spec.x])
    kind = column_kind(df[spec.x])
    notes: list[str] = []
    if kind == "category":
        # A histogram of text is a count per value.
        counts = df[spec.x].value_counts(dropna=False)
        if len(counts) > budget:
            counts = counts.iloc[:budget]
            notes.append(f"{budget:,} most frequent values")
        trace = {
            "type": "bar",
            "name": "count",
            "x": [_label(k) for k in counts.index],
            "y": counts.tolist(),
        }
        return [trace], f"count by {spec.x}", notes
    if kind == "time":
        numeric = df[spec.x].dropna().astype("int64")
        arr = numeric.to_numpy(dtype="float64")
    else:
        arr = pd.Series(values).to_numpy(dtype="float64", na_value=np.nan)
        arr = arr[np.isfinite(arr)]
    # Binned here, not by plotly.js, so the payload is the bins and never the rows.
    traces = []
    groups, note = _color_groups(df, spec.color)
    if note:
        notes.append(note)
    if len(arr) == 0:
        return [], f"distribution of {spec.x}", ["no values"]
    lo, hi = float(arr.min()), float(arr.max())
    edges = np.histogram_bin_edges(
        arr, bins=HISTOGRAM_BINS, range=(lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    )
    centers = (edges[:-1] + edges[1:]) / 2
    if kind == "time":
        dtype = df[spec.x].dtype
        unit = getattr(dtype, "unit", None) or np.datetime_data(dtype)[0]
        xs = [str(pd.Timestamp(int(c), unit=unit)) for c in centers]
    else:
        xs = centers.tolist()
    for key, g in groups:
        if kind == "time":
            garr = g[spec.x].dropna().astype("int64").to_numpy(dtype="float64")
        else:
            garr = numeric_values(g[spec.x]).to_numpy(dtype="float64", na_value=np.nan)
            garr = garr[np.isfinite(garr)]
        counts, _ = np.histogram(garr, bins=edges)
        traces.append(
            {
                "type": "bar",
                "name": "count" if key is None else _label(key),
                "x": xs,
                "y": counts.tolist(),
                "width": float(edges[1] - edges[0]) if kind != "time" else None,
            }
        )
    for t in traces:
        if t["width"] is None:
            del t["width"]
    notes.insert(0, f"{len(arr):,} values in {HISTOGRAM_BINS} bins")
    return traces, f"distribution of {spec.x}", notes
