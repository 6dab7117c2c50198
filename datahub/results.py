"""Trino result pages → a typed pandas DataFrame.

Pure functions, no I/O. The input is what the Trino protocol sends: the ``columns`` list
(each with ``name`` and ``type``, the raw type string such as ``decimal(12,2)`` or
``row(a integer, b varchar)``) and the rows as decoded JSON (lists of str/int/float/bool/
None, nested lists and dicts). Whole columns are converted at once with pyarrow/numpy,
because this is the hot path: a million-row result must not pay for a Python call per value.
:class:`ResultBuilder` converts each page as it arrives (a page is transposed by numpy in
one pass, each column becomes an Arrow/numpy piece) so the decoded JSON can be dropped at
once; memory stays about the size of the typed result. Text columns keep the pages' Arrow
chunks without copying them.

Type mapping (one column dtype per Trino type, the same on every query):

=============================== ===================================== ===============
Trino                           pandas                                NULL
=============================== ===================================== ===============
tinyint/smallint/integer/bigint ``Int8``/``Int16``/``Int32``/``Int64`` ``pd.NA``
real / double                   ``float32`` / ``float64`` (NaN, ±inf)  ``NaN``
decimal(p, s)                   ``object`` of ``decimal.Decimal``      ``None``
varchar, char, json, uuid,      ``string`` (pyarrow-backed, pd.NA)     ``pd.NA``
ipaddress, interval year to
month, other text-like types
boolean                         ``boolean``                           ``pd.NA``
date                            ``datetime64[s]`` (midnight)          ``NaT``
timestamp(p)                    ``datetime64[us]`` (p ≤ 6) or ``[ns]`` ``NaT``
timestamp(p) with time zone     tz-aware ``datetime64[us|ns, zone]``; ``NaT``
                                mixed zones in one column → UTC
time / time with time zone      ``object`` of ``datetime.time``        ``None``
interval day to second          ``timedelta64[ns]``                   ``NaT``
varbinary                       ``object`` of ``bytes``                ``None``
array / map / row               ``object`` of list / dict / dict       ``None``
                                (unnamed row fields → tuple), with
                                the elements converted the same way
unknown (an untyped NULL)       ``object``                            ``None``
=============================== ===================================== ===============

Floats keep NaN for NULL (the pandas and numpy convention, and what charts need); Python-
object columns keep ``None`` like the nested values inside them. Dates are
``datetime64[s]`` rather than ``datetime.date`` objects so they sort, filter, resample and
plot like timestamps; ``[s]`` covers years 1–9999.
"""

from __future__ import annotations

import base64
import ctypes
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from datahub.json_rows import JsonColumn, JsonRows, NotText, rows_in_chunks, split_rows

__all__ = [
    "ColumnBuilder",
    "Pieces",
    "ResultBuilder",
    "TrinoType",
    "parse_type",
    "pandas_dtype",
    "convert_column",
    "to_dataframe",
    "value_converter",
]

_INT_DTYPES = {
    "tinyint": (pa.int8(), pd.Int8Dtype()),
    "smallint": (pa.int16(), pd.Int16Dtype()),
    "integer": (pa.int32(), pd.Int32Dtype()),
    "int": (pa.int32(), pd.Int32Dtype()),
    "bigint": (pa.int64(), pd.Int64Dtype()),
}
_FLOAT_DTYPES = {"real": np.float32, "double": np.float64, "float": np.float64}
# One string dtype everywhere: pyarrow-backed with pd.NA, matching the nullable Int/boolean
# dtypes (pandas 3's default ``str`` uses NaN for missing values instead).
STRING_DTYPE = pd.StringDtype("pyarrow")
_FLOAT_SPECIALS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


@dataclass(frozen=True)
class TrinoType:
    """A parsed Trino type: ``name`` (lower case, e.g. ``"timestamp with time zone"``),
    numeric ``params`` (precision/scale/length) and ``children`` for array/map/row
    (row children carry their field name in ``field_name``)."""

    name: str
    params: tuple[int, ...] = ()
    children: tuple[TrinoType, ...] = ()
    field_name: str | None = field(default=None, compare=False)

    @property
    def precision(self) -> int | None:
        """Fractional-second precision of time types, ``p`` of ``decimal(p, s)``."""
        return self.params[0] if self.params else None


_TOKEN = re.compile(
    r'\s*(?:(?P<quoted>"(?:[^"]|"")*")|(?P<word>[A-Za-z_][\w$]*)|(?P<num>\d+)|(?P<sym>[(),]))'
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse Trino type {text!r} at {pos}")
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def parse_type(text: str) -> TrinoType:
    """Parse a raw Trino type string (``"array(row(a integer, b varchar(3)))"``)."""
    tokens = _tokenize(text)
    t, pos = _parse(tokens, 0)
    if pos != len(tokens):
        raise ValueError(f"cannot parse Trino type {text!r}")
    return t


def _parse(tokens: list[tuple[str, str]], pos: int) -> tuple[TrinoType, int]:
    words: list[str] = []
    while pos < len(tokens) and tokens[pos][0] == "word":
        words.append(tokens[pos][1].lower())
        pos += 1
    if not words:
        raise ValueError(f"expected a type name, got {tokens[pos : pos + 1]}")
    params: list[int] = []
    children: list[TrinoType] = []
    if pos < len(tokens) and tokens[pos] == ("sym", "("):
        pos += 1
        while True:
            kind, value = tokens[pos]
            if kind == "num":
                params.append(int(value))
                pos += 1
            else:
                child, pos = _parse_child(tokens, pos, row=words[0] == "row")
                children.append(child)
            kind, value = tokens[pos]
            pos += 1
            if value == ")":
                break
            if value != ",":
                raise ValueError(f"unexpected {value!r} in type")
    # Suffix words after the parameters: "timestamp(3) with time zone".
    while pos < len(tokens) and tokens[pos][0] == "word":
        words.append(tokens[pos][1].lower())
        pos += 1
    return TrinoType(" ".join(words), tuple(params), tuple(children)), pos


def _parse_child(tokens: list[tuple[str, str]], pos: int, row: bool) -> tuple[TrinoType, int]:
    name = None
    if row:
        kind, value = tokens[pos]
        nxt = tokens[pos + 1] if pos + 1 < len(tokens) else ("sym", ")")
        # A row field is "name type" (two leading words, or a quoted name) or just "type".
        if kind == "quoted":
            name = value[1:-1].replace('""', '"')
            pos += 1
        elif kind == "word" and nxt[0] == "word" and not _is_multiword_type(tokens, pos):
            name = value
            pos += 1
    child, pos = _parse(tokens, pos)
    if name is not None:
        child = TrinoType(child.name, child.params, child.children, field_name=name)
    return child, pos


def _is_multiword_type(tokens: list[tuple[str, str]], pos: int) -> bool:
    """Whether the words at ``pos`` begin a multi-word type name rather than 'field type'."""
    first = tokens[pos][1].lower()
    second = tokens[pos + 1][1].lower()
    if first == "double" and second == "precision":
        return True
    if first in ("time", "timestamp") and second == "with":
        return True
    return first == "interval" and second in {"day", "year", "month", "hour", "minute", "second"}


def _as_type(t: TrinoType | str | dict) -> TrinoType:
    if isinstance(t, TrinoType):
        return t
    if isinstance(t, dict):  # a protocol column
        return parse_type(t["type"])
    return parse_type(t)


# --------------------------------------------------------------------------- scalar values


def _to_float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        return _FLOAT_SPECIALS[v]
    return float(v)


def _parse_timestamp(v: str, zone: str | None = None) -> pd.Timestamp:
    return pd.Timestamp(v, tz=_tzinfo(zone) if zone else None)


_OFFSET = re.compile(r"^([+-])(\d{1,2}):?(\d{2})$")


def _tzinfo(zone: str) -> dt.tzinfo:
    """A tzinfo for a Trino zone: a region id (``Europe/Berlin``), ``UTC`` or ``+05:30``."""
    m = _OFFSET.match(zone)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        delta = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return dt.timezone(sign * delta)
    if zone in ("UTC", "Z", "GMT"):
        return dt.UTC
    return ZoneInfo(zone)


def _parse_time(v: str) -> dt.time:
    # Trino sends up to 12 fractional digits; Python time keeps microseconds.
    m = re.match(r"^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(.*)$", v)
    if not m:
        raise ValueError(f"unexpected time value {v!r}")
    h, mi, s, frac, rest = m.groups()
    micro = int((frac or "").ljust(6, "0")[:6])
    tz = _tzinfo(rest) if rest else None
    return dt.time(int(h), int(mi), int(s), micro, tzinfo=tz)


def _parse_interval_day(v: str) -> pd.Timedelta:
    # "2 03:04:05.678" or "-2 03:04:05.678": days then a clock.
    sign = -1 if v.startswith("-") else 1
    days, clock = v.lstrip("-").split(" ", 1)
    h, m, s = clock.split(":")
    return sign * pd.Timedelta(days=int(days), hours=int(h), minutes=int(m), seconds=float(s))


def value_converter(t: TrinoType | str) -> Callable[[Any], Any]:
    """A function converting one JSON value of type ``t`` to its Python value (None stays
    None). Used for values nested in array/map/row, where columns cannot be vectorised."""
    t = _as_type(t)
    name = t.name

    def nullable(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda v: None if v is None else fn(v)

    if name in _INT_DTYPES:
        return nullable(int)
    if name in _FLOAT_DTYPES or name == "double precision":
        return _to_float
    if name == "decimal":
        return nullable(Decimal)
    if name == "boolean":
        return nullable(bool)
    if name == "date":
        return nullable(dt.date.fromisoformat)
    if name == "timestamp":
        return nullable(pd.Timestamp)
    if name == "timestamp with time zone":
        return nullable(lambda v: _parse_timestamp(*v.rsplit(" ", 1)))
    if name in ("time", "time with time zone"):
        return nullable(_parse_time)
    if name == "interval day to second":
        return nullable(_parse_interval_day)
    if name == "varbinary":
        return nullable(base64.b64decode)
    if name == "array":
        elem = value_converter(t.children[0])
        return nullable(lambda v: [elem(x) for x in v])
    if name == "map":
        key, val = (value_converter(c) for c in t.children)
        return nullable(lambda v: {key(k): val(x) for k, x in v.items()})
    if name == "row":
        convs = [value_converter(c) for c in t.children]
        names = [c.field_name for c in t.children]
        if all(names):
            return nullable(lambda v: {n: c(x) for n, c, x in zip(names, convs, v, strict=True)})
        return nullable(lambda v: tuple(c(x) for c, x in zip(convs, v, strict=True)))
    return lambda v: v


# --------------------------------------------------------------------------- whole columns


def pandas_dtype(t: TrinoType | str) -> Any:
    """The pandas dtype a column of Trino type ``t`` gets (see the module docstring)."""
    t = _as_type(t)
    name = t.name
    if name in _INT_DTYPES:
        return _INT_DTYPES[name][1]
    if name in _FLOAT_DTYPES:
        return np.dtype(_FLOAT_DTYPES[name])
    if name == "double precision":
        return np.dtype(np.float64)
    if name == "boolean":
        return pd.BooleanDtype()
    if name == "date":
        return np.dtype("datetime64[s]")
    if name == "timestamp":
        return np.dtype(f"datetime64[{_time_unit(t)}]")
    if name == "timestamp with time zone":
        return None  # depends on the zones in the data
    if name == "interval day to second":
        return np.dtype("timedelta64[ns]")
    if name in _OBJECT_TYPES:
        return np.dtype(object)
    return STRING_DTYPE


_NESTED_TYPES = frozenset({"array", "map", "row"})
_OBJECT_TYPES = {
    "decimal",
    "time",
    "time with time zone",
    "varbinary",
    "array",
    "map",
    "row",
    "unknown",
}


def _time_unit(t: TrinoType) -> str:
    # timestamp(3) is Trino's default; up to 6 digits fit microseconds exactly.
    p = t.precision if t.precision is not None else 3
    return "us" if p <= 6 else "ns"


def _object_array(values: Sequence[Any], conv: Callable[[Any], Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [conv(v) for v in values]
    return out


def _object_values(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class ColumnBuilder:
    """Builds one typed column from the pieces of a result, segment by segment.

    Each page's (or segment's) values are converted to a compact array (Arrow or numpy)
    as they arrive, so their raw form can be freed at once: memory stays about the size
    of the typed result rather than the size of a million rows of Python objects.
    :meth:`piece` and :meth:`json_piece` only convert (any thread may call them, several
    at once); :meth:`append` keeps a piece, in order; :meth:`finish` joins the pieces into
    the pandas array of the column's dtype.
    """

    def __init__(self, t: TrinoType | str | dict):
        self.type = _as_type(t)
        name = self.type.name
        self._chunks: list[Any] = []
        if name in _INT_DTYPES:
            self._kind = "int"
        elif name in _FLOAT_DTYPES or name == "double precision":
            self._kind = "float"
        elif name == "boolean":
            self._kind = "boolean"
        elif name == "decimal":
            self._kind = "decimal"
        elif name == "date":
            self._kind = "date"
        elif name == "timestamp":
            self._kind = "timestamp"
        elif name == "timestamp with time zone":
            self._kind = "timestamp_tz"
        elif name == "interval day to second":
            self._kind = "interval"
        elif name in _OBJECT_TYPES:
            self._kind = "object"
            self._convert = value_converter(self.type)
        else:
            # Text-like types (varchar, char, json, uuid, ipaddress, ...): strings as sent.
            self._kind = "string"

    def add(self, values: Sequence[Any]) -> None:
        """Convert one page's values (a list of raw JSON values) and keep the result."""
        self.append(self.piece(values))

    def piece(self, values: Sequence[Any]) -> Any:
        """One page's values (raw JSON values as Python objects) converted."""
        kind = self._kind
        if kind == "int":
            return pa.array(values, type=_INT_DTYPES[self.type.name][0])
        if kind == "float":
            try:
                arr = pa.array(values, type=pa.float64())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # NaN / Infinity arrive as strings; only then pay for a Python pass.
                arr = pa.array([_to_float(v) for v in values], type=pa.float64())
            return self._floats(arr)
        if kind == "boolean":
            return pa.array(values, type=pa.bool_())
        if kind == "decimal":
            try:
                # map() with the C constructor is several times faster than a comprehension.
                return _object_values(list(map(Decimal, values)))
            except TypeError:  # a None somewhere
                return _object_array(values, value_converter(self.type))
        if kind == "date":
            return pa.array(values, type=pa.string()).cast(pa.date32())
        if kind == "timestamp":
            return _timestamps(values, _time_unit(self.type))
        if kind == "timestamp_tz":
            # Zones may differ between pages; decided once in finish().
            return pa.array(values, type=pa.string())
        if kind == "interval":
            deltas = [None if v is None else _parse_interval_day(v) for v in values]
            return pd.to_timedelta(deltas).as_unit("ns").to_numpy()
        if kind == "object":
            return _object_array(values, self._convert)
        try:
            return pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Not all strings (a type we do not know): Python values as they are.
            return _object_values(values)

    def json_piece(self, column: JsonColumn) -> Any:
        """One segment's values, still JSON text (:mod:`datahub.json_rows`), converted:
        by Arrow in bulk, or as Python objects only for the types that become objects."""
        kind = self._kind
        try:
            if kind == "int":
                return column.parse(_INT_DTYPES[self.type.name][0])
            if kind == "float":
                return self._floats(column.parse(pa.float64()))
            if kind == "boolean":
                return column.booleans()
            if kind == "date":
                return column.parse(pa.date32())
            if kind == "timestamp":
                return _timestamps(column.strings(), _time_unit(self.type))
            if kind == "timestamp_tz":
                return column.strings()
            if kind == "string":
                return column.strings()
        except NotText:
            pass  # not the JSON this type is sent as: read it as JSON
        return self.piece(column.python())

    def _floats(self, arr: pa.Array) -> np.ndarray:
        np_type = _FLOAT_DTYPES.get(self.type.name, np.float64)
        return arr.to_numpy(zero_copy_only=False).astype(np_type, copy=False)

    def append(self, piece: Any) -> None:
        """Keep one converted piece (pieces are kept in the order they are appended)."""
        if self._kind == "string" and isinstance(piece, np.ndarray):
            # A text column with a value that is not a string: keep Python values.
            self._chunks = [_object_values(c.to_pylist()) for c in self._chunks]
            self._kind = "raw"
        if self._kind == "raw" and not isinstance(piece, np.ndarray):
            piece = _object_values(piece.to_pylist())
        self._chunks.append(piece)

    def finish(self) -> Any:
        """The whole column as a pandas-ready array (see the module's type table)."""
        kind, chunks = self._kind, self._chunks
        self._chunks = []
        if kind == "int":
            pa_type, dtype = _INT_DTYPES[self.type.name]
            return dtype.__from_arrow__(pa.chunked_array(chunks, type=pa_type))
        if kind == "boolean":
            return pd.BooleanDtype().__from_arrow__(pa.chunked_array(chunks, type=pa.bool_()))
        if kind == "date":
            joined = pa.chunked_array(chunks, type=pa.date32()).cast(pa.timestamp("s"))
            return joined.to_numpy()
        if kind == "timestamp_tz":
            return _timestamps_tz(pa.chunked_array(chunks, type=pa.string()), _time_unit(self.type))
        if kind == "string":
            # Zero-copy: the pandas string column keeps the pages' Arrow chunks.
            return STRING_DTYPE.__from_arrow__(pa.chunked_array(chunks, type=pa.string()))
        if not chunks:
            return _empty(self.type)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _empty(t: TrinoType) -> np.ndarray:
    dtype = pandas_dtype(t)
    return np.empty(0, dtype=dtype if isinstance(dtype, np.dtype) else object)


def convert_column(values: Sequence[Any], t: TrinoType | str) -> Any:
    """Convert one column of raw JSON values of Trino type ``t`` to a pandas array."""
    builder = ColumnBuilder(t)
    builder.add(values)
    return builder.finish()


def _timestamps(values: Sequence[Any] | pa.Array, unit: str) -> np.ndarray:
    if unit == "us":
        try:
            text = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
            return text.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # e.g. years beyond Arrow's parser; fall back to pandas below
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    # Nanosecond (or odd) precision: pandas parses up to 9 digits; Trino may send 12.
    cut = [None if v is None else _trim_fraction(v) for v in values]
    return pd.to_datetime(cut, format="ISO8601").as_unit(unit).to_numpy()


_FRACTION = re.compile(r"(\.\d{9})\d+")


def _trim_fraction(v: str) -> str:
    return _FRACTION.sub(r"\1", v)


def _timestamps_tz(values: pa.ChunkedArray | Sequence[Any], unit: str) -> Any:
    if not isinstance(values, pa.ChunkedArray | pa.Array):
        values = pa.array(values, type=pa.string())
    s = pd.Series(STRING_DTYPE.__from_arrow__(values))
    parts = s.str.rsplit(" ", n=1, expand=True)
    if parts.shape[1] < 2:  # no value at all (empty or all NULL): UTC by convention
        return pd.array(
            np.full(len(s), np.datetime64("NaT", unit)), dtype=f"datetime64[{unit}, UTC]"
        )
    local = pd.Series(_timestamps(parts[0].to_numpy(dtype=object, na_value=None), unit))
    zones = parts[1].dropna().unique()
    if len(zones) <= 1:
        tz = _tzinfo(zones[0]) if len(zones) else dt.UTC
        return pd.array(_localize(local, tz))
    # Mixed zones cannot share one pandas dtype: normalise every value to UTC.
    out = pd.Series(pd.NaT, index=local.index, dtype=f"datetime64[{unit}, UTC]")
    for zone in zones:
        mask = (parts[1] == zone).fillna(False).to_numpy(dtype=bool)
        out[mask] = _localize(local[mask], _tzinfo(zone)).dt.tz_convert("UTC")
    return pd.array(out)


def _localize(local: pd.Series, tz: dt.tzinfo) -> pd.Series:
    # Trino prints wall-clock time in the zone; in the repeated hour of a DST change that
    # is ambiguous, and we take the first (summer time) reading rather than fail.
    return local.dt.tz_localize(
        tz, ambiguous=np.ones(len(local), dtype=bool), nonexistent="shift_forward"
    )


class ResultBuilder:
    """Builds a typed DataFrame from a result's pages as they arrive.

    ``columns`` as the protocol sends them (dicts with ``name`` and ``type``); call
    :meth:`add` with each page's rows (decoded JSON lists), or :meth:`decode` with a
    segment's JSON bytes (:meth:`convert` with rows already split) and :meth:`append`
    with what it returned, and :meth:`frame` at the end.
    """

    def __init__(self, columns: Sequence[dict[str, Any]]):
        self.names = [c["name"] for c in columns]
        self._builders = [ColumnBuilder(c["type"]) for c in columns]
        # Without array/map/row columns every value is a JSON scalar, and numpy can
        # transpose a page in one C pass.
        self._scalars_only = all(b.type.name not in _NESTED_TYPES for b in self._builders)
        self.rows = 0

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Convert one page of rows, column by column."""
        self.append(self._pieces(rows))

    def decode(self, plain: bytes) -> list[Pieces]:
        """A segment's rows (the bytes of a JSON array of rows) converted, column by
        column, without a Python object per value (:mod:`datahub.json_rows`) where its
        shape allows, else parsed with orjson a few MB at a time. Only converts: any
        thread may call it, several at once; :meth:`append` the answer in order."""
        rows = split_rows(plain, len(self._builders))
        if rows is None:
            return [self._pieces(chunk) for chunk in rows_in_chunks(plain)]
        return self.convert(rows)

    def convert(self, rows: JsonRows) -> list[Pieces]:
        """Rows whose value positions are known (a segment's, or a direct-protocol
        page's `data`: :mod:`datahub.direct_pages`) converted, column by column; as
        :meth:`decode`, any thread may call it."""
        if not len(rows):
            return []
        if rows.width != len(self._builders):
            return [self._pieces(rows.python())]  # not this result's width: as Python rows
        columns = [b.json_piece(rows.column(i)) for i, b in enumerate(self._builders)]
        return [Pieces(len(rows), columns)]

    def append(self, pieces: Pieces | Sequence[Pieces]) -> None:
        """Keep converted rows (from :meth:`decode`), after those appended before."""
        for part in [pieces] if isinstance(pieces, Pieces) else pieces:
            if not part.rows:
                continue
            for builder, piece in zip(self._builders, part.columns, strict=True):
                builder.append(piece)
            self.rows += part.rows

    def _pieces(self, rows: Sequence[Sequence[Any]]) -> Pieces:
        if not rows:
            return Pieces(0, [])
        width = len(self._builders)
        table = np.array(rows, dtype=object) if self._scalars_only else None
        if table is not None and table.shape == (len(rows), width):
            # Column views of one 2-D object array: about 3x faster than picking each
            # column out of the row lists.
            columns = [builder.piece(table[:, i]) for i, builder in enumerate(self._builders)]
        else:
            # map(itemgetter) transposes in C, faster than zip(*rows) on wide pages.
            columns = [
                builder.piece(list(map(itemgetter(i), rows)))
                for i, builder in enumerate(self._builders)
            ]
        return Pieces(len(rows), columns)

    def frame(self) -> pd.DataFrame:
        """The DataFrame of every row added so far (the builder is emptied)."""
        data = {}
        for i, builder in enumerate(self._builders):
            data[i] = builder.finish()
            # The column's pieces were freed, mostly in the arenas of the threads that
            # made them, where the next column's memory is not taken from: give them back,
            # or the process grows by the whole frame again while the frame is joined.
            release_free_memory()
        df = pd.DataFrame(data, copy=False)
        # Duplicate names (SELECT 1, 1) are legal SQL; set them after building by position.
        df.columns = self.names
        return df


def _malloc_trim() -> Callable[[int], int] | None:
    # The process's own symbols (libc's among them): no `ctypes.util.find_library`, which
    # runs ldconfig in a subprocess at every import.
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Takes a few milliseconds."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def arrow_on_the_c_heap() -> None:
    """Let Arrow allocate from the C heap (glibc's ``malloc``), where numpy and Python
    do, for the whole process; nothing elsewhere.

    pyarrow's own default allocator (mimalloc) hands the pages of freed arrays back to
    the system at once, so each segment's column pieces fault fresh pages in again:
    0.4–0.6 s of system CPU per million rows of a 16-column result in a fresh kernel,
    about a third of the conversion's CPU. From the C heap they are reused, and
    `release_free_memory` gives them back when the frame is joined.
    """
    if _MALLOC_TRIM is not None:
        pa.set_memory_pool(pa.system_memory_pool())


class Pieces(NamedTuple):
    """Some rows of a result, converted: one piece per column (see `ColumnBuilder`)."""

    rows: int
    columns: list[Any]


def to_dataframe(columns: Sequence[dict[str, Any]], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Build a typed DataFrame from a Trino result: ``columns`` as the protocol sends them
    (dicts with ``name`` and ``type``) and ``rows`` as decoded JSON lists."""
    builder = ResultBuilder(columns)
    builder.add(rows)
    return builder.frame()
