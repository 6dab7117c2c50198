"""Spooled result segments for ``%%sql``: asked for, downloaded side by side, decoded.

With Trino's spooling protocol a page's ``data`` is ``{"encoding", "segments"}``: *inline*
segments carry their rows (base64), *spooled* ones a ``uri`` to download (through the
DataHub gateway: a signed URI that names the user) and an ``ackUri`` to say it was read.
Segments are downloaded on a small pool of threads, and each thread goes on to
decompress (``zstandard``/``lz4``) its segment and convert it into typed column pieces
(:meth:`datahub.results.ResultBuilder.decode`: numpy and Arrow, which run without the GIL,
no Python object per value), so downloads and conversion overlap and use every core; the
kernel's main thread only appends the pieces, in order. At most `MAX_PENDING` segments are
started and not yet read, so memory stays bounded (a converted segment is about the size
of its rows in the DataFrame). A large direct-protocol page's rows, in hand already, are
converted on the same threads, in order with the rest (:meth:`SegmentReader.submit_rows`).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import logging
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson
import requests
import trino.exceptions

from datahub.json_rows import CHUNK_BYTES, rows_in_chunks

log = logging.getLogger(__name__)

#: Downloads at once; Trino's segments are a few MB each.
WORKERS = 4
#: Segments converted at once, at most: one per core is as fast as it gets (numpy and
#: Arrow release the GIL), and each conversion holds its segment's JSON and positions.
CONVERTERS = min(WORKERS, os.cpu_count() or 1)
#: Segments started (downloading, converting or converted) and not yet read, at most.
MAX_PENDING = 8


def _codecs() -> dict[str, Callable[[bytes, dict[str, Any]], bytes]]:
    codecs: dict[str, Callable[[bytes, dict[str, Any]], bytes]] = {"json": lambda raw, _: raw}
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency of the package
        pass
    else:
        codecs["json+zstd"] = lambda raw, _: zstandard.ZstdDecompressor().decompress(raw)
    try:
        import lz4.block
    except ImportError:
        pass
    else:
        codecs["json+lz4"] = lambda raw, meta: lz4.block.decompress(
            raw, uncompressed_size=int(meta["uncompressedSize"])
        )
    return codecs


CODECS = _codecs()


def accepted_encodings() -> str:
    """The ``X-Trino-Query-Data-Encoding`` value: the encodings this kernel decodes, best
    first (Trino takes the first it has)."""
    return ",".join(e for e in ("json+zstd", "json+lz4", "json") if e in CODECS)


def plain_json(encoding: str, raw: bytes, metadata: dict[str, Any]) -> bytes:
    """One segment's JSON (a JSON array of rows) from its bytes as sent (compressed as
    *encoding* says)."""
    codec = CODECS.get(encoding)
    if codec is None:
        raise ValueError(f"Trino sent rows encoded as {encoding!r}, which %%sql cannot read.")
    expected = metadata.get("uncompressedSize")
    # Trino leaves segments below its compression threshold uncompressed, without a size.
    plain = raw if expected is None else codec(raw, metadata)
    if expected is not None and encoding != "json" and len(plain) != int(expected):
        raise ValueError(f"A result segment decoded to {len(plain)} bytes, not {expected}.")
    return plain


def decode(
    encoding: str, raw: bytes, metadata: dict[str, Any], chunk: int = CHUNK_BYTES
) -> Iterator[list[list[Any]]]:
    """The rows of one segment's bytes as Python lists, a few thousand at a time
    (`rows_in_chunks`): for rows that come before any column list."""
    return rows_in_chunks(plain_json(encoding, raw, metadata), chunk)


#: Stands for a segment's download once the segment was read (its result dropped).
_READ: Future[Any] = Future()
_READ.cancel()


class PendingSegment:
    """A segment of a page, in the order the query's segments came: its download starts
    when there is room (see :class:`SegmentReader`). A direct-protocol page's rows are
    one too, with nothing to download (*rows*: what ``convert`` is called with)."""

    __slots__ = ("convert", "encoding", "future", "rows", "segment")

    def __init__(
        self,
        encoding: str,
        segment: dict[str, Any],
        convert: Callable[[Any], Any],
        rows: Any = None,
    ) -> None:
        self.encoding = encoding
        self.segment = segment
        self.convert = convert
        self.rows = rows
        self.future: Future[Any] | None = None


class SegmentReader:
    """Downloads and converts a query's segments on a few threads; hands them out in
    order.

    *session* is the connection's HTTP session; its credentials go with each download
    from *server* (the URL the statement went to: the gateway checks they are the user's
    the URI names), and no others: a segment elsewhere (an object store's presigned URI)
    is downloaded without them. *stopped* says the query is being cancelled.

    Segments are started in the order they came, while fewer than *max_pending* are
    started and not yet read; reading one makes room for the next. Pages are never held
    back for room (a page with more segments than that would otherwise wait for room
    only its own reading could make), and the one the reader needs next is always among
    those started.
    """

    def __init__(
        self,
        session: requests.Session,
        stopped: threading.Event,
        *,
        server: str | None = None,
        timeout: float = 120,
        workers: int = WORKERS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._session = session
        self._server = _origin(server) if server else None
        self._anonymous: requests.Session | None = None
        self._stopped = stopped
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="datahub-sql-segments")
        self._converting = threading.BoundedSemaphore(min(workers, CONVERTERS))
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._waiting: collections.deque[PendingSegment] = collections.deque()
        self._started = 0  # started and not yet read

    def submit(
        self, data: dict[str, Any], convert: Callable[[Any], Any] = bytes
    ) -> list[PendingSegment]:
        """A spooled page's segments, in order; as many start downloading as there is
        room for, the others as earlier ones are read. Each is converted on the pool's
        thread with ``convert(json_bytes)`` (the JSON array of its rows) once downloaded
        and decompressed."""
        encoding = data.get("encoding", "json")
        pending = [
            PendingSegment(encoding, segment, convert) for segment in data.get("segments") or ()
        ]
        self._submit(pending)
        return pending

    def submit_rows(self, rows: Any, convert: Callable[[Any], Any]) -> PendingSegment:
        """Rows in hand (a direct-protocol page's, still JSON) to be converted with
        ``convert(rows)`` on the pool's threads, in order with the segments."""
        pending = PendingSegment("", {}, convert, rows)
        self._submit([pending])
        return pending

    def _submit(self, pending: list[PendingSegment]) -> None:
        with self._lock:
            self._waiting.extend(pending)
            self._start(lambda: self._started < self._max_pending)

    def _start(self, more: Callable[[], bool]) -> None:
        """Start waiting segments, in order, while ``more()`` (under the lock)."""
        while self._waiting and more():
            pending = self._waiting.popleft()
            try:
                pending.future = self._pool.submit(self._read, pending)
            except RuntimeError:  # closed: the query was cancelled meanwhile
                pending.future = Future()
                pending.future.cancel()
            self._started += 1

    def result(self, pending: PendingSegment) -> Any:
        """A segment as its ``convert`` made it, once downloaded and converted (waiting
        for it)."""
        with self._lock:  # read out of order: start it (and those before it) now
            self._start(lambda: pending.future is None)
        assert pending.future is not None
        result = pending.future.result()  # interruptible: Ctrl-C lands here while waiting
        with self._lock:
            # The page still lists the segment: it must not keep the converted rows too.
            pending.future = _READ
            self._started -= 1
            self._start(lambda: self._started < self._max_pending)
        return result

    def _read(self, pending: PendingSegment) -> Any:
        rows = pending.rows
        pending.rows = None  # the page's bytes go with the converted rows' last reference
        if rows is None:
            raw, metadata = self._download(pending.segment)
        with self._converting:
            if self._stopped.is_set():
                return None  # cancelled meanwhile: nobody reads it
            if rows is None:
                rows = plain_json(pending.encoding, raw, metadata)
            return pending.convert(rows)

    def _download(self, segment: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        metadata = segment.get("metadata") or {}
        if segment.get("type") == "inline":
            return base64.b64decode(segment["data"]), metadata
        headers = {name: values[0] for name, values in (segment.get("headers") or {}).items()}
        # Segments are compressed already; gzip on top only costs both sides CPU.
        headers["Accept-Encoding"] = "identity"
        uri = segment["uri"]
        # The storage's, not the server's: a URI elsewhere, or the server's redirected
        # there (Trino's COORDINATOR_STORAGE_REDIRECT mode, through the gateway).
        try:
            response = self._session_for(uri).get(uri, headers=headers, timeout=self._timeout)
        except requests.RequestException as e:
            where = e.request.url if e.request is not None and e.request.url else uri
            if not self._on_server(where):
                raise StorageError(storage_unreachable(where)) from e
            raise trino.exceptions.TrinoConnectionError(f"failed to download: {e}") from e
        if response.status_code != 200:
            if not self._on_server(response.url or uri):
                raise StorageError(storage_refused(response.status_code))
            # Worded like the client's own HTTP errors, which %%sql turns into a sentence.
            raise trino.exceptions.HttpError(f"error {response.status_code}: {_refusal(response)}")
        if segment.get("ackUri"):
            # Closed meanwhile: the cluster drops the segment when it expires.
            with contextlib.suppress(RuntimeError):
                self._pool.submit(self._ack, segment["ackUri"])
        return response.content, metadata

    def _ack(self, uri: str) -> None:
        # Lets the cluster delete the segment now instead of when it expires.
        try:
            self._session_for(uri).get(uri, headers={"Accept-Encoding": "identity"}, timeout=10)
        except requests.RequestException as e:
            log.info("Acknowledging a result segment failed: %r", e)

    def _on_server(self, url: str) -> bool:
        return self._server is None or _origin(url) == self._server

    def _session_for(self, uri: str) -> requests.Session:
        """The connection's session for the server's own URIs, a bare one elsewhere."""
        if self._on_server(uri):
            return self._session
        with self._lock:
            if self._anonymous is None:
                self._anonymous = requests.Session()
            return self._anonymous

    def close(self, *, cancel: bool = False) -> None:
        """Let the pool's threads end when their work is done (acknowledgements still
        go out); with *cancel*, downloads not yet started are dropped too."""
        self._pool.shutdown(wait=False, cancel_futures=cancel)


class StorageError(Exception):
    """A segment the cluster's object storage would not give (its pre-signed URI, read
    directly, not through the gateway); the message is the user's sentence."""


def storage_refused(status: int) -> str:
    """The sentence for a segment download the object storage refused with *status*."""
    return (
        f"The cluster's result storage refused part of the result (HTTP {status}); its link "
        "may have expired: run the query again, and ask your DataHub admin if it keeps "
        "happening."
    )


def storage_unreachable(uri: str) -> str:
    """The sentence for a segment download that could not reach the object storage."""
    scheme, host, port = _origin(uri)
    return (
        f"Cannot reach the cluster's result storage at {scheme}://{host}:{port} to download "
        "part of the result; ask your DataHub admin whether this notebook server may "
        "reach it."
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _refusal(response: requests.Response) -> str:
    """One sentence for a refused download: the gateway's own message when it sent one."""
    try:
        message = orjson.loads(response.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = ""
    return message or "a result segment could not be downloaded."
