"""Routing: which routing group (and so which clusters) a new query goes to.

Pure logic, no I/O. The decision, in order:

1. **The routing hook**, if configured: a Python function that may return a routing group.
2. **The rules**, in order; the first whose conditions all hold decides: its
   ``routing_group``, or with ``engine`` (``"trino"``, ``"presto"``) the routing group of
   that engine (the default routing group if it runs it, else the first). Conditions:
   ``users``, ``groups`` (hub groups, any of), ``source`` (a regex the whole Trino source
   must match), ``client_tags`` (all of them present), ``hint`` (the hint given, so a
   rule can alias or override it), and ``catalogs`` (any of them referenced by the SQL,
   parsed with sqlglot; unqualified tables count in the session catalog).
3. **The hint**: ``X-DataHub-Routing-Group`` (what ``%%sql --cluster NAME`` sends) names a
   routing group, or one cluster (which pins the query to it), or an engine (the routing
   group of that engine, as for a rule); a name that does not exist is a clear error.
4. **The default routing group.**

Rules are the admins' policy: they win over a hint (a contractor asking for ``adhoc``
still lands in ``sandbox``); a pinned cluster is kept when the rule picks its group.

Routing decides where a query goes, not whether the user may go there: that is the
quota policy's ``routing_groups`` limit, checked at admission for every query, whatever
routed it (one place, one refusal sentence; the deprecated ``routing_group_access`` is
only a configured layer of that limit, owned by `datahub.quotas.manager`).

Which cluster of the routing group then takes the query (health, drain, load) is
decided by `clusters.rank_clusters`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..wire import INVALID_ROUTING_GROUP, NO_CLUSTER_AVAILABLE
from .presto import ENGINES, TRINO

log = logging.getLogger(__name__)

RULE_CONDITIONS = ("users", "groups", "source", "client_tags", "hint", "catalogs")


class RoutingConfigError(ValueError):
    """A routing rule or access entry in the configuration is unusable."""


class RoutingError(Exception):
    """The query cannot be routed; ``message`` is the user's sentence."""

    def __init__(self, message: str, error: tuple[str, str, int]) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


@dataclass(frozen=True)
class RoutingRequest:
    """What routing may look at for a new query."""

    user: str
    groups: tuple[str, ...] = ()
    source: str | None = None
    client_tags: frozenset[str] = frozenset()
    hint: str | None = None
    sql: str = ""
    catalog: str | None = None


@dataclass(frozen=True)
class RoutingDecision:
    """The routing group a query goes to, why, and the cluster pinned by the hint."""

    routing_group: str
    reason: str
    cluster: str | None = None


def name_set(value: Any, what: str, rule: str) -> frozenset[str]:
    """A configured list of names (or one name) as a set; RoutingConfigError otherwise."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        isinstance(v, str) and v for v in value
    ):
        raise RoutingConfigError(f"Routing rule {rule!r}: {what} must be a list of names.")
    return frozenset(value)


@dataclass(frozen=True)
class RoutingRule:
    """One ``c.DataHubService.routing_rules`` entry: conditions, and a routing group or
    an engine (``routing_group`` is empty when the rule names an engine)."""

    name: str
    routing_group: str
    engine: str | None = None
    users: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    source: re.Pattern[str] | None = None
    client_tags: frozenset[str] | None = None
    hints: frozenset[str] | None = None
    catalogs: frozenset[str] | None = None

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], index: int) -> RoutingRule:
        entry = dict(entry)
        name = str(entry.pop("name", f"#{index + 1}"))
        group = entry.pop("routing_group", None)
        engine = entry.pop("engine", None)
        if engine is not None and (group is not None or engine not in ENGINES):
            raise RoutingConfigError(
                f"Routing rule {name!r}: engine must be one of {', '.join(ENGINES)}, "
                "instead of a routing_group."
            )
        if engine is None and (not isinstance(group, str) or not group):
            raise RoutingConfigError(f"Routing rule {name!r} needs a routing_group (or an engine).")
        unknown = set(entry) - set(RULE_CONDITIONS)
        if unknown:
            raise RoutingConfigError(
                f"Routing rule {name!r} has unknown condition(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(RULE_CONDITIONS)}."
            )
        if not entry:
            raise RoutingConfigError(
                f"Routing rule {name!r} has no condition; set default_routing_group instead."
            )
        source = None
        if "source" in entry:
            try:
                source = re.compile(str(entry["source"]))
            except re.error as e:
                raise RoutingConfigError(
                    f"Routing rule {name!r}: source {entry['source']!r} is not a regex ({e})."
                ) from None
        return cls(
            name=name,
            routing_group=group or "",
            engine=engine,
            users=name_set(entry["users"], "users", name) if "users" in entry else None,
            groups=name_set(entry["groups"], "groups", name) if "groups" in entry else None,
            source=source,
            client_tags=(
                name_set(entry["client_tags"], "client_tags", name)
                if "client_tags" in entry
                else None
            ),
            hints=name_set(entry["hint"], "hint", name) if "hint" in entry else None,
            catalogs=(
                frozenset(c.lower() for c in name_set(entry["catalogs"], "catalogs", name))
                if "catalogs" in entry
                else None
            ),
        )

    def matches(self, request: RoutingRequest, catalogs: Callable[[], frozenset[str]]) -> bool:
        """Whether every condition of the rule holds (``catalogs`` parses lazily)."""
        if self.users is not None and request.user not in self.users:
            return False
        if self.groups is not None and not self.groups.intersection(request.groups):
            return False
        if self.source is not None and not self.source.fullmatch(request.source or ""):
            return False
        if self.client_tags is not None and not self.client_tags <= request.client_tags:
            return False
        if self.hints is not None and request.hint not in self.hints:
            return False
        return not (self.catalogs is not None and not self.catalogs & catalogs())


def catalogs_referenced(sql: str, default_catalog: str | None = None) -> frozenset[str]:
    """Catalogs whose tables *sql* references (lower case); empty if it does not parse.

    Unqualified tables (``FROM orders``, ``FROM tiny.orders``) count in
    *default_catalog* (the session catalog); names of CTEs do not count.
    """
    import sqlglot  # ~100 ms to import: only when a rule looks at catalogs
    from sqlglot import exp

    try:
        statements = sqlglot.parse(sql, read="trino")
    except sqlglot.errors.SqlglotError:
        log.debug("Routing could not parse a query's SQL; no catalog rule applies.")
        return frozenset()
    found: set[str] = set()
    for statement in statements:
        if statement is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if table.catalog:
                found.add(table.catalog.lower())
            elif default_catalog and table.name and (table.db or table.name.lower() not in ctes):
                found.add(default_catalog.lower())
    return frozenset(found)


RoutingHook = Callable[[RoutingRequest], "str | None"]


@dataclass
class Router:
    """Routes requests with the configured rules (see the module docstring).

    ``clusters`` maps cluster names to their routing groups, ``engines`` routing groups
    to the engine their clusters run (``"trino"`` when not given).
    """

    clusters: Mapping[str, str]
    rules: Sequence[RoutingRule] = ()
    default_group: str = "default"
    hook: RoutingHook | None = None
    engines: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        clusters: Mapping[str, str],
        rules: Sequence[Mapping[str, Any]],
        default_group: str,
        hook: RoutingHook | None = None,
        engines: Mapping[str, str] | None = None,
    ) -> Router:
        """Build a Router from the traits; raises RoutingConfigError on a bad entry."""
        return cls(
            clusters=dict(clusters),
            rules=[RoutingRule.from_config(entry, i) for i, entry in enumerate(rules)],
            default_group=default_group,
            hook=hook,
            engines=dict(engines or {}),
        )

    def engine_of(self, routing_group: str) -> str:
        """The engine the clusters of *routing_group* run."""
        return self.engines.get(routing_group, TRINO)

    def engine_group(self, engine: str) -> str | None:
        """The routing group queries for *engine* go to: the default routing group if it
        runs it, else the first (in configuration order) that does; None if none does."""
        groups = [g for g in self.routing_groups if self.engine_of(g) == engine]
        if self.default_group in groups:
            return self.default_group
        return groups[0] if groups else None

    @property
    def routing_groups(self) -> list[str]:
        """The routing groups that have clusters, in configuration order."""
        return list(dict.fromkeys(self.clusters.values()))

    def config_warnings(self) -> list[str]:
        """Sentences about rules that can never reach a cluster (logged at start)."""
        groups = set(self.routing_groups)
        warnings = [
            f"Routing rule {rule.name!r} sends queries to routing group {rule.routing_group!r}, "
            "which has no cluster."
            for rule in self.rules
            if rule.engine is None and rule.routing_group not in groups
        ]
        warnings += [
            f"Routing rule {rule.name!r} sends queries to engine {rule.engine!r}, which no "
            "cluster runs."
            for rule in self.rules
            if rule.engine is not None and self.engine_group(rule.engine) is None
        ]
        if self.default_group not in groups:
            warnings.append(
                f"The default routing group {self.default_group!r} has no cluster; queries "
                "that no rule routes will fail."
            )
        return warnings

    def route(self, request: RoutingRequest) -> RoutingDecision:
        """Decide the routing group of a new query; raises RoutingError for a hint that
        decides and names no routing group or cluster."""
        hint_group, pinned, hint_error = self._resolve_hint(request)

        def keep_pin(group: str) -> str | None:
            return pinned if pinned and hint_group == group else None

        if self.hook is not None:
            chosen = self.hook(request)
            if chosen:
                return RoutingDecision(chosen, "hook", keep_pin(chosen))
        parsed: list[frozenset[str]] = []

        def catalogs() -> frozenset[str]:
            if not parsed:
                parsed.append(catalogs_referenced(request.sql, request.catalog))
            return parsed[0]

        for rule in self.rules:
            if rule.matches(request, catalogs):
                group = rule.routing_group
                if rule.engine is not None:
                    group = self._engine_group_or_error(rule.engine)
                return RoutingDecision(group, f"rule:{rule.name}", keep_pin(group))
        if hint_error is not None:
            raise hint_error
        if hint_group:
            return RoutingDecision(hint_group, "cluster-hint" if pinned else "hint", pinned)
        return RoutingDecision(self.default_group, "default")

    def _resolve_hint(
        self, request: RoutingRequest
    ) -> tuple[str | None, str | None, RoutingError | None]:
        """(routing group, pinned cluster, error) of the hint. The error (no such name)
        matters only if no hook or rule decides."""
        hint = (request.hint or "").strip()
        if not hint:
            return None, None, None
        if hint in self.routing_groups:
            group, pinned = hint, None
        elif hint in self.clusters:
            group, pinned = self.clusters[hint], hint
        elif hint.lower() in ENGINES:
            try:
                group, pinned = self._engine_group_or_error(hint.lower()), None
            except RoutingError as e:
                return None, None, e
        else:
            error = RoutingError(
                f"There is no routing group or cluster named {hint!r}; use one of: "
                f"{', '.join(self.routing_groups) or '(none)'}.",
                INVALID_ROUTING_GROUP,
            )
            return None, None, error
        return group, pinned, None

    def _engine_group_or_error(self, engine: str) -> str:
        group = self.engine_group(engine)
        if group is None:
            raise RoutingError(
                f"No cluster runs {engine.capitalize()}; use one of: "
                f"{', '.join(self.routing_groups) or '(none)'}.",
                NO_CLUSTER_AVAILABLE,
            )
        return group


def parse_client_tags(values: Iterable[str]) -> frozenset[str]:
    """The tags in ``X-Trino-Client-Tags`` headers (comma-separated, possibly repeated)."""
    return frozenset(tag.strip() for value in values for tag in value.split(",") if tag.strip())
