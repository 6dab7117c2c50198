"""The one error type of the sharing feature: a message the user can act on, and a status."""

from __future__ import annotations


class SharingError(Exception):
    """A request about shared notebooks that cannot be done as asked.

    ``message`` is one sentence saying what to do; ``status`` is the HTTP status the API
    and the pages answer with (400 bad input, 403 not allowed, 404 not visible, 409 a
    concurrent change, 413 too large, 502/503/504 the hub or the user's server).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
