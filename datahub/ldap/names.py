"""What things are called in the directory: DNs, hub group names, search filters.

Pure functions, no connections: comparing DNs (:func:`dn_key`, :func:`dn_within`), the hub
group name of an LDAP group (:func:`group_key`, ``cn=admins,ou=sales,…`` → ``admins@sales``),
the user's groups from a search and ``memberOf`` (:func:`merge_groups`), membership
(:func:`is_member`), and the search filters with a user's name or DN put in escaped
(:func:`user_filter`, :func:`group_filter`), so that no typed name can widen a search.
"""

from __future__ import annotations

from collections.abc import Iterable
from string import hexdigits

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

#: Joins the parts of a group's DN below `group_search_base` into its hub group name.
GROUP_PATH_SEPARATOR = "@"


def dn_key(dn: str) -> tuple[tuple[str, str], ...]:
    """A DN in a form that compares equal for equal DNs: attribute types and values
    lowercased, spaces around separators dropped. Raises ValueError for a malformed DN."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        raise ValueError(f"{dn!r} is not a valid LDAP DN.") from None
    return tuple((attr.strip().lower(), value.strip().lower()) for attr, value, _ in parts)


def dn_within(dn: str, base: str) -> bool:
    """True if ``dn`` is ``base`` or below it. An empty base contains everything."""
    if not base:
        return True
    try:
        entry, container = dn_key(dn), dn_key(base)
    except ValueError:
        return False
    return len(entry) >= len(container) and entry[len(entry) - len(container) :] == container


def _unescape_dn_value(value: str) -> str:
    """Undo RFC 4514 escapes (``\\,`` and ``\\2C``) in one attribute value of a DN."""
    out, i = bytearray(), 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in hexdigits for c in pair):
                out.append(int(pair, 16))
                i += 3
            else:
                out += value[i + 1].encode()
                i += 2
        else:
            out += value[i].encode()
            i += 1
    return out.decode("utf-8", "replace")


def group_key(dn: str, base: str) -> str | None:
    """The hub group name of LDAP group ``dn``: its place below ``base`` (the
    `group_search_base`), so that same-named groups in different OUs stay apart.

    A group directly below the base is called by its RDN value
    (``cn=analysts,ou=groups,…`` → ``analysts``); one in an OU below it gets the values
    from the group upwards joined by ``@`` (``cn=admins,ou=sales,ou=groups,…`` →
    ``admins@sales``). The name is never read from the group's attributes, which a
    group's owner could set to anything. None, and the group is left out, when the DN is
    malformed or not below the base, or when a part has several values (``cn=a+ou=b``),
    is empty or contains ``@``: any of those could give two groups one name.
    """
    if not dn_within(dn, base):
        return None
    try:
        parts = parse_dn(dn, escape=False, strip=True)
        depth = len(dn_key(base)) if base else 0
    except (LDAPInvalidDnError, ValueError):
        return None
    below = parts[: len(parts) - depth]
    if not below or any(separator == "+" for _, _, separator in below):
        return None
    values = [_unescape_dn_value(value.strip()) for _, value, _ in below]
    if any(not v or GROUP_PATH_SEPARATOR in v for v in values):
        return None
    return GROUP_PATH_SEPARATOR.join(values)


def merge_groups(
    searched: Iterable[str],
    member_of: Iterable[str],
    group_base: str = "",
) -> list[tuple[str, str]]:
    """The user's groups as ``(dn, hub group name)``, from the DNs a group search found
    and the user's ``memberOf`` values.

    A group found both ways counts once (DNs compared with :func:`dn_key`; the searched
    spelling wins). Names come from :func:`group_key`: groups outside ``group_base``, and
    groups whose DN cannot give a name that is theirs alone, are left out.
    """
    groups: dict[tuple, tuple[str, str]] = {}
    for dn in [*searched, *member_of]:
        name = group_key(dn, group_base)
        if name is None:
            continue
        groups.setdefault(dn_key(dn), (dn, name))
    return sorted(groups.values(), key=lambda group: group[1])


def unnamed_groups(group_dns: Iterable[str], group_base: str) -> list[str]:
    """The DNs among ``group_dns`` that are below ``group_base`` but get no hub group name
    (see :func:`group_key`): worth a warning, since their members lose that group."""
    return sorted(
        {dn for dn in group_dns if dn_within(dn, group_base) and not group_key(dn, group_base)}
    )


def is_member(group_dns: Iterable[str], wanted: Iterable[str]) -> bool:
    """True if any of ``group_dns`` is one of the ``wanted`` group DNs."""
    keys = set()
    for dn in group_dns:
        try:
            keys.add(dn_key(dn))
        except ValueError:
            continue
    for dn in wanted:
        try:
            if dn_key(dn) in keys:
                return True
        except ValueError:
            continue
    return False


def user_filter(
    lookup_filter: str, user_attribute: str, username: str, restriction: str = ""
) -> str:
    """The filter that finds ``username``'s entry.

    ``lookup_filter`` is `lookup_dn_search_filter` (``{login_attr}``, ``{login}``);
    ``restriction``, when given, is `search_filter` (``{userattr}``, ``{username}``),
    and both must match. The name is escaped (RFC 4515) before it is put in, so
    ``*)(uid=*`` looks for that literal name and matches nobody.
    """
    login = escape_filter_chars(username)
    found = lookup_filter.format(login_attr=user_attribute, login=login)
    if not restriction:
        return found
    return f"(&{found}{restriction.format(userattr=user_attribute, username=login)})"


def group_filter(template: str, user_dn: str, uid: str) -> str:
    """`group_membership_filter` for one user: ``{userdn}`` and ``{uid}`` put in escaped
    (a DN may hold ``(``, ``)``, ``*`` or ``\\``)."""
    return template.format(userdn=escape_filter_chars(user_dn), uid=escape_filter_chars(uid))
