"""Quota policies as pure logic: the limits, their values, and who gets which.

A *quota policy* is a set of limits for one *subject*: the default (everyone), a hub
group, or a user. A policy only names the limits it sets; a limit it leaves out is
inherited. A limit's value is a number (or, for ``routing_groups``, a list of names), or
``None``, which means *unlimited*.

Precedence, per limit (`effective_policy`):

1. the user's own policy, if it sets the limit;
2. otherwise the most generous value among the policies of the user's groups that set
   it (unlimited beats any number, a larger number beats a smaller one, routing group
   lists are merged);
3. otherwise the default policy stored in the database (edited by admins);
4. otherwise the configured default (``c.QuotaManager.default_limits``);
5. otherwise unlimited.

So a user policy can grant less than the user's groups (a deliberate override), while
being in one more group never takes anything away.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["default", "group", "user"]
SCOPES: tuple[Scope, ...] = ("default", "group", "user")
#: The name the default policy is stored under.
DEFAULT_NAME = "default"

Kind = Literal["count", "seconds", "bytes", "cores", "names"]


@dataclass(frozen=True)
class LimitSpec:
    """One limit: its name (the key in policies, the API and the CLI), what it measures
    and where it is enforced."""

    name: str
    kind: Kind
    label: str
    applies: Literal["concurrency", "daily", "query", "routing", "server"]
    help: str


LIMITS: dict[str, LimitSpec] = {
    spec.name: spec
    for spec in (
        LimitSpec(
            "concurrent_queries",
            "count",
            "concurrent queries",
            "concurrency",
            "Queries that may run at the same time; more wait in the queue.",
        ),
        LimitSpec(
            "queued_queries",
            "count",
            "queued queries",
            "concurrency",
            "Queries that may wait for a free slot; more are refused. 0 means no queue.",
        ),
        LimitSpec(
            "queries_per_day",
            "count",
            "queries per day",
            "daily",
            "Queries admitted per day (the day starts at the configured boundary).",
        ),
        LimitSpec(
            "cpu_seconds_per_day",
            "seconds",
            "CPU seconds per day",
            "daily",
            "Trino CPU time of the day's queries, counted while they run; a query that "
            "goes past it is cancelled.",
        ),
        LimitSpec(
            "bytes_scanned_per_day",
            "bytes",
            "bytes scanned per day",
            "daily",
            "Bytes Trino read for the day's queries, counted while they run; a query that "
            "goes past it is cancelled.",
        ),
        LimitSpec(
            "query_runtime_seconds",
            "seconds",
            "runtime per query",
            "query",
            "Wall-clock time one query may run (Trino's query_max_run_time: Trino stops it).",
        ),
        LimitSpec(
            "query_cpu_seconds",
            "seconds",
            "CPU seconds per query",
            "query",
            "Trino CPU time one query may use (query_max_cpu_time: Trino stops it).",
        ),
        LimitSpec(
            "query_bytes_scanned",
            "bytes",
            "bytes scanned per query",
            "query",
            "Bytes one query may read from storage (query_max_scan_physical_bytes: "
            "Trino stops it).",
        ),
        LimitSpec(
            "routing_groups",
            "names",
            "routing groups",
            "routing",
            "Routing groups (sets of clusters) the user's queries may go to.",
        ),
        LimitSpec(
            "server_cpu",
            "cores",
            "server CPU",
            "server",
            "CPU cores of the user's JupyterLab server.",
        ),
        LimitSpec(
            "server_memory",
            "bytes",
            "server memory",
            "server",
            "Memory of the user's JupyterLab server.",
        ),
    )
}

LimitValue = int | float | tuple[str, ...] | None


class PolicyError(ValueError):
    """A policy or limit value that cannot be used; the message says how to fix it."""


# ------------------------------------------------------------------ parsing values

_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
    "pi": 2**50,
    "pib": 2**50,
}
_SECOND_UNITS = {"": 1, "s": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600, "d": 86400}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
UNLIMITED_WORDS = frozenset({"unlimited", "none", "null", "inf", "infinite", "no limit"})


def _quantity(name: str, text: str, units: Mapping[str, float], example: str) -> float:
    match = _QUANTITY.match(text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in units:
        raise PolicyError(f"{name} must be a number like {example}, or 'unlimited'; got {text!r}.")
    return float(match.group(1)) * units[unit]


def parse_limit(name: str, value: Any) -> LimitValue:
    """The normalized value of limit *name*: an int (counts, bytes), a float (seconds,
    cores), a tuple of names (routing groups) or None (unlimited).

    Accepts what people type: ``"2G"``/``"512Mi"`` for bytes, ``"90s"``/``"5m"`` for
    seconds, ``"a,b"`` for routing groups, ``"unlimited"`` for None.
    Raises PolicyError with one sentence saying what is expected.
    """
    spec = LIMITS.get(name)
    if spec is None:
        raise PolicyError(f"Unknown limit {name!r}; the limits are: {', '.join(LIMITS)}.")
    if value is None or (isinstance(value, str) and value.strip().lower() in UNLIMITED_WORDS):
        return None
    if spec.kind == "names":
        if isinstance(value, str):
            value = [part for part in re.split(r"[,\s]+", value) if part]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise PolicyError(f"{name} must be a list of routing group names, or 'unlimited'.")
        names = tuple(sorted({v.strip() for v in value if v.strip()}))
        for group in names:
            if not re.match(r"^[A-Za-z0-9_-]{1,64}$", group):
                raise PolicyError(f"Routing group {group!r} must be letters, digits, - or _.")
        return names
    if isinstance(value, bool):
        raise PolicyError(f"{name} must be a number or 'unlimited', not {value!r}.")
    if isinstance(value, str):
        if spec.kind == "bytes":
            number = _quantity(name, value, _BYTE_UNITS, "'10GB' or '512MiB'")
        elif spec.kind == "seconds":
            number = _quantity(name, value, _SECOND_UNITS, "'90', '90s', '5m' or '2h'")
        else:
            number = _quantity(name, value, {"": 1}, "3")
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise PolicyError(f"{name} must be a number or 'unlimited', not {value!r}.")
    if math.isnan(number) or number < 0:
        raise PolicyError(f"{name} must be zero or more.")
    if math.isinf(number):
        return None
    if spec.kind in ("count", "bytes"):
        if spec.kind == "count" and number != int(number):
            raise PolicyError(f"{name} must be a whole number; got {value!r}.")
        return int(number)
    return float(number)


def parse_limits(values: Mapping[str, Any]) -> dict[str, LimitValue]:
    """Validate and normalize a policy's limits (only the ones it sets)."""
    if not isinstance(values, Mapping):
        raise PolicyError("A policy's limits must be an object of limit name to value.")
    return {name: parse_limit(name, value) for name, value in values.items()}


def limits_to_json(limits: Mapping[str, LimitValue]) -> dict[str, Any]:
    """Limits as JSON values (tuples become lists), in the canonical order."""
    return {
        name: list(limits[name]) if isinstance(limits[name], tuple) else limits[name]
        for name in LIMITS
        if name in limits
    }


# ------------------------------------------------------------------ precedence


def more_generous(name: str, a: LimitValue, b: LimitValue) -> LimitValue:
    """The more generous of two values of limit *name* (None, unlimited, wins)."""
    if a is None or b is None:
        return None
    if LIMITS[name].kind == "names":
        return tuple(sorted(set(a) | set(b)))  # type: ignore[arg-type]
    return max(a, b)  # type: ignore[type-var]


@dataclass(frozen=True)
class Policy:
    """A stored quota policy: whose it is and the limits it sets."""

    scope: Scope
    name: str
    limits: Mapping[str, LimitValue] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """How people refer to it: ``default``, ``group analysts``, ``user alice``."""
        return DEFAULT_NAME if self.scope == "default" else f"{self.scope} {self.name}"


@dataclass(frozen=True)
class EffectivePolicy:
    """The limits that apply to one user, and where each comes from."""

    user: str
    limits: Mapping[str, LimitValue]
    #: For each limit, the policy it came from: "user alice", "group analysts",
    #: "default", "configuration" (c.QuotaManager.default_limits), or "built-in"
    #: (unlimited) when nothing sets it.
    sources: Mapping[str, str]

    def __getitem__(self, name: str) -> LimitValue:
        return self.limits[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "limits": limits_to_json(self.limits),
            "sources": {name: self.sources[name] for name in LIMITS},
        }


def effective_policy(
    user: str,
    groups: Iterable[str],
    policies: Iterable[Policy],
    configured: Mapping[str, LimitValue] | None = None,
) -> EffectivePolicy:
    """The limits for *user* (a member of *groups*) from the stored *policies*, over the
    *configured* defaults.

    *policies* may hold more than the relevant ones (the default, every group, other
    users); only the default, the user's groups and the user's own are used.
    """
    configured = configured or {}
    member_of = set(groups)
    default: Policy | None = None
    own: Policy | None = None
    group_policies: list[Policy] = []
    for policy in policies:
        if policy.scope == "default":
            default = policy
        elif policy.scope == "user" and policy.name == user:
            own = policy
        elif policy.scope == "group" and policy.name in member_of:
            group_policies.append(policy)
    group_policies.sort(key=lambda p: p.name)  # stable sources when values tie

    limits: dict[str, LimitValue] = {}
    sources: dict[str, str] = {}
    for name in LIMITS:
        if own is not None and name in own.limits:
            limits[name], sources[name] = own.limits[name], own.subject
            continue
        setting = [p for p in group_policies if name in p.limits]
        if setting:
            value = setting[0].limits[name]
            for policy in setting[1:]:
                value = more_generous(name, value, policy.limits[name])
            winner = next((p for p in setting if p.limits[name] == value), None)
            limits[name] = value
            # A merged routing group list may come from no single group.
            sources[name] = (
                winner.subject if winner else "groups " + ", ".join(p.name for p in setting)
            )
            continue
        if default is not None and name in default.limits:
            limits[name], sources[name] = default.limits[name], "default"
            continue
        if name in configured:
            limits[name], sources[name] = configured[name], "configuration"
            continue
        limits[name], sources[name] = None, "built-in"
    return EffectivePolicy(user=user, limits=limits, sources=sources)


# ------------------------------------------------------------------ display


def format_bytes(n: float) -> str:
    """``1.5 GB``: decimal units, as Trino and disk vendors count."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover - unreachable


def format_seconds(s: float) -> str:
    """``0.5 s``, ``90 s``, ``2.5 h``: short and unambiguous."""
    if s < 10:
        return f"{s:.3g} s"
    if s < 600:
        return f"{s:.0f} s"
    if s < 36000:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.3g} h"


def format_limit(name: str, value: LimitValue) -> str:
    """A limit value for people: ``unlimited``, ``3``, ``10 GB``, ``90 s``, ``a, b``."""
    if value is None:
        return "unlimited"
    kind = LIMITS[name].kind
    if kind == "names":
        return ", ".join(value) if value else "none"  # type: ignore[arg-type]
    if kind == "bytes":
        return format_bytes(float(value))  # type: ignore[arg-type]
    if kind == "seconds":
        return format_seconds(float(value))  # type: ignore[arg-type]
    if kind == "cores":
        return f"{value:g} cores" if value != 1 else "1 core"
    return f"{value:,}"


def input_value(name: str, value: LimitValue) -> str:
    """A limit value as form text that `parse_limit` reads back exactly."""
    if value is None:
        return "unlimited"
    if LIMITS[name].kind == "names":
        return ", ".join(value)  # type: ignore[arg-type]
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)
