"""A short query's rows carried to its last page ("carry"). Pure: no I/O.

After the page with a short query's rows, Trino still sends two or three pages that only
report the query finishing (RUNNING without data, FINISHED with a nextUri, then the last
page). The gateway holds a small page of rows (`carriable`) and follows those pages
itself, each with a short ``maxWait`` (`look_ahead`), for up to
``c.DataHubService.page_carry_seconds``. If the last page comes, the client gets it with
the rows (`merged`): ``SELECT 1`` costs the client one request instead of two. If
anything else comes first (more rows, an error, a warning, a session change, a page too
large to read whole, the time is up), the client gets the rows at once, with a nextUri
that leads to the page the gateway fetched last (`with_next`): Trino answers a repeated
request for its last page with that page again, so the client loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .collapse import PROGRESS_KEYS, news_in_headers
from .pagejson import Dumps

#: The keys of a page of rows that may be carried: rows, and what a progress page holds.
_CARRIED_KEYS = PROGRESS_KEYS | {"data"}
#: The keys a query's last page may have for the rows to join it (``data``: empty).
_LAST_KEYS = frozenset(
    {"id", "infoUri", "columns", "data", "stats", "warnings", "updateType", "updateCount"}
)


@dataclass
class Carried:
    """A page of rows held for the client while the gateway looks ahead."""

    #: The page as the client would have had it (URIs signed), parsed.
    page: dict[str, Any]
    #: What writes the page back (`pagejson.loads`).
    dumps: Dumps
    #: The response headers for the client (its status is 200: only a cluster's 200
    #: page of JSON is read whole).
    headers: list[tuple[str, str]]
    #: ``time.monotonic()`` after which the rows go to the client as they are.
    until: float
    #: The cluster URI of the page the gateway fetched last (set as it follows on).
    fetched: str = ""


def carriable(page: dict[str, Any], headers: Iterable[tuple[str, str]]) -> bool:
    """Whether the client-ready *page* (parsed) may be held while the gateway looks
    ahead: direct-protocol rows (a non-empty list), a nextUri, nothing else but progress
    (no warning, update or error), and no session change in its *headers*."""
    if news_in_headers(headers) or not _CARRIED_KEYS.issuperset(page):
        return False
    data = page.get("data")
    if not isinstance(data, list) or not data or page.get("warnings"):
        return False
    return isinstance(page.get("nextUri"), str)


def merged(carried: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
    """*last* (a client-ready page, parsed) with *carried*'s rows and columns, if it is
    the query's last page and has none of its own: no nextUri, no error, no rows."""
    if not _LAST_KEYS.issuperset(last) or last.get("data"):
        return None
    joined = dict(last)
    joined["columns"] = last.get("columns") or carried.get("columns")
    joined["data"] = carried["data"]
    return joined


def with_next(carried: dict[str, Any], next_uri: str) -> dict[str, Any]:
    """*carried* as the client gets it when the rows go on their own: its nextUri
    *next_uri* (the gateway URI of the page fetched last)."""
    return {**carried, "nextUri": next_uri}


def look_ahead(path: str, seconds: float) -> str:
    """*path* (a nextUri's path and query) asking the cluster to answer within
    *seconds* (at least a millisecond): ``maxWait``, which Trino and Presto take on a
    running query's pages, instead of their default of a second."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "maxWait"]
    query.append(("maxWait", f"{max(1, round(seconds * 1000))}ms"))
    return f"{parts.path}?{urlencode(query)}"
