"""PrestoDB clusters behind a Trino gateway: the protocol translation, pure, no I/O.

Clients speak Trino's protocol to the gateway; a cluster with ``engine = "presto"`` speaks
PrestoDB's, which Trino forked from and which differs in the details:

* **Request headers** are ``X-Presto-*`` instead of ``X-Trino-*`` (`request_headers`).
  Presto has no SQL path (``X-Trino-Path``: refused with one sentence, see
  `unsupported_request`), no spooling protocol and other client capabilities (those two
  headers are dropped: Presto answers in plain JSON, which every Trino client reads).
* **Response headers** come back as ``X-Presto-Set-Session``, ``X-Presto-Added-Prepare``, ...
  and are renamed to Trino's (`response_headers`); Presto-only ones (session functions)
  are dropped.
* **Result pages** (`translate_page`): column types get Trino's names (Presto's
  ``timestamp`` is Trino's ``timestamp(3)``) and Trino's ``typeSignature`` shape (Presto
  writes ``typeArguments``/``literalArguments`` and row fields as type strings); ``stats``
  get Trino's fields (Presto reports no physical input bytes: its processed bytes stand
  in); ``error`` keeps Trino's keys only, without PrestoDB's Java stack frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..wire import PREPARED_STATEMENT_HEADER
from . import pagejson
from .presto_types import trino_type, value_fixer
from .statements import prepared_statements_header, split_execute_immediate

#: The engines a cluster may run.
TRINO = "trino"
PRESTO = "presto"
ENGINES = (TRINO, PRESTO)

# --------------------------------------------------------------------------- headers

#: Trino request headers Presto has under its own prefix (lower case Trino names).
_RENAMED_REQUEST = frozenset(
    {
        "user",
        "source",
        "catalog",
        "schema",
        "time-zone",
        "language",
        "session",
        "role",
        "client-tags",
        "client-info",
        "prepared-statement",
        "transaction-id",
        "trace-token",
        "resource-estimate",
    }
)

#: Trino request headers Presto lacks and that change nothing a query returns: dropped.
#: (Spooling: Presto answers in the plain JSON protocol, which clients read too.
#: Capabilities: Trino's names ``PARAMETRIC_DATETIME``, ``SESSION_AUTHORIZATION`` mean
#: nothing to Presto, whose timestamps are always milliseconds.)
_DROPPED_REQUEST = frozenset({"query-data-encoding", "client-capabilities"})

#: Trino request headers Presto lacks whose loss would change the query: the sentence.
_REFUSED_REQUEST = {
    "path": (
        "Presto clusters have no SQL path; run the query without a path setting "
        "(X-Trino-Path), or on a Trino cluster."
    ),
}

#: Presto response headers with a Trino counterpart (lower case Presto names).
_RENAMED_RESPONSE = frozenset(
    {
        "set-catalog",
        "set-schema",
        "set-session",
        "clear-session",
        "set-role",
        "added-prepare",
        "deallocated-prepare",
        "started-transaction-id",
        "clear-transaction-id",
    }
)

_TRINO, _PRESTO = "x-trino-", "x-presto-"


def _canonical(suffix: str) -> str:
    return "-".join(part.capitalize() for part in suffix.split("-"))


def unsupported_request(headers: Iterable[tuple[str, str]]) -> str | None:
    """The user's sentence if the client's *headers* ask for something Presto lacks."""
    for name, value in headers:
        lname = name.lower()
        if lname.startswith(_TRINO) and value.strip():
            message = _REFUSED_REQUEST.get(lname[len(_TRINO) :])
            if message:
                return message
    return None


def request_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers the gateway would send a Trino cluster, as a Presto cluster needs
    them: every ``X-Trino-*`` renamed ``X-Presto-*`` where Presto has it, dropped
    otherwise; other headers (``Authorization``, ``Content-Type``, ...) unchanged.

    The identity header comes from the gateway (``X-Trino-User`` → ``X-Presto-User``);
    the client's own ``X-Presto-*`` headers never reach here (`protocol.session_headers`
    forwards none).
    """
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lname = name.lower()
        if lname.startswith(_PRESTO):
            continue  # never the client's: only the gateway's renamed ones
        if not lname.startswith(_TRINO):
            out.append((name, value))
            continue
        suffix = lname[len(_TRINO) :]
        if suffix in _RENAMED_REQUEST:
            out.append(("X-Presto-" + _canonical(suffix), value))
    return out


#: The name under which an ``EXECUTE IMMEDIATE`` statement runs on Presto.
IMMEDIATE_NAME = "datahub_immediate"


def immediate_as_prepared(
    body: bytes, headers: Iterable[tuple[str, str]]
) -> tuple[bytes, list[tuple[str, str]]]:
    """``EXECUTE IMMEDIATE 'sql' USING …`` (what ``%%sql`` sends for parameters), which
    Presto lacks, as ``EXECUTE datahub_immediate USING …`` with ``sql`` in the prepared
    statement header (no round trip, nothing left in the client's session); any other
    statement unchanged. The client's prepared statements never travel with an
    ``EXECUTE IMMEDIATE`` (`statements.with_prepared_statements`), so none is replaced."""
    headers = list(headers)
    split = split_execute_immediate(body.decode("utf-8", "replace"))
    if split is None:
        return body, headers
    sql, rest = split
    prepared = prepared_statements_header({IMMEDIATE_NAME: sql}, [IMMEDIATE_NAME])
    lname = PREPARED_STATEMENT_HEADER.lower()
    headers = [(n, v) for n, v in headers if n.lower() != lname]
    headers.append((PREPARED_STATEMENT_HEADER, prepared or ""))
    return f"EXECUTE {IMMEDIATE_NAME}{rest}".encode(), headers


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A Presto cluster's response headers as a Trino cluster's: ``X-Presto-Set-Session``
    becomes ``X-Trino-Set-Session`` and so on; Presto-only ``X-Presto-*`` headers are
    dropped, and any ``X-Trino-*`` one (no Presto sends them) too."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lname = name.lower()
        if lname.startswith(_PRESTO):
            suffix = lname[len(_PRESTO) :]
            if suffix in _RENAMED_RESPONSE:
                out.append(("X-Trino-" + _canonical(suffix), value))
        elif not lname.startswith(_TRINO):
            out.append((name, value))
    return out


# ------------------------------------------------------------------------- pages

#: Trino's ``stats`` of a result page, with what each is when Presto has no value.
_TRINO_STATS: dict[str, Any] = {
    "state": "UNKNOWN",
    "queued": False,
    "scheduled": False,
    "nodes": 0,
    "totalSplits": 0,
    "queuedSplits": 0,
    "runningSplits": 0,
    "completedSplits": 0,
    "cpuTimeMillis": 0,
    "wallTimeMillis": 0,
    "queuedTimeMillis": 0,
    "elapsedTimeMillis": 0,
    "processedRows": 0,
    "processedBytes": 0,
    "physicalInputBytes": 0,
    "peakMemoryBytes": 0,
    "spilledBytes": 0,
}

#: Presto's states of a query that waits to start, which Trino clients know as QUEUED.
QUEUED_STATES = frozenset({"WAITING_FOR_PREREQUISITES"})

#: Trino's keys of a failed query's ``error`` and of its ``failureInfo``.
_ERROR_KEYS = (
    "message",
    "sqlState",
    "errorCode",
    "errorName",
    "errorType",
    "errorLocation",
    "failureInfo",
)
_FAILURE_KEYS = ("type", "message", "cause", "suppressed", "stack", "errorLocation")


def trino_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """A page's Presto ``stats`` as Trino's: Trino's fields only (Presto's stage tree and
    runtime statistics have other shapes), Trino's states only (a query waiting for its
    prerequisites is QUEUED), the physical input bytes Presto does not
    report taken from its processed (raw input) bytes, and the progress Trino clients
    show computed from the splits."""
    out = {key: stats.get(key, default) for key, default in _TRINO_STATS.items()}
    if out["state"] in QUEUED_STATES:
        out["state"], out["queued"] = "QUEUED", True
    if "physicalInputBytes" not in stats:
        out["physicalInputBytes"] = out["processedBytes"]
    total, done = out["totalSplits"], out["completedSplits"]
    if out["scheduled"] and isinstance(total, int) and isinstance(done, int) and total > 0:
        out["progressPercentage"] = min(100.0, 100.0 * done / total)
    return out


def _failure(info: Any) -> Any:
    """A ``failureInfo`` with Trino's keys, its Java stack frames (PrestoDB's internals)
    dropped at every level: pages of any size, even those too large for the relay's own
    check (`rewrite.clear_stack_frames`), reach clients without them."""
    if not isinstance(info, dict):
        return info
    out = {key: info[key] for key in _FAILURE_KEYS if key in info}
    if "stack" in out:
        out["stack"] = []
    if "cause" in out:
        out["cause"] = _failure(out["cause"])
    if isinstance(out.get("suppressed"), list):
        out["suppressed"] = [_failure(s) for s in out["suppressed"]]
    return out


#: Presto's error names for what Trino names otherwise (the per-query scan limit the
#: gateway sets from a quota, see `engine_limits.PRESTO_LIMITED_PROPERTIES`).
ERROR_NAMES = {"EXCEEDED_SCAN_RAW_BYTES_READ_LIMIT": "EXCEEDED_SCAN_LIMIT"}


def trino_error(error: dict[str, Any]) -> dict[str, Any]:
    """A failed query's Presto ``error`` with Trino's keys only (Presto adds
    ``retriable`` and ``errorCause``), Trino's name for it (`ERROR_NAMES`) and no stack
    frames."""
    out = {key: error[key] for key in _ERROR_KEYS if key in error}
    if out.get("errorName") in ERROR_NAMES:
        out["errorName"] = ERROR_NAMES[out["errorName"]]
    if "failureInfo" in out:
        out["failureInfo"] = _failure(out["failureInfo"])
    return out


def trino_column(column: dict[str, Any]) -> dict[str, Any]:
    """One Presto result column as Trino's: its type's Trino name and signature."""
    type_string, signature = trino_type(str(column.get("type", "")))
    return {"name": column.get("name"), "type": type_string, "typeSignature": signature}


def _fixers(columns: list[Any]) -> list[Any]:
    """Each (Trino) column's `value_fixer`."""
    return [
        value_fixer(c.get("typeSignature") or {}) if isinstance(c, dict) else None for c in columns
    ]


def _fixed_row(row: Any, fixers: list[Any]) -> Any:
    if not isinstance(row, list) or len(row) != len(fixers):
        return row
    return [v if f is None or v is None else f(v) for f, v in zip(fixers, row, strict=True)]


#: The keys a Trino page starts with, all strings (the gateway's streaming rewrite of
#: the URIs relies on it).
_HEAD_KEYS = ("id", "infoUri", "partialCancelUri", "nextUri")


def translate_document(page: dict[str, Any]) -> dict[str, Any]:
    """A parsed Presto result page as Trino's (see the module docstring), with Trino's
    head keys first, so the gateway's rewrite finds the URIs whatever Presto's order."""
    out: dict[str, Any] = {key: page[key] for key in _HEAD_KEYS if key in page}
    fixers: list[Any] = []
    for key, value in page.items():
        if key in out:
            continue
        if key == "columns" and isinstance(value, list):
            value = [trino_column(c) if isinstance(c, dict) else c for c in value]
            fixers = _fixers(value)
        elif key == "data" and isinstance(value, list) and any(fixers):
            value = [_fixed_row(row, fixers) for row in value]
        elif key == "stats" and isinstance(value, dict):
            value = trino_stats(value)
        elif key == "error" and isinstance(value, dict):
            value = trino_error(value)
        out[key] = value
    return out


#: Where a Presto page's rows start and end: Presto writes ``data`` just before ``stats``
#: (and such a key, quotes unescaped, cannot be inside a JSON string).
_DATA_KEY, _STATS_KEY = b'"data":[', b',"stats":{'


def translate_page(body: bytes) -> bytes:
    """A Presto answer's body as Trino's: a result page translated (`translate_document`),
    anything else (not JSON, not an object) unchanged.

    A page whose values all read the same in Trino (no column has a `value_fixer`) keeps
    its ``data`` as bytes: only the rest is parsed and rewritten (`_split_rows`), so a
    1 MB page costs well under a millisecond instead of 20 to 30 parsed and written whole.
    """
    split = _split_rows(body)
    if split is not None:
        page, rows = split
        translated = translate_document(page)
        if not any(_fixers(translated.get("columns") or [])):
            return _with_rows(translated, rows)
    parsed = pagejson.loads_page(body)
    if parsed is None:
        return body
    page, dumps = parsed
    return dumps(translate_document(page))


def _split_rows(body: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The page without its rows (``data`` null) and the rows' JSON array as it is; None
    when the page is not laid out as Presto writes one with rows."""
    start, end = body.find(_DATA_KEY), body.rfind(_STATS_KEY)
    if start < 0 or end < start or body[end - 1 : end] != b"]":
        return None
    start += len(_DATA_KEY) - 1
    parsed = pagejson.loads_page(body[:start] + b"null" + body[end:])
    if parsed is None or parsed[0].get("data", ...) is not None:
        return None
    return parsed[0], body[start:end]


def _with_rows(page: dict[str, Any], rows: bytes) -> bytes:
    """*page* written with *rows* (JSON) as its ``data``, in its place among the keys."""
    keys = list(page)
    at = keys.index("data")
    before = pagejson.stdlib_dumps({k: page[k] for k in keys[:at]})[:-1]
    after = pagejson.stdlib_dumps({k: page[k] for k in keys[at + 1 :]})[1:]
    return b"".join(
        (before, b"," if at else b"", b'"data":', rows, b"," if len(after) > 1 else b"", after)
    )
