"""Result pages parsed and written back by the gateway: fast, and exactly as they came.

``orjson`` reads a page several times faster than the standard library, but reads an
integer beyond 64 bits as a float and refuses ``NaN``; the standard library keeps both as
they are. `loads` picks the parser a page allows and hands back the writer that matches
it, so a page written back says what the cluster said. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

#: Every digit as ``0``, any other byte as a space: 19 zeros in a row in a page so
#: translated are an integer literal that may not fit 64 bits (or digits in a string: a
#: false alarm). Several times faster than a regular expression's search.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_INTEGER = b"0" * 19

Dumps = Callable[[Any], bytes]


def loads(body: bytes) -> tuple[Any, Dumps]:
    """*body* parsed, and what writes it back: ``orjson``, unless the body may hold what
    it reads otherwise (an integer beyond 64 bits, as a float; 19 digits in a row) or
    refuses (``NaN``): then the standard library, which keeps them as they are. Raises
    ValueError for a body that is not JSON."""
    try:
        if _LONG_INTEGER in body.translate(_DIGITS):
            raise ValueError("may hold an integer beyond 64 bits")
        return orjson.loads(body), fast_dumps
    except ValueError:
        return json.loads(body), stdlib_dumps


def loads_page(body: bytes) -> tuple[dict[str, Any], Dumps] | None:
    """*body* parsed as a result page (a JSON object) with its writer (`loads`); None for
    a body that is not JSON or not an object."""
    try:
        page, dumps = loads(body)
    except ValueError:
        return None
    return (page, dumps) if isinstance(page, dict) else None


def fast_dumps(doc: Any) -> bytes:
    """*doc* (read by ``orjson``) written by ``orjson``; by the standard library when it
    holds what ``orjson`` cannot write (an integer beyond 64 bits put in since)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return stdlib_dumps(doc)


def stdlib_dumps(doc: Any) -> bytes:
    """*doc* written compactly by the standard library (non-ASCII text as it is)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def common(first: Dumps, second: Dumps) -> Dumps:
    """The writer for a page made of two pages' values, read by *first*'s and
    *second*'s parsers."""
    return first if first is second else stdlib_dumps
