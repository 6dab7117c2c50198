"""SQL completion in the kernel: an IPython matcher active in ``%%sql`` cells and after
``%sql`` on a line, so Tab completes in JupyterLab, Notebook, VS Code, the terminal.

It finds the SQL and its options (``--catalog``, ``--schema``, ``--cluster``) around the
cursor (:func:`sql_at_cursor`), asks :mod:`datahub.extensions.completion` what fits there,
with the user's metadata from :class:`~datahub.extensions.metadata_client.MetadataClient`,
and returns the candidates ranked, typed (catalog, schema, table, view, column, field,
alias, join, function, keyword) and replacing just the name being typed.

``%sql refresh-completions`` drops the cached metadata (here and in the service) so new
tables show at once. In a kernel, inspecting a Trino function in SQL (Shift+Tab, or
JupyterLab's completer documentation panel) shows its signature and description, and the
kernel's completion reply carries each candidate's detail (a column's Trino type, a
function's signature) in the ``signature`` field of its ``_jupyter_types_experimental``
metadata, which DataHub's JupyterLab extension shows in the list.
"""

from __future__ import annotations

import functools
import logging
import re
import weakref
from dataclasses import dataclass
from typing import Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)
from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring
from traitlets import Bool, Float, Integer
from traitlets.config import Configurable

from datahub.extensions import completion
from datahub.extensions.metadata_client import MetadataClient
from datahub.extensions.service_client import ServiceClient

__all__ = [
    "SqlAtCursor",
    "SqlCompleter",
    "add_details",
    "detail_sql_completions",
    "inspect_sql_functions",
    "register",
    "sql_at_cursor",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SqlAtCursor:
    """The SQL of a magic around the cursor, the cursor's offset in it, and the magic's
    option text."""

    sql: str
    offset: int
    options: str


_CELL_MAGIC = re.compile(r"\A\s*%%sql(?=\s|\Z)")
_LINE_MAGIC = re.compile(r"(?:^|(?<=[\s=(]))%sql(?=\s|\Z)")


def _split(text: str) -> tuple[str, int]:
    """Options and where the SQL starts in the text after a magic's name, by the magic's
    own rule (``split_options``; imported here: the magic imports this module)."""
    from datahub.extensions.sql import split_options

    flags, valued = _option_names()
    try:
        opts, rest = split_options(text, flags, valued)
    except UsageError:
        return text, len(text)  # an option still waiting for its value
    return opts, (text.find(rest) if rest else len(text))


@functools.cache
def _option_names() -> tuple[frozenset[str], frozenset[str]]:
    from datahub.extensions.sql import SqlMagic, _option_names

    flags, valued = _option_names(SqlMagic.sql.parser)
    return frozenset(flags), frozenset(valued)


def sql_at_cursor(text: str, offset: int) -> SqlAtCursor | None:
    """The SQL around *offset* in a cell: its body (and any SQL after the options on the
    ``%%sql`` line) for a cell magic, the rest of the line for ``%sql``; None when the
    cursor is not in SQL (Python code, the magic's name or options)."""
    m = _CELL_MAGIC.match(text)
    if m:
        header_end = text.find("\n", m.end())
        header_end = len(text) if header_end < 0 else header_end
        opts, start = _split(text[m.end() : header_end])
        sql_start = m.end() + start
        if sql_start == header_end:  # no SQL on the header line: the body is the SQL
            sql_start = min(header_end + 1, len(text))
        on_header = offset <= header_end
        if offset < sql_start or (on_header and text[sql_start:offset].startswith("-")):
            return None  # the magic's name or options (a half-typed option, "--cata")
        # Any SQL after the options on the header, then the body, as the magic joins them.
        return SqlAtCursor(text[sql_start:], offset - sql_start, opts)
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    column = offset - line_start
    found = None
    for match in _LINE_MAGIC.finditer(line[:column]):
        found = match  # the last %sql before the cursor
    if found is None:
        return None
    opts, start = _split(line[found.end() :])
    sql_start = found.end() + start
    if column < sql_start:
        return None
    return SqlAtCursor(line[sql_start:], column - sql_start, opts)


class SqlCompleter(Configurable):
    """Completion of SQL in ``%%sql`` cells from the user's own metadata."""

    enabled = Bool(
        True,
        help="""Complete SQL in %%sql cells and %sql lines (Tab): catalogs, schemas,
        tables, columns (ROW fields too), aliases, join keys, functions and keywords, from
        what Trino lets you see.

        Example: %config SqlCompleter.enabled = False
        """,
    ).tag(config=True)

    cache_seconds = Float(
        60.0,
        help="""Seconds the kernel reuses metadata it got from the DataHub service (which
        has its own, longer cache: c.MetadataCatalog.ttl). `%sql refresh-completions`
        drops both.

        Example: %config SqlCompleter.cache_seconds = 300
        """,
    ).tag(config=True)

    timeout = Float(
        5.0,
        help="""Seconds completion waits for the DataHub service before offering keywords
        only (the first completion in a schema may run a metadata query on Trino).

        Example: %config SqlCompleter.timeout = 10
        """,
    ).tag(config=True)

    max_candidates = Integer(
        500,
        help="""Most candidates one completion offers (the best ranked; typing more of
        the name narrows the list). A schema may hold thousands of tables: listing them
        all on every key press would send megabytes to the browser for a list nobody
        scrolls.

        Example: %config SqlCompleter.max_candidates = 2000
        """,
    ).tag(config=True)

    def __init__(self, magic: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.magic = magic
        self._clients: dict[tuple, MetadataClient] = {}
        # The cell text of the last completion and its candidates' details by text.
        self._details: tuple[str, dict[str, str]] = ("", {})

    def client(self, hint: str | None) -> MetadataClient:
        """The metadata client for the magic's current API URL, token and routing hint."""
        ca_file = getattr(self.magic, "ca_file", "")
        key = (self.magic.api_url, str(self.magic.token), ca_file, hint)
        key += (self.timeout, self.cache_seconds)
        client = self._clients.get(key)
        if client is None:
            # The same service and trust as the magic's own requests (SqlMagic.ca_file).
            service = ServiceClient(
                self.magic.api_url, str(self.magic.token), ca_file=ca_file, timeout=self.timeout
            )
            client = MetadataClient(service, hint=hint, ttl=self.cache_seconds)
            self._clients[key] = client
        return client

    def _options(self, found: SqlAtCursor) -> tuple[str | None, str | None, str | None]:
        """The catalog, schema and routing hint that SQL runs with (its magic's options,
        else the magic's defaults)."""
        try:
            args = parse_argstring(self.magic.sql, found.options)
        except (UsageError, SystemExit):
            args = None
        catalog = getattr(args, "catalog", None) or self.magic.catalog
        schema = getattr(args, "schema", None) or self.magic.schema
        return catalog, schema, getattr(args, "cluster", None)

    def complete(self, text: str, offset: int) -> completion.Completion | None:
        """Candidates at *offset* in a cell's *text*; None outside SQL."""
        found = sql_at_cursor(text, offset)
        if found is None:
            return None
        catalog, schema, hint = self._options(found)
        return completion.complete(
            found.sql,
            found.offset,
            self.client(hint),
            default_catalog=catalog,
            default_schema=schema,
        )

    def inspect(self, text: str, offset: int) -> dict[str, str] | None:
        """The documentation of the Trino function at *offset* in a cell's SQL, as a
        MIME bundle (what Shift+Tab and JupyterLab's completer documentation panel
        show); None outside SQL or when the name is no function Trino offers."""
        if not self.enabled:
            return None
        found = sql_at_cursor(text, offset)
        if found is None:
            return None
        names = completion.function_at(found.sql, found.offset)
        if not names:
            return None
        doc = completion.function_doc(names, self.client(self._options(found)[2]).functions())
        return None if doc is None else {"text/plain": doc}

    def refresh(self) -> str:
        """Drop cached metadata here and in the service; a sentence saying so."""
        forgotten = self.client(None).refresh()
        for client in self._clients.values():
            client.forget()
        return f"Completions refreshed: {forgotten} cached metadata answers dropped."

    def details(self, text: str) -> dict[str, str]:
        """The details (a column's Trino type, a function's signature) of the candidates
        the last completion offered, by candidate text, if it was in *text*."""
        last_text, details = self._details
        return details if last_text == text else {}

    @context_matcher(priority=10)
    def matcher(self, context: CompletionContext) -> SimpleMatcherResult:
        """The IPython matcher (API v2)."""
        empty: SimpleMatcherResult = {"completions": [], "suppress": False}
        self._details = ("", {})
        if not self.enabled:
            return empty
        lines = context.full_text.split("\n")
        offset = sum(len(line) + 1 for line in lines[: context.cursor_line])
        offset += context.cursor_position
        result = self.complete(context.full_text, offset)
        if result is None or not result.candidates:
            return empty
        candidates = result.candidates[: self.max_candidates]
        self._details = (context.full_text, {c.text: c.detail for c in candidates if c.detail})
        return {
            "completions": [SimpleCompletion(c.text, type=c.type) for c in candidates],
            "matched_fragment": result.fragment,
            "suppress": True,
            "ordered": True,
        }


def register(shell: Any, magic: Any) -> SqlCompleter:
    """Add the SQL matcher to *shell*'s completer (once) and attach it to *magic*; in a
    kernel, answer inspection requests on Trino functions too."""
    sql_completer = SqlCompleter(magic, config=shell.config)
    shell.configurables.append(sql_completer)
    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "__qualname__", "") != _QUALNAME]
    matchers.append(sql_completer.matcher)
    magic.completer = sql_completer
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        inspect_sql_functions(kernel, magic)
        detail_sql_completions(kernel, magic)
    return sql_completer


def inspect_sql_functions(kernel: Any, magic: Any) -> None:
    """Let *kernel*'s inspection (``inspect_request``: Shift+Tab, the completer's
    documentation panel) document the Trino function at the cursor in SQL; anything
    else goes to IPython's own inspection. IPython has no hook for names that are not
    Python objects, so the kernel's handler is wrapped (once; a reload replaces it)."""
    original = _ORIGINAL_INSPECT.setdefault(kernel, kernel.do_inspect)

    def do_inspect(code, cursor_pos, detail_level=0, omit_sections=()):
        try:
            # JupyterLab's kernel completion provider, documenting the item it selected,
            # sends the code up to that item's end with the cursor past it: at the end.
            bundle = magic.completer.inspect(code, min(cursor_pos, len(code)))
        except Exception:  # inspection must never break the kernel's answer
            log.exception("SQL function documentation failed")
            bundle = None
        if bundle is None:
            return original(code, cursor_pos, detail_level, omit_sections)
        return {"status": "ok", "found": True, "data": bundle, "metadata": {}}

    kernel.do_inspect = do_inspect


#: Each kernel's own inspection handler, kept when the first registration wraps it.
_ORIGINAL_INSPECT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def detail_sql_completions(kernel: Any, magic: Any) -> None:
    """Let *kernel*'s completion reply (``complete_request``) carry the details of SQL
    candidates (a column's Trino type, a function's signature) for frontends that show
    them (DataHub's JupyterLab extension). IPython's matchers can only give a text and a
    type, so the kernel's handler is wrapped (once; a reload replaces it) and fills in the
    ``signature`` of each candidate in the reply's ``_jupyter_types_experimental``."""
    original = _ORIGINAL_COMPLETE.setdefault(kernel, kernel.do_complete)

    def do_complete(code, cursor_pos):
        reply = original(code, cursor_pos)
        if isinstance(reply, dict):
            add_details(reply, magic.completer.details(code))
        return reply

    kernel.do_complete = do_complete


def add_details(reply: dict, details: dict[str, str]) -> None:
    """Fill in the ``signature`` of each candidate of a completion *reply* whose text has
    a detail in *details* (and none yet)."""
    if not details:
        return
    for entry in reply.get("metadata", {}).get(_TYPES_KEY, ()):
        detail = details.get(entry.get("text", ""))
        if detail and not entry.get("signature"):
            entry["signature"] = detail


#: Each kernel's own completion handler, kept when the first registration wraps it.
_ORIGINAL_COMPLETE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Where ipykernel puts each candidate's type (and signature) in a completion reply.
_TYPES_KEY = "_jupyter_types_experimental"


_QUALNAME = SqlCompleter.matcher.__qualname__
