"""The one nav bar of hub and service pages (datahub.web.nav): who sees what, in which
order, where each item leads and which one is the current page."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from datahub.web.nav import NAV_LINKS, NavLink, hub_template_nav, nav_bar, resolve


def labels(bar) -> list[str]:
    return [item.label for item in bar.items]


def test_users_see_their_own_quota_and_no_admin_items():
    bar = nav_bar("alice", admin=False)
    assert labels(bar) == ["Home", "Notebooks", "Query history", "My quota", "Clusters", "Token"]
    assert all(not item.children for item in bar.items)


def test_admins_see_everyones_quotas_and_their_extra_items_in_one_menu():
    bar = nav_bar("carol", admin=True)
    assert labels(bar) == [
        "Home",
        "Notebooks",
        "Query history",
        "Quotas",
        "Clusters",
        "Admin",
        "Token",
    ]
    (menu,) = [item for item in bar.items if item.children]
    assert [(c.label, c.href) for c in menu.children] == [
        ("All queries", "/services/datahub/queries/all"),
        ("Usage", "/services/datahub/admin/quotas/usage"),
        ("Incidents", "/services/datahub/admin/incidents"),
        ("Users", "/hub/admin"),
    ]


def test_targets_resolve_under_the_hub_or_the_service_prefix():
    bar = nav_bar("alice", admin=False, hub_prefix="/jh/hub/", service_prefix="/jh/services/dh/")
    hrefs = {item.label: item.href for item in bar.items}
    assert hrefs["Home"] == "/jh/hub/home"
    assert hrefs["Notebooks"] == "/jh/services/dh/gallery"
    assert (bar.home_href, bar.logout_href) == ("/jh/hub/home", "/jh/hub/logout")
    with pytest.raises(ValueError, match="starts with hub: or service:"):
        resolve("gallery", "/hub/", "/services/datahub/")


def test_only_the_current_page_is_marked_and_its_menu_with_it():
    bar = nav_bar("carol", admin=True, current="service:admin/quotas/usage")
    marked = [item.label for item in bar.items if item.current]
    assert marked == ["Admin"]
    (menu,) = [item for item in bar.items if item.children]
    assert [c.label for c in menu.children if c.current] == ["Usage"]
    assert not any(item.current for item in nav_bar("alice", admin=False).items)


def test_nobody_signed_in_gets_the_brand_only():
    bar = nav_bar(None, admin=False)
    assert bar.items == () and bar.user_name is None


def test_every_target_is_unique_and_admin_menus_hold_admin_items_only():
    targets = [link.target for link in NAV_LINKS]
    assert len(targets) == len(set(targets))
    assert all(link.audience == "admins" for link in NAV_LINKS if link.menu)


def test_a_menu_keeps_the_place_of_its_first_item():
    links = (
        NavLink("A", "hub:a"),
        NavLink("M1", "hub:m1", "admins", "More"),
        NavLink("B", "hub:b"),
        NavLink("M2", "hub:m2", "admins", "More"),
    )
    bar = nav_bar("carol", admin=True, links=links)
    assert labels(bar) == ["A", "More", "B"]
    assert [c.label for c in bar.items[1].children] == ["M1", "M2"]


def test_hub_pages_get_the_bar_of_the_pages_user():
    for_user = hub_template_nav("/hub/", "/services/datahub/")
    admin = for_user(SimpleNamespace(name="carol", admin=True))("hub:home")
    assert "Admin" in labels(admin) and admin.user_name == "carol"
    assert [item.label for item in admin.items if item.current] == ["Home"]
    assert for_user(None)().items == ()
