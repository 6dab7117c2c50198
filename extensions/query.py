"""Run one SQL statement on Trino (through the gateway) and build its DataFrame fast.

The ``trino`` dbapi maps every value through a Python function and hands rows out one at
a time, then ``pandas.DataFrame(rows)`` copies them again: for a million rows that costs
more than Trino takes to produce them, and a million rows of Python objects take five to
ten times the memory of the typed result. Here:

* the connection's own request object (auth, session headers, retries, keep-alive HTTP
  session) sends the statement and follows ``nextUri``;
* a fetch thread downloads the next page while the previous ones are converted, so
  conversion hides behind Trino's production of pages; the queue between them holds a few
  pages, so a slow consumer slows the download rather than filling memory;
* a direct-protocol page's ``data`` is not parsed into Python objects: the fetch thread
  finds it in the page's bytes and where each value lies (:mod:`datahub.direct_pages`,
  :mod:`datahub.json_rows`), parses only the rest of the page, and the segment threads
  below turn the rows into typed column pieces (numpy and Arrow,
  :meth:`datahub.results.ResultBuilder.convert`), so memory is about the size of the
  typed result (small pages are parsed with ``orjson`` and converted on the main thread);
* the statement asks for Trino's spooling protocol (``json+zstd``, see
  :mod:`datahub.extensions.segments`): where the gateway and the cluster offer it, the
  rows come in compressed segments, downloaded, decompressed and converted into typed
  column pieces a few at a time on their own threads (numpy and Arrow, no Python object
  per value: :mod:`datahub.json_rows`), and the main thread only appends them; elsewhere
  Trino answers with the direct protocol, converted the same way.

Session changes a statement makes (``USE``, ``SET SESSION``, roles, …) are applied with the
client's own code, so they carry over to the next cell like with the dbapi. A
``KeyboardInterrupt`` (kernel interrupt, Ctrl-C) at any point — queued, running, or while
rows stream — cancels the query on the server (``DELETE nextUri``: Trino records
``USER_CANCELED``) and raises :class:`QueryCancelled`.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import requests
import trino
import trino.client
import trino.constants
import urllib3.exceptions

from datahub.direct_pages import split_page
from datahub.extensions import trino_compat
from datahub.extensions.segments import PendingSegment, SegmentReader, accepted_encodings
from datahub.json_rows import JsonRows, rows_in_chunks
from datahub.results import Pieces, ResultBuilder
from datahub.wire import CLUSTER_NAME_PATTERN, FOLLOWUP_PREFIX, QUERY_DATA_ENCODING_HEADER

__all__ = ["QueryCancelled", "QueryResult", "cluster_from_uri", "run_query"]

log = logging.getLogger(__name__)

#: The gateway's follow-up URIs name the cluster: ``/v1/dh/{cluster}/{signature}/v1/…``.
_CLUSTER_IN_URI = re.compile(re.escape(FOLLOWUP_PREFIX) + f"({CLUSTER_NAME_PATTERN})/")

#: Response headers that change the client's session; rare, so the client's own (slower)
#: processing runs only when one is present.
_SESSION_HEADERS = frozenset(
    h.lower()
    for h in (
        trino.constants.HEADER_SET_SESSION,
        trino.constants.HEADER_CLEAR_SESSION,
        trino.constants.HEADER_SET_CATALOG,
        trino.constants.HEADER_SET_SCHEMA,
        trino.constants.HEADER_SET_ROLE,
        trino.constants.HEADER_ADDED_PREPARE,
        trino.constants.HEADER_DEALLOCATED_PREPARE,
        trino.constants.HEADER_SET_AUTHORIZATION_USER,
        trino.constants.HEADER_RESET_AUTHORIZATION_USER,
    )
)

#: Decoded pages waiting for the main thread: enough to keep both threads busy.
PREFETCH_PAGES = 3


def _converter(builder: ResultBuilder | None) -> Callable[[bytes], Any]:
    """What a segment thread makes of a segment's JSON: typed column pieces, or the
    bytes themselves for rows that came before any column list."""
    if builder is None:
        return bytes
    return lambda plain: Converted(builder.decode(plain))


def _rows_converter(builder: ResultBuilder) -> Callable[[JsonRows], Converted]:
    """What a segment thread makes of a direct-protocol page's rows: typed pieces."""
    return lambda rows: Converted(builder.convert(rows))


def cluster_from_uri(uri: str | None) -> str | None:
    """The cluster named in a gateway follow-up URI (``None`` straight to Trino)."""
    m = _CLUSTER_IN_URI.search(uri or "")
    return m.group(1) if m else None


class QueryCancelled(Exception):
    """The user interrupted the query; it was cancelled on the server."""

    def __init__(self, query_id: str | None, rows_fetched: int = 0):
        super().__init__("Query cancelled")
        self.query_id = query_id
        #: Rows that had arrived when the interrupt came.
        self.rows_fetched = rows_fetched


@dataclass
class QueryResult:
    """A finished statement: its frame plus what the summary line shows."""

    frame: pd.DataFrame
    query_id: str | None
    elapsed: float
    stats: dict[str, Any] = field(default_factory=dict)
    update_type: str | None = None
    update_count: int | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    #: The cluster that ran it, from the gateway's URIs (``None`` straight to Trino).
    cluster: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


def run_query(
    connection: trino.dbapi.Connection,
    sql: str,
    *,
    stats_callback: Callable[[dict[str, Any]], None] | None = None,
    http_headers: dict[str, str] | None = None,
    spooling: bool = True,
) -> QueryResult:
    """Execute ``sql`` on ``connection`` and return its typed result.

    ``stats_callback`` is called on the calling thread after every page with Trino's
    stats plus ``queryId``, ``cluster`` and ``fetchedRows``. ``http_headers`` go on the
    submitting request only (the gateway routes on them; follow-up URIs name the cluster).
    ``spooling`` asks for the spooling protocol (Trino answers with it only where it is
    configured and the gateway allows it).
    Trino errors raise the client's exceptions (``TrinoQueryError`` …), HTTP failures
    ``HttpError``/``TrinoConnectionError``.
    """
    start = time.perf_counter()
    # The dbapi has no public way to run a statement on a connection's session.
    request = trino_compat.new_request(connection)
    # The dbapi's connections ask for every encoding they decode; None drops the header
    # (requests removes headers set to None), for the direct protocol.
    encodings = accepted_encodings() if spooling else None
    headers: dict[str, str | None] = {**(http_headers or {}), QUERY_DATA_ENCODING_HEADER: encodings}
    stream = _PageStream(request, sql, headers)
    builder: ResultBuilder | None = None
    columns: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    update_type = update_count = None
    warnings: list[dict[str, Any]] = []
    try:
        stream.start()
        for page in stream:
            columns = columns or page.get("columns") or []
            # The page thread made it when the columns came, before their first rows.
            builder = builder or stream.builder
            for part in stream.parts(page.get("data")):
                if isinstance(part, Converted):
                    assert builder is not None
                    builder.append(part.pieces)
                    continue
                if builder is None:  # rows before any column list: untyped
                    columns = [{"name": f"_col{i}", "type": "unknown"} for i in range(len(part[0]))]
                    builder = ResultBuilder(columns)
                builder.add(part)
            stats = page.get("stats") or stats
            update_type = page.get("updateType") or update_type
            if page.get("updateCount") is not None:
                update_count = page["updateCount"]
            warnings.extend(page.get("warnings") or ())
            if stats_callback is not None:
                stats_callback(
                    {
                        **stats,
                        "queryId": stream.query_id,
                        "cluster": stream.cluster,
                        "fetchedRows": builder.rows if builder else 0,
                    }
                )
    except KeyboardInterrupt:
        stream.cancel()
        raise QueryCancelled(stream.query_id, builder.rows if builder else 0) from None
    finally:
        stream.close()
    frame = builder.frame() if builder is not None else pd.DataFrame()
    return QueryResult(
        frame=frame,
        query_id=stream.query_id,
        elapsed=time.perf_counter() - start,
        stats=stats,
        update_type=update_type,
        update_count=update_count,
        columns=list(columns),
        cluster=stream.cluster,
        warnings=warnings,
    )


def fetch_page(request: trino.client.TrinoRequest, url: str) -> dict[str, Any]:
    """The page at *url* (a ``nextUri``) as a dict, its body read in one call
    (`read_body`); an empty answer is asked for again, like the client does, up to its
    ``max_attempts``. Raises the client's exceptions."""
    for _ in range(max(1, request.max_attempts)):
        try:
            response = trino_compat.get_unread(request, url)
            body = read_body(response) if response.status_code == 200 else None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
            raise trino.exceptions.TrinoConnectionError(f"failed to fetch: {e}") from e
        if body is None or body.strip():
            break
    return read_page(request, response, body)


def read_body(response: requests.Response) -> bytes:
    """The body of *response* (asked for with ``stream=True``) in one read: ``urllib3``
    reads a body of known length straight into one buffer of its size and a chunked one
    chunk by chunk, decompressed as ``Content-Encoding`` says. ``response.content``
    would read it in 10 KB pieces, a few Python calls each (the page thread's reads of a
    million rows took 0.14 s of CPU that way, 0.07 s so, with the gateway's large
    chunks). An answer that changes the session is read as ``content``, which the
    client's own processing of it reads, and so is one read already (by a hook of the
    session's)."""
    if response.raw.closed or not _SESSION_HEADERS.isdisjoint(h.lower() for h in response.headers):
        return response.content
    return response.raw.read(decode_content=True)


def read_page(
    request: trino.client.TrinoRequest, response: requests.Response, body: bytes | None = None
) -> dict[str, Any]:
    """One protocol page as a dict (*body*: the response's, when read already); raises
    the client's exceptions for errors."""
    if response.status_code != 200:
        request.raise_response_error(response)
    if body is None:
        body = response.content
    if not body.strip():
        raise trino.exceptions.TrinoConnectionError(
            "received empty response from server (status 200)"
        )
    page = split_page(body)  # a large page's rows stay JSON (JsonRows)
    error = page.get("error")
    if error:
        trino_compat.raise_page_error(error, page.get("id"))
    if not _SESSION_HEADERS.isdisjoint(h.lower() for h in response.headers):
        request.process(response)  # applies the session changes to the connection
    return page


class Converted:
    """A spooled segment's or a direct page's rows, converted on a segment thread
    (`ResultBuilder.decode`, `ResultBuilder.convert`)."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: list[Pieces]) -> None:
        self.pieces = pieces


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


class _PageStream:
    """Submits the statement and follows ``nextUri`` on a thread, handing decoded pages
    to the caller through a small queue."""

    def __init__(
        self,
        request: trino.client.TrinoRequest,
        sql: str,
        headers: dict[str, str | None] | None,
        depth: int = PREFETCH_PAGES,
    ):
        self._request = request
        self._sql = sql
        self._headers = headers
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._segments = SegmentReader(
            trino_compat.http_session(request), self._stop, server=request.statement_url
        )
        self.query_id: str | None = None
        self.next_uri: str | None = None
        self.cluster: str | None = None
        #: Made from the first column list, before any page is handed out; None while
        #: rows came before any columns (they are then handed out as Python rows).
        self.builder: ResultBuilder | None = None
        self._untyped = False
        self._thread = threading.Thread(target=self._run, name="datahub-sql-pages", daemon=True)

    def start(self) -> None:
        """Submit the statement (on the page thread). The caller starts it where it
        handles an interrupt: ``Thread.start`` waits for the thread, which may have sent
        the statement by the time a Ctrl-C lands in that wait."""
        self._thread.start()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            item = self._queue.get()  # interruptible: Ctrl-C lands here while waiting
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def _run(self) -> None:
        try:
            try:
                response = self._request.post(self._sql, self._headers)
            except requests.exceptions.RequestException as e:
                raise trino.exceptions.TrinoConnectionError(f"failed to execute: {e}") from e
            page = read_page(self._request, response)
            while True:
                # A query the gateway queued has its own id and no cluster until it is
                # admitted and submitted; from then on Trino's id and the cluster.
                self.query_id = page.get("id") or self.query_id
                self.cluster = (
                    cluster_from_uri(page.get("nextUri") or page.get("infoUri")) or self.cluster
                )
                self.next_uri = page.get("nextUri")
                if self.builder is None and page.get("columns") and not self._untyped:
                    self.builder = ResultBuilder(page["columns"])
                self._untyped = self._untyped or (self.builder is None and bool(page.get("data")))
                data = page.get("data")
                if isinstance(data, dict):  # spooled: start on the segments now
                    convert = _converter(self.builder)
                    page["data"] = self._segments.submit(data, convert)
                elif isinstance(data, JsonRows):  # a large direct page: convert it there too
                    if self.builder is None:  # rows before any column list: untyped
                        page["data"] = data.python()
                    else:
                        convert_rows = _rows_converter(self.builder)
                        page["data"] = [self._segments.submit_rows(data, convert_rows)]
                if self._stop.is_set() or not self._put(page):
                    # Interrupted while this request was in flight: cancel what it started.
                    self._delete(self.next_uri)
                    return
                if self.next_uri is None:
                    break
                page = fetch_page(self._request, self.next_uri)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, raised there
            self._put(_Failure(e))
        self._put(_END)

    def parts(self, data: list[Any] | list[PendingSegment] | None) -> Iterator[Any]:
        """A page's rows: a small direct page's list of rows, or each spooled segment (a
        large direct page's rows), in order, as it is downloaded and converted
        (`Converted`, or Python rows when no column list came before it)."""
        if not data:
            return
        if not isinstance(data[0], PendingSegment):
            yield data
            return
        for segment in data:
            result = self._segments.result(segment)
            if isinstance(result, bytes):
                yield from (rows for rows in rows_in_chunks(result) if rows)
            else:
                yield result

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _delete(self, uri: str | None) -> None:
        if uri is None:
            return
        try:
            response = self._request.delete(uri)
            if response.status_code not in (200, 204):
                status = response.status_code
                log.info("Cancelling query %s answered HTTP %s", self.query_id, status)
        except requests.exceptions.RequestException as e:
            log.warning("Could not cancel query %s: %r", self.query_id, e)

    def cancel(self) -> None:
        """Cancel on the server and wait (a little) for the fetch thread to stop."""
        self._stop.set()
        self._segments.close(cancel=True)
        uri = self.next_uri
        # A second Ctrl-C while the DELETE is in flight must not leave the query running.
        for _ in range(3):
            try:
                self._delete(uri)
                # Until the thread is done, it may hold a newer nextUri (the submit was
                # still in flight); it cancels that one itself.
                self._thread.join(timeout=10)
                return
            except KeyboardInterrupt:
                continue

    def close(self) -> None:
        """Stop the fetch thread if the caller stops early (an error, an interrupt)."""
        self._stop.set()
        self._segments.close()
