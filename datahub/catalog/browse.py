"""The schema browser's answers (pure, no I/O): pages of a cached listing, a search's
page, and the routing groups a user may browse."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

__all__ = ["page_of", "routing_group_entries", "search_page"]


def page_of(kind: str, items: Sequence[Any], offset: int, limit: int) -> dict[str, Any]:
    """``{kind: items[offset:offset + limit], "total", "next_offset"}``; ``next_offset``
    is None on the last page. The whole listing is one cached answer (one statement on
    Trino per user and TTL), so paging through thousands of tables asks Trino nothing
    more."""
    page = list(items[offset : offset + limit])
    end = offset + len(page)
    return {kind: page, "total": len(items), "next_offset": end if end < len(items) else None}


def search_page(hits: Sequence[Any], offset: int, limit: int) -> dict[str, Any]:
    """A search's answer from its statement's hits (which hold one more than a page
    when there is a next one)."""
    more = len(hits) > limit
    return {"search": list(hits[:limit]), "next_offset": offset + limit if more else None}


def routing_group_entries(
    clusters: Mapping[str, str], default_group: str, allowed: Collection[str] | None
) -> list[dict[str, Any]]:
    """The routing groups a user may use (*allowed*; None: every one), in configuration
    order, each with its clusters and whether unrouted queries go there. *clusters* maps
    cluster names to their routing group."""
    groups: dict[str, list[str]] = {}
    for name, group in clusters.items():
        groups.setdefault(group, []).append(name)
    return [
        {"name": group, "clusters": names, "default": group == default_group}
        for group, names in groups.items()
        if allowed is None or group in allowed
    ]
