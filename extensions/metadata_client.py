"""The kernel's view of the user's Trino metadata, from the DataHub service.

:class:`MetadataClient` asks ``{api}/metadata/…`` through the kernel's
:class:`~datahub.extensions.service_client.ServiceClient` (the service runs the
statements through the gateway as the token's owner and caches them per user), keeps the
answers for a short while in the kernel too (completion asks on every key press), and
never raises while listing: completion must not break typing, so a failure is logged and
answered with nothing. It implements :class:`datahub.extensions.completion.Catalog`.

Answers are kept as the objects completion uses (parsed once per answer, not per key
press: a schema may hold thousands of tables), in tuples nobody can change.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from datahub.extensions.completion import Column, Function, Table, parse_type
from datahub.extensions.service_client import ServiceClient, ServiceError

__all__ = ["MetadataClient"]

log = logging.getLogger(__name__)

#: Where slow answers are fetched while completion goes on without them.
_BACKGROUND = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="datahub-metadata")


class MetadataClient:
    """Cached metadata of the token's owner, read through the DataHub service.

    ``hint`` is the routing group a cell names with ``--cluster``: the statements go
    where that cell's query would. Answers are kept ``ttl`` seconds (failures
    ``failure_ttl``, so a down service is not asked on every key press).
    """

    def __init__(
        self,
        service: ServiceClient,
        *,
        hint: str | None = None,
        ttl: float = 60.0,
        failure_ttl: float = 10.0,
        functions_wait: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.hint = hint
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.functions_wait = functions_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._functions: concurrent.futures.Future | None = None
        self._cache: dict[tuple[str, ...], tuple[float, tuple]] = {}
        #: The last failure's sentence, for whoever wants to tell the user.
        self.last_error: str | None = None

    # -- Catalog ------------------------------------------------------------------------

    def catalogs(self) -> tuple[str, ...]:
        return self._get(_names, "catalogs")

    def schemas(self, catalog: str) -> tuple[str, ...]:
        return self._get(_names, "schemas", catalog=catalog)

    def tables(self, catalog: str, schema: str) -> tuple[Table, ...]:
        return self._get(_tables, "tables", catalog=catalog, schema=schema)

    def columns(self, catalog: str, schema: str, table: str) -> tuple[Column, ...]:
        return self._get(_columns, "columns", catalog=catalog, schema=schema, table=table)

    def functions(self) -> tuple[Function, ...]:
        """Trino's functions, without waiting long for them: Trino lists functions slowly
        (``SHOW FUNCTIONS`` takes seconds) and they only add to a list of columns, so
        when they are not at hand within ``functions_wait`` seconds this completion goes
        without and the fetch carries on in the background for the next one. Only the
        completion that starts a fetch waits (the service may have the list cached);
        those that come while it runs do not."""
        cached = self._cache.get(("functions",))
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        with self._lock:
            running = self._functions is not None and not self._functions.done()
            if not running:
                self._functions = _BACKGROUND.submit(self._get, _functions, "functions")
            fetch = self._functions
        try:
            return fetch.result(timeout=0 if running else self.functions_wait)
        except concurrent.futures.TimeoutError:
            return ()
        except Exception:  # completion must never break typing
            log.exception("SQL completion could not list functions")
            return ()

    # -- refresh ------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop the kernel's copies (the service's are dropped by :meth:`refresh`)."""
        self._cache.clear()

    def refresh(self) -> int:
        """Drop the cached answers here and in the service; how many the service had.
        Raises :class:`ServiceError` (one sentence) when the service cannot."""
        self.forget()
        return self.service.refresh_metadata()

    # -- plumbing -----------------------------------------------------------------------

    def _get(self, convert: Callable[[list[Any]], tuple], kind: str, **names: str) -> tuple:
        """The answer to *kind* for *names*, as *convert* makes it of the service's JSON."""
        key = (kind, *names.values())
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        params = dict(names)
        if self.hint:
            params["cluster"] = self.hint
        try:
            value, ttl = convert(self.service.metadata(kind, params)), self.ttl
            self.last_error = None
        except ServiceError as e:
            log.info("SQL completion metadata %s %s: %s", kind, params, e.message)
            self.last_error = e.message
            value, ttl = (), self.failure_ttl
        self._cache[key] = (now + ttl, value)
        return value


def _entries(answer: list[Any]) -> list[dict[str, Any]]:
    return [e for e in answer if isinstance(e, dict) and "name" in e]


def _names(answer: list[Any]) -> tuple[str, ...]:
    return tuple(str(name) for name in answer)


def _tables(answer: list[Any]) -> tuple[Table, ...]:
    return tuple(Table(t["name"], t.get("type") or "") for t in _entries(answer))


def _columns(answer: list[Any]) -> tuple[Column, ...]:
    return tuple(
        Column(c["name"], c.get("type") or "", parse_type(c.get("type") or ""))
        for c in _entries(answer)
    )


def _functions(answer: list[Any]) -> tuple[Function, ...]:
    return tuple(
        Function(f["name"], f.get("signature") or "", f.get("description") or "")
        for f in _entries(answer)
    )
