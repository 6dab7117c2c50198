"""The Trino client protocol as the gateway needs it: pure functions, no I/O.

* **Headers.** Which of the client's headers reach Trino (session headers yes,
  identity never), and which of Trino's response headers reach the client.
* **Pages.** The facts of a result page the gateway acts on (`PageFacts`); the rewriting
  of pages is in ``rewrite.py``, the signed follow-up URIs in ``signing.py``.
* **Errors.** Trino-format error bodies and the gateway's QUEUED page, so every Trino
  client shows our messages as query errors; a cluster's non-Trino answer as one sentence.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..wire import (
    CLUSTER_ERROR,
    PERMISSION_DENIED,
    QUERY_DATA_ENCODING_HEADER,
    TRINO_USER_HEADER,
)

# --------------------------------------------------------------------------- headers

#: Client request headers forwarded to Trino (lower case). An allowlist rather than a
#: denylist: Trino has added identity headers over time (``X-Trino-Original-Roles``),
#: and an unknown new one must not slip through by default.
#:
#: ``X-Trino-Role`` is forwarded: it enables *catalog/system roles* of the session
#: user, and the session user is always the employee (set by the gateway), so Trino
#: checks the role against the employee's own grants; it cannot raise privileges
#: beyond what ``SET ROLE`` as the employee could.
FORWARDED_TRINO_HEADERS = frozenset(
    {
        "x-trino-source",
        "x-trino-catalog",
        "x-trino-schema",
        "x-trino-path",
        "x-trino-time-zone",
        "x-trino-language",
        "x-trino-session",
        "x-trino-role",
        "x-trino-client-tags",
        "x-trino-client-info",
        "x-trino-client-capabilities",
        "x-trino-prepared-statement",
        "x-trino-transaction-id",
        "x-trino-trace-token",
        "x-trino-resource-estimate",
    }
)

#: Plain HTTP headers forwarded to Trino. ``Accept-Encoding`` is deliberately *not*
#: forwarded: a gzip-compressed page would have to be decompressed to rewrite its
#: URIs, so the gateway asks the cluster for identity encoding (cheaper for both).
FORWARDED_HTTP_HEADERS = frozenset({"content-type", "user-agent"})

#: ``X-Trino-Query-Data-Encoding`` asks Trino for the spooling protocol. Off by default:
#: spooled segments are downloaded from URIs inside ``data`` that point at the cluster (or
#: its object storage) directly, bypassing the gateway and its accounting.
_ENCODING = QUERY_DATA_ENCODING_HEADER.lower()

#: Trino response headers never passed back to the client. With these, ``SET SESSION
#: AUTHORIZATION`` would make the client send ``X-Trino-Original-User``; the gateway
#: never forwards that, so the statement is neutralised rather than half-applied.
DROPPED_RESPONSE_HEADERS = frozenset(
    {"x-trino-set-authorization-user", "x-trino-reset-authorization-user"}
)

#: Non-Trino response headers passed back to the client.
FORWARDED_RESPONSE_HEADERS = frozenset({"content-type", "retry-after"})


def upstream_path(uri: str) -> str:
    """The path and query of a cluster URI (requests always go to the configured URL)."""
    parts = urlsplit(uri)
    return parts.path + ("?" + parts.query if parts.query else "")


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic authentication."""
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def upstream_request_headers(
    client_headers: Iterable[tuple[str, str]],
    user: str,
    authorization: str | None,
    *,
    allow_spooling: bool = False,
) -> list[tuple[str, str]]:
    """Build the headers sent to Trino from the headers a client sent.

    Session headers (catalog, schema, session properties, roles, prepared statements,
    transaction id, ...) pass through, repeated headers keep every value. Identity
    never does: ``Authorization``, ``X-Trino-User``, ``X-Trino-Original-User``,
    ``X-Trino-Original-Roles``, ``X-Trino-Extra-Credential``, any ``X-Presto-*``,
    ``X-Forwarded-*``, ``Cookie`` and hop-by-hop headers are dropped. Then
    ``X-Trino-User`` is set to *user* (the hub user) and ``Authorization`` to
    *authorization* (the cluster's service account), if any.

    Args:
        client_headers: the client's headers as (name, value) pairs.
        user: the hub user the query runs as.
        authorization: the ``Authorization`` value for the cluster, or None when the
            cluster needs none (a development Trino without authentication).
        allow_spooling: forward ``X-Trino-Query-Data-Encoding`` (see _ENCODING).
    """
    forwarded = session_headers(client_headers, allow_spooling=allow_spooling)
    forwarded.append((TRINO_USER_HEADER, user))
    # Trino compresses when asked; the head rewrite needs plain bytes.
    forwarded.append(("Accept-Encoding", "identity"))
    if authorization:
        forwarded.append(("Authorization", authorization))
    return forwarded


def session_headers(
    client_headers: Iterable[tuple[str, str]], *, allow_spooling: bool = False
) -> list[tuple[str, str]]:
    """The client's headers that reach Trino with a query (the allowlists above): what a
    queued query keeps to be submitted later. Never identity or credentials."""
    return [
        (name, value)
        for name, value in client_headers
        if (lname := name.lower()) in FORWARDED_TRINO_HEADERS
        or lname in FORWARDED_HTTP_HEADERS
        or (allow_spooling and lname == _ENCODING)
    ]


def client_response_headers(upstream_headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Select the Trino response headers passed back to the client.

    ``X-Trino-Set-*``/``Clear-*``/``Added-Prepare``/... keep the client's session in
    step; lengths and encodings are not copied because the gateway re-frames the body.
    """
    selected: list[tuple[str, str]] = []
    for name, value in upstream_headers:
        lname = name.lower()
        if lname in DROPPED_RESPONSE_HEADERS:
            continue
        if lname.startswith("x-trino-") or lname in FORWARDED_RESPONSE_HEADERS:
            selected.append((name, value))
    return selected


# ----------------------------------------------------------------------- pages


@dataclass
class PageFacts:
    """Small facts about a result page, for logging and accounting."""

    query_id: str | None = None
    has_next: bool = False
    #: The cluster's own nextUri (before the rewrite), to cancel the query there.
    next_uri: str | None = None
    state: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    #: Spooling protocol: the result's rows up to the end of this page's last segment.
    spooled_rows: int | None = None


# -------------------------------------------------------------------------- errors

#: Trino's error codes for the errors the gateway raises itself; DataHub's own (clients
#: recognise them too) are in datahub.wire.
GENERIC_USER_ERROR = ("GENERIC_USER_ERROR", "USER_ERROR", 1)
NOT_FOUND = ("NOT_FOUND", "USER_ERROR", 44)
GENERIC_INTERNAL_ERROR = ("GENERIC_INTERNAL_ERROR", "INTERNAL_ERROR", 65536)


def trino_error_body(
    message: str,
    error_name: str,
    error_type: str,
    error_code: int,
    query_id: str | None = None,
) -> bytes:
    """A Trino QueryResults body for a failed query, carrying *message*.

    Trino clients turn it into their usual query error (the Python client raises
    ``TrinoUserError`` for ``USER_ERROR``, ``TrinoExternalError`` for ``EXTERNAL``), so
    the user sees *message* as one clear line. The ``error`` key comes before
    ``stats`` (order is free in JSON) so the message also leads when a client prints a
    non-200 body raw.
    """
    query_id = query_id or "datahub_" + uuid.uuid4().hex[:20]
    body = {
        "id": query_id,
        "infoUri": "",
        "error": {
            "message": message,
            "errorCode": error_code,
            "errorName": error_name,
            "errorType": error_type,
            "failureInfo": {
                "type": "io.datahub.gateway.GatewayError",
                "message": message,
                "suppressed": [],
                "stack": [],
            },
        },
        "stats": _gateway_stats("FAILED"),
        "warnings": [],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _gateway_stats(state: str, elapsed_ms: int = 0) -> dict[str, Any]:
    """The ``stats`` of a page the gateway writes itself (no cluster has the query)."""
    return {
        "state": state,
        "queued": state == "QUEUED",
        "scheduled": False,
        "nodes": 0,
        "totalSplits": 0,
        "queuedSplits": 0,
        "runningSplits": 0,
        "completedSplits": 0,
        "cpuTimeMillis": 0,
        "wallTimeMillis": 0,
        "queuedTimeMillis": elapsed_ms,
        "elapsedTimeMillis": elapsed_ms,
        "processedRows": 0,
        "processedBytes": 0,
        "physicalInputBytes": 0,
        "peakMemoryBytes": 0,
        "spilledBytes": 0,
    }


#: The key of a queued page's ``stats`` that says why the query waits (Trino clients
#: keep unknown stats keys: the Python client hands them to ``stats_callback``).
QUEUE_REASON_KEY = "datahubQueueReason"


def queued_page(
    query_id: str, info_uri: str, next_uri: str, reason: str, elapsed_ms: int = 0
) -> bytes:
    """The gateway's QUEUED page of a query waiting for a quota slot: Trino clients show
    it as queued and follow *next_uri* (back to the gateway) as they would Trino's."""
    stats = _gateway_stats("QUEUED", elapsed_ms)
    stats[QUEUE_REASON_KEY] = reason
    body = {"id": query_id, "infoUri": info_uri, "nextUri": next_uri, "stats": stats}
    return json.dumps(body, separators=(",", ":")).encode()


#: The first line of a Java stack trace: ``io.trino.…AccessDeniedException: Access Denied: …``.
_JAVA_EXCEPTION_RE = re.compile(r"^(?:[A-Za-z_$][\w$]*\.)+([\w$]+): ?(.*)$")
#: How Trino's HTTP server starts a plain-text error: ``Error 400 Bad Request: …``.
_HTTP_ERROR_PREFIX_RE = re.compile(r"^Error \d{3}[^:]*: ")


def _one_sentence(text: str, limit: int = 200) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text if text.endswith((".", "…", "?", "!")) else text + "."


def upstream_failure(cluster: str, status: int, body: bytes) -> tuple[str, tuple[str, str, int]]:
    """The user's one sentence, and the Trino error, for a cluster answer that is not a
    Trino result page: a Java stack trace as plain text (Trino answers a refused
    ``X-Trino-Role`` with HTTP 500 and one), an HTML error page, a 4xx text.

    Only Trino's own user-facing words pass: the message of an ``AccessDeniedException``
    and the first line of a 4xx answer. Anything else becomes a sentence of ours; the
    caller logs the whole answer for admins. No stack trace, host name or class name
    reaches the user.
    """
    text = body.decode("utf-8", "replace").strip()
    first = text.splitlines()[0].strip() if text else ""
    java = _JAVA_EXCEPTION_RE.match(first)
    if java and java.group(1) == "AccessDeniedException" and java.group(2):
        return _one_sentence(java.group(2)), PERMISSION_DENIED
    if status in (404, 410):
        return (
            f"Cluster {cluster} no longer knows this query (it ended, was cancelled or was "
            "forgotten); run it again.",
            NOT_FOUND,
        )
    if 400 <= status < 500 and first and not java and "<" not in first:
        detail = _one_sentence(_HTTP_ERROR_PREFIX_RE.sub("", first))
        if status == 403:
            return detail, PERMISSION_DENIED
        return f"Cluster {cluster} refused the request: {detail}", GENERIC_USER_ERROR
    return (
        f"Cluster {cluster} failed on this request (HTTP {status}); try again, or ask an "
        "admin (the details are in the DataHub log).",
        CLUSTER_ERROR,
    )


def http_reason(message: str) -> str:
    """*message* made safe for an HTTP reason phrase.

    The Trino CLI shows the reason phrase of a 401 (``Authentication failed: ...``),
    so the gateway puts its one-sentence message there as well as in the body.
    """
    return re.sub(r"[^\x20-\x7e]", " ", message)[:200]
