"""Trino clusters behind the gateway, their status, and which one takes a new query."""

from __future__ import annotations

import enum
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .presto import ENGINES, TRINO
from .protocol import basic_authorization
from .signing import is_valid_cluster_name


class ClusterConfigError(ValueError):
    """A cluster entry in the configuration is unusable."""


@dataclass(frozen=True)
class Cluster:
    """One cluster and how the gateway reaches it.

    ``engine`` is what the cluster runs: ``"trino"`` or ``"presto"`` (PrestoDB, reached
    through the translation of ``presto.py``; clients still speak Trino's protocol).
    ``user``/``password`` are the DataHub service account, which the cluster must allow
    to impersonate employees. ``verify`` is True (system CAs), False (development only)
    or, via ``ca_file``, the PEM file of the cluster's CA or self-signed certificate.
    """

    name: str
    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    verify: bool = True
    routing_group: str = "default"
    engine: str = TRINO

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Cluster:
        """Build a Cluster from one ``c.DataHubService.clusters`` entry.

        ``password_file`` may replace ``password`` so the secret stays out of
        jupyterhub_config.py.
        """
        entry = dict(entry)
        unknown = set(entry) - {
            "name",
            "url",
            "user",
            "password",
            "password_file",
            "ca_file",
            "verify",
            "routing_group",
            "engine",
        }
        if unknown:
            raise ClusterConfigError(f"Unknown cluster setting(s): {', '.join(sorted(unknown))}.")
        name = entry.get("name")
        url = entry.get("url")
        if not name or not is_valid_cluster_name(str(name)):
            raise ClusterConfigError(
                f"Cluster name {name!r} must be 1-64 letters, digits, '-' or '_'."
            )
        parts = urlsplit(str(url or ""))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ClusterConfigError(
                f"Cluster {name!r} needs a url like https://trino.example.com:8443."
            )
        engine = str(entry.get("engine", TRINO)).lower()
        if engine not in ENGINES:
            raise ClusterConfigError(
                f"Cluster {name!r} has engine {entry.get('engine')!r}; use "
                f"{' or '.join(repr(e) for e in ENGINES)}."
            )
        password = entry.get("password")
        password_file = entry.get("password_file")
        if password_file:
            password = Path(password_file).read_text().strip()
        if password and parts.scheme != "https":
            # Trino refuses passwords over plain HTTP, and so should we.
            raise ClusterConfigError(f"Cluster {name!r} has a password but no https url.")
        return cls(
            name=str(name),
            url=str(url).rstrip("/"),
            user=entry.get("user"),
            password=password,
            ca_file=entry.get("ca_file"),
            verify=bool(entry.get("verify", True)),
            routing_group=str(entry.get("routing_group", "default")),
            engine=engine,
        )

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header for the service account (None if no password)."""
        if self.user and self.password:
            return basic_authorization(self.user, self.password)
        return None

    def ssl_verify(self) -> ssl.SSLContext | bool:
        """What to give the HTTP client as ``verify``."""
        if self.ca_file:
            return ssl.create_default_context(cafile=self.ca_file)
        return self.verify


def load_clusters(entries: Sequence[Mapping[str, Any]]) -> dict[str, Cluster]:
    """Parse the configured clusters, keyed by name, in configuration order.

    The clusters of one routing group run one engine: a query fails over only to a
    cluster of its own engine, and the client's session (prepared statements,
    transactions, session properties) means the same on every cluster it may land on.
    """
    clusters: dict[str, Cluster] = {}
    engines: dict[str, Cluster] = {}
    for entry in entries:
        cluster = Cluster.from_config(entry)
        if cluster.name in clusters:
            raise ClusterConfigError(f"Cluster name {cluster.name!r} is used twice.")
        first = engines.setdefault(cluster.routing_group, cluster)
        if first.engine != cluster.engine:
            raise ClusterConfigError(
                f"Routing group {cluster.routing_group!r} mixes engines ({first.name} runs "
                f"{first.engine}, {cluster.name} runs {cluster.engine}); give each engine "
                "its own routing group."
            )
        clusters[cluster.name] = cluster
    return clusters


def routing_group_engines(clusters: Mapping[str, Cluster]) -> dict[str, str]:
    """The engine of each routing group (one per group, see `load_clusters`)."""
    return {c.routing_group: c.engine for c in clusters.values()}


@dataclass
class ClusterStatus:
    """What one gateway process knows of a cluster's health, drain flag and load.

    ``healthy`` is None until the first check. ``running``/``queued`` come from the last
    health check; ``submitted`` counts queries this process sent since then, so a burst
    spreads over the clusters instead of piling onto the one that looked idle.
    """

    name: str
    routing_group: str
    index: int
    healthy: bool | None = None
    draining: bool = False
    running: int = 0
    queued: int = 0
    submitted: int = 0
    last_error: str | None = None
    checked_at: float | None = None
    #: Monotonic time the cluster was last found unhealthy, while it still is.
    unhealthy_since: float | None = None
    #: Failed checks and requests in a row since the last passing check.
    failures: int = 0

    def record_success(self, running: int, queued: int, now: float) -> bool:
        """A health check passed; returns True if the cluster was unhealthy until now."""
        recovered = self.healthy is False
        self.healthy = True
        self.running, self.queued, self.submitted = running, queued, 0
        self.last_error = None
        self.checked_at = now
        self.unhealthy_since = None
        self.failures = 0
        return recovered

    def record_failure(self, error: str, now: float, *, in_a_row: int = 1) -> bool:
        """A check (or a request) failed; returns True if this took the cluster out of
        routing.

        A cluster that passed its last check stays in routing until *in_a_row* failures
        follow one another (one slow answer under load, or a pause of the JVM, is not an
        outage); one not seen healthy yet goes out at the first. Callers pass 1 when the
        failure says the cluster is down (it refused the connection, or said so).
        """
        self.failures += 1
        self.last_error = error
        self.checked_at = now
        if self.healthy is True and self.failures < in_a_row:
            return False
        changed = self.healthy is not False
        self.healthy = False
        if self.unhealthy_since is None:
            self.unhealthy_since = now
        return changed

    @property
    def available(self) -> bool:
        """Whether the cluster takes new queries (not known unhealthy, not draining)."""
        return self.healthy is not False and not self.draining

    def sort_key(self) -> tuple[bool, int, int, int]:
        # Known-healthy before not-yet-checked; then fewest queued, then running.
        return (self.healthy is None, self.queued + self.submitted, self.running, self.index)


def rank_clusters(
    statuses: Iterable[ClusterStatus], routing_group: str, pinned: str | None = None
) -> list[ClusterStatus]:
    """The clusters that may take a new query of *routing_group*, best first.

    Within the group: available clusters (healthy, not draining), fewest queued then
    running queries first. The rest of the list is the failover order. With *pinned*,
    only that cluster (if available).
    """
    candidates = [
        s
        for s in statuses
        if s.routing_group == routing_group and s.available and (pinned is None or s.name == pinned)
    ]
    return sorted(candidates, key=ClusterStatus.sort_key)


class Attempt(enum.Enum):
    """What sending a new query to one cluster came to (see `failover`)."""

    #: The cluster answered: its answer goes to the client.
    TAKEN = "taken"
    #: The cluster surely does not have the query: send it to the next cluster.
    NEXT = "next"
    #: The cluster may have the query: never send it anywhere again (it would run twice).
    STOP = "stop"


#: A cluster's answers to a new query that mean it did not take it: starting, shutting
#: down, or a load balancer without a backend.
NOT_TAKEN_STATUSES = frozenset({502, 503, 504})


def failover(status: int | None, *, not_sent: bool = False) -> Attempt:
    """The failover rule for a new query sent to a cluster of `rank_clusters`' list.

    *status* is the cluster's HTTP status, None when it did not answer at all; then
    *not_sent* says whether the request surely never reached it (no connection was made,
    see ``upstream.NOT_SENT``). Only a query no cluster can have started goes on to the
    next cluster: one that may have reached a cluster is never sent twice.
    """
    if status is None:
        return Attempt.NEXT if not_sent else Attempt.STOP
    return Attempt.NEXT if status in NOT_TAKEN_STATUSES else Attempt.TAKEN


def unavailable_message(
    statuses: Iterable[ClusterStatus], routing_group: str, pinned: str | None = None
) -> str:
    """The user's sentence when `rank_clusters` found no cluster."""
    group = [s for s in statuses if s.routing_group == routing_group]
    if pinned:
        status = next((s for s in group if s.name == pinned), None)
        if status is not None and status.draining:
            return (
                f"Cluster {pinned} is drained for maintenance; run the query without "
                f"naming it, or try again later."
            )
        return (
            f"Cluster {pinned} is not healthy right now; run the query without naming it, "
            "or try again shortly."
        )
    if not group:
        return f"No cluster serves routing group {routing_group!r}; ask an admin."
    states = ", ".join(
        f"{s.name} {'drained' if s.draining else 'unhealthy'}" for s in group if not s.available
    )
    return (
        f"No cluster of routing group {routing_group!r} is available right now ({states}); "
        "try again shortly or ask an admin."
    )
