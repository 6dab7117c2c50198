"""`QuotaManager`: the quota feature's configuration and its entry point for the service
(admission, API, pages) and the spawners (server limits).

Configure it in jupyterhub_config.py, which the hub and the DataHub service both load::

    c.QuotaManager.timezone = "Europe/Berlin"
    c.QuotaManager.day_starts_at = "06:00"
    c.QuotaManager.default_limits = {"concurrent_queries": 5, "queries_per_day": 500}

The service builds one manager in `DataHubService.init` (its ``quotas`` part, in the
tornado settings as ``datahub_quotas``); the quota handlers read it as ``self.quotas``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from traitlets import Dict, Float, Instance, Integer, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..gateway.routing import RoutingConfigError, name_set
from ..store import Store
from .admission import AdmissionController, Clock, utcnow
from .counters import Rules
from .days import UsageDays, parse_time_of_day, parse_timezone
from .policy import EffectivePolicy, LimitValue, PolicyError, parse_limits
from .report import usage_lines
from .storage import effective_for, user_usage


class QuotaManager(LoggingConfigurable):
    """Quota policies and usage: the calendar of usage days, the configured defaults,
    admission and the store they live in."""

    timezone = Unicode(
        "UTC",
        help="""Time zone (IANA name) of the usage day: daily counters (queries, CPU
        seconds, bytes scanned per day) reset at day_starts_at in this zone, and refusal
        messages say when in this zone.

        Example: c.QuotaManager.timezone = "Europe/Berlin"
        """,
    ).tag(config=True)

    @validate("timezone")
    def _validate_timezone(self, proposal: dict[str, Any]) -> str:
        try:
            parse_timezone(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    day_starts_at = Unicode(
        "00:00",
        help="""Time of day (HH:MM, in `timezone`) when a new usage day begins and the
        daily counters start from zero. Pick a quiet hour so nightly jobs do not straddle
        the boundary.

        Example: c.QuotaManager.day_starts_at = "06:00"
        """,
    ).tag(config=True)

    @validate("day_starts_at")
    def _validate_day_starts_at(self, proposal: dict[str, Any]) -> str:
        try:
            parse_time_of_day(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    admin_contact = Unicode(
        help="""Whom users should ask for more quota, as it ends refusal messages
        ("…; ask <admin_contact> for more.").

        Defaults to "your DataHub admin (<group>)" with the first admin group of
        c.DataHubLDAPAuthenticator.admin_groups, else "your DataHub admin".
        Example: c.QuotaManager.admin_contact = "the data platform team (#data-help)"
        """,
    ).tag(config=True)

    @default("admin_contact")
    def _default_admin_contact(self) -> str:
        groups = self.config.get("DataHubLDAPAuthenticator", {}).get("admin_groups") or []
        for group in groups:
            # A group DN (cn=datahub-admins,ou=groups,…) or a plain name.
            match = re.match(r"^\s*cn=([^,]+)", str(group), re.IGNORECASE)
            name = match.group(1) if match else str(group)
            if name:
                return f"your DataHub admin ({name})"
        return "your DataHub admin"

    default_limits = Dict(
        {"concurrent_queries": 10, "queued_queries": 100},
        help="""Limits for everyone whom no stored policy covers: the layer below the
        default policy that admins edit (a limit the stored default leaves out comes
        from here; one missing here too is unlimited). Values as in the API: numbers,
        "10GB", "5m", null for unlimited. Limits: concurrent_queries, queued_queries,
        queries_per_day, cpu_seconds_per_day, bytes_scanned_per_day,
        query_runtime_seconds, query_cpu_seconds, query_bytes_scanned, routing_groups,
        server_cpu, server_memory.

        Example: c.QuotaManager.default_limits = {"concurrent_queries": 5,
        "queued_queries": 20, "queries_per_day": 1000, "server_memory": "4G",
        "server_cpu": 2}
        """,
    ).tag(config=True)

    @validate("default_limits")
    def _validate_default_limits(self, proposal: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_limits(proposal["value"])
        except PolicyError as e:
            raise TraitError(f"c.QuotaManager.default_limits: {e}") from None
        return proposal["value"]

    lease_seconds = Float(
        360.0,
        help="""How long a running query's slot is held without news from its gateway
        process. The gateway renews it while the query runs and frees it when the query
        ends; the lease only matters if a gateway process dies. Keep it above Trino's
        query.client.timeout (5 minutes), after which Trino abandons unpolled queries.

        Example: c.QuotaManager.lease_seconds = 600
        """,
    ).tag(config=True)

    queue_lease_seconds = Float(
        30.0,
        help="""How long a queued query keeps its place in its user's queue without its
        client asking for it. The gateway answers a queued query with a Trino QUEUED page
        and the client asks again about once a second (each time renews the place); a
        client that went away (a closed notebook, a killed CLI) loses its place after this
        long, and the queries behind it move up. Keep it well below Trino's own client
        timeout (5 minutes), which clients are used to.

        Example: c.QuotaManager.queue_lease_seconds = 60
        """,
    ).tag(config=True)

    poll_interval = Float(
        1.0,
        help="""Seconds the gateway holds a queued query's poll (like Trino's own
        long-poll) while it waits for a free slot, before answering "still queued".
        Slots freed in the same gateway process wake the poll at once; this bounds the
        wait for slots freed by other processes.

        Example: c.QuotaManager.poll_interval = 0.5
        """,
    ).tag(config=True)

    max_queue_wait = Float(
        300.0,
        help="""Seconds a query may wait in its user's queue before it is refused (with a
        message saying how many of the user's queries still run). The client sees its
        query QUEUED meanwhile (with the reason), and may cancel it. 0 means no limit.

        Example: c.QuotaManager.max_queue_wait = 900
        """,
    ).tag(config=True)

    history_days = Integer(
        30,
        help="""Days of usage the admin charts show by default.

        Example: c.QuotaManager.history_days = 90
        """,
    ).tag(config=True)

    store = Instance(Store, allow_none=False)

    #: The routing groups each user may use when no stored policy says ((user, groups)
    #: -> names), from the deprecated c.DataHubService.routing_group_access
    #: (`use_routing_group_access`); None: c.QuotaManager.default_limits alone says.
    routing_access: Callable[[str, Sequence[str]], Sequence[str]] | None = None

    #: What the admin pages say about servers' limits on this host (None: nothing to
    #: say). The service sets it from the hub's spawner configuration
    #: (`datahub.spawners.local.limits_notice`); it reads files, so call it off the loop.
    server_limits_notice: Callable[[], str | None] = staticmethod(lambda: None)

    #: The current time (aware); replaced in tests to cross day boundaries.
    clock: Clock = staticmethod(utcnow)

    _controller: AdmissionController | None = None

    @property
    def configured_limits(self) -> dict[str, LimitValue]:
        return parse_limits(self.default_limits)

    @property
    def days(self) -> UsageDays:
        return UsageDays.from_config(self.timezone, self.day_starts_at)

    @property
    def rules(self) -> Rules:
        return Rules(
            days=self.days,
            configured=self.configured_limits,
            contact=self.admin_contact,
            lease=dt.timedelta(seconds=self.lease_seconds),
            queue_lease=dt.timedelta(seconds=self.queue_lease_seconds),
            max_queue_wait=(
                dt.timedelta(seconds=self.max_queue_wait) if self.max_queue_wait else None
            ),
            routing_access=self.routing_access,
        )

    @property
    def controller(self) -> AdmissionController:
        """The admission controller (one per process, created on first use)."""
        if self._controller is None:
            self._controller = AdmissionController(
                self.store,
                self.rules,
                clock=lambda: self.clock(),
                poll_interval=self.poll_interval,
            )
        return self._controller

    def now(self) -> dt.datetime:
        return self.clock()

    def today(self) -> dt.date:
        return self.days.day_of(self.clock())

    def effective(self, user: str, groups: Sequence[str]) -> EffectivePolicy:
        """The limits for *user* in *groups*, from the store (synchronous)."""
        return effective_for(self.store, user, groups, self.rules.configured_for(user, groups))

    async def report(self, user: str, groups: Sequence[str]) -> dict[str, Any]:
        """*user*'s effective policy (and where each limit comes from), today's usage and
        when it resets: what ``api/quota/me``, the quota pages and an admin's view of an
        account show. Reads the store through `Store.run`."""
        now = self.clock()
        policy = await self.store.run(self.effective, user, groups)
        usage = await self.store.run(user_usage, self.store, user, self.days.day_of(now), now)
        return {
            "user": user,
            "groups": list(groups),
            **policy.to_json(),
            "usage": usage,
            "lines": usage_lines(policy.limits, usage, policy.sources),
            **self.reset_info(),
            "contact": self.admin_contact,
        }

    def reset_info(self) -> Mapping[str, str]:
        """When the daily counters reset, for the API and pages."""
        now = self.clock()
        return {
            "day": self.days.day_of(now).isoformat(),
            "resets_at": self.days.resets_at(now).isoformat(),
            "resets": self.days.describe_reset(now),
        }

    def use_routing_group_access(
        self, access: Mapping[str, Any], routing_groups: Sequence[str]
    ) -> None:
        """Take the deprecated ``c.DataHubService.routing_group_access`` as the configured
        layer of ``routing_groups`` (below every stored policy, like default_limits):
        each user may use every routing group of *routing_groups* it does not list, and
        those it lists them or one of their groups for. Raises ValueError when
        default_limits sets routing_groups too (one place for that rule)."""
        if not access:
            return
        if "routing_groups" in self.default_limits:
            raise ValueError(
                "Set the routing groups people may use in one place: "
                "c.DataHubService.routing_group_access or routing_groups in "
                "c.QuotaManager.default_limits, not both."
            )
        self.routing_access = configured_routing_groups(access, routing_groups)


@dataclass(frozen=True)
class Access:
    """Who may use a routing group by default (the deprecated ``routing_group_access``):
    listed users and members of listed groups. The quota policy's ``routing_groups``
    overrides it."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, routing_group: str, entry: Any) -> Access:
        if not isinstance(entry, Mapping) or set(entry) - {"users", "groups"}:
            raise RoutingConfigError(
                f"routing_group_access[{routing_group!r}] must be a dict with users and/or "
                'groups, like {"groups": ["data-engineers"], "users": ["carol"]}.'
            )
        where = f"access to {routing_group}"
        return cls(
            users=name_set(entry.get("users", []), "users", where),
            groups=name_set(entry.get("groups", []), "groups", where),
        )

    def allows(self, user: str, groups: Sequence[str]) -> bool:
        return user in self.users or bool(self.groups.intersection(groups))


def configured_routing_groups(
    access: Mapping[str, Any], routing_groups: Sequence[str]
) -> Callable[[str, Sequence[str]], list[str]]:
    """``routing_group_access`` (routing group -> {"users": [...], "groups": [...]}) as
    (user, groups) -> the routing groups of *routing_groups* the user may use: those not
    listed, and those listing the user or one of their groups."""
    rules = {group: Access.from_config(group, entry) for group, entry in access.items()}
    ordered = list(dict.fromkeys(routing_groups))

    def allowed(user: str, groups: Sequence[str]) -> list[str]:
        return [g for g in ordered if (rule := rules.get(g)) is None or rule.allows(user, groups)]

    return allowed
