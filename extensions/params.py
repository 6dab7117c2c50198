"""Query parameters from the notebook's variables: ``{{ name }}`` and ``{{ ident(name) }}``.

Pure functions, no I/O.

**The marker.** ``{{ name }}`` binds the value of the notebook variable ``name``;
``{{ ident(name) }}`` pastes it as a quoted identifier (a table, schema or column name).
``{{`` was chosen because it never occurs in valid Trino SQL outside string literals,
quoted identifiers and comments (Trino has no ``{`` in expressions; row-pattern
quantifiers ``A{2,3}`` and exclusions ``{- A -}`` never open with two braces). The usual
alternatives break valid SQL: ``:name`` (ipython-sql, JupySQL) trips over ``::`` casts,
``:1`` and colons in pasted JSON, ``$name`` over ``$`` in names and JSON paths, and ``?``
is the prepared-statement marker itself. JupySQL's ``{{ name }}`` pastes text into the
SQL; here the same spelling binds a value, which is safe by construction. A small tokenizer
skips ``'strings'`` (with ``''``), ``"quoted identifiers"`` (with ``""``), ```backquoted```
names, ``-- line`` and ``/* block */`` comments, so JSON literals, regular expressions
with ``{n}``, ``'{{ not a marker }}'`` and colons all reach Trino unchanged. Statements
without markers are sent exactly as typed.

**Values are bound, never pasted.** Each value marker becomes a ``?`` and the value goes to
Trino through the ``trino`` client's own parameter formatting in the ``USING`` clause of
``EXECUTE IMMEDIATE`` (see :func:`datahub.extensions.statement.prepare`), so
``'; DROP TABLE t; --`` arrives as a string. Python values map as the client maps them:
``None`` → NULL, bool, int → bigint (larger → decimal), float → double, str → varchar,
bytes → varbinary, ``Decimal`` → decimal, ``date``/``datetime``/``time`` → date/timestamp/
time, ``uuid.UUID`` → uuid, list → array, tuple → row, dict → map. numpy scalars, arrays,
pandas ``Series``/``Index``/``Timestamp`` and missing values are converted first.

**Identifiers** only through ``ident()``: a string becomes ``"name"`` with ``"`` doubled
(Trino's rule), a tuple or list of strings a qualified name ``"catalog"."schema"."table"``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from IPython.core.error import UsageError

from datahub.extensions.statement import Statement, line_and_column

__all__ = ["bind", "find_markers", "quote_identifier", "to_param_value", "Marker"]

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_MARKER = re.compile(
    rf"\{{\{{\s*(?:ident\s*\(\s*(?P<ident>{_NAME})\s*\)|(?P<value>{_NAME}))\s*\}}\}}"
)
_BIGINT = 2**63


class Marker:
    """One ``{{ … }}`` in the SQL: where it is, the variable name, and its form."""

    __slots__ = ("start", "end", "name", "ident")

    def __init__(self, start: int, end: int, name: str, ident: bool):
        self.start, self.end, self.name, self.ident = start, end, name, ident

    def __repr__(self) -> str:
        form = f"ident({self.name})" if self.ident else self.name
        return f"Marker({self.start}, {self.end}, {{{{ {form} }}}})"


def find_markers(sql: str) -> list[Marker]:
    """The parameter markers in ``sql``, outside strings, quoted names and comments.

    Raises ``UsageError`` for a ``{{`` that is not a well-formed marker.
    """
    markers: list[Marker] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i, ch)
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif sql.startswith("{{", i):
            m = _MARKER.match(sql, i)
            if m is None:
                line, _ = line_and_column(sql, i)
                close = sql.find("}}", i)
                shown = sql[i : close + 2] if 0 <= close < i + 80 else sql[i : i + 30] + "…"
                raise UsageError(
                    f"Cannot read the parameter {shown!r} on line {line}: write "
                    "{{ name }} for a value or {{ ident(name) }} for a table or column name."
                )
            ident = m.group("ident")
            markers.append(Marker(m.start(), m.end(), ident or m.group("value"), bool(ident)))
            i = m.end()
        else:
            i += 1
    return markers


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """Index just past the literal opened at ``i``; a doubled quote is part of it."""
    j = i + 1
    while True:
        k = sql.find(quote, j)
        if k < 0:
            return len(sql)  # unterminated: Trino reports it
        if sql.startswith(quote * 2, k):
            j = k + 2
            continue
        return k + 1


def lookup(namespace: Mapping[str, Any], name: str) -> Any:
    """The value of a (dotted) variable name: attributes, or keys of mappings."""
    head, *rest = name.split(".")
    if head not in namespace:
        raise UsageError(f"Parameter {{{{ {name} }}}}: there is no variable {head!r}.")
    value = namespace[head]
    path = head
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            raise UsageError(f"Parameter {{{{ {name} }}}}: {path} has no {part!r}.")
        path = f"{path}.{part}"
    return value


def to_param_value(value: Any, name: str = "?") -> Any:
    """``value`` as a Python value the trino client can format as a SQL literal.

    numpy and pandas values become plain Python ones; missing values (``pd.NA``, ``NaT``,
    missing entries of a ``Series``) become ``None``;
    integers too large for bigint become decimals; timezone-aware datetimes in zones other
    than ``zoneinfo`` ones are given in UTC (the client names only IANA zones correctly).
    Raises ``UsageError`` naming the parameter for anything else.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        if isinstance(value, np.datetime64):
            return None if np.isnat(value) else to_param_value(pd.Timestamp(value), name)
        return to_param_value(value.item(), name)
    if isinstance(value, bool | str | bytes | float | decimal.Decimal | uuid.UUID):
        return value
    if isinstance(value, int):
        if -_BIGINT <= value < _BIGINT:
            return value
        if len(str(abs(value))) <= 38:
            return decimal.Decimal(value)
        raise UsageError(f"Parameter {{{{ {name} }}}}: {value} has more than 38 digits.")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime):
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        if value.tzinfo is not None and not isinstance(value.tzinfo, ZoneInfo):
            value = value.astimezone(ZoneInfo("UTC"))
        return value
    if isinstance(value, dt.date | dt.time):
        return value
    if isinstance(value, pd.Timedelta | dt.timedelta):
        raise UsageError(
            f"Parameter {{{{ {name} }}}}: intervals cannot be bound; pass a number and write "
            "e.g. {{ days }} * INTERVAL '1' DAY."
        )
    if isinstance(value, tuple):
        return tuple(to_param_value(v, name) for v in value)
    if isinstance(value, Mapping):
        return {to_param_value(k, name): to_param_value(v, name) for k, v in value.items()}
    if isinstance(value, pd.Series | pd.Index):
        missing = value.isna().tolist()
        return [
            None if m else to_param_value(v, name)
            for v, m in zip(value.tolist(), missing, strict=True)
        ]
    if isinstance(value, list | set | frozenset | range | np.ndarray):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return [to_param_value(v, name) for v in items]
    raise UsageError(
        f"Parameter {{{{ {name} }}}}: a {type(value).__name__} cannot be sent to Trino; "
        "pass a number, string, date, datetime, bytes, list, tuple or dict."
    )


def quote_identifier(value: Any, name: str = "?") -> str:
    """Trino's quoted identifier for a string (``"a""b"``), or a qualified name for a
    tuple/list of strings (``"tpch"."tiny"."nation"``)."""
    parts = list(value) if isinstance(value, tuple | list) else [value]
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise UsageError(
            f"Parameter {{{{ ident({name}) }}}} needs a non-empty string, or a tuple of them "
            f"for a qualified name; {name} is {type(value).__name__} {value!r:.60}."
        )
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def bind(sql: str, namespace: Mapping[str, Any]) -> Statement:
    """Replace the markers of ``sql`` by ``?`` (values) or quoted identifiers.

    Returns the statement with its source map and the parameter values in order. Without
    markers the statement is the user's SQL, untouched.
    """
    markers = find_markers(sql)
    if not markers:
        return Statement.from_user(sql)
    text: list[str] = []
    origins: list[int | None] = []
    params: list[Any] = []
    param_origins: list[int] = []
    pos = 0
    for marker in markers:
        text.append(sql[pos : marker.start])
        origins.extend(range(pos, marker.start))
        value = lookup(namespace, marker.name)
        if marker.ident:
            piece = quote_identifier(value, marker.name)
        else:
            piece = "?"
            params.append(to_param_value(value, marker.name))
            param_origins.append(marker.start)
        text.append(piece)
        origins.extend([marker.start] * len(piece))
        pos = marker.end
    text.append(sql[pos:])
    origins.extend(range(pos, len(sql)))
    return Statement("".join(text), origins, params, param_origins)
