"""Where features plug into every query: one admission, and a list of listeners.

**The admission** (at most one, ``c.DataHubService.admission``; the quotas' by default)
decides before a query reaches a cluster, after routing:

``admit(query, ending) -> Admitted``
    Answers at once: runs (an `Admitted`, with a note for the audit, data that travels
    with the query in ``QueryRecord.admission`` to every gateway process, and per-query
    `EngineLimits` the gateway sets as Trino session limits on the forwarded query), or
    raises `QueryRefused` (the client receives a Trino query error with its message and
    error name) or `QueryQueued` (the query waits its turn). *ending* are the same
    user's queries that have ended on their cluster and whose close is on its way in
    this process (a client that runs one query after another submits the next while the
    last one's close is recorded): they no longer run, though ``on_finished`` has not
    been heard for them yet.

``recheck(identity, place) -> (QueryRecord, Admitted)`` and ``withdraw(identity, place)``
    Only for an admission that queues. Raising ``QueryQueued(reason, place)``, it keeps
    ``query.queued_data()`` with its *place* in shared storage: the client gets a Trino
    QUEUED page whose nextUri comes back to any gateway process, which calls ``recheck``
    with the place: the kept query and its `Admitted` once its turn has come, or
    `QueryQueued` again, or `QueryRefused` (with ``query`` set when the place still had
    it). ``withdraw`` gives the place up (the client cancelled) and returns the kept
    query, or None.

**Listeners** (``c.DataHubService.query_listeners``; the quotas' is one) hear an admitted
query's life; each call's exceptions are logged and ignored, so a broken listener neither
kills queries nor keeps the others from hearing them:

``on_progress(query, stats) -> str | None``
    After every result page the client receives, with Trino's statistics so far. A
    returned reason stops the query: the gateway cancels it on Trino, records it FAILED
    with ``QUOTA_EXCEEDED`` and answers the client's next request naming the reason.
``on_running(query, stats) -> str | None``
    Every ``watch_interval`` seconds while the query runs, whether or not its client
    polls, with the statistics of Trino's query info. A reason stops it as above.
``on_finished(query)``
    Exactly once per admitted query, across gateway processes (the journal decides which
    process closes it), whatever the end: ``query.state`` is FINISHED, FAILED (also when
    no cluster took it), CANCELED, or LOST, and ``query.stats`` Trino's final statistics.
    A query the reconciler closes is rebuilt from the audit (the identity recorded at
    submission, its admission data).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..identity import Identity
from ..query import QueryRecord, QueryStats
from .engine_limits import EngineLimits


@dataclass(frozen=True)
class Admitted:
    """What ``admit`` and ``recheck`` return for a query that may run now."""

    note: str | None = None
    data: Mapping[str, object] = field(default_factory=dict)
    #: Per-query limits the engine must enforce on the query (Trino session properties).
    engine_limits: EngineLimits = field(default_factory=EngineLimits)
    #: The client's error message when the engine stops the query at one of those
    #: limits, by Trino's error name (``EXCEEDED_CPU_LIMIT``…); see `engine_limits.LIMIT_ERRORS`.
    limit_messages: Mapping[str, str] = field(default_factory=dict)


class QueryRefused(Exception):
    """Raised by ``admit`` or ``recheck``: the query may not run. ``message`` is the
    user's sentence; ``query`` the one a queued place had kept, if known."""

    def __init__(
        self,
        message: str,
        error_name: str = "QUOTA_EXCEEDED",
        error_type: str = "USER_ERROR",
        error_code: int = 0xDA10,  # in Trino's USER_ERROR range, like the gateway's own
        *,
        query: QueryRecord | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = error_name
        self.error_type = error_type
        self.error_code = error_code
        self.query = query

    @property
    def error(self) -> tuple[str, str, int]:
        """Trino's (name, type, code) of the refusal."""
        return self.error_name, self.error_type, self.error_code


_PLACE_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class QueryQueued(Exception):
    """Raised by ``admit`` or ``recheck``: the query waits its turn. ``reason`` is the
    user's sentence (why it waits); ``place`` names its place for ``recheck`` and
    ``withdraw`` (up to 80 letters, digits, - and _: it travels in the client's nextUri);
    ``waited`` the seconds it has waited so far."""

    def __init__(self, reason: str, place: str, waited: float = 0.0) -> None:
        if not _PLACE_RE.match(place):
            raise ValueError(f"A queued place must be 1-80 letters, digits, - or _: {place!r}")
        super().__init__(reason)
        self.reason = reason
        self.place = place
        self.waited = waited


def unknown_place() -> QueryRefused:
    """The refusal of a queued place the admission never gave."""
    return QueryRefused(
        "This queued query is unknown to DataHub; run it again.", "NOT_FOUND", "USER_ERROR", 44
    )


class QueryAdmission:
    """The admission interface (see the module docstring). This base admits every query
    and never queues."""

    async def admit(self, query: QueryRecord, ending: Sequence[QueryRecord] = ()) -> Admitted:
        return Admitted()

    async def recheck(self, identity: Identity, place: str) -> tuple[QueryRecord, Admitted]:
        raise unknown_place()

    async def withdraw(self, identity: Identity, place: str) -> QueryRecord | None:
        return None


class QueryListener:
    """A listener (see the module docstring); every method is a no-op."""

    async def on_progress(self, query: QueryRecord, stats: QueryStats) -> str | None:
        return None

    async def on_running(self, query: QueryRecord, stats: QueryStats) -> str | None:
        return None

    async def on_finished(self, query: QueryRecord) -> None:
        return None


class Listeners:
    """Calls each of a list of listeners, logging and ignoring their exceptions.

    *listeners* is held, not copied: the service appends features' listeners after the
    tracker is built.
    """

    def __init__(self, listeners: Sequence[QueryListener], log: logging.Logger) -> None:
        self.listeners = listeners
        self.log = log

    def __bool__(self) -> bool:
        return bool(self.listeners)

    async def on_progress(self, query: QueryRecord, stats: QueryStats) -> str | None:
        """The first stop reason a listener gives after a result page, or None."""
        return await self._first_reason("on_progress", query, stats)

    async def on_running(self, query: QueryRecord, stats: QueryStats) -> str | None:
        """The first stop reason a listener gives for a running query, or None."""
        return await self._first_reason("on_running", query, stats)

    async def _first_reason(self, method: str, query: QueryRecord, stats: QueryStats) -> str | None:
        for listener in self.listeners:
            try:
                reason = await getattr(listener, method)(query, stats)
            except Exception:
                self._failed(listener, method, query)
                continue
            if reason:
                return reason
        return None

    async def on_finished(self, query: QueryRecord) -> None:
        """Tell every listener the query ended."""
        for listener in self.listeners:
            try:
                await listener.on_finished(query)
            except Exception:
                self._failed(listener, "on_finished", query)

    def _failed(self, listener: QueryListener, method: str, query: QueryRecord) -> None:
        self.log.exception(
            "Query listener %s failed in %s of %s",
            type(listener).__name__,
            method,
            query.query_id or "(no id)",
        )
