"""The metadata statements and the shapes of their answers (pure, no I/O).

Every statement reads Trino's own metadata views, which Trino filters by the access rules
of the session user: ``system.metadata.catalogs``, ``<catalog>.information_schema.*`` and
``SHOW FUNCTIONS``. Names from the request are passed as quoted identifiers or string
literals, never pasted as SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "MetadataRequest",
    "RequestError",
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
}

#: Longest name accepted (Trino's own limits are lower in practice).
MAX_NAME = 512


class RequestError(ValueError):
    """A malformed metadata request; the message is one sentence for the caller."""


@dataclass(frozen=True)
class MetadataRequest:
    """One metadata question: its kind and the names it is about."""

    kind: str
    catalog: str = ""
    schema: str = ""
    table: str = ""

    @classmethod
    def build(cls, kind: str, **names: str | None) -> MetadataRequest:
        """Check the kind and that exactly the names it needs are given."""
        if kind not in KINDS:
            raise RequestError(f"Unknown metadata kind {kind!r}; use one of {', '.join(KINDS)}.")
        values = {}
        for name in KINDS[kind]:
            value = (names.get(name) or "").strip()
            if not value:
                raise RequestError(f"Listing {kind} needs the {name} name (?{name}=…).")
            if len(value) > MAX_NAME or "\x00" in value:
                raise RequestError(f"The {name} name is not a valid name.")
            values[name] = value
        return cls(kind, **values)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.kind, self.catalog, self.schema, self.table)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
        where = f"table_schema = {_literal(request.schema)}"
        return f"SELECT table_name, table_type FROM {info}.tables WHERE {where} ORDER BY 1"  # noqa: S608
    where = f"table_schema = {_literal(request.schema)} AND table_name = {_literal(request.table)}"
    order = "ORDER BY ordinal_position"
    return f"SELECT column_name, data_type FROM {info}.columns WHERE {where} {order}"  # noqa: S608


def shape(request: MetadataRequest, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The JSON list answering *request* from the statement's rows."""
    if request.kind in ("catalogs", "schemas"):
        return [row[0] for row in rows]
    if request.kind == "tables":
        return [{"name": row[0], "type": row[1]} for row in rows]
    if request.kind == "columns":
        return [{"name": row[0], "type": row[1]} for row in rows]
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
