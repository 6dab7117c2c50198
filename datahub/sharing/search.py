"""Gallery search: the query language, filters and sort orders. Pure, no I/O.

A query is words, each of which must appear (case-insensitively) in the title, the
description, a tag, the owner's name or the SQL of the latest version. ``"quoted
phrases"`` count as one word; ``owner:alice`` and ``tag:sales`` narrow to an owner or
a tag exactly.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..identity import normalize_username
from .errors import SharingError

#: Which notebooks to list: every one the viewer may see, their own, or those shared
#: with them (by name or through a group).
FILTERS = ("all", "mine", "shared")
#: Orders: last published first, most viewed first, most copied first.
SORTS = ("recent", "views", "copies")
MAX_WORDS = 10


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.words or self.owners or self.tags)


def parse_query(text: str | None) -> SearchQuery:
    """``'revenue "by region" owner:alice tag:Weekly'`` → words (lower case), owners, tags."""
    if not text or not text.strip():
        return SearchQuery()
    try:
        parts = shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        parts = text.replace('"', " ").replace("'", " ").split()
    words: list[str] = []
    owners: list[str] = []
    tags: list[str] = []
    for part in parts:
        key, sep, value = part.partition(":")
        if sep and value and key.lower() == "owner":
            owners.append(normalize_username(value))
        elif sep and value and key.lower() == "tag":
            tags.append(value.lstrip("#").lower())
        elif part.strip():
            words.append(part.strip().lower())
    if len(words) + len(owners) + len(tags) > MAX_WORDS:
        raise SharingError(f"Search with at most {MAX_WORDS} words.")
    return SearchQuery(tuple(words), tuple(owners), tuple(tags))


def check_filter(value: str | None) -> str:
    value = (value or "all").lower()
    if value not in FILTERS:
        raise SharingError(f"Unknown filter {value!r}: use one of {', '.join(FILTERS)}.")
    return value


def check_sort(value: str | None) -> str:
    value = (value or "recent").lower()
    if value not in SORTS:
        raise SharingError(f"Unknown sort {value!r}: use one of {', '.join(SORTS)}.")
    return value
