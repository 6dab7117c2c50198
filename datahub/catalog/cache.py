"""A per-user cache of metadata answers with a time to live (pure, no I/O)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["MetadataCache"]

_MISSING = object()


class MetadataCache:
    """Answers keyed by ``(user, routing hint, question)``; the user is always part of
    the key, so one user's answer is never served to another.

    Entries expire *ttl* seconds after they were stored; beyond *max_entries* the least
    recently used go first.
    """

    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, Hashable], tuple[float, Any]] = OrderedDict()

    def get(self, user: str, key: Hashable) -> Any:
        """The cached answer, or ``MetadataCache.MISSING``."""
        entry = self._entries.get((user, key))
        if entry is None:
            return _MISSING
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[(user, key)]
            return _MISSING
        self._entries.move_to_end((user, key))
        return value

    def put(self, user: str, key: Hashable, value: Any) -> None:
        self._entries[(user, key)] = (self._clock() + self.ttl, value)
        self._entries.move_to_end((user, key))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_user(self, user: str) -> int:
        """Drop every answer of *user* (the refresh command); how many were dropped."""
        keys = [k for k in self._entries if k[0] == user]
        for k in keys:
            del self._entries[k]
        return len(keys)

    def __len__(self) -> int:
        return len(self._entries)

    MISSING = _MISSING
