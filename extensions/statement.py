"""The statement the ``%%sql`` magic sends, built from the user's SQL, with a source map.

Pure functions, no I/O. The SQL in a cell is rarely sent as typed: parameter markers become
``?`` (see :mod:`datahub.extensions.params`), ``--limit`` wraps the query, ``--explain``
prefixes ``EXPLAIN``, and bound values travel as ``EXECUTE IMMEDIATE '…' USING …``. Trino
reports error locations in the text it received, so every :class:`Statement` keeps, for
each of its characters, the offset of the character of the user's SQL it came from; an
error's line and column map back to the user's own line with a caret under the right place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

__all__ = [
    "Statement",
    "SentStatement",
    "explain",
    "line_and_column",
    "prepare",
    "strip_sql",
    "wrap_limit",
]

_QUERY_START = re.compile(
    r"^(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*(select|with|values|table|\()", re.I | re.S
)


def strip_sql(sql: str) -> str:
    """Drop surrounding whitespace and trailing semicolons (Trino takes one statement)."""
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql


@dataclass
class Statement:
    """SQL text with, per character, the offset in the user's SQL it came from (``None``
    for text we added), and the values bound to its ``?`` markers, in order."""

    text: str
    origins: list[int | None]
    params: list[Any] = field(default_factory=list)
    #: Offset in the user's SQL of the marker each parameter came from.
    param_origins: list[int] = field(default_factory=list)

    @classmethod
    def from_user(cls, sql: str) -> Statement:
        """The user's SQL as it is: every character maps to itself."""
        return cls(sql, list(range(len(sql))))

    def wrapped(self, prefix: str, suffix: str = "") -> Statement:
        """This statement between added text (which maps to nothing)."""
        return Statement(
            prefix + self.text + suffix,
            [None] * len(prefix) + self.origins + [None] * len(suffix),
            list(self.params),
            list(self.param_origins),
        )

    def origin_at(self, line: int, column: int) -> int | None:
        """The user's offset for Trino's 1-based (line, column) in this text, if any."""
        offset = _offset(self.text, line, column)
        if offset is None:
            return None
        if offset < len(self.origins):
            return self.origins[offset]
        # Just past the end ("mismatched input '<EOF>'"): just past the user's last char.
        last = next((o for o in reversed(self.origins) if o is not None), None)
        return None if last is None else last + 1


def _offset(text: str, line: int, column: int) -> int | None:
    if line < 1 or column < 1:
        return None
    start = 0
    for _ in range(line - 1):
        nl = text.find("\n", start)
        if nl < 0:
            return None
        start = nl + 1
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    offset = start + column - 1
    return offset if offset <= end else None


@dataclass
class SentStatement:
    """What goes over the wire, and how to find an error's place in the user's SQL.

    With parameters the text is ``EXECUTE IMMEDIATE '<inner>' USING <values>``; Trino
    reports locations inside the string literal in the *inner* statement's lines and
    columns, shifted right by the literal's start column on the first line (and, for
    syntax errors, on every line).
    """

    text: str
    inner: Statement
    #: Column where the inner statement starts on line 1 (0: sent as it is).
    literal_column: int = 0

    def locate(self, line: int, column: int, syntax_error: bool = False) -> int | None:
        """Offset in the user's SQL of Trino's error location (None when not theirs)."""
        if self.literal_column and (line == 1 or syntax_error):
            shifted = column - self.literal_column
            column = shifted if shifted >= 1 else column
        return self.inner.origin_at(line, column)


def wrap_limit(stmt: Statement, limit: int) -> Statement:
    """Apply ``LIMIT limit`` on the server by wrapping a query.

    The user's SQL sits on its own lines so a trailing ``-- comment`` cannot swallow the
    closing parenthesis. Only queries (SELECT, WITH, VALUES, TABLE) can be wrapped.
    """
    if limit < 0:
        raise UsageError("--limit must be zero or more")
    if not _QUERY_START.match(stmt.text):
        raise UsageError("--limit works only on queries (SELECT, WITH, VALUES, TABLE)")
    # The user's own SQL runs either way; wrapping adds nothing they could not type.
    return stmt.wrapped("SELECT * FROM (\n", f"\n) LIMIT {int(limit)}")


def explain(stmt: Statement) -> Statement:
    """``EXPLAIN`` the statement (Trino's distributed plan, as text)."""
    return stmt.wrapped("EXPLAIN ")


def prepare(
    stmt: Statement, format_param: Callable[[Any], str], *, explain_plan: bool = False
) -> SentStatement:
    """The text to send for ``stmt``: as it is without parameters, else bound with
    ``EXECUTE IMMEDIATE '<stmt>' USING <values>`` — what ``trino`` 0.340's
    ``cursor.execute(sql, params)`` sends, with its own value formatting
    (``format_param``: ``'O''Brien'``, ``DATE '2024-01-31'``, ``ARRAY[…]``, …). The
    values never enter the statement text; Trino binds them to the ``?`` markers.
    """
    if not stmt.params:
        sent = explain(stmt) if explain_plan else stmt
        return SentStatement(sent.text, sent)
    prefix = ("EXPLAIN " if explain_plan else "") + "EXECUTE IMMEDIATE '"
    values = ",".join(format_param(v) for v in stmt.params)
    text = prefix + stmt.text.replace("'", "''") + "' USING " + values
    return SentStatement(text, stmt, literal_column=len(prefix))


def line_and_column(sql: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``sql``."""
    line = sql.count("\n", 0, offset) + 1
    start = sql.rfind("\n", 0, offset) + 1
    return line, offset - start + 1
