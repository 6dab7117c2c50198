"""Who may do what with a shared notebook: pure rules, no I/O.

A shared notebook has an owner, may be visible company-wide (``public``) and is shared
with hub users and hub groups (the LDAP groups), each as *viewer* or *editor*:

- the owner may do everything: publish versions, change title, description, tags and
  sharing, unpublish;
- editors may view and publish new versions;
- viewers (and everyone, when it is public) may view, download and open a copy;
- hub admins may view and unpublish any shared notebook;
- anyone else may not learn that it exists (the API and pages answer 404).

The store's listing query applies the same rule in SQL; tests check both agree.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..identity import normalize_username
from .errors import SharingError

SHARE_KINDS = ("user", "group")
SHARE_ROLES = ("viewer", "editor")

# Hub user and group names: anything printable but our separator ':' and '/', which
# would change the meaning of a hub API path.
_NAME = re.compile(r"^[^\x00-\x1f\x7f/:]{1,255}$")


class Role(enum.IntEnum):
    """What a person is to a shared notebook; higher includes lower."""

    NONE = 0
    VIEWER = 1
    EDITOR = 2
    OWNER = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Viewer:
    """The signed-in person asking: hub name, hub groups, hub admin or not."""

    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False


@dataclass(frozen=True)
class Share:
    """One grant: a hub user or group (``kind``) named ``name`` gets ``role``."""

    kind: str
    name: str
    role: str = "viewer"

    @property
    def spec(self) -> str:
        """The written form, as the magic and the pages take it: ``group:analysts``,
        ``user:bob:editor`` (the viewer role is left out)."""
        base = f"{self.kind}:{self.name}"
        return base if self.role == "viewer" else f"{base}:{self.role}"

    @property
    def level(self) -> Role:
        return Role.EDITOR if self.role == "editor" else Role.VIEWER


@dataclass(frozen=True)
class Access:
    """A person's role on one shared notebook and what it lets them do."""

    role: Role
    admin: bool = False

    @property
    def can_view(self) -> bool:
        return self.role >= Role.VIEWER or self.admin

    @property
    def can_publish(self) -> bool:
        """Publish a new version."""
        return self.role >= Role.EDITOR

    @property
    def can_edit(self) -> bool:
        """Change title, description, tags, sharing and company-wide visibility."""
        return self.role == Role.OWNER

    @property
    def can_unpublish(self) -> bool:
        return self.role == Role.OWNER or self.admin

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role.label,
            "view": self.can_view,
            "publish": self.can_publish,
            "edit": self.can_edit,
            "unpublish": self.can_unpublish,
        }


def role_of(viewer: Viewer, owner: str, public: bool, shares: Iterable[Share]) -> Role:
    """The highest role ``viewer`` holds on a notebook of ``owner`` with these grants."""
    if viewer.name == owner:
        return Role.OWNER
    role = Role.VIEWER if public else Role.NONE
    for share in shares:
        if (share.kind == "user" and share.name == viewer.name) or (
            share.kind == "group" and share.name in viewer.groups
        ):
            role = max(role, share.level)
    return role


def access_for(viewer: Viewer, owner: str, public: bool, shares: Iterable[Share]) -> Access:
    """``viewer``'s role and permissions on a notebook."""
    return Access(role_of(viewer, owner, public, shares), admin=viewer.admin)


def parse_share(value: str | Mapping[str, Any]) -> Share:
    """A Share from ``"group:analysts"``, ``"user:bob:editor"`` or
    ``{"kind": "user", "name": "bob", "role": "editor"}``; SharingError if malformed."""
    if isinstance(value, Mapping):
        kind, name, role = value.get("kind"), value.get("name"), value.get("role", "viewer")
        if not all(isinstance(v, str) for v in (kind, name, role)):
            raise SharingError(
                f"Share {dict(value)!r} needs string fields kind, name and role "
                '(e.g. {"kind": "group", "name": "analysts", "role": "viewer"}).'
            )
    elif isinstance(value, str):
        kind, sep, rest = value.strip().partition(":")
        if not sep:
            raise SharingError(
                f"Share {value!r} should look like group:analysts, user:bob or user:bob:editor."
            )
        name, role = rest, "viewer"
        head, sep, tail = rest.rpartition(":")
        if sep and tail in SHARE_ROLES:
            name, role = head, tail
    else:
        raise SharingError(
            f"Share {value!r} should be a string like group:analysts or user:bob:editor."
        )
    kind, role, name = kind.strip().lower(), role.strip().lower(), name.strip()
    if kind not in SHARE_KINDS:
        raise SharingError(f"Cannot share with {kind!r}: share with user:NAME or group:NAME.")
    if role not in SHARE_ROLES:
        raise SharingError(f"Unknown role {role!r} for {kind}:{name}: use viewer or editor.")
    if not _NAME.match(name):
        raise SharingError(
            f"{name!r} is not a valid hub {kind} name (1 to 255 characters, no ':' or '/')."
        )
    if kind == "user":
        name = normalize_username(name)
    return Share(kind=kind, name=name, role=role)


def parse_shares(
    values: Iterable[str | Mapping[str, Any]], owner: str | None = None
) -> list[Share]:
    """Shares from their written forms, in order; each user or group at most once.

    A grant to the owner is dropped: they own it already.
    """
    if isinstance(values, str | bytes | Mapping):
        raise SharingError('Shares must be a list, e.g. ["group:analysts", "user:bob:editor"].')
    shares: list[Share] = []
    seen: set[tuple[str, str]] = set()
    for value in values:
        share = parse_share(value)
        key = (share.kind, share.name)
        if key in seen:
            raise SharingError(f"{share.kind}:{share.name} is listed twice; keep one role for it.")
        seen.add(key)
        if share.kind == "user" and share.name == owner:
            continue
        shares.append(share)
    return shares
