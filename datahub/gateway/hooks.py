"""Hooks around every query the gateway runs: admission, progress, and the end.

Other features (quotas first) plug into the gateway here, without touching its handlers.
A hook is a `QueryHooks` subclass; the service calls the instances in
``DataHubService.query_hooks`` in order (register one with
``service.query_hooks.append(MyHooks(...))`` in ``DataHubService.init``, or
``c.DataHubService.query_hooks`` in the configuration)::

    class QuotaHooks(QueryHooks):
        async def admit(self, identity, submission):
            ticket = await controller.admit(identity.name, identity.groups,
                                            routing_group=submission.routing_group)
            return Admission(note=f"waited {ticket.waited:.1f} s",
                             data={"quota_slot": ticket.slot_id})

        async def on_progress(self, identity, query, stats):
            if stats.cpu_ms > 600_000:
                return "it used more than 10 minutes of CPU (your per-query limit)"
            return None

        async def finished(self, identity, query, final_state, stats):
            await controller.release(query.admission["quota_slot"], stats)

The calls, for one query:

``admit(identity, submission) -> Admission | None``
    Before the query reaches a cluster, after routing (``submission.routing_group`` is
    the group chosen, ``submission.cluster`` a cluster the user pinned). It answers at
    once: it may raise `QueryRefused`, which the client receives as a Trino query error
    with the hook's message and error name, or `QueryQueued` (the query must wait its
    turn; see below). Returning None admits without data. ``Admission.data`` (JSON-able,
    namespace your keys) is stored with the query and handed back as ``query.admission``
    in the later calls, in whichever gateway process serves them.
    ``Admission.engine_limits`` are per-query limits the engine enforces itself: the
    gateway sets them as Trino session properties on the forwarded query (the stricter
    of every hook's, and of the client's own values; see `engine_limits`).

``recheck(identity, place) -> Resumed`` and ``withdraw(identity, place) -> Submission | None``
    Only for hooks that queue. A hook raising ``QueryQueued(reason, place)`` must keep
    ``submission.to_data()`` with its *place* in shared storage: the gateway answers the
    client with a Trino QUEUED page (the reason in its stats) whose nextUri comes back
    to any gateway process, which calls ``recheck`` with the place. That returns the
    stored Submission and its Admission once the query's turn has come (the query is
    then submitted), or raises QueryQueued again (still waiting) or QueryRefused (with
    ``submission`` set when the hook still had it). ``withdraw`` gives the place up
    (the client cancelled, DELETE on the nextUri) and returns the stored Submission.

``on_progress(identity, query, stats) -> str | None``
    After every result page the client receives, with Trino's statistics so far. A
    returned reason stops the query: the gateway cancels it on Trino at once, records it
    FAILED with error ``QUOTA_EXCEEDED``, and answers the client's next request with a
    Trino-format error naming the reason (``DataHub stopped query …: <reason>.``).

``on_running(identity, query, stats) -> str | None``
    Every ``watch_interval`` seconds while the query runs, whether or not its client
    polls, with Trino's statistics from the cluster's query info (read server-side as the
    service account). For what must be counted while a query runs (a day's CPU and
    bytes). A returned reason stops the query as in ``on_progress``.

``finished(identity, query, final_state, stats)``
    Exactly once for every ``admit`` (or ``recheck``) that returned (across all gateway
    processes: the
    audit store decides which process closes a query), whatever the end: ``FINISHED``,
    ``FAILED`` (including queries no cluster accepted), ``CANCELED`` (by the client or a
    stop reason), ``LOST`` (the cluster died, or the query vanished and was found by the
    reconciler), or ``REJECTED`` (a later hook refused the query this hook admitted).
    ``stats`` are Trino's final statistics (output rows when Trino still had them).
    ``identity`` is rebuilt from the audit record when the query is closed by the
    reconciler, so it has the name, groups and admin flag recorded at submission.

Exceptions from ``on_progress``, ``on_running`` and ``finished`` are logged and ignored:
a broken hook must neither kill queries nor leave them unaccounted for by the other hooks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..identity import Identity
from .engine_limits import LIMIT_ERRORS, EngineLimits

#: Final states of a query, as hooks, the audit and the API name them.
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELED = "CANCELED"
LOST = "LOST"
REJECTED = "REJECTED"
FINAL_STATES = frozenset({FINISHED, FAILED, CANCELED, LOST, REJECTED})


@dataclass(frozen=True)
class Submission:
    """A new query, after routing and before admission."""

    sql: str
    source: str | None
    client_tags: tuple[str, ...]
    catalog: str | None
    schema: str | None
    #: What the client asked for (``X-DataHub-Routing-Group``), if anything.
    routing_hint: str | None
    #: The routing group chosen, and why (``rule:<name>``, ``hint``, ``hook``, ``default``).
    routing_group: str
    routing_reason: str
    #: A cluster the user pinned with the hint (its name instead of a group's), else None.
    cluster: str | None = None
    #: The client's headers that reach the cluster with the query (session, catalog,
    #: client tags... never identity; see `protocol.session_headers`), as (name, value).
    headers: tuple[tuple[str, str], ...] = ()
    #: Set by the hook chain while hooks before a queueing one have admitted the query:
    #: how many, and their merged note and data (so a queued query resumes there).
    earlier: Mapping[str, Any] = field(default_factory=dict)
    #: The statement as the client sent it when ``sql`` (the SQL that runs, which routing
    #: and the audit see) differs: ``EXECUTE q USING 5`` runs prepared statement q.
    client_sql: str | None = None

    @property
    def statement(self) -> str:
        """The statement to send to the cluster (as the client sent it)."""
        return self.client_sql or self.sql

    def audited(self) -> dict[str, Any]:
        """What the audit records of the query if it is refused (`QueryTracker.rejected`)."""
        return {
            "sql": self.sql,
            "client_sql": self.client_sql,
            "source": self.source,
            "client_tags": self.client_tags,
            "routing_group": self.routing_group,
            "routing_reason": self.routing_reason,
        }

    def to_data(self) -> dict[str, Any]:
        """The submission as JSON-able data (for `from_data`)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["client_tags"] = list(self.client_tags)
        data["headers"] = [list(pair) for pair in self.headers]
        data["earlier"] = dict(self.earlier)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Submission:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["client_tags"] = tuple(values.get("client_tags") or ())
        values["headers"] = tuple((str(n), str(v)) for n, v in values.get("headers") or ())
        values["earlier"] = dict(values.get("earlier") or {})
        return cls(**values)


@dataclass(frozen=True)
class Admission:
    """What ``admit`` returns: a note for the audit and data for the later calls."""

    note: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    #: Per-query limits the engine must enforce on the query (Trino session properties).
    engine_limits: EngineLimits = field(default_factory=EngineLimits)
    #: The client's error message when the engine stops the query at one of those
    #: limits, by Trino's error name (``EXCEEDED_CPU_LIMIT``…); see `engine_limits.LIMIT_ERRORS`.
    limit_messages: Mapping[str, str] = field(default_factory=dict)


class QueryRefused(Exception):
    """Raised by ``admit`` or ``recheck``: the query may not run. ``message`` is the
    user's sentence; ``submission`` the stored one of a queued query, if known."""

    def __init__(
        self,
        message: str,
        error_name: str = "QUOTA_EXCEEDED",
        error_type: str = "USER_ERROR",
        error_code: int = 0xDA10,  # in Trino's USER_ERROR range, like the gateway's own
        *,
        submission: Submission | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = error_name
        self.error_type = error_type
        self.error_code = error_code
        self.submission = submission

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


@dataclass(frozen=True)
class Resumed:
    """What ``recheck`` returns when a queued query's turn has come."""

    submission: Submission
    admission: Admission


@dataclass(frozen=True)
class QueryInfo:
    """An admitted query, as the later hook calls see it."""

    query_id: str
    user: str
    cluster: str | None
    routing_group: str | None
    sql: str
    source: str | None
    client_tags: tuple[str, ...]
    submitted_at: dt.datetime
    #: The merged ``Admission.data`` of the hooks.
    admission: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryStats:
    """Trino's statistics of a query (so far, or final), in plain numbers.

    ``output_rows`` is known only at the end (from Trino's query info); ``raw`` is the
    ``stats`` object of the last result page as Trino sent it.
    """

    state: str
    elapsed_ms: int = 0
    queued_ms: int = 0
    cpu_ms: int = 0
    wall_ms: int = 0
    processed_rows: int = 0
    processed_bytes: int = 0
    physical_bytes: int = 0
    peak_memory_bytes: int = 0
    output_rows: int | None = None
    error_name: str | None = None
    error_type: str | None = None
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


class QueryHooks:
    """Base class of query hooks; every method is a no-op. See the module docstring."""

    async def admit(self, identity: Identity, submission: Submission) -> Admission | None:
        return None

    async def recheck(self, identity: Identity, place: str) -> Resumed:
        raise QueryRefused(
            "This queued query is unknown to DataHub; run it again.", "NOT_FOUND", "USER_ERROR", 44
        )

    async def withdraw(self, identity: Identity, place: str) -> Submission | None:
        return None

    async def on_progress(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        return None

    async def on_running(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        return None

    async def finished(
        self, identity: Identity, query: QueryInfo, final_state: str, stats: QueryStats
    ) -> None:
        return None


def _query_info(identity: Identity, submission: Submission, data: Mapping[str, Any]) -> QueryInfo:
    """The QueryInfo of a query that never reached a cluster."""
    return QueryInfo(
        query_id="",
        user=identity.name,
        cluster=None,
        routing_group=submission.routing_group,
        sql=submission.sql,
        source=submission.source,
        client_tags=submission.client_tags,
        submitted_at=dt.datetime.now(dt.UTC),
        admission=dict(data),
    )


def _stricter(
    limits: EngineLimits, messages: dict[str, str], admission: Admission
) -> tuple[EngineLimits, dict[str, str]]:
    """*limits* and their *messages* merged with *admission*'s: each limit the stricter
    one, with the message of the hook that set it."""
    merged = dict(messages)
    for field_name, error in LIMIT_ERRORS.items():
        theirs = getattr(admission.engine_limits, field_name)
        ours = getattr(limits, field_name)
        if theirs is not None and (ours is None or theirs < ours):
            merged.pop(error, None)
            if error in admission.limit_messages:
                merged[error] = admission.limit_messages[error]
    return limits.stricter(admission.engine_limits), merged


class HookChain:
    """Calls a list of hooks in order, with the contract of the module docstring."""

    def __init__(self, hooks: Sequence[QueryHooks], log: logging.Logger) -> None:
        self.hooks = hooks
        self.log = log

    async def admit(self, identity: Identity, submission: Submission) -> Admission:
        """Admit through every hook; the notes and data of all are merged.

        If a hook refuses, the hooks that had already admitted get ``finished`` with
        ``REJECTED`` (each admit that returned gets exactly one finished), then the
        refusal propagates. If a hook queues the query, `QueryQueued` propagates with a
        place that ``recheck`` and ``withdraw`` understand.
        """
        return await self._admit_from(0, identity, submission, Admission())

    async def _admit_from(
        self, start: int, identity: Identity, submission: Submission, so_far: Admission
    ) -> Admission:
        notes = [so_far.note] if so_far.note else []
        data = dict(so_far.data)
        limits, messages = so_far.engine_limits, dict(so_far.limit_messages)
        for index in range(start, len(self.hooks)):
            if index:
                # What the hooks before this one admitted travels with a queued query.
                earlier = {
                    "count": index,
                    "note": "; ".join(notes),
                    "data": dict(data),
                    "engine_limits": limits.to_data(),
                    "limit_messages": messages,
                }
                submission = dataclasses.replace(submission, earlier=earlier)
            try:
                admission = await self.hooks[index].admit(identity, submission)
            except QueryQueued as queued:
                raise QueryQueued(queued.reason, f"{index}-{queued.place}", queued.waited) from None
            except QueryRefused as refusal:
                await self._reject_earlier(index, identity, submission, data, refusal)
                raise
            if admission is not None:
                if admission.note:
                    notes.append(admission.note)
                data.update(admission.data)
                limits, messages = _stricter(limits, messages, admission)
        return Admission("; ".join(notes) or None, data, limits, messages)

    def _split(self, place: str) -> tuple[int, str]:
        index, _, hook_place = place.partition("-")
        if not index.isdigit() or int(index) >= len(self.hooks) or not hook_place:
            raise QueryRefused(
                "This queued query is unknown to DataHub; run it again.",
                "NOT_FOUND",
                "USER_ERROR",
                44,
            )
        return int(index), hook_place

    async def recheck(self, identity: Identity, place: str) -> Resumed:
        """Ask the hook that queued the query at *place* again; when it admits, the
        hooks after it are asked to admit as in ``admit``."""
        index, hook_place = self._split(place)
        try:
            resumed = await self.hooks[index].recheck(identity, hook_place)
        except QueryQueued as queued:
            raise QueryQueued(queued.reason, f"{index}-{queued.place}", queued.waited) from None
        except QueryRefused as refusal:
            if refusal.submission is not None:
                earlier = refusal.submission.earlier
                data = dict(earlier.get("data") or {})
                await self._reject_earlier(index, identity, refusal.submission, data, refusal)
            raise
        submission = resumed.submission
        earlier = submission.earlier
        notes = [earlier["note"]] if earlier.get("note") else []
        data = dict(earlier.get("data") or {})
        if resumed.admission.note:
            notes.append(resumed.admission.note)
        data.update(resumed.admission.data)
        limits, messages = _stricter(
            EngineLimits.from_data(earlier.get("engine_limits")),
            dict(earlier.get("limit_messages") or {}),
            resumed.admission,
        )
        so_far = Admission("; ".join(notes) or None, data, limits, messages)
        admission = await self._admit_from(index + 1, identity, submission, so_far)
        return Resumed(dataclasses.replace(submission, earlier={}), admission)

    async def withdraw(self, identity: Identity, place: str) -> Submission | None:
        """Give the queued place up (the client cancelled); the hooks that had admitted
        the query before it was queued get ``finished`` with ``CANCELED``. Returns the
        stored submission, or None if the place was gone."""
        index, hook_place = self._split(place)
        submission = await self.hooks[index].withdraw(identity, hook_place)
        if submission is not None and index:
            data = dict(submission.earlier.get("data") or {})
            query = _query_info(identity, submission, data)
            stats = QueryStats(CANCELED)
            await self._finished(self.hooks[:index], identity, query, CANCELED, stats)
        return submission

    async def _reject_earlier(
        self,
        index: int,
        identity: Identity,
        submission: Submission,
        data: Mapping[str, Any],
        refusal: QueryRefused,
    ) -> None:
        if index:
            stats = QueryStats(REJECTED, error_name=refusal.error_name, error=refusal.message)
            query = _query_info(identity, submission, data)
            await self._finished(self.hooks[:index], identity, query, REJECTED, stats)

    async def on_progress(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        """The first stop reason a hook gives after a result page, or None."""
        return await self._first_reason("on_progress", identity, query, stats)

    async def on_running(
        self, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        """The first stop reason a hook gives for a running query, or None."""
        return await self._first_reason("on_running", identity, query, stats)

    async def _first_reason(
        self, method: str, identity: Identity, query: QueryInfo, stats: QueryStats
    ) -> str | None:
        for hook in self.hooks:
            try:
                reason = await getattr(hook, method)(identity, query, stats)
            except Exception:
                self.log.exception(
                    "Query hook %s failed in %s of %s", type(hook).__name__, method, query.query_id
                )
                continue
            if reason:
                return reason
        return None

    async def finished(
        self, identity: Identity, query: QueryInfo, final_state: str, stats: QueryStats
    ) -> None:
        """Tell every hook the query ended."""
        await self._finished(self.hooks, identity, query, final_state, stats)

    async def _finished(
        self,
        hooks: Sequence[QueryHooks],
        identity: Identity,
        query: QueryInfo,
        final_state: str,
        stats: QueryStats,
    ) -> None:
        for hook in hooks:
            try:
                await hook.finished(identity, query, final_state, stats)
            except Exception:
                self.log.exception(
                    "Query hook %s failed in finished of %s", type(hook).__name__, query.query_id
                )
