"""SQL completion for ``%%sql`` cells: from the text and the cursor to ranked candidates.

Pure logic, no I/O: the caller passes a :class:`Catalog` (what the user may see; the
kernel's is :class:`datahub.extensions.metadata_client.MetadataClient`, which asks the
DataHub service, which asks Trino *as the user*). The steps:

1. :func:`lex` splits SQL into tokens with their offsets, tolerating unfinished input (an
   open string or comment runs to the end), and keeps ``{{ … }}`` parameters whole.
2. :func:`analyze` finds what is being typed at the cursor (a dotted path such as
   ``tpch.ti`` or ``o.``), the clause it is in (after ``FROM``/``JOIN`` a table, after
   ``SELECT``/``WHERE``/``ON`` a column, after ``USE`` a schema) and the tables in scope
   of the statement with their aliases (``FROM tpch.tiny.orders o``), the whole
   statement, so columns complete in a ``SELECT`` list written before its ``FROM``.
3. :func:`complete` turns that into candidates: catalogs, schemas, tables, columns of
   the tables in scope (``alias.`` narrows to one table; ``alias.col.`` walks the
   fields of a ``ROW`` column), join conditions after ``ON``, functions and keywords,
   ranked by what fits the clause, matched case-insensitively on the typed prefix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Candidate",
    "Catalog",
    "Column",
    "Completion",
    "Context",
    "Function",
    "Table",
    "TableRef",
    "Token",
    "analyze",
    "complete",
    "function_at",
    "function_doc",
    "lex",
    "parse_type",
    "quote_name",
]

# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Column:
    """A column (or a field of a ``ROW`` column) and its Trino type."""

    name: str
    type: str = ""
    fields: tuple[Column, ...] = ()


@dataclass(frozen=True)
class Table:
    """A table or view the user may see."""

    name: str
    type: str = "BASE TABLE"


@dataclass(frozen=True)
class Function:
    """A function Trino offers, with one signature for the list."""

    name: str
    signature: str = ""
    description: str = ""


class Catalog(Protocol):
    """What the user may see. Each method returns ``[]`` when the answer is unknown or
    refused; none raises (completion must never break typing)."""

    def catalogs(self) -> Sequence[str]: ...

    def schemas(self, catalog: str) -> Sequence[str]: ...

    def tables(self, catalog: str, schema: str) -> Sequence[Table]: ...

    def columns(self, catalog: str, schema: str, table: str) -> Sequence[Column]: ...

    def functions(self) -> Sequence[Function]: ...


# --------------------------------------------------------------------------- types


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses and double quotes."""
    parts, depth, start, quoted = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_FIELD = re.compile(r'\s*("(?:[^"]|"")*"|[^\s"]+)\s+(.*)', re.S)


def parse_type(type_text: str) -> tuple[Column, ...]:
    """The fields of a ``row(...)`` type as Columns (nested rows keep their fields);
    ``()`` for any other type. Field names may be quoted (``row("a b" integer)``)."""
    text = type_text.strip()
    if not (text.lower().startswith("row(") and text.endswith(")")):
        return ()
    fields = []
    for part in _split_top_level(text[4:-1]):
        m = _FIELD.match(part)
        if m is None:
            continue  # an anonymous field: nothing to complete
        name, ftype = m.group(1), m.group(2).strip()
        if name.startswith('"'):
            name = name[1:-1].replace('""', '"')
        fields.append(Column(name, ftype, parse_type(ftype)))
    return tuple(fields)


# --------------------------------------------------------------------------- lexing


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is word, quoted (a "quoted identifier"), string,
    number, param (``{{ … }}``), comment, punct or space."""

    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*(?:.|\n)*?(?:\*/|\Z))
  | (?P<param>\{\{(?:.|\n)*?(?:\}\}|\Z))
  | (?P<string>'(?:[^']|'')*(?:'|\Z))
  | (?P<quoted>"(?:[^"]|"")*(?:"|\Z))
  | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<punct>.)
    """,
    re.X | re.S,
)


def lex(sql: str) -> list[Token]:
    """Tokens of *sql* with their offsets; unfinished strings, quoted names, comments and
    parameters run to the end of the text (the user is still typing them)."""
    return [Token(m.lastgroup or "punct", m.group(), m.start()) for m in _TOKEN.finditer(sql)]


def _is_open(token: Token) -> bool:
    """Whether the token is unfinished (the cursor is inside it)."""
    t = token.text
    if token.kind == "string":
        return len(t) < 2 or not t.endswith("'") or t.count("'") % 2 == 1
    if token.kind == "comment":
        return t.startswith("--") or not t.endswith("*/") or len(t) < 4
    if token.kind == "param":
        return not t.endswith("}}") or len(t) < 4
    if token.kind == "quoted":
        return len(t) < 2 or t.count('"') % 2 == 1
    return False


# --------------------------------------------------------------------------- keywords


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Trino's SQL keywords offered as completions (reserved and the common non-reserved).
KEYWORDS = _words(
    """
    SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET FETCH FIRST NEXT ROWS ONLY WITH
    RECURSIVE AS ON USING JOIN INNER LEFT RIGHT FULL OUTER CROSS NATURAL UNION INTERSECT
    EXCEPT ALL DISTINCT AND OR NOT IN IS NULL LIKE ESCAPE BETWEEN EXISTS CASE WHEN THEN
    ELSE END CAST TRY_CAST ASC DESC NULLS LAST TRUE FALSE INTERVAL DATE TIME TIMESTAMP
    ZONE AT VALUES INSERT INTO UPDATE SET DELETE MERGE MATCHED CREATE TABLE VIEW SCHEMA
    DROP ALTER RENAME TO ADD COLUMN IF REPLACE SHOW CATALOGS SCHEMAS TABLES COLUMNS
    FUNCTIONS SESSION DESCRIBE EXPLAIN ANALYZE USE UNNEST ORDINALITY LATERAL WINDOW OVER
    PARTITION RANGE ROW PRECEDING FOLLOWING UNBOUNDED CURRENT FILTER GROUPING SETS CUBE
    ROLLUP TABLESAMPLE BERNOULLI SYSTEM ARRAY MAP
    """
)

#: Keywords after which a table name comes.
_TABLE_KEYWORDS = frozenset({"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "DESCRIBE"})
#: Keywords after which a column (or an expression) comes.
_COLUMN_KEYWORDS = frozenset(
    {
        "SELECT",
        "WHERE",
        "ON",
        "BY",
        "HAVING",
        "AND",
        "OR",
        "NOT",
        "SET",
        "WHEN",
        "THEN",
        "ELSE",
        "CASE",
        "DISTINCT",
        "IN",
        "IS",
        "LIKE",
        "BETWEEN",
        "USING",
        "RETURNING",
        "OVER",
        "PARTITION",
        "FILTER",
    }
)
#: Words that end a FROM clause's list of tables (and so can never be an alias).
_CLAUSE_WORDS = frozenset(KEYWORDS) | {"SEMI", "ANTI", "FOR", "SYSTEM_TIME", "VERSION"}
#: Operators after which an expression (a column) comes.
_EXPR_PUNCT = frozenset("=<>!+-*/%|,(")

# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class TableRef:
    """A table in a statement's scope: its dotted name as written, and its alias."""

    parts: tuple[str, ...]
    alias: str | None = None
    #: Offset of the name in the SQL (for "tables before the cursor" in join keys).
    start: int = 0

    @property
    def label(self) -> str:
        return self.alias or self.parts[-1]


@dataclass
class Context:
    """What the cursor is on: the dotted path typed so far (``qualifier`` before the last
    dot, ``prefix`` after it), what may come there (``kind``: table, column, schema,
    keyword, or none inside strings, comments and parameters) and the tables in scope."""

    kind: str
    prefix: str = ""
    qualifier: tuple[str, ...] = ()
    #: The typed text the completion replaces (the prefix with its opening quote).
    fragment: str = ""
    scope: list[TableRef] = field(default_factory=list)
    #: Tables joined with ON right before the cursor, for join conditions: the new one.
    joining: TableRef | None = None
    #: Whether the previous significant word begins a clause (FROM/SELECT…) as opposed
    #: to following a finished name (``FROM t |`` wants keywords or an alias).
    after_name: bool = False


def _name(token: Token) -> str:
    """The identifier a word or quoted token stands for (unquoted, lowercased words)."""
    if token.kind == "quoted":
        inner = token.text[1:-1] if token.text.endswith('"') and len(token.text) > 1 else ""
        return (inner or token.text[1:]).replace('""', '"')
    return token.text.lower()


def _statement_bounds(tokens: list[Token], offset: int) -> tuple[int, int]:
    """Indexes [start, end) of the statement's tokens that hold *offset* (split at ``;``)."""
    start, end = 0, len(tokens)
    for i, tok in enumerate(tokens):
        if tok.kind == "punct" and tok.text == ";":
            if tok.end <= offset:
                start = i + 1
            else:
                end = i
                break
    return start, end


def _is_name(token: Token) -> bool:
    return token.kind in ("word", "quoted")


def _significant(tokens: Iterable[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in ("space", "comment")]


def _read_path(tokens: list[Token], i: int) -> tuple[tuple[str, ...], int]:
    """A dotted name starting at ``tokens[i]``; returns its parts and the next index."""
    parts = []
    while i < len(tokens) and tokens[i].kind in ("word", "quoted"):
        parts.append(_name(tokens[i]))
        if (
            i + 2 < len(tokens)
            and tokens[i + 1].text == "."
            and tokens[i + 2].kind
            in (
                "word",
                "quoted",
            )
        ):
            i += 2
            continue
        i += 1
        break
    return tuple(parts), i


def _scope(tokens: list[Token]) -> list[TableRef]:
    """Tables referenced in a statement (FROM/JOIN/UPDATE/INTO lists) with aliases.

    Subqueries in parentheses are skipped (their columns are unknown here); names of
    common table expressions are not tables either.
    """
    refs: list[TableRef] = []
    ctes = set()
    i, n = 0, len(tokens)
    in_from = False
    while i < n:
        tok = tokens[i]
        word = tok.upper
        if word == "WITH" or (tok.text == "," and not in_from):
            # WITH name AS ( … ): a CTE name, not a catalog table.
            if (
                i + 2 < n
                and tokens[i + 1].kind in ("word", "quoted")
                and tokens[i + 2].upper == "AS"
            ):
                ctes.add(_name(tokens[i + 1]))
            i += 1
            continue
        if word in ("FROM", "JOIN", "UPDATE", "INTO") or (in_from and tok.text == ","):
            in_from = True
            j = i + 1
            if (
                j < n
                and tokens[j].kind in ("word", "quoted")
                and tokens[j].upper not in _CLAUSE_WORDS
            ):
                start = tokens[j].start
                parts, j = _read_path(tokens, j)
                alias = None
                if j < n and tokens[j].upper == "AS":
                    j += 1
                if (
                    j < n
                    and tokens[j].kind in ("word", "quoted")
                    and tokens[j].upper not in _CLAUSE_WORDS
                ):
                    alias = _name(tokens[j])
                    j += 1
                if not (len(parts) == 1 and parts[0] in ctes):
                    refs.append(TableRef(parts, alias, start))
                i = j
                continue
            i += 1
            continue
        if word in _CLAUSE_WORDS and word not in ("AS",) and tok.kind == "word":
            in_from = False
        i += 1
    return refs


def _typed_path(before: list[Token]) -> tuple[tuple[str, ...], str, str, int]:
    """The dotted path that ends at the cursor, from the tokens of the text before it:
    (qualifier parts, prefix, fragment, offset where the path starts)."""
    i = len(before)
    fragment = ""
    if i and before[-1].kind in ("word", "quoted"):
        fragment = before[-1].text
        i -= 1
    start = before[i].start if i < len(before) else (before[-1].end if before else 0)
    parts: list[str] = []
    while i >= 2 and before[i - 1].text == "." and before[i - 2].kind in ("word", "quoted"):
        parts.insert(0, _name(before[i - 2]))
        i -= 2
        start = before[i].start
    if fragment.startswith('"'):
        closed = len(fragment) > 1 and fragment.endswith('"') and fragment.count('"') % 2 == 0
        prefix = (fragment[1:-1] if closed else fragment[1:]).replace('""', '"')
    else:
        prefix = fragment
    return tuple(parts), prefix, fragment, start


def analyze(sql: str, offset: int) -> Context:
    """What may be completed at *offset* in *sql* (see :class:`Context`)."""
    offset = max(0, min(offset, len(sql)))
    before = lex(sql[:offset])
    if before and before[-1].kind in ("string", "comment", "param"):
        last = before[-1]
        if _is_open(last) or last.text.startswith("--"):
            return Context("none")
    tokens = lex(sql)
    start, end = _statement_bounds(tokens, offset)
    statement = _significant(tokens[start:end])
    scope = _scope(statement)
    qualifier, prefix, fragment, path_start = _typed_path(before)
    prior = [t for t in statement if t.end <= path_start]
    ctx = Context("keyword", prefix, qualifier, fragment, scope)
    if not prior:
        return ctx
    last = prior[-1]
    word = last.upper
    show = _starts(prior, "SHOW")
    if (word in _TABLE_KEYWORDS and not show) or (last.text == "," and _in_from_list(prior)):
        ctx.kind = "table"
    elif word == "USE":
        ctx.kind = "schema"
    elif show and word in ("FROM", "IN"):
        ctx.kind = "schema" if _has_word(prior, "TABLES") else "catalog"
    elif word in _COLUMN_KEYWORDS or (last.kind == "punct" and last.text in _EXPR_PUNCT):
        ctx.kind = "column"
        if word == "ON":
            ctx.joining = _joined_before(prior)
    elif last.kind in ("word", "quoted"):
        # After a finished name: "FROM t |" → alias or keyword; "SELECT a |" → keyword.
        ctx.after_name = True
    if qualifier and ctx.kind == "keyword":
        # "x." can only continue a name: a column path in an expression.
        ctx.kind = "column"
    return ctx


def _starts(tokens: list[Token], word: str) -> bool:
    return bool(tokens) and tokens[0].upper == word


def _has_word(tokens: list[Token], word: str) -> bool:
    return any(t.upper == word for t in tokens)


def _in_from_list(prior: list[Token]) -> bool:
    """Whether the comma ending *prior* separates tables of a FROM list."""
    depth = 0
    for tok in reversed(prior[:-1]):
        if tok.text == ")":
            depth += 1
        elif tok.text == "(":
            if depth == 0:
                return False
            depth -= 1
        elif depth == 0 and tok.kind == "word":
            if tok.upper == "FROM":
                return True
            if tok.upper in _CLAUSE_WORDS and tok.upper not in ("AS",):
                return False
    return False


def _joined_before(prior: list[Token]) -> TableRef | None:
    """The table of the JOIN right before an ``ON``."""
    for i in range(len(prior) - 1, -1, -1):
        if prior[i].upper == "JOIN":
            refs = _scope(prior[i:])
            return refs[0] if refs else None
    return None


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    """One completion: the text to insert, its kind (shown in the list), a detail (a
    column's type, a function's signature) and its rank (lower first)."""

    text: str
    type: str
    detail: str = ""
    rank: int = 50


@dataclass
class Completion:
    """Candidates for the text *fragment* before the cursor, which they replace."""

    fragment: str
    candidates: list[Candidate]


_PLAIN = re.compile(r"[a-z_][a-z0-9_]*\Z")


@functools.lru_cache(maxsize=65536)
def quote_name(name: str) -> str:
    """*name* as it must be written in SQL: bare when a plain lowercase identifier that is
    no keyword, else in double quotes."""
    if _PLAIN.match(name) and name.upper() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


#: Trino's reserved words: a name equal to one must be quoted.
_RESERVED = frozenset(
    _words(
        """
    ALTER AND AS BETWEEN BY CASE CAST CONSTRAINT CREATE CROSS CUBE CURRENT_CATALOG
    CURRENT_DATE CURRENT_PATH CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP
    CURRENT_USER DEALLOCATE DELETE DESCRIBE DISTINCT DROP ELSE END ESCAPE EXCEPT EXECUTE
    EXISTS EXTRACT FALSE FOR FROM FULL GROUP GROUPING HAVING IN INNER INSERT INTERSECT INTO
    IS JOIN JSON_ARRAY JSON_EXISTS JSON_OBJECT JSON_QUERY JSON_TABLE JSON_VALUE LEFT LIKE
    LISTAGG LOCALTIME LOCALTIMESTAMP NATURAL NORMALIZE NOT NULL ON OR ORDER OUTER PREPARE
    RECURSIVE RIGHT ROLLUP SELECT SKIP TABLE THEN TRIM TRUE UESCAPE UNION UNNEST USING
    VALUES WHEN WHERE WITH
    """
    )
)


def _matches(name: str, prefix: str) -> bool:
    return name.lower().startswith(prefix.lower())


class _Collector:
    """Gathers candidates that match the typed prefix, once per text."""

    def __init__(self, prefix: str, quoted: bool):
        self.prefix = prefix
        self._lower = prefix.lower()
        self.quoted = quoted
        self.items: dict[str, Candidate] = {}

    def add_name(self, name: str, type_: str, detail: str = "", rank: int = 50) -> None:
        # Called for every table of a schema on every key press: kept to the minimum.
        if not name.lower().startswith(self._lower):
            return
        text = '"' + name.replace('"', '""') + '"' if self.quoted else quote_name(name)
        self._add(Candidate(text, type_, detail, rank))

    def add_text(self, text: str, type_: str, detail: str = "", rank: int = 50) -> None:
        if self.quoted or not _matches(text, self.prefix):
            return
        self._add(Candidate(text, type_, detail, rank))

    def _add(self, candidate: Candidate) -> None:
        known = self.items.get(candidate.text)
        if known is None or candidate.rank < known.rank:
            self.items[candidate.text] = candidate

    def result(self) -> list[Candidate]:
        exact = self.prefix
        return sorted(
            self.items.values(),
            key=lambda c: (
                c.rank,
                not c.text.lstrip('"').startswith(exact),  # same case as typed first
                c.text.lower(),
            ),
        )


def complete(
    sql: str,
    offset: int,
    catalog: Catalog,
    *,
    default_catalog: str | None = None,
    default_schema: str | None = None,
) -> Completion:
    """Candidates for the cursor at *offset* in *sql*, from what *catalog* shows.

    ``default_catalog``/``default_schema`` are the session's (``--catalog``/``--schema``
    or ``SqlMagic.catalog``/``.schema``): unqualified names resolve in them.
    """
    ctx = analyze(sql, offset)
    if ctx.kind == "none":
        return Completion("", [])
    out = _Collector(ctx.prefix, ctx.fragment.startswith('"'))
    resolver = _Resolver(catalog, default_catalog, default_schema)
    if ctx.kind == "table":
        _tables(out, ctx.qualifier, resolver)
    elif ctx.kind == "schema":
        _schemas(out, ctx.qualifier, resolver)
    elif ctx.kind == "catalog":
        for name in catalog.catalogs():
            out.add_name(name, "catalog", rank=10)
    elif ctx.kind == "column":
        if ctx.qualifier:
            _qualified_columns(out, ctx, resolver)
        else:
            _columns(out, ctx, resolver)
    else:
        _keywords(out, ctx, resolver)
    return Completion(ctx.fragment, out.result())


class _Resolver:
    """Resolves written names against the session defaults and the user's catalog."""

    def __init__(self, catalog: Catalog, default_catalog: str | None, default_schema: str | None):
        self.catalog = catalog
        self.default_catalog = default_catalog
        self.default_schema = default_schema
        self._catalogs: set[str] | None = None

    def is_catalog(self, name: str) -> bool:
        if self._catalogs is None:
            self._catalogs = set(self.catalog.catalogs())
        return name in self._catalogs

    def table_path(self, parts: tuple[str, ...]) -> tuple[str, str, str] | None:
        """catalog, schema, table of a written table name, or None if unresolvable."""
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        if len(parts) == 2 and self.default_catalog:
            return self.default_catalog, parts[0], parts[1]
        if len(parts) == 1 and self.default_catalog and self.default_schema:
            return self.default_catalog, self.default_schema, parts[0]
        return None

    def columns(self, ref: TableRef) -> Sequence[Column]:
        path = self.table_path(ref.parts)
        return self.catalog.columns(*path) if path else ()


def _tables(out: _Collector, qualifier: tuple[str, ...], r: _Resolver) -> None:
    if not qualifier:
        for name in r.catalog.catalogs():
            out.add_name(name, "catalog", rank=30)
        if r.default_catalog:
            for name in r.catalog.schemas(r.default_catalog):
                out.add_name(name, "schema", rank=20)
            if r.default_schema:
                for t in r.catalog.tables(r.default_catalog, r.default_schema):
                    out.add_name(t.name, _table_kind(t), rank=10)
        return
    if len(qualifier) == 1:
        if r.is_catalog(qualifier[0]):
            for name in r.catalog.schemas(qualifier[0]):
                out.add_name(name, "schema", rank=10)
        if r.default_catalog:
            for t in r.catalog.tables(r.default_catalog, qualifier[0]):
                out.add_name(t.name, _table_kind(t), rank=20)
        return
    if len(qualifier) == 2:
        for t in r.catalog.tables(qualifier[0], qualifier[1]):
            out.add_name(t.name, _table_kind(t), rank=10)


def _table_kind(t: Table) -> str:
    return "view" if "VIEW" in t.type.upper() else "table"


def _schemas(out: _Collector, qualifier: tuple[str, ...], r: _Resolver) -> None:
    if not qualifier:
        for name in r.catalog.catalogs():
            out.add_name(name, "catalog", rank=20)
        if r.default_catalog:
            for name in r.catalog.schemas(r.default_catalog):
                out.add_name(name, "schema", rank=10)
    elif len(qualifier) == 1:
        for name in r.catalog.schemas(qualifier[0]):
            out.add_name(name, "schema", rank=10)


def _columns(out: _Collector, ctx: Context, r: _Resolver) -> None:
    if ctx.joining is not None:
        _join_conditions(out, ctx, r)
    several = len(ctx.scope) > 1
    for ref in ctx.scope:
        for col in r.columns(ref):
            detail = f"{col.type} · {ref.label}" if several else col.type
            out.add_name(col.name, "column", detail, rank=10)
    for ref in ctx.scope:
        if ref.alias:
            out.add_name(ref.alias, "alias", ".".join(ref.parts), rank=20)
        elif several:
            out.add_name(ref.parts[-1], "table", ".".join(ref.parts), rank=25)
    _functions(out, r, rank=30)
    _keyword_list(out, ctx, rank=40)


#: Column names that look like keys rank first among join conditions (tables often share
#: descriptive columns too, such as ``comment`` or ``name``).
_KEY_NAME = re.compile(r"(?:key|id|code|_sk|_no)\Z", re.I)


def _join_conditions(out: _Collector, ctx: Context, r: _Resolver) -> None:
    """``a.key = b.key`` for columns of the same name in the joined table and the
    tables before it (the natural join keys: tpch's ``custkey``, ``orderkey``…), those
    named like keys first."""
    new = ctx.joining
    if new is None:
        return
    new_cols = {c.name: c for c in r.columns(new)}
    if not new_cols:
        return
    for ref in ctx.scope:
        if ref.start >= new.start:
            continue
        for col in r.columns(ref):
            if col.name in new_cols:
                text = (
                    f"{quote_name(ref.label)}.{quote_name(col.name)} = "
                    f"{quote_name(new.label)}.{quote_name(col.name)}"
                )
                out.add_text(text, "join", col.type, rank=5 if _KEY_NAME.search(col.name) else 8)


def _qualified_columns(out: _Collector, ctx: Context, r: _Resolver) -> None:
    """After ``x.``: columns of the table whose alias or name is x; after ``x.col.``
    (or ``col.`` for a ROW column) its fields; otherwise (``catalog.``,
    ``catalog.schema.`` in an expression) schemas and tables."""
    head, rest = ctx.qualifier[0], ctx.qualifier[1:]
    columns = _columns_of_label(head, ctx.scope, r)
    kind = "column"
    if columns is None:
        row = next(
            (c for ref in ctx.scope for c in r.columns(ref) if c.name == head and c.fields), None
        )
        if row is None:
            _tables(out, ctx.qualifier, r)
            return
        columns, kind = row.fields, "field"
    for name in rest:
        match = next((c for c in columns if c.name == name), None)
        if match is None:
            return
        columns, kind = match.fields, "field"
    for col in columns:
        out.add_name(col.name, kind, col.type, rank=10)


def _columns_of_label(
    label: str, scope: Sequence[TableRef], r: _Resolver
) -> Sequence[Column] | None:
    """Columns of the table in scope called *label* (its alias, or its name when it has
    none); None when no table is."""
    for ref in scope:
        if label == ref.alias or (ref.alias is None and label == ref.parts[-1]):
            return r.columns(ref)
    return None


def _functions(out: _Collector, r: _Resolver, rank: int) -> None:
    for fn in r.catalog.functions():
        out.add_name(fn.name, "function", fn.signature, rank=rank)


def _keyword_list(out: _Collector, ctx: Context, rank: int) -> None:
    lower = bool(ctx.prefix) and ctx.prefix == ctx.prefix.lower()
    for kw in KEYWORDS:
        out.add_text(kw.lower() if lower else kw, "keyword", rank=rank)


def _keywords(out: _Collector, ctx: Context, r: _Resolver) -> None:
    _keyword_list(out, ctx, rank=10)
    if not ctx.after_name and ctx.prefix:
        _functions(out, r, rank=30)


# --------------------------------------------------------------------------- documentation


def function_at(sql: str, offset: int) -> list[str]:
    """Names (lowercased) that may be the function the cursor is about, nearest first:
    the word it is on, then the calls whose arguments it is in (``round(a + (b|))``
    gives ``b``, ``round``); none in strings, quoted names and parameters."""
    tokens = _significant(lex(sql))
    names = []
    for tok in tokens:
        if tok.start < offset < tok.end and tok.kind in ("string", "param", "quoted"):
            return []
        if tok.kind == "word" and tok.start <= offset <= tok.end:
            names.append(tok.text.lower())
    before = [t for t in tokens if t.end <= offset]
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        if before[i].text == ")":
            depth += 1
        elif before[i].text == "(":
            if depth:
                depth -= 1
            elif i and before[i - 1].kind == "word" and before[i - 1].upper not in _RESERVED:
                names.append(before[i - 1].text.lower())
    return names


def function_doc(names: Iterable[str], functions: Iterable[Function]) -> str | None:
    """The documentation of the first of *names* that is a Trino function: its
    signature and description (plain text); None when none is."""
    known = {fn.name.lower(): fn for fn in functions}
    for name in names:
        fn = known.get(name)
        if fn is not None:
            return "\n\n".join(part for part in (fn.signature or fn.name, fn.description) if part)
    return None
