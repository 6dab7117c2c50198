"""Clusters and their health: the REST API and the page, under the service prefix.

- ``GET {prefix}api/clusters``: ``{"clusters": [{"name", "engine", "routing_group",
  "healthy", "draining", "running", "queued"}]}`` (``engine``: ``trino`` or ``presto``;
  admins also get each cluster's last ``error``).
- ``POST {prefix}api/clusters/{name}/drain`` and ``…/activate`` (admins): no new queries
  for the cluster (running ones finish), or back into routing.
- Page ``{prefix}clusters``: the same, with the routing groups you may ask for, and
  drain/activate buttons for admins.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ..web.base import APIHandler, BaseHandler, PageHandler, admin_only
from ..wire import API_CLUSTERS, CLUSTER_NAME_PATTERN
from .clusters import ClusterStatus
from .core import Gateway


def api_cluster(status: ClusterStatus, *, engine: str, admin: bool = False) -> dict[str, Any]:
    """A cluster's status as ``GET api/clusters`` lists it (``engine``: what it runs)."""
    entry: dict[str, Any] = {
        "name": status.name,
        "engine": engine,
        "routing_group": status.routing_group,
        "healthy": bool(status.healthy),
        "draining": bool(status.draining),
        "running": status.running,
        "queued": status.queued,
    }
    if admin:
        entry["error"] = status.last_error
    return entry


class _ClustersHandler(BaseHandler):
    @property
    def gateway(self) -> Gateway:
        return self.settings["gateway"]

    def cluster_entries(self) -> list[dict[str, Any]]:
        admin = self.is_admin
        clusters = self.gateway.clusters
        return [
            api_cluster(s, engine=clusters[s.name].engine, admin=admin)
            for s in self.gateway.monitor.statuses.values()
        ]

    async def change(self, name: str, action: str) -> None:
        if name not in self.gateway.clusters:
            raise web.HTTPError(404, f"There is no cluster named {name!r}.")
        await self.gateway.set_draining(name, action == "drain", self.user_name)


class ClustersAPI(_ClustersHandler, APIHandler):
    """``GET {prefix}api/clusters``."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json({"clusters": self.cluster_entries()})


class ClusterActionAPI(_ClustersHandler, APIHandler):
    """``POST {prefix}api/clusters/{name}/drain|activate`` (admins)."""

    @admin_only
    async def post(self, name: str, action: str) -> None:
        await self.change(name, action)
        status = self.gateway.monitor.statuses[name]
        engine = self.gateway.clusters[name].engine
        self.write_json(api_cluster(status, engine=engine, admin=True))


class ClustersPage(_ClustersHandler, PageHandler):
    """``{prefix}clusters``: clusters, health and load; drain buttons for admins."""

    @web.authenticated
    async def get(self) -> None:
        router = self.gateway.router
        # Which routing groups a user may use is a quota limit: show the one that
        # applies to this user.
        allowed = await self.gateway.allowed_routing_groups(self.user_name, self.user_groups)
        self.render_page(
            "clusters.html",
            active="clusters",
            clusters=self.cluster_entries(),
            my_groups=[g for g in router.routing_groups if allowed is None or g in allowed],
            default_group=router.default_group,
        )


class ClusterActionPage(_ClustersHandler, PageHandler):
    """The drain/activate buttons of the clusters page (a form POST, then back)."""

    @admin_only
    async def post(self, name: str, action: str) -> None:
        await self.change(name, action)
        self.redirect(self.prefix + "clusters")


_NAME = f"({CLUSTER_NAME_PATTERN})"


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    api = prefix + "api/" + API_CLUSTERS
    return [
        (api, ClustersAPI),
        (api + "/" + _NAME + r"/(drain|activate)", ClusterActionAPI),
        (prefix + r"clusters", ClustersPage),
        (prefix + r"clusters/" + _NAME + r"/(drain|activate)", ClusterActionPage),
    ]
