"""Result pages on their way through the gateway: URIs rewritten without parsing the rows.

Trino writes ``id, infoUri, partialCancelUri, nextUri`` first, all strings, so only that
head is tokenised; everything from the first non-string value on (``columns``, ``data``,
``stats``...) is passed through untouched. Facts for logging and accounting come from the
head (query id) and from a bounded tail window (``stats``, ``error``). A page read whole
(queued, planning, errors: ``whole.py``) is parsed once, and the helpers here work on it
parsed: Trino's stack frames dropped, a quota limit's error in the quota's sentence, its
facts, its URIs. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .protocol import PageFacts

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
        #: The facts of a page read whole (the general path).
        self._facts: PageFacts | None = None
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
        self._facts = page_facts(doc)
        out = json.dumps(rewrite_document(doc, self._rewrite_uri), separators=(",", ":")).encode()
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
        if self._facts is not None:
            return self._facts
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


#: Pages up to this size are read whole (larger data pages stream): queued and planning
#: pages (a few hundred bytes), to see whether they carry anything, and error pages with
#: Trino's Java stack frames, which `clear_stack_frames` removes.
WHOLE_PAGE = 64 * 1024


def _clear_frames(failure: Any) -> None:
    if not isinstance(failure, dict):
        return
    if failure.get("stack"):
        failure["stack"] = []
    _clear_frames(failure.get("cause"))
    for suppressed in failure.get("suppressed") or ():
        _clear_frames(suppressed)


def clear_stack_frames(page: dict[str, Any]) -> None:
    """Drop the Java stack frames Trino puts in a failed query's ``error.failureInfo``
    from *page* (a parsed result page): the message, error code, type and location stay,
    so clients show the same error; the frames (Trino's internals) go."""
    error = page.get("error")
    if isinstance(error, dict):
        _clear_frames(error.get("failureInfo"))


def put_error_message(page: dict[str, Any], messages: Mapping[str, str] | None) -> None:
    """Replace the message of *page*'s error (a parsed result page) with
    ``messages[errorName]``, when it has one: Trino's error name, code and type stay, so
    clients still recognise the error (e.g. a per-query limit that came from the user's
    quota, said in the quota's words)."""
    error = page.get("error")
    if not messages or not isinstance(error, dict):
        return
    message = messages.get(error.get("errorName"))  # type: ignore[arg-type]
    if not isinstance(message, str):
        return
    error["message"] = message
    failure = error.get("failureInfo")
    if isinstance(failure, dict):
        failure["message"] = message


def page_facts(page: dict[str, Any]) -> PageFacts:
    """The facts of a parsed result page, as the cluster wrote it (its own nextUri)."""
    stats = page.get("stats") if isinstance(page.get("stats"), dict) else {}
    error = page.get("error")
    next_uri = page.get("nextUri")
    return PageFacts(
        query_id=page.get("id"),
        has_next=bool(next_uri),
        next_uri=next_uri if isinstance(next_uri, str) else None,
        state=stats.get("state"),
        stats=stats,
        error=error if isinstance(error, dict) else None,
    )


def rewrite_page(body: bytes, rewrite_uri: Callable[[str], str]) -> bytes:
    """Rewrite a whole QueryResults page at once (a convenience over ResultRewriter)."""
    rewriter = ResultRewriter(rewrite_uri)
    return rewriter.feed(body) + rewriter.finish()
