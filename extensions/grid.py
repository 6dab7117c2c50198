"""The result grid's kernel side: pages, sort, filter and downloads of a ``%%sql`` result.

A ``%%sql`` result is shown in JupyterLab as a grid (the extension's ``grid.ts``) that asks
the kernel for the rows it shows, a window at a time, through a Jupyter comm (target
``datahub.grid``): the browser never holds more than a few pages, whatever the row count.
Sorting and filtering run here on the DataFrame (pandas); downloads (CSV, Parquet) are sent
in chunks as binary comm buffers, which the browser joins into a file without holding the
result as JavaScript values.

The output bundle carries ``application/vnd.datahub.grid+json`` (the result's id, its
columns, the row count and the first page) next to the HTML table, so other frontends and
the gallery show the static table, and a notebook opened without its kernel shows the
first page.

Memory: :class:`ResultRegistry` keeps the last ``SqlMagic.grid_results`` results (10 by
default) by id, as references to the frames the magic returned (which IPython's ``Out``
keeps anyway), so the grid adds no copy of the data. A sorted or filtered view adds one
array of row positions (8 bytes a row) to its result; older results' grids show their
first page and say to re-run the cell.

The pure parts (:func:`column_filter`, :func:`view_positions`, :func:`page_rows`,
:func:`csv_chunks`, :func:`parquet_chunks`) take a frame and return values; the comm shell
(:class:`GridService`) only routes requests to them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from datahub import charts

__all__ = [
    "COMM_TARGET",
    "GRID_MIMETYPE",
    "GridError",
    "GridService",
    "ResultRegistry",
    "column_filter",
    "csv_chunks",
    "grid_payload",
    "page_rows",
    "parquet_chunks",
    "view_positions",
]

log = logging.getLogger(__name__)

GRID_MIMETYPE = "application/vnd.datahub.grid+json"
COMM_TARGET = "datahub.grid"
#: Rows of the first page, carried in the output itself (shown without a kernel).
FIRST_PAGE_ROWS = 50
#: Most rows one page request returns.
MAX_PAGE_ROWS = 2000
#: Rows per CSV chunk, and bytes per Parquet chunk, sent as one comm message.
CSV_CHUNK_ROWS = 50_000
PARQUET_CHUNK_BYTES = 4 * 1024 * 1024


class GridError(Exception):
    """A request the grid cannot serve, as one sentence for the user."""


# --------------------------------------------------------------------------- filtering

_COMPARISON = re.compile(r"^\s*(>=|<=|!=|<>|>|<|=)\s*(.*?)\s*$", re.S)
_RANGE = re.compile(r"^\s*(\S+)\s*\.\.\s*(\S+)\s*$")


def _kind(s: pd.Series) -> str:
    kind = charts.column_kind(s)
    return "category" if kind == "other" else kind


def _parse_value(kind: str, text: str) -> Any:
    """The filter's value in the column's terms, or ``None`` when it is not one."""
    try:
        if kind == "number":
            return float(text)
        if kind == "time":
            return pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _comparable(s: pd.Series, kind: str, value: Any) -> tuple[pd.Series, Any]:
    """The column and the value in terms that compare: numbers as floats, times in the
    column's zone."""
    if kind == "number":
        return charts.numeric_values(s), value
    tz = getattr(s.dtype, "tz", None)
    if tz is not None and value.tzinfo is None:
        value = value.tz_localize(tz)
    elif tz is None and value.tzinfo is not None:
        value = value.tz_convert(None)
    return s, value


def _compare(s: pd.Series, value: Any, op: str) -> np.ndarray:
    ops = {
        ">": s.__gt__,
        ">=": s.__ge__,
        "<": s.__lt__,
        "<=": s.__le__,
        "=": s.__eq__,
        "!=": s.__ne__,
        "<>": s.__ne__,
    }
    result = np.asarray(pd.array(ops[op](value), dtype="boolean").fillna(False), dtype=bool)
    # As in SQL, a comparison never keeps a missing value (NaN != 1 is true in numpy).
    return result & np.asarray(s.notna(), dtype=bool)


def column_filter(s: pd.Series, text: str) -> np.ndarray:
    """Which rows of column ``s`` the filter ``text`` keeps (a boolean array).

    - ``null`` / ``!null``: missing / present values;
    - on numbers and times: ``>x``, ``>=x``, ``<x``, ``<=x``, ``=x``, ``!=x``, ``a..b``
      (both ends included), or a bare number/date (equal);
    - otherwise (and when the value is not a number/date): the rows whose text contains
      ``text``, ignoring case; ``=x`` / ``!=x`` on text compare the whole value.
    """
    text = text.strip()
    n = len(s)
    if not text:
        return np.ones(n, dtype=bool)
    lowered = text.lower()
    if lowered in ("null", "!null"):
        missing = np.asarray(s.isna(), dtype=bool)
        return missing if lowered == "null" else ~missing
    kind = _kind(s)
    if kind in ("number", "time"):
        m = _RANGE.match(text)
        if m:
            lo, hi = _parse_value(kind, m.group(1)), _parse_value(kind, m.group(2))
            if lo is not None and hi is not None:
                return _compare(*_comparable(s, kind, lo), ">=") & _compare(
                    *_comparable(s, kind, hi), "<="
                )
        m = _COMPARISON.match(text)
        op, raw = (m.group(1), m.group(2)) if m else ("=", text)
        value = _parse_value(kind, raw)
        if value is not None:
            return _compare(*_comparable(s, kind, value), op)
    m = _COMPARISON.match(text)
    if m and m.group(1) in ("=", "!=", "<>") and kind not in ("number", "time"):
        equal = np.asarray(
            pd.array(_texts(s) == m.group(2), dtype="boolean").fillna(False), dtype=bool
        )
        return equal if m.group(1) == "=" else ~equal & ~np.asarray(s.isna(), dtype=bool)
    contains = _texts(s).str.contains(text, case=False, regex=False, na=False)
    return np.asarray(contains, dtype=bool)


def _texts(s: pd.Series) -> pd.Series:
    """The column as text, as the grid shows it (for contains and exact matches)."""
    if isinstance(s.dtype, pd.StringDtype):
        return s
    return pd.Series(display_values(s), index=s.index, dtype="string")


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class Sort:
    """Sort by the column at ``column`` (position), descending or not."""

    column: int
    descending: bool = False


def _sort_key(s: pd.Series) -> pd.Series:
    if s.dtype == object:
        first = s.dropna().head(1)
        if len(first) and isinstance(first.iloc[0], decimal.Decimal):
            return charts.numeric_values(s)
        if not (len(first) and isinstance(first.iloc[0], str | dt.time)):
            # Nested values (lists, dicts) and bytes do not order: sort by their text.
            return _texts(s)
    return s


def view_positions(
    df: pd.DataFrame, sort: Sequence[Sort] = (), filters: dict[int, str] | None = None
) -> np.ndarray | None:
    """The row positions of ``df`` the grid shows, in order: filtered by every column
    filter (all must match), sorted by ``sort`` (stable; missing values last).
    ``None`` when the view is the frame itself (no sort, no filter)."""
    filters = {i: t for i, t in (filters or {}).items() if t and t.strip()}
    if not sort and not filters:
        return None
    for i in [*filters, *(s.column for s in sort)]:
        if not 0 <= i < len(df.columns):
            raise GridError(f"The result has no column {i + 1}.")
    keep = np.ones(len(df), dtype=bool)
    for i, text in filters.items():
        keep &= column_filter(df.iloc[:, i], text)
    positions = np.flatnonzero(keep)
    if sort and len(positions):
        keys = pd.DataFrame(
            {
                f"k{n}": _sort_key(df.iloc[positions, s.column]).to_numpy()
                for n, s in enumerate(sort)
            }
        )
        try:
            order = keys.sort_values(
                list(keys.columns),
                ascending=[not s.descending for s in sort],
                kind="stable",
                na_position="last",
            ).index.to_numpy()
        except TypeError:
            raise GridError("These values cannot be sorted.") from None
        positions = positions[order]
    return positions


# --------------------------------------------------------------------------- values


def _time_text(s: pd.Series) -> list[str | None]:
    valid = s.dropna()
    local = valid.dt.tz_localize(None) if getattr(s.dtype, "tz", None) is not None else valid
    if (
        len(valid)
        and (local == local.dt.normalize()).all()
        and getattr(s.dtype, "tz", None) is None
    ):
        fmt = "%Y-%m-%d"
    else:
        fmt = None
    out: list[str | None] = []
    for v in s.tolist():
        if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
        else:
            out.append(v.strftime(fmt) if fmt else str(v))
    return out


def _value_text(v: Any) -> str | None:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        return None if np.isnan(v) else repr(float(v)) if isinstance(v, np.floating) else repr(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list | dict | tuple):
        return json.dumps(v, default=str, ensure_ascii=False)
    return str(v)


def display_values(s: pd.Series) -> list[str | None]:
    """A column's values as the grid shows them: text, ``None`` for missing. Dates of a
    column that holds only midnights show without a time."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _time_text(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        return [None if v is pd.NA or v is None else ("true" if v else "false") for v in s]
    return [_value_text(v) for v in s.tolist()]


def page_rows(
    df: pd.DataFrame, positions: np.ndarray | None, offset: int, limit: int
) -> list[list[str | None]]:
    """Rows ``offset`` to ``offset + limit`` of the view (``positions``, see
    :func:`view_positions`) as the grid shows them."""
    total = len(df) if positions is None else len(positions)
    offset = max(0, min(int(offset), total))
    end = min(total, offset + max(0, min(int(limit), MAX_PAGE_ROWS)))
    picked = slice(offset, end) if positions is None else positions[offset:end]
    part = df.iloc[picked]
    columns = [display_values(part.iloc[:, i]) for i in range(len(df.columns))]
    return [list(row) for row in zip(*columns, strict=True)] if columns else [[]] * (end - offset)


def _view(df: pd.DataFrame, positions: np.ndarray | None) -> pd.DataFrame:
    return df if positions is None else df.iloc[positions]


def csv_chunks(
    df: pd.DataFrame, positions: np.ndarray | None = None, rows: int = CSV_CHUNK_ROWS
) -> Iterator[bytes]:
    """The view as UTF-8 CSV (a header, then the rows), in chunks of ``rows`` rows."""
    view = _view(df, positions)
    yield view.iloc[:0].to_csv(index=False).encode()
    for start in range(0, len(view), rows):
        yield view.iloc[start : start + rows].to_csv(index=False, header=False).encode()


def parquet_chunks(
    df: pd.DataFrame, positions: np.ndarray | None = None, size: int = PARQUET_CHUNK_BYTES
) -> Iterator[bytes]:
    """The view as a Parquet file, in chunks of ``size`` bytes."""
    view = _view(df, positions).reset_index(drop=True)
    if len(set(view.columns)) != len(view.columns):
        raise GridError("Parquet needs distinct column names; rename the duplicates with AS.")
    out = io.BytesIO()
    try:
        view.to_parquet(out, index=False)
    except (ValueError, TypeError, ImportError) as err:
        raise GridError(f"This result cannot be written as Parquet: {err}") from None
    data = out.getbuffer()
    for start in range(0, len(data), size):
        yield bytes(data[start : start + size])


# --------------------------------------------------------------------------- registry


@dataclass
class GridResult:
    """A result the grid can page through, with the last view asked for."""

    frame: pd.DataFrame
    name: str
    rid: str = ""
    view_key: tuple = ()
    positions: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self, sort: Sequence[Sort], filters: dict[int, str]) -> np.ndarray | None:
        key = (tuple(sort), tuple(sorted(filters.items())))
        if key != self.view_key:
            # One cached view per result: paging through it is then a slice.
            self.positions = view_positions(self.frame, sort, filters)
            self.view_key = key
        return self.positions


class ResultRegistry:
    """The last ``size`` results by id (oldest dropped first)."""

    def __init__(self, size: int = 10):
        self.size = size
        self._results: OrderedDict[str, GridResult] = OrderedDict()

    def add(self, df: pd.DataFrame, name: str = "result", **extra: Any) -> str:
        """Keep ``df``; its new id."""
        rid = secrets.token_hex(8)
        self._results[rid] = GridResult(df, name, rid, extra=extra)
        while len(self._results) > max(self.size, 0):
            self._results.popitem(last=False)
        return rid

    def get(self, rid: Any) -> GridResult:
        result = self._results.get(rid) if isinstance(rid, str) else None
        if result is None:
            raise GridError(
                "This result is no longer in the kernel (it keeps the last "
                f"{self.size}); run the cell again to browse it."
            )
        return result

    def __len__(self) -> int:
        return len(self._results)


def grid_payload(df: pd.DataFrame, rid: str, types: Sequence[str | None] = ()) -> dict[str, Any]:
    """The ``application/vnd.datahub.grid+json`` value: the result's id, its columns
    (name, Trino type, kind, numeric or not), the row count and the first page."""
    columns = []
    for i, name in enumerate(df.columns):
        s = df.iloc[:, i]
        kind = _kind(s)
        columns.append(
            {
                "name": str(name),
                "type": (types[i] if i < len(types) else None) or str(s.dtype),
                "kind": kind,
            }
        )
    return {
        "result": rid,
        "columns": columns,
        "rows": len(df),
        "first": page_rows(df, None, 0, FIRST_PAGE_ROWS),
    }


# --------------------------------------------------------------------------- comm shell

Send = Callable[[dict[str, Any], list[bytes] | None], None]
#: ``chart(result, choice, line) -> reply``: the chart builder's request (the magic's).
ChartHandler = Callable[[GridResult, dict[str, Any], str], dict[str, Any]]


def _sorts(value: Any) -> list[Sort]:
    if not isinstance(value, list):
        return []
    try:
        return [Sort(int(s["column"]), bool(s.get("descending"))) for s in value]
    except (TypeError, KeyError, ValueError):
        raise GridError("The sort asked for is not one the grid knows.") from None


def _filters(value: Any) -> dict[int, str]:
    if not isinstance(value, dict):
        return {}
    try:
        return {int(k): str(v) for k, v in value.items() if isinstance(v, str)}
    except ValueError:
        raise GridError("The filter asked for is not one the grid knows.") from None


class GridService:
    """Answers the grid's requests (``page``, ``download``, ``chart``) for the results in
    ``registry``; ``chart`` is the magic's chart builder."""

    def __init__(self, registry: ResultRegistry, chart: ChartHandler | None = None):
        self.registry = registry
        self.chart = chart

    def handle(self, data: dict[str, Any], send: Send) -> None:
        """Serve one request; every answer carries its ``request`` number."""
        request = data.get("request")
        try:
            op = data.get("op")
            result = self.registry.get(data.get("result"))
            if op == "page":
                send({"request": request, "ok": True, **self.page(result, data)}, None)
            elif op == "download":
                self.download(
                    result, data, lambda msg, bufs: send({"request": request, **msg}, bufs)
                )
            elif op == "chart" and self.chart is not None:
                choice = data.get("choice") if isinstance(data.get("choice"), dict) else {}
                reply = self.chart(result, choice, str(data.get("line") or ""))
                send({"request": request, "ok": True, **reply}, None)
            else:
                raise GridError(f"The grid asked for something the kernel does not know ({op}).")
        except GridError as err:
            send({"request": request, "ok": False, "error": str(err)}, None)
        except Exception:
            log.exception("The result grid's request %r failed", data.get("op"))
            send(
                {"request": request, "ok": False, "error": "The kernel could not serve this."},
                None,
            )

    def page(self, result: GridResult, data: dict[str, Any]) -> dict[str, Any]:
        positions = result.view(_sorts(data.get("sort")), _filters(data.get("filters")))
        total = len(result.frame) if positions is None else len(positions)
        offset = int(data.get("offset") or 0)
        limit = int(data.get("limit") or 100)
        return {
            "total": total,
            "offset": offset,
            "rows": page_rows(result.frame, positions, offset, limit),
        }

    def download(self, result: GridResult, data: dict[str, Any], send: Send) -> None:
        fmt = data.get("format")
        if fmt not in ("csv", "parquet"):
            raise GridError("Downloads are CSV or Parquet.")
        positions = result.view(_sorts(data.get("sort")), _filters(data.get("filters")))
        chunks = (
            csv_chunks(result.frame, positions)
            if fmt == "csv"
            else parquet_chunks(result.frame, positions)
        )
        for n, chunk in enumerate(chunks):
            send({"ok": True, "chunk": n, "last": False}, [chunk])
        mime = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        send({"ok": True, "last": True, "name": f"{result.name}.{fmt}", "mime": mime}, None)

    def open(self, comm: Any, _msg: Any = None) -> None:
        """The comm target: serve each message of a grid's comm."""

        def send(msg: dict[str, Any], buffers: list[bytes] | None) -> None:
            comm.send(msg, buffers=buffers)

        @comm.on_msg
        def _received(msg: dict[str, Any]) -> None:
            data = msg.get("content", {}).get("data")
            if isinstance(data, dict):
                self.handle(data, send)


def register(shell: Any, service: GridService) -> bool:
    """Register the comm target in ``shell``'s kernel (none outside a kernel)."""
    kernel = getattr(shell, "kernel", None)
    manager = getattr(kernel, "comm_manager", None)
    if manager is None:
        return False
    manager.register_target(COMM_TARGET, service.open)
    return True
