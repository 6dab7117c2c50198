"""Pages the gateway follows on the client's behalf instead of sending them ("collapse").

While a query is queued or planning, Trino answers each poll with a page that only says
"not yet". The gateway follows such pages for the client for a short while
(``c.DataHubService.page_collapse_seconds``), so a short query costs the client two
round trips instead of six (a spooled one's inline rows reach a POST as direct-protocol
rows: ``spooled.inline_rows``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: What a page that only reports progress holds. ``columns`` may be there: Trino repeats
#: them on every later page, the one with the first rows included.
PROGRESS_KEYS = frozenset(
    {"id", "infoUri", "partialCancelUri", "nextUri", "columns", "stats", "warnings"}
)

#: The response header of a spooled query's pages.
_ENCODING_HEADER = "x-trino-query-data-encoding"
#: Trino headers every page of a query carries alike, so a skipped page loses nothing by
#: them: the spooling protocol's encoding comes on each page of a spooled query.
_REPEATED_HEADERS = frozenset({_ENCODING_HEADER})


def news_in_headers(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a page's *headers* tell the client something: a session change (any
    ``X-Trino-*`` header but the ones every page repeats)."""
    for name, _ in headers:
        lname = name.lower()
        if lname.startswith("x-trino-") and lname not in _REPEATED_HEADERS:
            return True
    return False


def carries_nothing(page: dict[str, Any], headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a page (parsed) only says "not yet": no data, error, update or warning, no
    session change in its headers (`news_in_headers`), and a nextUri to go on with.

    The client loses nothing by such a page but intermediate progress numbers.
    """
    return (
        not news_in_headers(headers)
        and isinstance(page.get("nextUri"), str)
        and not page.get("warnings")
        and PROGRESS_KEYS.issuperset(page)
    )
