"""The service's own pages and API: its overview and who-am-I."""

from __future__ import annotations

from typing import Any

from tornado import web

from .base import APIHandler, PageHandler


class HomePage(PageHandler):
    """``{prefix}``: who you are and which clusters serve your queries."""

    @property
    def clusters(self) -> list[Any]:
        """The configured clusters (the service's ``datahub_clusters`` part)."""
        return list(self.settings["datahub_clusters"].values())

    @web.authenticated
    async def get(self) -> None:
        self.render_page("home.html", active="", groups=self.user_groups, clusters=self.clusters)


class MeAPI(APIHandler):
    """``GET {prefix}api/me``: the identity the service sees for this token or cookie."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(
            {"name": self.user_name, "groups": self.user_groups, "admin": self.is_admin}
        )


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    return [(prefix, HomePage), (prefix + "api/me", MeAPI)]
