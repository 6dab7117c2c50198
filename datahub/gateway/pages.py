"""Clusters and their health: the REST API and the page, under the service prefix.

- ``GET {prefix}api/clusters``: ``{"clusters": [{"name", "routing_group", "healthy",
  "draining", "running", "queued"}]}`` (admins also get each cluster's last ``error``).
- ``POST {prefix}api/clusters/{name}/drain`` and ``…/activate`` (admins): no new queries
  for the cluster (running ones finish), or back into routing.
- Page ``{prefix}clusters``: the same, with the routing groups you may ask for, and
  drain/activate buttons for admins.
"""

from __future__ import annotations

import asyncio

from tornado import web

from ..audit.views import api_cluster
from ..quotas.manager import QuotaManager
from ..web.base import APIHandler, PageHandler, admin_only


class _ClustersMixin:
    def cluster_entries(self) -> list[dict]:
        admin = self.is_admin  # type: ignore[attr-defined]
        statuses = self.service.monitor.statuses.values()  # type: ignore[attr-defined]
        return [api_cluster(s, admin=admin) for s in statuses]

    async def change(self, name: str, action: str) -> None:
        service = self.service  # type: ignore[attr-defined]
        if name not in service.cluster_map:
            raise web.HTTPError(404, f"There is no cluster named {name!r}.")
        await service.set_draining(name, action == "drain", self.user_name)  # type: ignore[attr-defined]


class ClustersAPI(_ClustersMixin, APIHandler):
    """``GET {prefix}api/clusters``."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json({"clusters": self.cluster_entries()})


class ClusterActionAPI(_ClustersMixin, APIHandler):
    """``POST {prefix}api/clusters/{name}/drain|activate`` (admins)."""

    @admin_only
    async def post(self, name: str, action: str) -> None:
        await self.change(name, action)
        status = self.service.monitor.statuses[name]
        self.write_json(api_cluster(status, admin=True))


class ClustersPage(_ClustersMixin, PageHandler):
    """``{prefix}clusters``: clusters, health and load; drain buttons for admins."""

    @web.authenticated
    async def get(self) -> None:
        router = self.service.router
        # Which routing groups a user may use is a quota limit (configured default:
        # routing_group_access): show the one that applies to this user.
        quotas = QuotaManager.for_service(self.service)
        policy = await asyncio.get_running_loop().run_in_executor(
            None, quotas.effective, self.user_name, self.user_groups
        )
        allowed = policy["routing_groups"]
        self.render_page(
            "clusters.html",
            active="clusters",
            clusters=self.cluster_entries(),
            my_groups=[g for g in router.routing_groups if allowed is None or g in allowed],
            default_group=router.default_group,
        )


class ClusterActionPage(_ClustersMixin, PageHandler):
    """The drain/activate buttons of the clusters page (a form POST, then back)."""

    @admin_only
    async def post(self, name: str, action: str) -> None:
        await self.change(name, action)
        self.redirect(self.service.prefix + "clusters")


_NAME = r"([A-Za-z0-9_-]{1,64})"


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    return [
        (prefix + r"api/clusters", ClustersAPI),
        (prefix + r"api/clusters/" + _NAME + r"/(drain|activate)", ClusterActionAPI),
        (prefix + r"clusters", ClustersPage),
        (prefix + r"clusters/" + _NAME + r"/(drain|activate)", ClusterActionPage),
    ]
