"""The DataHub service's web layer: base handlers for pages and the REST API, and the one
navigation bar of hub and service pages (`datahub.web.nav`)."""

from .nav import NAV_LINKS, NavLink, nav_bar

__all__ = ["NAV_LINKS", "NavLink", "nav_bar"]
