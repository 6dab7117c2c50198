"""The gateway as one part: everything its handlers need, named and typed.

`DataHubService` builds the parts (clusters, monitor, router, signer, upstream clients,
tracker, metrics, identity resolver) and hands them to the handlers as one `Gateway` in
the tornado settings (``settings["gateway"]``), the way JupyterHub's handlers reach the
proxy or the authenticator: a handler depends on named parts, never on the application.
What the gateway needs from other features (the quota's routing groups, the store's drain
flag) comes in as callables, so the gateway imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from ..identity import IdentityResolver
from .clusters import Cluster
from .health import ClusterMonitor
from .metrics import GatewayMetrics
from .routing import Router
from .signing import FollowupSigner
from .tracker import QueryTracker
from .upstream import Upstream

#: Drains a cluster (True) or brings it back (False) in every gateway process; the third
#: argument is who did it.
SetDraining = Callable[[str, bool, str], Awaitable[None]]
#: The routing groups a user (name, groups) may use, or None for all of them.
AllowedRoutingGroups = Callable[[str, Sequence[str]], Awaitable[Collection[str] | None]]


@dataclass(frozen=True, eq=False)
class Gateway:
    """The gateway's parts and the configuration values its handlers read."""

    clusters: Mapping[str, Cluster]
    router: Router
    monitor: ClusterMonitor
    upstream: Upstream
    signer: FollowupSigner
    tracker: QueryTracker
    metrics: GatewayMetrics
    identity_resolver: IdentityResolver
    log: logging.Logger
    set_draining: SetDraining
    allowed_routing_groups: AllowedRoutingGroups
    #: The service prefix, with slashes at both ends (``/services/datahub/``).
    prefix: str = "/"
    #: Where clients reach the gateway (None: as each client addressed it).
    public_url: str | None = None
    allow_admin_act_as: bool = False
    allow_spooling: bool = False
    #: How long a spooled segment's gateway URI stays valid, in seconds.
    segment_uri_seconds: int = 3600
    #: How long the gateway follows pages that carry nothing for the client (0: never).
    page_collapse_seconds: float = 0.0
    #: How long the gateway holds a small page of rows while it follows the pages after
    #: it, to answer with the rows on the query's last page (0: never).
    page_carry_seconds: float = 0.0
    #: Scopes of which a token needs one to read /metrics on the HTTPS listener.
    metrics_scopes: frozenset[str] = frozenset()
    #: ``time.monotonic()`` when the service started.
    started_at: float = 0.0
