"""Trino resource-group configuration from the quota policies: a second line of defence
on the clusters, for queries that reach Trino without the gateway. Pure functions.

The result is the JSON of Trino's file-based resource-group manager
(``etc/resource-groups.properties``: ``resource-groups.configuration-manager=file``,
``resource-groups.config-file=etc/resource-groups.json``). Every user the store knows
about gets a group ``datahub.user-<name>`` with their effective concurrency and queue
limits (and daily CPU limit, as ``hardCpuLimit`` over a one-day ``cpuQuotaPeriod``);
everyone else falls into the ``datahub.${USER}`` template with the default limits.
Trino only ever sees the employee's name (the gateway impersonates), so selectors match
on ``user``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .policy import LimitValue, Policy, effective_policy

#: Stands for "unlimited" where Trino needs a number.
UNLIMITED = 1_000_000


def _group(name: str, limits: Mapping[str, LimitValue]) -> dict[str, Any]:
    concurrent = limits.get("concurrent_queries")
    queued = limits.get("queued_queries")
    group: dict[str, Any] = {
        "name": name,
        "softMemoryLimit": "100%",
        "hardConcurrencyLimit": UNLIMITED if concurrent is None else int(concurrent),
        # Trino queues a query the gateway already admitted only when the cluster
        # disagrees with the gateway; give it room for one more than the gateway's queue.
        "maxQueued": UNLIMITED if queued is None else int(queued) + 1,
    }
    cpu = limits.get("cpu_seconds_per_day")
    if cpu is not None:
        group["hardCpuLimit"] = f"{int(cpu)}s"
    return group


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def resource_groups(
    policies: Iterable[Policy],
    configured: Mapping[str, LimitValue],
    users: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """The resource-group JSON for the stored *policies* over the *configured* defaults.

    *users* (name → hub groups) adds a group for each user whose limits come from their
    groups; users with a policy of their own always get one.
    """
    policies = list(policies)
    users = {name: list(groups) for name, groups in (users or {}).items()}
    for policy in policies:
        if policy.scope == "user":
            users.setdefault(policy.name, [])
    default = effective_policy("${USER}", [], policies, configured).limits
    sub_groups = []
    selectors = []
    for name in sorted(users):
        limits = effective_policy(name, users[name], policies, configured).limits
        group = f"user-{_safe(name)}"
        sub_groups.append(_group(group, limits))
        selectors.append({"user": f"^{re.escape(name)}$", "group": f"datahub.{group}"})
    sub_groups.append(_group("${USER}", default))
    selectors.append({"group": "datahub.${USER}"})
    config: dict[str, Any] = {
        "rootGroups": [
            {
                "name": "datahub",
                "softMemoryLimit": "100%",
                "hardConcurrencyLimit": UNLIMITED,
                "maxQueued": UNLIMITED,
                "subGroups": sub_groups,
            }
        ],
        "selectors": selectors,
    }
    if any("hardCpuLimit" in g for g in sub_groups):
        config["cpuQuotaPeriod"] = "1d"
    return config
