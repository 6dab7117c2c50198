"""The Trino client protocol as the gateway needs it: pure functions, no I/O.

Three jobs live here, each a plain function or small class so they can be tested
without a network:

* **Headers.** Which of the client's headers reach Trino (session headers yes,
  identity never), and which of Trino's response headers reach the client.
* **Follow-up URIs.** Trino's ``nextUri``/``partialCancelUri``/``infoUri`` point at
  the cluster. They are rewritten to point at the gateway, with the cluster name and
  an HMAC signature over (cluster, user, path) in the path, so any gateway process
  sharing the secret can serve the follow-up and no other user can.
* **Queued queries.** A query that waits for a quota slot is answered with a QUEUED
  page of the gateway's own, whose signed ``nextUri`` (``/v1/dh-queued/...``) any gateway
  process can serve.
* **Result pages.** Rewriting those URIs without parsing multi-MB pages: Trino writes
  ``id, infoUri, partialCancelUri, nextUri`` first, all strings, so only that head is
  tokenised; everything from the first non-string value on (``columns``, ``data``,
  ``stats``...) is passed through untouched. Facts for logging come from the head
  (query id) and from a bounded tail window (``stats``, ``error``).

And Trino-format error bodies, so every Trino client shows our messages as query errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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

#: Asks Trino for the spooling protocol. Off by default: spooled segments are
#: downloaded from URIs inside ``data`` that point at the cluster (or its object
#: storage) directly, bypassing the gateway and its accounting.
ENCODING_HEADER = "x-trino-query-data-encoding"

#: Trino response headers never passed back to the client. With these, ``SET SESSION
#: AUTHORIZATION`` would make the client send ``X-Trino-Original-User``; the gateway
#: never forwards that, so the statement is neutralised rather than half-applied.
DROPPED_RESPONSE_HEADERS = frozenset(
    {"x-trino-set-authorization-user", "x-trino-reset-authorization-user"}
)

#: Non-Trino response headers passed back to the client.
FORWARDED_RESPONSE_HEADERS = frozenset({"content-type", "retry-after"})


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
        allow_spooling: forward ``X-Trino-Query-Data-Encoding`` (see ENCODING_HEADER).
    """
    forwarded = session_headers(client_headers, allow_spooling=allow_spooling)
    forwarded.append(("X-Trino-User", user))
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
        or (allow_spooling and lname == ENCODING_HEADER)
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


# ------------------------------------------------------------------ follow-up URIs

#: Where the signed follow-up URIs live on the gateway.
FOLLOWUP_PREFIX = "/v1/dh/"

#: Trino paths a signed follow-up may reach. Anything else (``/v1/query``,
#: ``/v1/node``, the web UI...) stays out of reach even with a valid signature.
FOLLOWUP_ALLOWED_PATHS = ("/v1/statement/", "/v1/stage/")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SIG_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_SIG_BYTES = 16  # 128 bits: unguessable, and keeps every follow-up URI short


class FollowupError(ValueError):
    """A follow-up URI is malformed, not signed for this user, or not allowed."""


def is_valid_cluster_name(name: str) -> bool:
    """Whether *name* can be a cluster name (it is embedded in URIs unescaped)."""
    return bool(_NAME_RE.match(name))


class FollowupSigner:
    """Signs and checks follow-up URIs with a secret shared by all gateway processes.

    The signature covers the cluster, the user and the exact upstream path (with its
    query string), so a URI only works for the user it was issued to and only on the
    cluster and statement it came from.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("The gateway secret must be at least 16 bytes long.")
        self._secret = secret

    def sign(self, cluster: str, user: str, path: str) -> str:
        """The URL-safe signature of (cluster, user, path)."""
        message = "\x00".join((cluster, user, path)).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, cluster: str, user: str, path: str, signature: str) -> bool:
        """Whether *signature* was issued for (cluster, user, path)."""
        return hmac.compare_digest(self.sign(cluster, user, path), signature)

    def gateway_uri(self, base_url: str, cluster: str, user: str, upstream_uri: str) -> str:
        """Rewrite a cluster URI (``https://trino:8443/v1/statement/...``) to the gateway.

        Only the path and query of *upstream_uri* are kept: follow-ups always go to
        the configured cluster URL, never to a host named in a response.
        """
        parts = urlsplit(upstream_uri)
        path = parts.path + ("?" + parts.query if parts.query else "")
        signature = self.sign(cluster, user, path)
        return f"{base_url.rstrip('/')}{FOLLOWUP_PREFIX}{cluster}/{signature}{path}"

    def queued_uri(self, base_url: str, user: str, query_id: str, place: str) -> str:
        """The gateway URI a queued query's client polls (GET) or cancels (DELETE)."""
        path = f"{query_id}/{place}"
        signature = self.sign(_QUEUED_SCOPE, user, path)
        return f"{base_url.rstrip('/')}{QUEUED_PREFIX}{path}/{signature}"

    def verify_queued(self, queued: Queued, user: str) -> bool:
        """Whether *queued* (a parsed queued URI) was issued to *user*."""
        return self.verify(
            _QUEUED_SCOPE, user, f"{queued.query_id}/{queued.place}", queued.signature
        )


@dataclass(frozen=True)
class Followup:
    """A parsed gateway follow-up URI: which cluster, the signature, the Trino path."""

    cluster: str
    signature: str
    path: str  # path and query on the cluster, e.g. /v1/statement/executing/ID/SLUG/3


def parse_followup(raw_path: str, query: str = "") -> Followup:
    """Parse ``/v1/dh/{cluster}/{sig}/v1/statement/...`` (still percent-encoded).

    Raises FollowupError if the URI is malformed or leads outside the Trino paths a
    follow-up may reach. The signature is checked separately (it needs the user).
    """
    if not raw_path.startswith(FOLLOWUP_PREFIX):
        raise FollowupError("This is not a DataHub follow-up URI.")
    cluster, _, rest = raw_path[len(FOLLOWUP_PREFIX) :].partition("/")
    signature, _, upstream = rest.partition("/")
    upstream = "/" + upstream
    if not _NAME_RE.match(cluster) or not _SIG_RE.match(signature):
        raise FollowupError("This DataHub follow-up URI is malformed.")
    if not upstream.startswith(FOLLOWUP_ALLOWED_PATHS) or _has_traversal(upstream):
        raise FollowupError(
            "Only Trino statement URIs can be followed through the DataHub gateway."
        )
    if query:
        upstream += "?" + query
    return Followup(cluster, signature, upstream)


def _has_traversal(path: str) -> bool:
    # The signature already pins the path Trino issued; this is defence in depth
    # against a path that a proxy or Trino would normalise to somewhere else.
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%2e" in lowered or "\\" in path:
        return True
    return any(segment in (".", "..") for segment in path.split("/")) or "//" in path


#: Where the signed URIs of queued queries live on the gateway.
QUEUED_PREFIX = "/v1/dh-queued/"
#: Signed in place of a cluster name (which cannot contain "~"), so a queued URI's
#: signature can never pass as a follow-up's, nor the reverse.
_QUEUED_SCOPE = "~queued"
_QUEUED_RE = re.compile(
    r"^/v1/dh-queued/(datahub_[0-9a-f]{20})/([A-Za-z0-9_-]{1,80})/([A-Za-z0-9_-]{22})$"
)


@dataclass(frozen=True)
class Queued:
    """A parsed queued-query URI: the gateway's query id, the place, the signature."""

    query_id: str
    place: str
    signature: str


def parse_queued(raw_path: str) -> Queued:
    """Parse ``/v1/dh-queued/{query id}/{place}/{sig}``; raises FollowupError if malformed
    (the signature is checked separately, it needs the user)."""
    match = _QUEUED_RE.match(raw_path)
    if not match:
        raise FollowupError("This DataHub queued-query URI is malformed.")
    return Queued(*match.groups())


_QUERY_ID_RE = re.compile(r"^/v1/statement/(?:queued|executing)/(?:partialCancel/)?(\w+)/")


def query_id_from_path(path: str) -> str | None:
    """The query id in a Trino statement path (``/v1/statement/executing/ID/...``)."""
    match = _QUERY_ID_RE.match(path)
    return match.group(1) if match else None


# -------------------------------------------------------------------- result pages

#: Top-level QueryResults keys holding URIs to rewrite.
URI_KEYS = frozenset({"infoUri", "partialCancelUri", "nextUri"})

#: Keys Trino writes after all URI keys. Reaching one of them while scanning the head
#: proves no URI can follow, so the rest of the page passes through untouched.
PAYLOAD_KEYS = frozenset(
    {"columns", "data", "stats", "error", "warnings", "updateType", "updateCount"}
)

_WS = b" \t\r\n"


class _NeedMore(Exception):
    """The buffer ends inside the head; wait for more bytes."""


class _NotTrinoLayout(Exception):
    """The body is not a QueryResults object in Trino's key order."""


@dataclass
class Head:
    """The string-valued top-level keys at the start of a QueryResults page."""

    values: dict[str, str]
    spans: list[tuple[str, int, int]]  # (key, start, end) of each raw string value
    end: int  # offset where the first non-string value's key starts (or the object ends)
    stop_key: str | None  # that key; None if the object ended first


def _skip_ws(buf: bytes, i: int) -> int:
    n = len(buf)
    while i < n and buf[i] in _WS:
        i += 1
    if i >= n:
        raise _NeedMore
    return i


def _string_end(buf: bytes, start: int) -> int:
    """Offset just past the closing quote of the JSON string opening at *start*."""
    i = start + 1
    while True:
        j = buf.find(b'"', i)
        if j < 0:
            raise _NeedMore
        backslashes = 0
        k = j - 1
        while k > start and buf[k] == 0x5C:
            backslashes += 1
            k -= 1
        if backslashes % 2 == 0:
            return j + 1
        i = j + 1


def _decode_string(raw: bytes) -> str:
    if b"\\" in raw:
        return json.loads(raw)
    return raw[1:-1].decode("utf-8")


def scan_head(buf: bytes) -> Head:
    """Tokenise the top-level string-valued keys at the start of a QueryResults page.

    Stops at the first key whose value is not a string, so it never looks into
    ``columns``/``data``, however large, and data that merely contains look-alike
    text (``"nextUri":"https://evil"``) is never mistaken for a URI.

    Raises _NeedMore if *buf* ends inside the head and _NotTrinoLayout if *buf* is not
    a JSON object.
    """
    i = _skip_ws(buf, 0)
    if buf[i] != 0x7B:  # {
        raise _NotTrinoLayout
    i += 1
    values: dict[str, str] = {}
    spans: list[tuple[str, int, int]] = []
    while True:
        i = _skip_ws(buf, i)
        if buf[i] == 0x7D:  # }
            return Head(values, spans, i, None)
        if buf[i] != 0x22:  # "
            raise _NotTrinoLayout
        key_start = i
        key_end = _string_end(buf, i)
        key = _decode_string(buf[key_start:key_end])
        i = _skip_ws(buf, key_end)
        if buf[i] != 0x3A:  # :
            raise _NotTrinoLayout
        i = _skip_ws(buf, i + 1)
        if buf[i] != 0x22:
            return Head(values, spans, key_start, key)
        value_end = _string_end(buf, i)
        values[key] = _decode_string(buf[i:value_end])
        spans.append((key, i, value_end))
        i = _skip_ws(buf, value_end)
        if buf[i] == 0x2C:  # ,
            i += 1
        elif buf[i] != 0x7D:
            raise _NotTrinoLayout


def rewrite_head(buf: bytes, head: Head, rewrite_uri: Callable[[str], str]) -> bytes:
    """Return ``buf[:head.end]`` with the URI values replaced by ``rewrite_uri(value)``."""
    out: list[bytes] = []
    pos = 0
    for key, start, end in head.spans:
        if key in URI_KEYS:
            out.append(buf[pos:start])
            out.append(json.dumps(rewrite_uri(head.values[key])).encode())
            pos = end
    out.append(buf[pos : head.end])
    return b"".join(out)


def rewrite_document(doc: dict[str, Any], rewrite_uri: Callable[[str], str]) -> dict[str, Any]:
    """Rewrite the URI keys of a parsed QueryResults object (the slow, general path)."""
    for key in URI_KEYS:
        value = doc.get(key)
        if isinstance(value, str):
            doc[key] = rewrite_uri(value)
    return doc


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


_STATE_RE = re.compile(rb'"state":"([A-Z_]+)"')


def tail_facts(tail: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Parse ``stats`` and ``error`` from the end of a QueryResults page.

    Trino writes ``stats`` after ``data``; the last ``"stats":{`` in the page is the
    real one because the keys after it (``error``, ``warnings``, ``updateType``...)
    never contain a ``stats`` key, and that byte sequence cannot occur inside a JSON
    string (its quotes would be escaped). Returns ({}, None) if *tail* has no stats.
    """
    idx = tail.rfind(b'"stats":{')
    if idx < 0:
        return {}, None
    try:
        doc = json.loads(b"{" + tail[idx:])
    except ValueError:
        match = _STATE_RE.search(tail, idx)
        return ({"state": match.group(1).decode()} if match else {}), None
    stats = doc.get("stats") if isinstance(doc.get("stats"), dict) else {}
    error = doc.get("error") if isinstance(doc.get("error"), dict) else None
    return stats, error


class ResultRewriter:
    """Incrementally rewrite the URIs of one QueryResults page as it streams through.

    Feed the upstream body chunk by chunk; each call returns the bytes to send on.
    Until the head is complete the chunks are buffered (the head is a few hundred
    bytes); afterwards chunks pass through as they are, with a bounded window kept for
    ``facts()``. A body that is not in Trino's layout is buffered whole and rewritten
    with a full JSON parse; a body that is not JSON at all is passed on unchanged.
    """

    #: Bytes kept from the end of the page for ``tail_facts``.
    tail_window = 256 * 1024
    #: A head larger than this is not Trino's; switch to the general path.
    max_head = 1024 * 1024

    def __init__(self, rewrite_uri: Callable[[str], str]) -> None:
        self._rewrite_uri = rewrite_uri
        self._mode = "head"  # head -> stream, or head -> full
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._head: Head | None = None
        self._doc: dict[str, Any] | None = None
        self._next_uri: str | None = None
        #: Bytes added by the rewrite (new length minus old length), once known.
        self.size_delta: int | None = None
        #: Set by ``finish()`` when the body was not a JSON object (no Trino page at all).
        self.not_json = False

    def feed(self, chunk: bytes) -> bytes:
        """Take the next upstream chunk; return what can be sent to the client now."""
        if not chunk:
            return b""
        if self._mode == "stream":
            self._keep_tail(chunk)
            return chunk
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._mode == "full":
            return b""
        buf = b"".join(self._buffer) if len(self._buffer) > 1 else chunk
        self._buffer = [buf]
        try:
            head = scan_head(buf)
        except _NeedMore:
            if self._buffered > self.max_head:
                self._mode = "full"
            return b""
        except _NotTrinoLayout:
            self._mode = "full"
            return b""
        if head.stop_key is None or head.stop_key not in PAYLOAD_KEYS:
            self._mode = "full"
            return b""
        self._head = head
        new_head = rewrite_head(buf, head, self._rewrite_uri)
        self.size_delta = len(new_head) - head.end
        self._mode = "stream"
        self._buffer = []
        rest = buf[head.end :]
        self._keep_tail(rest)
        return new_head + rest

    def finish(self) -> bytes:
        """Signal the end of the upstream body; return the remaining bytes to send."""
        if self._mode == "stream":
            return b""
        body = b"".join(self._buffer)
        self._buffer = []
        self._mode = "stream"
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            self.not_json = True
            self._keep_tail(body)
            self.size_delta = 0
            return body
        next_uri = doc.get("nextUri")
        self._next_uri = next_uri if isinstance(next_uri, str) else None
        self._doc = rewrite_document(doc, self._rewrite_uri)
        out = json.dumps(self._doc, separators=(",", ":")).encode()
        self.size_delta = len(out) - len(body)
        return out

    def _keep_tail(self, chunk: bytes) -> None:
        self._tail.append(chunk)
        self._tail_size += len(chunk)
        while len(self._tail) > 1 and self._tail_size - len(self._tail[0]) >= self.tail_window:
            self._tail_size -= len(self._tail.popleft())

    def facts(self) -> PageFacts:
        """Query id, whether a next page exists, state, stats and error of the page.

        Call after ``finish()``. Cheap: the head is already parsed and the stats come
        from the tail window.
        """
        if self._doc is not None:
            doc = self._doc
            stats = doc.get("stats") if isinstance(doc.get("stats"), dict) else {}
            return PageFacts(
                query_id=doc.get("id"),
                has_next=bool(doc.get("nextUri")),
                next_uri=self._next_uri,
                state=stats.get("state"),
                stats=stats,
                error=doc.get("error") if isinstance(doc.get("error"), dict) else None,
            )
        values = self._head.values if self._head else {}
        stats, error = tail_facts(b"".join(self._tail))
        return PageFacts(
            query_id=values.get("id"),
            has_next="nextUri" in values,
            next_uri=values.get("nextUri"),
            state=stats.get("state"),
            stats=stats,
            error=error,
        )


#: What a page that only reports progress holds. ``columns`` may be there: Trino repeats
#: them on every later page, the one with the first rows included.
_PROGRESS_KEYS = frozenset(
    {"id", "infoUri", "partialCancelUri", "nextUri", "columns", "stats", "warnings"}
)


#: Pages up to this size are read whole (larger data pages stream): queued and planning
#: pages (a few hundred bytes), to see whether they carry anything, and error pages with
#: Trino's Java stack frames, which `without_stack_frames` removes.
WHOLE_PAGE = 64 * 1024


def _clear_frames(failure: Any) -> None:
    if not isinstance(failure, dict):
        return
    if failure.get("stack"):
        failure["stack"] = []
    _clear_frames(failure.get("cause"))
    for suppressed in failure.get("suppressed") or ():
        _clear_frames(suppressed)


def _page_error(body: bytes) -> tuple[Any, dict[str, Any] | None]:
    """A whole page parsed, and its ``error`` object (None if it is not JSON or has none)."""
    try:
        page = json.loads(body)
    except ValueError:
        return None, None
    error = page.get("error") if isinstance(page, dict) else None
    return page, error if isinstance(error, dict) else None


def without_stack_frames(body: bytes) -> bytes:
    """*body* (a whole result page) without the Java stack frames Trino puts in a failed
    query's ``error.failureInfo``: the message, error code, type and location stay, so
    clients show the same error; the frames (Trino's internals) go. Other bodies are
    returned unchanged."""
    if b'"failureInfo"' not in body:
        return body
    page, error = _page_error(body)
    failure = error.get("failureInfo") if error is not None else None
    if not isinstance(failure, dict):
        return body
    _clear_frames(failure)
    return json.dumps(page, separators=(",", ":")).encode()


def with_error_message(body: bytes, messages: Mapping[str, str] | None) -> bytes:
    """*body* (a whole result page) with its error's message replaced by
    ``messages[errorName]``, when it has one: Trino's error name, code and type stay, so
    clients still recognise the error (e.g. a per-query limit that came from the user's
    quota, said in the quota's words). Other bodies are returned unchanged."""
    if not messages or b'"error"' not in body:
        return body
    page, error = _page_error(body)
    message = messages.get(error.get("errorName")) if error is not None else None
    if not isinstance(message, str):
        return body
    error["message"] = message
    failure = error.get("failureInfo")
    if isinstance(failure, dict):
        failure["message"] = message
    return json.dumps(page, separators=(",", ":")).encode()


def carries_nothing(body: bytes, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a page only says "not yet": no data, error, update or warning, no session
    change in its headers, and a nextUri to go on with.

    The gateway follows such pages on the client's behalf (for a short while), so a short
    query costs the client one or two round trips instead of five or six; the client loses
    nothing but intermediate progress numbers.
    """
    if any(name.lower().startswith("x-trino-") for name, _ in headers):
        return False
    try:
        page = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(page, dict)
        and isinstance(page.get("nextUri"), str)
        and not page.get("warnings")
        and _PROGRESS_KEYS.issuperset(page)
    )


def rewrite_page(body: bytes, rewrite_uri: Callable[[str], str]) -> bytes:
    """Rewrite a whole QueryResults page at once (a convenience over ResultRewriter)."""
    rewriter = ResultRewriter(rewrite_uri)
    return rewriter.feed(body) + rewriter.finish()


# -------------------------------------------------------------------------- errors

#: Trino's error codes for the errors the gateway raises itself.
GENERIC_USER_ERROR = ("GENERIC_USER_ERROR", "USER_ERROR", 1)
PERMISSION_DENIED = ("PERMISSION_DENIED", "USER_ERROR", 4)
NOT_FOUND = ("NOT_FOUND", "USER_ERROR", 44)
GENERIC_INTERNAL_ERROR = ("GENERIC_INTERNAL_ERROR", "INTERNAL_ERROR", 65536)
# The gateway's own EXTERNAL errors, in Trino's EXTERNAL code range (from 0x0100_0000).
CLUSTER_UNREACHABLE = ("CLUSTER_UNREACHABLE", "EXTERNAL", 0x0100_DA01)
HUB_UNAVAILABLE = ("HUB_UNAVAILABLE", "EXTERNAL", 0x0100_DA02)
NO_CLUSTER_AVAILABLE = ("NO_CLUSTER_AVAILABLE", "EXTERNAL", 0x0100_DA03)
QUERY_LOST = ("QUERY_LOST", "EXTERNAL", 0x0100_DA04)
CLUSTER_ERROR = ("CLUSTER_ERROR", "EXTERNAL", 0x0100_DA05)
# The gateway's own user errors, in Trino's USER_ERROR range (below 0x0001_0000).
QUOTA_EXCEEDED = ("QUOTA_EXCEEDED", "USER_ERROR", 0xDA10)
INVALID_ROUTING_GROUP = ("INVALID_ROUTING_GROUP", "USER_ERROR", 0xDA12)


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
