"""Trino clusters behind the gateway, and which one a query goes to."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..identity import Identity
from .protocol import basic_authorization, is_valid_cluster_name


class ClusterConfigError(ValueError):
    """A cluster entry in the configuration is unusable."""


@dataclass(frozen=True)
class Cluster:
    """One Trino cluster and how the gateway reaches it.

    ``user``/``password`` are the DataHub service account, which Trino must allow to
    impersonate employees. ``verify`` is True (system CAs), False (development only)
    or, via ``ca_file``, the PEM file of the cluster's CA or self-signed certificate.
    """

    name: str
    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    verify: bool = True
    routing_group: str = "default"

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
    """Parse the configured clusters, keyed by name, in configuration order."""
    clusters: dict[str, Cluster] = {}
    for entry in entries:
        cluster = Cluster.from_config(entry)
        if cluster.name in clusters:
            raise ClusterConfigError(f"Cluster name {cluster.name!r} is used twice.")
        clusters[cluster.name] = cluster
    return clusters


def choose_cluster(
    identity: Identity, clusters: Mapping[str, Cluster], headers: Mapping[str, str]
) -> Cluster:
    """Pick the cluster for a new query.

    The one place routing decisions are made: today the first configured cluster;
    routing groups, health and load will be decided here, from the identity (user,
    groups) and the request headers (client tags, source).
    """
    if not clusters:
        raise LookupError("No Trino cluster is configured; ask an admin.")
    return next(iter(clusters.values()))
