"""The demo and test directory: people, groups and service accounts, as data and as LDIF.

Pure data, no I/O. Demo people have fixed, printable passwords (``alice-pass``) so the
README and the tests can use them; the service accounts' passwords are generated per state
directory by the caller (see :func:`new_service_secrets`) and passed in.
"""

from __future__ import annotations

import base64
import hashlib
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass

BASE_DN = "dc=datahub,dc=example"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
SERVICES_DN = f"ou=services,{BASE_DN}"

#: The hub's account for looking up and searching people and groups.
HUB_SERVICE_ACCOUNT = "datahub-hub"
#: The gateway's account on Trino, allowed to impersonate employees.
TRINO_SERVICE_ACCOUNT = "datahub-trino"
SERVICE_ACCOUNTS = (HUB_SERVICE_ACCOUNT, TRINO_SERVICE_ACCOUNT)

#: Employees may use DataHub; members of the admin group are hub admins.
ALLOWED_GROUP = "analysts"
ADMIN_GROUP = "datahub-admins"
#: Trino's rules restrict this group to ``tpch.tiny``.
CONTRACTORS_GROUP = "contractors"


@dataclass(frozen=True)
class Person:
    """A demo employee."""

    uid: str
    full_name: str
    groups: tuple[str, ...]
    uid_number: int

    @property
    def password(self) -> str:
        """The fixed demo password, deliberately printable."""
        return demo_password(self.uid)

    @property
    def dn(self) -> str:
        return user_dn(self.uid)


PEOPLE: tuple[Person, ...] = (
    Person("alice", "Alice Analyst", (ALLOWED_GROUP,), 10001),
    Person("bob", "Bob Builder", (ALLOWED_GROUP,), 10002),
    Person("carol", "Carol Admin", (ALLOWED_GROUP, ADMIN_GROUP), 10003),
    Person("dave", "Dave Contractor", (ALLOWED_GROUP, CONTRACTORS_GROUP), 10004),
    Person("eve", "Eve Marketing", ("marketing",), 10005),
)

#: Every group that has at least one member, in a stable order.
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(g for p in PEOPLE for g in p.groups))


def demo_password(uid: str) -> str:
    """The demo password of person ``uid``."""
    return f"{uid}-pass"


def user_dn(uid: str) -> str:
    """The DN of person ``uid``."""
    return f"uid={uid},{PEOPLE_DN}"


def group_dn(name: str) -> str:
    """The DN of group ``name``."""
    return f"cn={name},{GROUPS_DN}"


def service_dn(uid: str) -> str:
    """The DN of service account ``uid``."""
    return f"uid={uid},{SERVICES_DN}"


def person(uid: str) -> Person:
    """The demo person named ``uid``; KeyError if there is none."""
    for p in PEOPLE:
        if p.uid == uid:
            return p
    raise KeyError(uid)


def group_members() -> dict[str, list[str]]:
    """Map each group name to the uids of its members (used for Trino's group file)."""
    return {g: [p.uid for p in PEOPLE if g in p.groups] for g in GROUPS}


def new_service_secrets() -> dict[str, str]:
    """Fresh random passwords for the service accounts, keyed by account uid."""
    return {uid: _secrets.token_urlsafe(24) for uid in SERVICE_ACCOUNTS}


def ssha(password: str, salt: bytes | None = None) -> str:
    """Hash ``password`` in OpenLDAP's ``{SSHA}`` scheme (salted SHA-1)."""
    salt = _secrets.token_bytes(8) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _entry(dn: str, *attrs: tuple[str, str]) -> str:
    lines = [f"dn: {dn}"] + [f"{name}: {value}" for name, value in attrs]
    return "\n".join(lines) + "\n"


def render_ldif(service_secrets: Mapping[str, str]) -> str:
    """Render the whole directory as LDIF for ``slapadd``/``ldapadd``.

    ``service_secrets`` maps service account uids to passwords; an account without one is
    still created but has no ``userPassword``, so nobody can bind as it. Passwords are
    stored as ``{SSHA}`` hashes, never in clear.
    """
    unknown = set(service_secrets) - set(SERVICE_ACCOUNTS)
    if unknown:
        raise ValueError(f"Unknown service accounts: {', '.join(sorted(unknown))}.")
    entries = [
        _entry(
            BASE_DN,
            ("objectClass", "top"),
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("o", "DataHub Example"),
            ("dc", "datahub"),
        )
    ]
    for ou in ("people", "groups", "services"):
        entries.append(
            _entry(
                f"ou={ou},{BASE_DN}",
                ("objectClass", "organizationalUnit"),
                ("ou", ou),
            )
        )
    for p in PEOPLE:
        given, _, surname = p.full_name.partition(" ")
        entries.append(
            _entry(
                p.dn,
                ("objectClass", "inetOrgPerson"),
                ("objectClass", "posixAccount"),
                ("uid", p.uid),
                ("cn", p.full_name),
                ("givenName", given),
                ("sn", surname or given),
                ("displayName", p.full_name),
                ("mail", f"{p.uid}@datahub.example"),
                ("uidNumber", str(p.uid_number)),
                ("gidNumber", str(p.uid_number)),
                ("homeDirectory", f"/home/{p.uid}"),
                ("loginShell", "/bin/bash"),
                ("userPassword", ssha(p.password)),
            )
        )
    for uid in SERVICE_ACCOUNTS:
        # Without a secret the account exists but has no password, so nobody can bind as it.
        password = service_secrets.get(uid)
        attrs = [("objectClass", "account")]
        if password:
            attrs.append(("objectClass", "simpleSecurityObject"))
        attrs += [("uid", uid), ("description", "DataHub service account")]
        if password:
            attrs.append(("userPassword", ssha(password)))
        entries.append(_entry(service_dn(uid), *attrs))
    for name, members in group_members().items():
        entries.append(
            _entry(
                group_dn(name),
                ("objectClass", "groupOfNames"),
                ("cn", name),
                *(("member", user_dn(uid)) for uid in members),
            )
        )
    return "\n".join(entries)
