"""Format the SQL of a ``%%sql`` cell with sqlglot (Trino dialect), keeping the magic's
line, its options and the ``{{ … }}`` parameters as they were (pure, no I/O).

sqlglot is a maintained parser and generator that speaks Trino; parameters are not SQL,
so each is swapped for a placeholder name while sqlglot works and put back after.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot.errors import ParseError, TokenError

__all__ = ["FormatError", "FormattedCell", "format_cell", "format_sql"]

_PARAM = re.compile(r"\{\{.*?\}\}", re.S)
_PLACEHOLDER = "__datahub_param_{}__"


class FormatError(ValueError):
    """The SQL cannot be formatted (it does not parse); the message says where."""


def format_sql(sql: str) -> str:
    """*sql* (one or more statements) laid out by sqlglot in Trino's dialect."""
    params: list[str] = []

    def hide(m: re.Match[str]) -> str:
        params.append(m.group())
        return _PLACEHOLDER.format(len(params) - 1)

    hidden = _PARAM.sub(hide, sql)
    try:
        statements = sqlglot.transpile(hidden, read="trino", write="trino", pretty=True)
    except (ParseError, TokenError) as e:
        first = str(e).splitlines()[0] if str(e) else "it does not parse"
        raise FormatError(f"Cannot format this SQL: {first}") from None
    text = ";\n\n".join(s for s in statements if s.strip())
    for i, param in enumerate(params):
        text = text.replace(_PLACEHOLDER.format(i), param)
    return text


def format_cell(cell: str) -> str:
    """A ``%%sql`` cell with its SQL formatted; the first line (magic and options) kept."""
    header, sep, body = cell.partition("\n")
    if not header.lstrip().startswith("%%sql") or not body.strip():
        return cell
    return f"{header}{sep}{format_sql(body)}"


class FormattedCell:
    """What the JupyterLab "Format SQL" command gets back (as JSON) from the kernel: the
    cell's new text, or the one-sentence reason it stays as it is."""

    def __init__(self, cell: str) -> None:
        try:
            self.result = {"text": format_cell(cell)}
        except FormatError as e:
            self.result = {"error": str(e)}

    def _repr_json_(self) -> dict[str, str]:
        return self.result
