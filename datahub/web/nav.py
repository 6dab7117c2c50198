"""DataHub's one navigation bar, shared by the hub's pages and the service's pages.

`NAV_LINKS` is the only list of nav items. Targets are absolute, ``hub:<path>`` (under
the hub's prefix) or ``service:<path>`` (under the DataHub service's prefix), so both
sides build the same bar with `nav_bar`: the service's page handler for its pages, the
hub through ``c.JupyterHub.template_vars`` (`hub_template_nav`) for its own. Both render
it with the same template (templates/service/nav.html). Pure: no I/O, no web framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Audience = Literal["everyone", "users", "admins"]

#: The menu that groups the admins' extra items.
ADMIN_MENU = "Admin"


@dataclass(frozen=True)
class NavLink:
    """One nav item: its label, absolute target and who sees it.

    ``audience`` is "everyone", "users" (people who are not admins) or "admins";
    ``menu`` names the drop-down menu the item sits in ("" for the bar itself).
    """

    label: str
    target: str
    audience: Audience = "everyone"
    menu: str = ""


#: The nav bar of every DataHub page, in order. Admins get "Quotas" (everyone's) where
#: users get "My quota"; admins' extra pages sit in the "Admin" menu.
NAV_LINKS: tuple[NavLink, ...] = (
    NavLink("Home", "hub:home"),
    NavLink("Notebooks", "service:gallery"),
    NavLink("Query history", "service:queries"),
    NavLink("My quota", "service:quota", "users"),
    NavLink("Quotas", "service:admin/quotas", "admins"),
    NavLink("Clusters", "service:clusters"),
    NavLink("All queries", "service:queries/all", "admins", ADMIN_MENU),
    NavLink("Usage", "service:admin/quotas/usage", "admins", ADMIN_MENU),
    NavLink("Incidents", "service:admin/incidents", "admins", ADMIN_MENU),
    NavLink("Users", "hub:admin", "admins", ADMIN_MENU),
    NavLink("Token", "hub:token"),
)


@dataclass(frozen=True)
class NavItem:
    """A rendered nav item: a link, or a menu of links (``children``)."""

    label: str
    href: str = ""
    current: bool = False
    children: tuple[NavItem, ...] = ()


@dataclass(frozen=True)
class NavBar:
    """What the nav template draws: brand link, items, and who is signed in."""

    home_href: str
    items: tuple[NavItem, ...]
    user_name: str | None
    logout_href: str


def resolve(target: str, hub_prefix: str, service_prefix: str) -> str:
    """The URL path of a ``hub:…`` or ``service:…`` target."""
    side, _, path = target.partition(":")
    prefixes = {"hub": hub_prefix, "service": service_prefix}
    if side not in prefixes:
        raise ValueError(f"A nav target starts with hub: or service:, not {target!r}.")
    return prefixes[side] + path


def visible(link: NavLink, admin: bool) -> bool:
    """Whether a signed-in person sees a nav item: the one place this rule lives."""
    return link.audience == "everyone" or (link.audience == "admins") == admin


def nav_bar(
    user_name: str | None,
    *,
    admin: bool,
    current: str = "",
    hub_prefix: str = "/hub/",
    service_prefix: str = "/services/datahub/",
    links: tuple[NavLink, ...] = NAV_LINKS,
) -> NavBar:
    """The nav bar for one page: the items this person sees, ``current`` (a target such
    as "service:gallery") marked, admin items grouped in their menu. Nobody signed in
    (the login page) gets the brand only."""
    entries: list[NavItem | str] = []  # a str holds its menu's place in the bar
    menus: dict[str, list[NavItem]] = {}
    for link in links if user_name else ():
        if not visible(link, admin):
            continue
        item = NavItem(
            link.label,
            resolve(link.target, hub_prefix, service_prefix),
            current=link.target == current,
        )
        if not link.menu:
            entries.append(item)
        elif link.menu in menus:
            menus[link.menu].append(item)
        else:
            menus[link.menu] = [item]
            entries.append(link.menu)
    items = tuple(
        NavItem(
            entry,
            current=any(child.current for child in menus[entry]),
            children=tuple(menus[entry]),
        )
        if isinstance(entry, str)
        else entry
        for entry in entries
    )
    return NavBar(
        home_href=hub_prefix + "home",
        items=items,
        user_name=user_name,
        logout_href=hub_prefix + "logout",
    )


def hub_template_nav(
    hub_prefix: str = "/hub/",
    service_prefix: str = "/services/datahub/",
    is_admin: Callable[[Any], bool] = lambda user: bool(user.admin),
) -> Callable[[Any], Callable[[str], NavBar]]:
    """The value of ``c.JupyterHub.template_vars["datahub_nav"]``.

    JupyterHub calls a template variable with the page's user (None on the login page);
    hub templates then call the result with the page's target
    (``datahub_nav("hub:home")``) to get its `NavBar`. ``is_admin(user)`` decides who
    sees the admin items: jupyterhub_config.py asks whether the user holds DataHub's admin
    scope, as the service's pages do.
    """

    def for_user(user: Any) -> Callable[[str], NavBar]:
        def bar(current: str = "") -> NavBar:
            return nav_bar(
                user.name if user else None,
                admin=bool(user) and is_admin(user),
                current=current,
                hub_prefix=hub_prefix,
                service_prefix=service_prefix,
            )

        return bar

    return for_user
