"""A direct-protocol result page split into its rows, still JSON, and the rest, parsed.

Without spooling, Trino (and every PrestoDB cluster) sends a query's rows inline, as the
``data`` array of each result page (``{"id", "nextUri", "columns", "data": [[...], ...],
"stats", ...}``). Parsing a whole page with ``orjson`` makes a Python object of every
value; :func:`split_page` instead finds the page's top-level ``data`` array in its bytes
and leaves it to :mod:`datahub.json_rows` (value positions, then Arrow per column), and
parses only the small rest of the page.

The ``data`` key is found by reading the page from its start token by token (strings,
escapes included, and brackets: :data:`_TOKEN`) up to the top-level key ``data``, so
nothing inside a string or a nested value is taken for it, whatever the key order (Trino
writes ``columns`` before ``data``; a page re-encoded elsewhere may not). The array's end
is where :func:`datahub.json_rows.split_array` finds it closed. Anything unexpected (no
``data``, ``data`` not rows, a key twice, JSON that does not parse) leaves the page to
``orjson`` whole, which reads or refuses it as before.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from datahub.json_rows import split_array

__all__ = ["SMALL_PAGE", "split_page"]

#: Pages up to this size are parsed whole: their rows take less time to convert as Python
#: objects than the fixed cost of finding their positions.
SMALL_PAGE = 32 * 1024
#: Tokens read looking for ``data`` before giving up (Trino's come within the first few
#: hundred: ``id``, the URIs, ``columns``).
MAX_HEAD_TOKENS = 100_000

#: A JSON string (escapes included) or a structural character; numbers, literals and
#: whitespace are skipped between matches.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]')
_DATA_KEY = b'"data"'


def split_page(body: bytes) -> dict[str, Any]:
    """The page in *body* as a dict; its ``data``, when a large array of rows, as a
    :class:`~datahub.json_rows.JsonRows` over *body* instead of Python lists.

    Raises ``orjson.JSONDecodeError`` for a body that is not JSON, like ``orjson.loads``.
    """
    if len(body) > SMALL_PAGE:
        start = _data_start(body)
        found = split_array(body, start) if start is not None else None
        if found is not None:
            rows, end = found
            try:
                page = orjson.loads(body[:start] + b"null" + body[end:])
            except orjson.JSONDecodeError:
                page = None
            # A second "data" key (orjson keeps the last) or no object: read it whole.
            if isinstance(page, dict) and page.get("data", ...) is None:
                page["data"] = rows if len(rows) else []
                return page
    return orjson.loads(body)


def _data_start(body: bytes) -> int | None:
    """Where the value of the page object's top-level ``data`` key starts, or None."""
    depth = 0
    expect_key = False
    key = False  # the last token was a top-level key named data
    for count, token in enumerate(_TOKEN.finditer(body)):
        if count > MAX_HEAD_TOKENS:
            return None
        text = token.group()
        first = text[0]
        if count == 0 and first != 0x7B:
            return None  # not an object
        if first == 0x22:  # a string: a key where one is expected
            key = expect_key and (text == _DATA_KEY or _is_data(text))
            expect_key = False
            continue
        if first == 0x3A:  # ":"
            if key:
                return token.end()
            continue
        key = False
        if first in b"[{":
            depth += 1
            expect_key = depth == 1 and first == 0x7B
        elif first in b"]}":
            depth -= 1
            if depth <= 0:
                return None
        else:  # ","
            expect_key = depth == 1
    return None


def _is_data(key: bytes) -> bool:
    """Whether a key written with escapes (``"d\\u0061ta"``) is ``data``."""
    return b"\\" in key and orjson.loads(key) == "data"
