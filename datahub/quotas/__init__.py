"""Quota policies and usage: admission at the gateway, limits at spawn (issue 5).

- `policy`: the limits, their values and the precedence (default → group → user), pure;
- `days`: usage days (the configured boundary and time zone), pure;
- `messages`: the sentences a refused or stopped user reads, pure;
- `models` (tables), `counters` (admission transactions: slots as leases, daily usage,
  exact across processes), `storage` (policy edits with their audit, overviews);
- `admission`: the asynchronous admission controller; `hooks`: it as the gateway's
  admission, and the quota's listener;
- `manager`: `QuotaManager`, the feature's configuration (``c.QuotaManager.*``);
- `handlers` (REST API and pages), `openapi`, `report` and `charts` (what pages show),
  `resource_groups` (Trino resource-group configuration), `cli` (``datahub quota``).
"""
