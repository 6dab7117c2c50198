"""How DataHub reaches the company directory: ldapauthenticator's options and DataHub's.

:class:`LDAPDirectoryOptions` is the base of the hub's authenticator. It keeps
ldapauthenticator's options for the search account and where people are
(`lookup_dn_search_user`, `user_search_base`, `user_attribute`, …), adds DataHub's (several
`servers` with failover, `tls_ca_file`, timeouts, where groups are and how they are found,
`disabled_filter`), builds the :class:`~.directory.Directory` from them, and warns at
startup about the inherited options DataHub does not use (:data:`IGNORED_OPTIONS`), so
nobody believes a setting works that does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from ldapauthenticator import LDAPAuthenticator
from ldapauthenticator.ldapauthenticator import TlsStrategy
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Config

from .directory import Account, Directory
from .servers import LDAPServer, ServerHealth, parse_server_url, server_list

#: Options of ldapauthenticator's LDAPAuthenticator that DataHub never reads, each with
#: what DataHub does instead. (``use_ssl`` is honoured through `tls_strategy`, and
#: ldapauthenticator itself warns that ``escape_userdn`` does nothing.)
IGNORED_OPTIONS: dict[str, str] = {
    "bind_dn_template": "it always looks the user's DN up with lookup_dn_search_user",
    "use_lookup_dn_username": "the hub user name is always the directory's spelling, from "
    "lookup_dn_user_dn_attribute or else user_attribute",
    "group_search_filter": "groups are searched with group_membership_filter",
    "group_attributes": "groups are found with group_membership_filter and memberof_attribute",
    "attributes": "search_filter only narrows the user lookup; list the attributes to keep "
    "in auth_state_attributes",
}


def ignored_settings(config: Config, sections: Iterable[str]) -> list[str]:
    """One warning sentence for each option of :data:`IGNORED_OPTIONS` that ``config``
    sets in one of ``sections`` (the class names the authenticator reads its configuration
    from), and for ``lookup_dn = False``, which DataHub does not honour either."""
    sentences = []
    for section in sections:
        for name, instead in IGNORED_OPTIONS.items():
            if f"{section}.{name}" in config:
                sentences.append(
                    f"{section}.{name} is set, but DataHub ignores it ({instead}); "
                    "remove it from the configuration."
                )
        if f"{section}.lookup_dn" in config and config[section]["lookup_dn"] is False:
            sentences.append(
                f"{section}.lookup_dn is set to False, but DataHub ignores it (it always "
                "looks the user's DN up with the search account); remove it from the "
                "configuration."
            )
    return sentences


class LDAPDirectoryOptions(LDAPAuthenticator):
    """ldapauthenticator's and DataHub's options for reaching the company directory, and
    the :class:`~.directory.Directory` built from them (see the module's docstring)."""

    lookup_dn = Bool(
        True,
        help="""Look the user's DN up with the search account before binding (see
        ldapauthenticator). DataHub always does: it needs the search account to read
        groups and to refresh users.""",
    ).tag(config=True)

    # --- Groups -------------------------------------------------------------------------

    group_search_base = Unicode(
        "",
        help="""Where the groups that become hub groups live, e.g.
        ``"ou=groups,dc=example,dc=com"``: the groups of a user are searched below it,
        and ``memberOf`` values outside it are ignored.

        A group's hub name comes from its DN below this base, never from its attributes,
        so same-named groups in different OUs stay apart: a group directly below the
        base is called by its RDN value (``cn=analysts,ou=groups,…`` → ``analysts``), one
        in an OU below it by the values from the group upwards joined with "@"
        (``cn=admins,ou=sales,ou=groups,…`` → ``admins@sales``, while
        ``cn=admins,ou=groups,…`` is ``admins``). Groups whose DN cannot give a name of
        their own (a part with "@" in it or with several values, ``cn=a+ou=b``) are left
        out, with a warning in the log. Roles and quotas given to a hub group (the
        DataHub admin role of jupyterhub_config.py) therefore reach exactly the members
        of one LDAP group. Whoever may create entries below this base decides hub groups:
        point it at the OU your directory administrators control.

        Defaults to the parent of the first allowed group, or `user_search_base`.""",
    ).tag(config=True)

    @default("group_search_base")
    def _group_search_base_default(self):
        if self.allowed_groups:
            return self.allowed_groups[0].split(",", 1)[1]
        return self.user_search_base or ""

    group_membership_filter = Unicode(
        "(|(member={userdn})(uniqueMember={userdn})(memberUid={uid}))",
        help="""LDAP filter for the groups that list a user, searched under
        `group_search_base`. `{userdn}` and `{uid}` are escaped before they are put in.

        The default covers groupOfNames, groupOfUniqueNames and posixGroup. Set it to an
        empty string to rely on `memberof_attribute` alone (large Active Directories).
        Active Directory's nested groups: ``"(member:1.2.840.113556.1.4.1941:={userdn})"``.
        """,
    ).tag(config=True)

    memberof_attribute = Unicode(
        "memberOf",
        help="""Attribute of the user's entry listing the DNs of their groups.

        OpenLDAP's memberof overlay and Active Directory maintain ``memberOf``. It is read
        in the same search that finds the user, so it costs nothing; groups found here and
        by `group_membership_filter` are merged. Hub group names come from the DNs (see
        `group_search_base`). Empty to ignore it.
        """,
    ).tag(config=True)

    disabled_filter = Unicode(
        "(pwdAccountLockedTime=000001010000Z)",
        help="""LDAP filter matching the user's entry when their account is disabled.

        Checked with the search account at sign-in and at every refresh: a disabled person
        is signed out and cannot spawn. The default is OpenLDAP ppolicy's permanent lock
        (temporary lockouts after failed passwords are not "disabled"). Servers treat
        unknown attributes as no match, so the default is harmless elsewhere.
        Active Directory: ``"(userAccountControl:1.2.840.113556.1.4.803:=2)"``;
        389 Directory Server: ``"(nsAccountLock=TRUE)"``. Empty to skip the check.
        """,
    ).tag(config=True)

    # --- Servers, TLS, timeouts -----------------------------------------------------------

    servers = List(
        Unicode(),
        help="""LDAP servers to use, as URLs, tried in this order.

        ``ldaps://`` connects with TLS; ``ldap://`` uses StartTLS unless `tls_strategy` is
        "insecure". A server that cannot be reached (refused, timed out, TLS failure) is
        skipped for `server_retry_after` seconds and the next one is used, so replicas
        take over from a failed primary within one login. Defaults to `server_address` and
        `server_port`.

        Example: ``["ldaps://ldap1.example.com", "ldaps://ldap2.example.com:636"]``
        """,
    ).tag(config=True)

    @validate("servers")
    def _validate_servers(self, proposal):
        for url in proposal.value:
            try:
                parse_server_url(url)
            except ValueError as e:
                raise TraitError(f"servers: {e}") from None
        return proposal.value

    tls_ca_file = Unicode(
        "",
        help="""PEM file with the CA certificates that sign the LDAP servers' certificates.

        Certificates are always verified (chain and host name) unless `tls_kwargs` says
        ``{"validate": ssl.CERT_NONE}``; without this file the system's CAs are used.
        Example: ``"/etc/ssl/certs/company-ca.pem"``
        """,
    ).tag(config=True)

    connect_timeout = Float(
        5.0,
        help="""Seconds to wait for a TCP connection to an LDAP server before trying the next.
        Keep it short: a login waits up to this long for each server that is down.""",
    ).tag(config=True)

    response_timeout = Int(
        10,
        help="""Whole seconds to wait for an LDAP server to answer a request (bind, search,
        StartTLS) before giving up on it and trying the next server. (ldap3 sets it as the
        socket's receive timeout, which takes whole seconds.)""",
    ).tag(config=True)

    server_retry_after = Float(
        60.0,
        help="""Seconds a server that could not be reached is tried only after the others.
        When every server failed recently they are all tried anyway.""",
    ).tag(config=True)

    # ----------------------------------------------------------------------------------------

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._health = ServerHealth(self.server_retry_after)
        for sentence in ignored_settings(self.config, self.section_names()):
            self.log.warning("%s", sentence)

    def server_list(self) -> list[LDAPServer]:
        """The configured servers (`servers`, else `server_address`/`server_port`)."""
        strategy = TlsStrategy(self.tls_strategy).name
        return server_list(self.servers, strategy, self.server_address, self.server_port)

    def directory(self) -> Directory:
        """The directory as the options say now (cheap: built for each question; the
        servers' health is shared)."""
        return Directory(
            servers=self.server_list(),
            health=self._health,
            search_user=self.lookup_dn_search_user,
            search_password=self.lookup_dn_search_password,
            user_search_base=self.user_search_base,
            user_attribute=self.user_attribute,
            name_attribute=self.lookup_dn_user_dn_attribute or self.user_attribute,
            lookup_filter=self.lookup_dn_search_filter,
            search_filter=self.search_filter,
            memberof_attribute=self.memberof_attribute,
            extra_attributes=tuple(self.auth_state_attributes),
            disabled_filter=self.disabled_filter,
            group_search_base=self.group_search_base,
            group_membership_filter=self.group_membership_filter,
            tls_ca_file=self.tls_ca_file,
            tls_kwargs=dict(self.tls_kwargs),
            connect_timeout=self.connect_timeout,
            response_timeout=self.response_timeout,
            log=self.log,
        )

    def login_account(self, username: str, password: str) -> Account | None:
        """:meth:`Directory.login_account` (blocking)."""
        return self.directory().login_account(username, password)

    def lookup_account(self, username: str) -> Account | None:
        """:meth:`Directory.lookup_account` (blocking)."""
        return self.directory().lookup_account(username)
