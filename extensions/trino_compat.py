"""The ``trino`` client's private parts the ``%%sql`` magic relies on, in one place.

The magic speaks Trino's protocol through the client's own request object (auth, session
headers, retries, the keep-alive HTTP session) instead of the dbapi's row-at-a-time
cursor (see :mod:`datahub.extensions.query`). The dbapi has no public way to do that, so
a few private names are used; they are reached only through this module, which checks
once, at first use, that the installed client is one of the versions they were verified
with (:data:`SUPPORTED`). Outside that range the magic says so in one sentence instead
of failing somewhere inside a query.

To support a new ``trino`` release: run the unit and integration tests of the magic
against it, then move the range's upper end.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NoReturn

import requests
import trino
import trino.client
import trino.dbapi
import trino.mapper

__all__ = [
    "SUPPORTED",
    "UnsupportedTrinoClient",
    "check_supported",
    "format_parameter",
    "get_unread",
    "http_session",
    "new_request",
    "raise_page_error",
    "spooled_rows",
    "version_problem",
]

#: The ``trino`` versions whose private parts this module was verified with: from the
#: first with the spooling protocol (``TrinoQuery._to_segments``, ``SegmentIterator``),
#: 0.332.0, up to but not including the first not yet verified.
SUPPORTED = ((0, 332, 0), (0, 341, 0))


class UnsupportedTrinoClient(Exception):
    """The installed ``trino`` client is outside :data:`SUPPORTED`; one sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [self.message]


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _release(version: str) -> tuple[int, ...] | None:
    """The release numbers at the start of a version string (``0.340.0.dev1`` → (0, 340, 0))."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version or "")
    if m is None:
        return None
    parts = tuple(int(p) for p in m.group(1).split("."))
    return (parts + (0, 0, 0))[:3]


def version_problem(version: str, supported: tuple[tuple[int, ...], ...] = SUPPORTED) -> str | None:
    """The sentence for a ``trino`` client *version* outside *supported*; None inside."""
    low, high = supported
    wanted = f"trino>={_dotted(low)},<{_dotted(high)}"
    release = _release(version)
    if release is not None and low <= release < high:
        return None
    return (
        f"The installed trino client ({version or 'unknown version'}) is not one %%sql "
        f"supports ({wanted}); ask your DataHub admin to install a supported one "
        f"(pip install '{wanted}')."
    )


@functools.cache
def _installed_problem() -> str | None:
    return version_problem(trino.__version__)


def check_supported() -> None:
    """Raise :class:`UnsupportedTrinoClient` if the installed client is outside
    :data:`SUPPORTED` (its version is read once per process)."""
    problem = _installed_problem()
    if problem is not None:
        raise UnsupportedTrinoClient(problem)


# --------------------------------------------------------------------------- the private parts


def new_request(connection: trino.dbapi.Connection) -> trino.client.TrinoRequest:
    """A request object on *connection*'s session, exactly what its cursors use
    (``Connection._create_request``)."""
    check_supported()
    return connection._create_request()


def get_unread(request: trino.client.TrinoRequest, url: str) -> requests.Response:
    """``GET`` *url* (a ``nextUri``) as the client follows it (its headers, timeout and
    retries of connection errors and HTTP 429/502/503/504: ``TrinoRequest._get``) with
    the body left unread (``stream=True``), for the caller to read in one call.

    The client's own ``get`` reads every body through ``requests``' 10 KB pieces to retry
    an empty one; the caller does that retry itself."""
    check_supported()
    return request._get(
        url,
        headers=request.http_headers,
        timeout=request._request_timeout,
        proxies=trino.client.PROXIES,
        stream=True,
    )


def format_parameter(connection: trino.dbapi.Connection) -> Any:
    """The function that writes a Python value as a Trino literal for ``EXECUTE …
    USING`` the way the dbapi does (``Cursor._format_prepared_param``)."""
    check_supported()
    return connection.cursor()._format_prepared_param


def raise_page_error(error: dict[str, Any], query_id: str | None) -> NoReturn:
    """Raise the client's exception (``TrinoUserError``, ``TrinoExternalError``, …) for a
    page's ``error`` (``TrinoRequest._process_error``, which raises some and returns
    the others)."""
    raise trino.client.TrinoRequest._process_error(error, query_id)


def http_session(request: trino.client.TrinoRequest) -> Any:
    """The ``requests`` session *request* sends with (``TrinoRequest._http_session``): its
    authentication, pinned CA and keep-alive connections, for downloading segments."""
    check_supported()
    return request._http_session


def spooled_rows(request: trino.client.TrinoRequest, data: dict[str, Any]) -> list[list[Any]]:
    """Rows of a spooled-protocol page, decoded and fetched by the client (the gateway
    normally disables spooling, but a direct connection may get it)."""
    check_supported()
    segments = trino.client.TrinoQuery(request, query="")._to_segments(data)
    mapper = trino.mapper.RowMapperFactory.NO_OP_ROW_MAPPER
    return list(trino.client.SegmentIterator(segments, mapper))
