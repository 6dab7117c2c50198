"""The demo and test directory: people, groups and service accounts, as data and as LDIF.

Pure data, no I/O. Demo people have fixed, printable passwords (``alice-pass``) so the
README and the tests can use them; the service accounts' passwords are generated per state
directory by the caller (see :func:`new_service_secrets`) and passed in.

The directory behaves like a company's OpenLDAP: groups are ``groupOfNames`` (tests also
build ``groupOfUniqueNames`` and ``posixGroup`` ones), people carry ``memberOf`` (kept up to
date by slapd's memberof overlay), and a password policy (ppolicy) lets an administrator
disable an account: ``pwdAccountLockedTime: 000001010000Z`` locks it for good.
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
POLICIES_DN = f"ou=policies,{BASE_DN}"
#: The password policy slapd's ppolicy overlay applies to every account.
PASSWORD_POLICY_DN = f"cn=default,{POLICIES_DN}"
#: ``pwdAccountLockedTime`` value that locks an account until an administrator unlocks it
#: (ppolicy's convention for "disabled").
LOCKED_FOREVER = "000001010000Z"

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
    """A demo employee. ``locked`` people are disabled in the directory (ppolicy)."""

    uid: str
    full_name: str
    groups: tuple[str, ...]
    uid_number: int
    locked: bool = False

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

#: The object classes a group can have, with the attribute that lists its members and
#: whether members are named by DN (``member``, ``uniqueMember``) or by uid (``memberUid``).
GROUP_KINDS: dict[str, tuple[str, bool]] = {
    "groupOfNames": ("member", True),
    "groupOfUniqueNames": ("uniqueMember", True),
    "posixGroup": ("memberUid", False),
}


@dataclass(frozen=True)
class Group:
    """A group of people (by uid) of one of the :data:`GROUP_KINDS`, directly in
    ``ou=groups`` or, with ``ou``, in an OU of its own below it (another department's
    groups: tests give it a group named like one in ``ou=groups``)."""

    name: str
    members: tuple[str, ...]
    kind: str = "groupOfNames"
    gid_number: int = 20000
    ou: str = ""

    def __post_init__(self) -> None:
        if self.kind not in GROUP_KINDS:
            raise ValueError(f"Unknown group kind {self.kind!r}; use one of {list(GROUP_KINDS)}.")

    @property
    def dn(self) -> str:
        return group_dn(self.name, self.ou)

    @property
    def member_values(self) -> tuple[str, ...]:
        """The values of the member attribute: DNs or uids, depending on the kind."""
        by_dn = GROUP_KINDS[self.kind][1]
        return tuple(user_dn(uid) if by_dn else uid for uid in self.members)


def groups_of(people: tuple[Person, ...]) -> tuple[Group, ...]:
    """The ``groupOfNames`` groups named in ``people``'s ``groups``, with their members."""
    names = dict.fromkeys(g for p in people for g in p.groups)
    return tuple(Group(name, tuple(p.uid for p in people if name in p.groups)) for name in names)


def demo_password(uid: str) -> str:
    """The demo password of person ``uid``."""
    return f"{uid}-pass"


def user_dn(uid: str) -> str:
    """The DN of person ``uid``."""
    return f"uid={uid},{PEOPLE_DN}"


def group_dn(name: str, ou: str = "") -> str:
    """The DN of group ``name`` (in OU ``ou`` below ``ou=groups``, if given)."""
    return f"cn={name},ou={ou},{GROUPS_DN}" if ou else f"cn={name},{GROUPS_DN}"


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


def render_ldif(
    service_secrets: Mapping[str, str],
    people: tuple[Person, ...] = PEOPLE,
    groups: tuple[Group, ...] | None = None,
    *,
    memberof: bool = False,
    password_policy: bool = False,
) -> str:
    """Render the whole directory as LDIF for ``slapadd``/``ldapadd``.

    ``service_secrets`` maps service account uids to passwords; an account without one is
    still created but has no ``userPassword``, so nobody can bind as it. Passwords are
    stored as ``{SSHA}`` hashes, never in clear. ``groups`` defaults to
    :func:`groups_of` ``(people)``.

    ``memberof=True`` writes each person's ``memberOf`` values for their ``groupOfNames``
    groups, as slapd's memberof overlay would have (``slapadd`` bypasses overlays, so the
    loaded data must already carry them; the overlay maintains them from then on).
    ``password_policy=True`` adds the default ppolicy entry and locks ``locked`` people;
    both need slapd's ppolicy overlay, whose schema defines those attributes.
    """
    unknown = set(service_secrets) - set(SERVICE_ACCOUNTS)
    if unknown:
        raise ValueError(f"Unknown service accounts: {', '.join(sorted(unknown))}.")
    groups = groups_of(people) if groups is None else groups
    if any(p.locked for p in people) and not password_policy:
        raise ValueError("Locked people need password_policy=True (the ppolicy overlay).")
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
    ous = ("people", "groups", "services") + (("policies",) if password_policy else ())
    for ou in ous:
        entries.append(
            _entry(
                f"ou={ou},{BASE_DN}",
                ("objectClass", "organizationalUnit"),
                ("ou", ou),
            )
        )
    for ou in dict.fromkeys(g.ou for g in groups if g.ou):
        entries.append(
            _entry(f"ou={ou},{GROUPS_DN}", ("objectClass", "organizationalUnit"), ("ou", ou))
        )
    for p in people:
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
                *(
                    ("memberOf", g.dn)
                    for g in groups
                    if memberof and g.kind == "groupOfNames" and p.uid in g.members
                ),
                *((("pwdAccountLockedTime", LOCKED_FOREVER),) if p.locked else ()),
            )
        )
    if password_policy:
        # No lockout after failed binds (pwdMaxFailure 0): hostile-input tests and the login
        # benchmark fail many binds on purpose. Locking is an administrator's decision.
        entries.append(
            _entry(
                PASSWORD_POLICY_DN,
                ("objectClass", "organizationalRole"),
                ("objectClass", "pwdPolicy"),
                ("cn", "default"),
                ("pwdAttribute", "userPassword"),
                ("pwdLockout", "TRUE"),
                ("pwdMaxFailure", "0"),
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
    for group in groups:
        attribute, _ = GROUP_KINDS[group.kind]
        extra = (("gidNumber", str(group.gid_number)),) if group.kind == "posixGroup" else ()
        entries.append(
            _entry(
                group.dn,
                ("objectClass", group.kind),
                ("cn", group.name),
                *extra,
                *((attribute, value) for value in group.member_values),
            )
        )
    return "\n".join(entries)
