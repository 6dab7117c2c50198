"""The metadata statements and the shapes of their answers (pure, no I/O).

Every statement reads Trino's own metadata views, which Trino filters by the access rules
of the session user: ``system.metadata.catalogs``, ``<catalog>.information_schema.*``,
``system.metadata.table_comments``, ``SHOW FUNCTIONS`` and ``SHOW COLUMNS`` (which has
the columns' comments). Names from the request are passed as quoted identifiers or
string literals, and a search's text as an escaped ``LIKE`` pattern, never pasted as SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..extensions.completion import Column, parse_type

__all__ = [
    "KINDS",
    "MAX_PAGE",
    "MetadataRequest",
    "RequestError",
    "like_pattern",
    "paging",
    "shape",
    "statement",
]

#: What can be asked for, and the names each needs.
KINDS: dict[str, tuple[str, ...]] = {
    "catalogs": (),
    "schemas": ("catalog",),
    "tables": ("catalog", "schema"),
    "columns": ("catalog", "schema", "table"),
    "functions": (),
    # The schema browser: a table's columns with comments and nested ROW fields, and
    # tables and columns whose name contains some text, in one catalog.
    "describe": ("catalog", "schema", "table"),
    "search": ("catalog", "text"),
}

#: Longest name accepted (Trino's own limits are lower in practice).
MAX_NAME = 512
#: Most entries in one page of a listing or a search.
MAX_PAGE = 1000


class RequestError(ValueError):
    """A malformed metadata request; the message is one sentence for the caller."""


@dataclass(frozen=True)
class MetadataRequest:
    """One metadata question: its kind and the names it is about."""

    kind: str
    catalog: str = ""
    schema: str = ""
    table: str = ""
    #: What a search looks for in table and column names (a substring, any case).
    text: str = ""
    #: A search's page: skip ``offset`` hits, return at most ``limit`` (0: not a search).
    offset: int = 0
    limit: int = 0

    @classmethod
    def build(
        cls, kind: str, *, offset: int = 0, limit: int = 0, **names: str | None
    ) -> MetadataRequest:
        """Check the kind and that exactly the names it needs are given; a search may
        also name a ``schema`` to look in, and is paged by *offset* and *limit*."""
        if kind not in KINDS:
            raise RequestError(f"Unknown metadata kind {kind!r}; use one of {', '.join(KINDS)}.")
        values: dict[str, Any] = {}
        wanted = KINDS[kind] + (("schema",) if kind == "search" else ())
        for name in wanted:
            value = (names.get(name) or "").strip()
            if not value and name in KINDS[kind]:
                what = "text to search for" if name == "text" else f"{name} name"
                raise RequestError(f"Listing {kind} needs the {what} (?{name}=…).")
            if len(value) > MAX_NAME or "\x00" in value:
                raise RequestError(f"The {name} name is not a valid name.")
            if value:
                values[name] = value
        if kind == "search":
            values["offset"], values["limit"] = offset, limit or 50
        return cls(kind, **values)

    @property
    def key(self) -> tuple[Any, ...]:
        return (
            self.kind,
            self.catalog,
            self.schema,
            self.table,
            self.text,
            self.offset,
            self.limit,
        )


def paging(offset: str | None, limit: str | None) -> tuple[int, int]:
    """``?offset=&limit=`` as numbers (limit 0: everything); RequestError otherwise."""
    try:
        start = int(offset or 0)
        count = int(limit or 0)
    except ValueError:
        raise RequestError("offset and limit must be whole numbers.") from None
    if start < 0 or not 0 <= count <= MAX_PAGE:
        raise RequestError(f"offset must be 0 or more and limit between 1 and {MAX_PAGE}.")
    return start, count


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def like_pattern(text: str) -> str:
    """A ``LIKE … ESCAPE '\\'`` pattern matching names that contain *text* (lowercase):
    its ``%``, ``_`` and ``\\`` match only themselves."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def statement(request: MetadataRequest) -> str:
    """The SQL that answers *request* as the session user."""
    if request.kind == "catalogs":
        return "SELECT catalog_name FROM system.metadata.catalogs ORDER BY 1"
    if request.kind == "functions":
        return "SHOW FUNCTIONS"
    # Names only ever enter the SQL through _ident and _literal (hence the noqa: S608).
    info = f"{_ident(request.catalog)}.information_schema"
    if request.kind == "schemas":
        return f"SELECT schema_name FROM {info}.schemata ORDER BY 1"  # noqa: S608
    if request.kind == "tables":
        return _tables(info, request)
    if request.kind == "describe":
        table = ".".join(_ident(n) for n in (request.catalog, request.schema, request.table))
        return f"SHOW COLUMNS FROM {table}"
    if request.kind == "search":
        return _search(info, request)
    where = f"table_schema = {_literal(request.schema)} AND table_name = {_literal(request.table)}"
    order = "ORDER BY ordinal_position"
    return f"SELECT column_name, data_type FROM {info}.columns WHERE {where} {order}"  # noqa: S608


def _tables(info: str, request: MetadataRequest) -> str:
    """A schema's tables with their type and comment. The comments come from
    ``system.metadata.table_comments``, which Trino filters by the same rules as the
    tables; the join names the catalog and schema so Trino reads only that schema's."""
    schema = _literal(request.schema)
    comments = (
        "system.metadata.table_comments c ON c.catalog_name = "
        f"{_literal(request.catalog)} AND c.schema_name = {schema} "
        "AND c.table_name = t.table_name"
    )
    return (
        "SELECT t.table_name, t.table_type, c.comment "  # noqa: S608
        f"FROM {info}.tables t LEFT JOIN {comments} "
        f"WHERE t.table_schema = {schema} ORDER BY 1"
    )


def _search(info: str, request: MetadataRequest) -> str:
    """Tables, then columns, whose name contains the text; one more hit than the page
    holds, so the caller knows whether there is a next page."""
    like = f"LIKE {_literal(like_pattern(request.text))} ESCAPE '\\'"
    schema = f" AND table_schema = {_literal(request.schema)}" if request.schema else ""
    tables = (
        "SELECT table_schema, table_name, table_type, NULL, NULL "  # noqa: S608
        f"FROM {info}.tables WHERE lower(table_name) {like}{schema}"
    )
    columns = (
        "SELECT table_schema, table_name, NULL, column_name, data_type "  # noqa: S608
        f"FROM {info}.columns WHERE lower(column_name) {like}{schema}"
    )
    page = f"OFFSET {int(request.offset)} LIMIT {int(request.limit) + 1}"
    return f"{tables} UNION ALL {columns} ORDER BY 1, 2, 4 NULLS FIRST {page}"


def _table(name: str, table_type: str, comment: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": table_type}
    if comment:
        entry["comment"] = comment
    return entry


def _column(column: Column, comment: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"name": column.name, "type": column.type}
    if comment:
        entry["comment"] = comment
    if column.fields:
        entry["fields"] = [_column(f) for f in column.fields]
    return entry


def shape(request: MetadataRequest, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The JSON list answering *request* from the statement's rows."""
    if request.kind in ("catalogs", "schemas"):
        return [row[0] for row in rows]
    if request.kind == "tables":
        return [_table(*row) for row in rows]
    if request.kind == "columns":
        return [{"name": row[0], "type": row[1]} for row in rows]
    if request.kind == "describe":
        # SHOW COLUMNS: Column, Type, Extra, Comment.
        return [
            _column(Column(row[0], row[1], parse_type(row[1] or "")), row[3] or "") for row in rows
        ]
    if request.kind == "search":
        hits = []
        for schema, table, table_type, column, column_type in rows:
            hit = {"schema": schema, "table": table}
            if column is None:
                hit["type"] = table_type
            else:
                hit.update(column=column, column_type=column_type)
            hits.append(hit)
        return hits
    # SHOW FUNCTIONS: Function, Return Type, Argument Types, Function Type, Deterministic,
    # Description; one entry per name (the first signature; overloads are many).
    seen: dict[str, dict[str, str]] = {}
    for row in rows:
        name = row[0]
        if name in seen:
            continue
        returns, args = row[1] or "", row[2] or ""
        seen[name] = {
            "name": name,
            "signature": f"{name}({args}) → {returns}" if returns else name,
            "kind": row[3] or "",
            "description": (row[5] if len(row) > 5 else "") or "",
        }
    return list(seen.values())
