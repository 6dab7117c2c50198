"""Talking to the company directory: connections, binds, searches, TLS and failover.

:class:`Directory` holds what it needs to know (servers, search account, where people and
groups are, TLS, timeouts) as plain values; the authenticator builds one from its options.
Its two questions, :meth:`Directory.login_account` (is this the person's password?) and
:meth:`Directory.lookup_account` (what does the directory say about them now?), run one
flow on the first server that can be reached: bind the search account, find the user,
(bind as the user,) check ``disabled_filter`` and read all their groups. Both block; call
them in a thread. What things are called (DNs, group names, filters) is :mod:`.names`;
which server is tried first is :mod:`.servers`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import (
    LDAPBindError,
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)

from .names import group_filter, merge_groups, unnamed_groups, user_filter
from .servers import LDAPServer, ServerHealth

#: Result codes meaning "this server cannot answer now": try another one.
_BUSY, _UNAVAILABLE = 51, 52
_NO_SUCH_OBJECT = 32
_PAGED_RESULTS = "1.2.840.113556.1.4.319"

#: ldap3 errors that mean the server could not be reached or talked to (as opposed to a
#: refused bind or a bad search): the next server is tried.
UNREACHABLE_ERRORS = (
    LDAPCommunicationError,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
    LDAPCertificateError,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Account:
    """What the directory says about a person."""

    dn: str
    name: str
    groups: tuple[tuple[str, str], ...] = ()
    disabled: bool = False
    attributes: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def group_dns(self) -> list[str]:
        return [dn for dn, _ in self.groups]

    @property
    def group_names(self) -> list[str]:
        return sorted({name for _, name in self.groups})


class DirectoryUnavailable(Exception):
    """No configured LDAP server could be reached; ``reasons`` says why, per server."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons) or "no LDAP server is configured")
        self.reasons = list(reasons)


class DirectoryError(Exception):
    """The directory answered, but not usefully (misconfiguration, ambiguous entries)."""


@dataclass(kw_only=True)
class Directory:
    """The company directory as DataHub asks it (see the module's docstring).

    The fields are the authenticator's options of the same meaning: ``search_user`` and
    ``search_password`` are `lookup_dn_search_user`/`_password`, ``lookup_filter`` is
    `lookup_dn_search_filter`, ``name_attribute`` the attribute holding the person's
    account name (`lookup_dn_user_dn_attribute`, else `user_attribute`), ``extra_attributes``
    `auth_state_attributes`; the others have the names of their options.
    """

    servers: Sequence[LDAPServer]
    health: ServerHealth
    search_user: str | None
    search_password: str | None
    user_search_base: str | None
    user_attribute: str | None
    name_attribute: str | None
    lookup_filter: str
    search_filter: str = ""
    memberof_attribute: str = ""
    extra_attributes: Sequence[str] = ()
    disabled_filter: str = ""
    group_search_base: str = ""
    group_membership_filter: str = ""
    tls_ca_file: str = ""
    tls_kwargs: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float = 5.0
    response_timeout: int = 10
    log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__)

    # --- The two questions --------------------------------------------------------------

    def login_account(self, username: str, password: str) -> Account | None:
        """The Account of ``username`` if ``password`` is theirs, else None (blocking).

        Raises DirectoryUnavailable when no server can be reached, DirectoryError when the
        directory cannot answer usefully.
        """

        def attempt(server: LDAPServer) -> Account | None:
            conn = self._search_connection(server)
            try:
                account = self._find_user(conn, username)
                if account is None:
                    return None
                try:
                    self.connect(server, account.dn, password).unbind()
                except LDAPBindError:
                    return None
                return self._complete(conn, account)
            finally:
                conn.unbind()

        return self._on_some_server(attempt)

    def lookup_account(self, username: str) -> Account | None:
        """The Account of ``username`` as the search account sees it, or None (blocking)."""

        def attempt(server: LDAPServer) -> Account | None:
            conn = self._search_connection(server)
            try:
                account = self._find_user(conn, username)
                return None if account is None else self._complete(conn, account)
            finally:
                conn.unbind()

        return self._on_some_server(attempt)

    # --- Connections ----------------------------------------------------------------------

    def tls_settings(self) -> ldap3.Tls:
        """ldap3's TLS settings: verification required, `tls_ca_file`, then `tls_kwargs`."""
        kwargs: dict[str, Any] = {"validate": ssl.CERT_REQUIRED}
        if self.tls_ca_file:
            kwargs["ca_certs_file"] = self.tls_ca_file
        kwargs.update(self.tls_kwargs)
        try:
            return ldap3.Tls(**kwargs)
        except LDAPSSLConfigurationError as e:
            raise DirectoryError(f"invalid TLS settings (tls_ca_file, tls_kwargs): {e}") from e

    def connect(
        self, server: LDAPServer, user: str | None, password: str | None
    ) -> ldap3.Connection:
        """A connection to ``server`` bound as ``user``.

        Raises LDAPBindError if the bind is refused, one of :data:`UNREACHABLE_ERRORS` if
        the server cannot be talked to. Never binds anonymously or without a password.
        """
        if not user or not password:
            raise LDAPBindError("refusing to bind without a DN and a password")
        ldap_server = ldap3.Server(
            server.host,
            port=server.port,
            use_ssl=server.security == "ldaps",
            tls=self.tls_settings() if server.security != "plain" else None,
            get_info=ldap3.NONE,  # no schema download on every connection
            connect_timeout=self.connect_timeout,
        )
        return ldap3.Connection(
            ldap_server,
            user=user,
            password=password,
            auto_bind=(
                ldap3.AUTO_BIND_TLS_BEFORE_BIND
                if server.security == "starttls"
                else ldap3.AUTO_BIND_NO_TLS
            ),
            receive_timeout=self.response_timeout,
            read_only=True,
            raise_exceptions=False,
        )

    def _search_connection(self, server: LDAPServer) -> ldap3.Connection:
        try:
            return self.connect(server, self.search_user, self.search_password)
        except LDAPBindError:
            raise DirectoryError(
                f"{server.url} refused the search account {self.search_user!r}; "
                "check lookup_dn_search_user and lookup_dn_search_password"
            ) from None

    def _on_some_server(self, operation: Callable[[LDAPServer], T]) -> T:
        """Run ``operation(server)`` on the first server that can be reached."""
        reasons = []
        for server in self.health.order(self.servers, time.monotonic()):
            try:
                result = operation(server)
            except UNREACHABLE_ERRORS as e:
                self.health.failed(server, time.monotonic())
                reasons.append(f"{server.url}: {type(e).__name__}: {e}")
                self.log.warning("LDAP server %s failed, trying the next: %s", server.url, e)
                continue
            except LDAPException as e:
                raise DirectoryError(f"{server.url}: {type(e).__name__}: {e}") from e
            self.health.succeeded(server)
            return result
        raise DirectoryUnavailable(reasons)

    # --- Searches ---------------------------------------------------------------------------

    def _search(
        self,
        conn: ldap3.Connection,
        base: str | None,
        search_filter: str,
        attributes: list[str],
        scope=ldap3.SUBTREE,
    ) -> list[tuple[str, dict[str, list]]]:
        """``(dn, attributes)`` of the entries found, page by page."""
        entries, cookie = [], None
        while True:
            conn.search(
                base,
                search_filter,
                search_scope=scope,
                attributes=attributes,
                paged_size=500 if scope == ldap3.SUBTREE else None,
                paged_cookie=cookie,
            )
            code = conn.result.get("result")
            if code in (_BUSY, _UNAVAILABLE):
                raise LDAPCommunicationError(f"server answered {conn.result.get('description')}")
            if code == _NO_SUCH_OBJECT and scope == ldap3.BASE:
                return []
            if code != 0:
                raise DirectoryError(
                    f"search under {base!r} failed: {conn.result.get('description')} "
                    f"{conn.result.get('message') or ''}".strip()
                )
            entries += [
                (r["dn"], dict(r.get("attributes") or {}))
                for r in conn.response or ()
                if r.get("type") == "searchResEntry"
            ]
            controls = conn.result.get("controls") or {}
            cookie = controls.get(_PAGED_RESULTS, {}).get("value", {}).get("cookie")
            if not cookie:
                return entries

    def _find_user(self, conn: ldap3.Connection, username: str) -> Account | None:
        """Look ``username`` up; the returned Account has no groups yet."""
        search_filter = user_filter(
            self.lookup_filter, self.user_attribute, username, self.search_filter
        )
        attributes = [self.name_attribute, *self.extra_attributes]
        if self.memberof_attribute:
            attributes.append(self.memberof_attribute)
        found = self._search(conn, self.user_search_base, search_filter, attributes)
        if not found:
            return None
        if len(found) > 1:
            raise DirectoryError(
                f"{len(found)} entries match user {username!r}; "
                "user_attribute must identify one person"
            )
        dn, attrs = found[0]
        values = _values(attrs, self.name_attribute)
        if len(values) != 1:
            raise DirectoryError(
                f"{dn} has {len(values)} values of {self.name_attribute!r}, not one"
            )
        member_of = _values(attrs, self.memberof_attribute) if self.memberof_attribute else []
        extra = {a: _values(attrs, a) for a in self.extra_attributes}
        return Account(
            dn=dn,
            name=str(values[0]),
            groups=tuple((group_dn, "") for group_dn in member_of),
            attributes=extra,
        )

    def _complete(self, conn: ldap3.Connection, account: Account) -> Account:
        """Add the disabled flag and all groups (search + memberOf) to ``account``."""
        disabled = False
        if self.disabled_filter:
            disabled = bool(self._search(conn, account.dn, self.disabled_filter, [], ldap3.BASE))
        searched = []
        if self.group_membership_filter:
            found = self._search(
                conn,
                self.group_search_base,
                group_filter(self.group_membership_filter, account.dn, account.name),
                [ldap3.NO_ATTRIBUTES],
            )
            searched = [dn for dn, _ in found]
        groups = merge_groups(searched, account.group_dns, self.group_search_base)
        for dn in unnamed_groups([*searched, *account.group_dns], self.group_search_base):
            self.log.warning(
                "LDAP group %r of %s is not a hub group: its DN cannot give it a name "
                "of its own (see group_search_base)",
                dn,
                account.name,
            )
        return Account(account.dn, account.name, tuple(groups), disabled, account.attributes)


def _values(attributes: dict[str, Any], name: str) -> list:
    """The values of attribute ``name`` (case-insensitive), always as a list."""
    for key, value in attributes.items():
        if key.lower() == name.lower():
            if value is None:
                return []
            return list(value) if isinstance(value, list | tuple) else [value]
    return []
