"""Pages and REST API of this feature, mounted under the service prefix."""

from __future__ import annotations

from tornado import web


def default_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    return []
