"""Spooled result pages on their way through the gateway: their segments' URIs rewritten.

With Trino's spooling protocol a page's ``data`` is an object, ``{"encoding": "json+zstd",
"segments": [...]}``: *inline* segments carry their rows, *spooled* ones a download ``uri``
and an ``ackUri`` on the cluster. Such a page is read whole (it is small: the rows are in
the segments) and those URIs are rewritten to the gateway's signed, expiring segment URIs
(``segments.py`` serves them). Pure but for `read_page`.

Answering a client's POST, a page whose ``data`` holds only small uncompressed inline
segments is given as direct-protocol rows instead (`inline_rows`): the ``trino`` client
reads rows in the answer to its POST as direct-protocol rows, and every client reads a
page's ``data`` by its shape (a list of rows, or a spooled object), whatever the
encoding header says, so a spooled ``SELECT 1`` costs two requests like a direct one.
Inline segments hold their rows as base64 of the encoding's bytes: for the ``json``
encodings, the JSON array of rows exactly as the direct protocol writes them, compressed
(``json+zstd``, ``json+lz4``) only above Trino's compression threshold, when the
segment's metadata names its ``uncompressedSize``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .core import Gateway
from .upstream import UpstreamResponse

#: A spooled page is read whole (to rewrite its segments' URIs) up to this size: its
#: inline segments are bounded by Trino's ``protocol.spooling.inlining.max-size``.
SPOOLED_PAGE = 16 * 1024 * 1024
#: Where segment URIs live on a cluster; only these are rewritten to the gateway.
SPOOLED_PATH = "/v1/spooled/"

_DATA_KEY = b'"data":'

#: Inline rows go to a client's POST as direct-protocol rows up to this many bytes of
#: their JSON, all segments of the page together; a larger page stays spooled.
INLINE_AS_ROWS = 64 * 1024

#: Redirects a client follows to read a segment elsewhere.
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def has_rows(head: bytes) -> bool:
    """Whether a page whose first bytes are *head* carries direct-protocol rows (a list);
    a page without (a failed query's: its error follows the stats) has none."""
    return _data_starts(head) == b"["


def _data_starts(head: bytes) -> bytes:
    at = head.find(_DATA_KEY)
    if at < 0:
        return b""
    return head[at + len(_DATA_KEY) : at + len(_DATA_KEY) + 16].lstrip()[:1]


def segments_of(page: dict[str, Any]) -> list | None:
    """The segments of a parsed page's spooled ``data``; None for a page without."""
    data = page.get("data")
    segments = data.get("segments") if isinstance(data, dict) else None
    return segments if isinstance(segments, list) else None


def segment_rows(page: dict[str, Any]) -> int | None:
    """The number of the result's rows up to the end of a parsed page's last segment
    (None for a page without segments).

    Trino's own count of output rows is the number of segments for a spooled query, so
    the gateway counts the rows from the segments' metadata (``rowOffset``, ``rowsCount``).
    """
    rows = None
    for segment in segments_of(page) or ():
        if isinstance(segment, dict):
            rows = _rows_through(segment.get("metadata")) or rows
    return rows


def rewrite_segment_uris(page: dict[str, Any], rewrite_uri: Callable[[str], str]) -> None:
    """Rewrite a parsed page's spooled segments' ``uri`` and ``ackUri`` with *rewrite_uri*
    when they point at the cluster (others are storage URIs, kept)."""
    for segment in segments_of(page) or ():
        if not isinstance(segment, dict) or segment.get("type") != "spooled":
            continue
        for key in ("uri", "ackUri"):
            uri = segment.get(key)
            if isinstance(uri, str) and urlsplit(uri).path.startswith(SPOOLED_PATH):
                segment[key] = rewrite_uri(uri)


def inline_rows(page: dict[str, Any]) -> list | None:
    """A parsed spooled page's rows as direct-protocol rows, when its ``data`` holds only
    inline segments of a ``json`` encoding, none compressed, of up to `INLINE_AS_ROWS`
    bytes in all; None for any other page."""
    data = page.get("data")
    if not isinstance(data, dict) or str(data.get("encoding")).split("+")[0] != "json":
        return None
    segments = data.get("segments")
    if not isinstance(segments, list) or not segments:
        return None
    rows: list = []
    size = 0
    for segment in segments:
        if not isinstance(segment, dict) or segment.get("type") != "inline":
            return None
        metadata, encoded = segment.get("metadata"), segment.get("data")
        if not isinstance(metadata, dict) or "uncompressedSize" in metadata:
            return None
        if not isinstance(encoded, str):
            return None
        size += len(encoded) * 3 // 4
        if size > INLINE_AS_ROWS:
            return None
        try:
            part = json.loads(base64.b64decode(encoded, validate=True))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(part, list):
            return None
        rows.extend(part)
    return rows


def storage_redirect(status: int, location: str | None, cluster_url: str) -> str | None:
    """Where a cluster's answer to a segment download sends the client when it is a
    redirect to an object store (Trino's ``COORDINATOR_STORAGE_REDIRECT`` mode: the
    storage's pre-signed URI, passed on as a ``STORAGE`` mode segment URI is); None for
    any other answer, a redirect back to the cluster included (the gateway alone speaks
    to clusters)."""
    if status not in REDIRECTS or not location:
        return None
    target = urlsplit(location)
    if target.scheme not in ("http", "https") or not target.hostname:
        return None
    return None if _host_port(target) == _host_port(urlsplit(cluster_url)) else location


def _host_port(parts: SplitResult) -> tuple[str, int | None]:
    return (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(
        parts.scheme
    )


def _rows_through(metadata: object) -> int | None:
    """The result's rows up to the end of a segment (its offset plus its rows)."""
    if not isinstance(metadata, dict):
        return None
    try:
        return int(metadata.get("rowOffset", 0)) + int(metadata["rowsCount"])
    except (KeyError, TypeError, ValueError):
        return None


def uri_rewriter(gateway: Gateway, base_url: str, cluster: str, user: str) -> Callable[[str], str]:
    """The rewrite of a cluster's segment URIs to the gateway's, for *user*, expiring
    ``gateway.segment_uri_seconds`` from now."""
    expires = int(time.time()) + gateway.segment_uri_seconds

    def rewrite(uri: str) -> str:
        return gateway.signer.segment_uri(base_url, cluster, user, uri, expires)

    return rewrite


async def read_page(response: UpstreamResponse, whole_page: int) -> tuple[bytes, bool]:
    """The start of a page, read whole if it is up to *whole_page* bytes, and read on (up
    to `SPOOLED_PAGE`) while no direct-protocol rows have started in it: a spooled page
    is read whole, for its segments, and so is a failed query's, however long the user
    made its message, for its stack frames; a page's rows after large ``columns`` still
    stream. The flag says whether it was read whole. Raises ClusterUnreachable."""
    body, whole = await response.read_up_to(whole_page)
    # (A Presto page, translated without frames, comes whole or not at all: streamed.)
    while not whole and body and not has_rows(body) and len(body) < SPOOLED_PAGE:
        # Twice as much each time: the page's bytes are copied and searched a few times.
        rest, whole = await response.read_up_to(min(len(body), SPOOLED_PAGE - len(body)))
        body += rest
    return body, whole
