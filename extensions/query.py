"""Run one SQL statement through the ``trino`` client and fetch its result fast.

The dbapi cursor maps every value through a Python function and hands rows out one
``fetchone()`` at a time; for a million-row result that costs more than the transfer. Here
the statement runs as a low-level :class:`trino.client.TrinoQuery` with
``legacy_primitive_types=True`` (the client's no-op row mapper), pages of raw JSON rows are
collected as they arrive, and :func:`datahub.results.to_dataframe` converts whole columns.
Authentication, retries, session headers and the protocol loop stay the client's own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import trino

from datahub.results import to_dataframe

__all__ = ["QueryCancelled", "QueryResult", "run_query"]


class QueryCancelled(Exception):
    """The user interrupted the query; it was cancelled on the server."""

    def __init__(self, query_id: str | None):
        super().__init__("Query cancelled")
        self.query_id = query_id


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


def run_query(
    connection: trino.dbapi.Connection,
    sql: str,
    *,
    stats_callback: Callable[[dict[str, Any]], None] | None = None,
    http_headers: dict[str, str] | None = None,
) -> QueryResult:
    """Execute ``sql`` on ``connection`` and return its typed result.

    ``stats_callback`` is called with Trino's stats after submit and after every page.
    ``http_headers`` go on the submitting request only (the gateway routes on it; the
    follow-up ``nextUri`` already names the cluster). A ``KeyboardInterrupt`` while the query
    runs or streams cancels it on the server (Trino records USER_CANCELED) and raises
    :class:`QueryCancelled`; Trino errors propagate as the client's exceptions.
    """
    start = time.perf_counter()
    # The connection's request carries its auth, session and HTTP session; the dbapi has no
    # public way to run a TrinoQuery on it, which is the one private call we make.
    request = connection._create_request()
    query = trino.client.TrinoQuery(
        request, query=sql, legacy_primitive_types=True, stats_callback=stats_callback
    )
    pages: list[Any] = []
    try:
        result = query.execute(additional_http_headers=http_headers)
        pages.append(result.rows)
        while not query.finished and not query.cancelled:
            pages.append(query.fetch())
    except KeyboardInterrupt:
        _cancel(query)
        raise QueryCancelled(query.query_id) from None
    # Spooled pages arrive as iterators of rows; inline ones as lists.
    rows = list(itertools.chain.from_iterable(pages))
    columns = query.columns or []
    if not columns and query.update_type is None and rows:
        columns = [{"name": f"_col{i}", "type": "unknown"} for i in range(len(rows[0]))]
    frame = to_dataframe(columns, rows)
    return QueryResult(
        frame=frame,
        query_id=query.query_id,
        elapsed=time.perf_counter() - start,
        stats=dict(query.stats),
        update_type=query.update_type,
        update_count=query.update_count,
        columns=list(columns),
    )


def _cancel(query: trino.client.TrinoQuery) -> None:
    # A second Ctrl-C while the DELETE is in flight must not leave the query running.
    for _ in range(3):
        try:
            query.cancel()
            return
        except KeyboardInterrupt:
            continue
        except trino.exceptions.TrinoConnectionError:
            return
