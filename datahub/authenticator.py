"""Sign-in to DataHub with the company LDAP directory.

`DataHubLDAPAuthenticator` builds on ldapauthenticator (its traits, its one flow: look the
user up with a search account, bind as the user, read their groups) and adds what a company
hub needs:

* every LDAP group of the user becomes a hub group, found by ``member``/``uniqueMember``/
  ``memberUid`` and by the user's ``memberOf``; an admin group makes hub admins;
* the directory is asked again when a session's information is older than
  ``auth_refresh_age`` and before every spawn, so group changes, removed admins, disabled
  and deleted accounts take effect without waiting for the next sign-in;
* TLS with certificate verification on by default (StartTLS or LDAPS), several servers
  with failover, connect and response timeouts; when the directory is down the login page
  says so, and people already signed in carry on;
* one user name per person (:mod:`datahub.names`), and every refusal explained on the login
  page in one sentence, without ever logging a password.

The pure decisions (server URLs and their order, DN comparison, group names, who may sign
in) are plain functions below; the class only talks to LDAP and to JupyterHub.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from string import hexdigits
from typing import Any
from urllib.parse import urlsplit

import ldap3
from jupyterhub.handlers.login import LoginHandler
from ldap3.core.exceptions import (
    LDAPBindError,
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPException,
    LDAPInvalidDnError,
    LDAPResponseTimeoutError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from ldapauthenticator import LDAPAuthenticator
from ldapauthenticator.ldapauthenticator import TlsStrategy
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate

from . import names
from .names import INVALID_USERNAME, NON_ASCII_USERNAME  # noqa: F401 - part of this API

# The messages a person sees on the login page. One sentence each, saying what to do.
INVALID_CREDENTIALS = "Invalid username or password."
EMPTY_PASSWORD = "Enter your password; empty passwords are not accepted."
PASSWORD_TOO_LONG = "That password is too long for a company password; type your own password."
PASSWORD_NULL_BYTE = "Passwords cannot contain a null character; type your password again."
NOT_ALLOWED = (
    "Your account is not in a group allowed to use DataHub; "
    "ask your DataHub administrator for access."
)
ACCOUNT_DISABLED = (
    "Your company account is disabled; ask IT or your DataHub administrator to enable it."
)
DIRECTORY_DOWN = (
    "The company directory (LDAP) cannot be reached right now, so nobody can sign in; "
    "try again in a few minutes."
)
DIRECTORY_ERROR = (
    "Sign-in failed because of a problem with the company directory (LDAP); "
    "tell your DataHub administrator if it happens again."
)

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


# --- Pure logic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LDAPServer:
    """One LDAP server: where it is and how the connection is protected.

    ``security`` is ``"ldaps"`` (TLS from the first byte), ``"starttls"`` (plain connect,
    then StartTLS before any bind) or ``"plain"`` (no TLS at all).
    """

    host: str
    port: int
    security: str

    @property
    def url(self) -> str:
        scheme = "ldaps" if self.security == "ldaps" else "ldap"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_server_url(url: str, tls_strategy: str = "before_bind") -> LDAPServer:
    """An :class:`LDAPServer` from ``ldap://host[:port]`` or ``ldaps://host[:port]``.

    ``ldaps://`` always means LDAPS (default port 636). For ``ldap://`` (default port 389)
    ``tls_strategy`` decides: ``before_bind`` → StartTLS, ``insecure`` → plain,
    ``on_connect`` → LDAPS on that port (ldapauthenticator's meaning). Raises ValueError
    for anything else.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ldap", "ldaps"):
        raise ValueError(f"{url!r} is not an LDAP URL; write ldap://host:port or ldaps://host.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r} has more than a host and port; write ldap://host:port.")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host; write ldap://host:port.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port.") from None
    if parts.scheme == "ldaps" or tls_strategy == "on_connect":
        security = "ldaps"
    elif tls_strategy == "insecure":
        security = "plain"
    else:
        security = "starttls"
    return LDAPServer(parts.hostname, port or (636 if parts.scheme == "ldaps" else 389), security)


class ServerHealth:
    """Remembers servers that failed recently so that the next logins try others first.

    Thread-safe: logins run in threads. Time is passed in, so the logic is testable.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def order(self, servers: Sequence[LDAPServer], now: float) -> list[LDAPServer]:
        """``servers`` in the order to try: healthy ones as configured, then failed ones,
        the one that failed longest ago first (all are tried when none is healthy)."""
        with self._lock:
            down = dict(self._down_until)
        healthy = [s for s in servers if down.get(s.url, 0) <= now]
        failed = sorted((s for s in servers if down.get(s.url, 0) > now), key=lambda s: down[s.url])
        return healthy + failed

    def failed(self, server: LDAPServer, now: float) -> None:
        with self._lock:
            self._down_until[server.url] = now + self.retry_after

    def succeeded(self, server: LDAPServer) -> None:
        with self._lock:
            self._down_until.pop(server.url, None)


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


#: Joins the parts of a group's DN below `group_search_base` into its hub group name.
GROUP_PATH_SEPARATOR = "@"


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


def password_problem(password: str, max_length: int) -> str | None:
    """Why ``password`` is refused before the directory is asked, or None.

    A blank password is never sent: LDAP treats a DN with an empty password as an
    *unauthenticated* bind, which some servers accept as success.
    """
    if not password or not password.strip():
        return EMPTY_PASSWORD
    if len(password) > max_length:
        return PASSWORD_TOO_LONG
    if "\x00" in password:
        # C libraries behind some directories (PAM, SASL pass-through) end strings at NUL,
        # so "secret\0anything" could be checked as "secret".
        return PASSWORD_NULL_BYTE
    return None


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


class DataHubLoginHandler(LoginHandler):
    """The hub's login page, showing the authenticator's reason for a refusal."""

    datahub_login_error: str | None = None

    def _render(self, login_error=None, username=None, **kwargs):
        if login_error and self.datahub_login_error:
            login_error = self.datahub_login_error
        return super()._render(login_error=login_error, username=username, **kwargs)


class DataHubLDAPAuthenticator(LDAPAuthenticator):
    """LDAP sign-in with group sync, an admin group, refresh, TLS and failover.

    Flow (ldapauthenticator's, in one place): on one server, bind the search account
    (`lookup_dn_search_user`) and look the user up (`user_attribute`, reading
    `memberof_attribute` on the way); bind as the user with their password on a second
    connection; with the search account, check `disabled_filter` and search all groups that
    list the user (`group_membership_filter`). If a server cannot be reached the whole flow
    moves to the next one in `servers`. Members of `allowed_groups` may sign in, members of
    `admin_groups` are hub admins, and all of the user's LDAP groups become hub groups.

    `refresh_user` runs the same lookup with the search account only (no password), every
    `auth_refresh_age` seconds and before every spawn.

    The user's DN is always looked up; `bind_dn_template` is not used, because the search
    account is needed anyway to read groups and to refresh.
    """

    # --- JupyterHub and ldapauthenticator options with DataHub's defaults ---------------

    manage_groups = Bool(
        True,
        help="""Keep the user's JupyterHub groups equal to their LDAP groups.

        DataHub's quotas and sharing work per hub group, so the default is on. Every LDAP
        group the user is in becomes a hub group (not only `allowed_groups`), at sign-in
        and at every refresh; groups they left are removed.
        """,
    ).tag(config=True)

    lookup_dn = Bool(
        True,
        help="""Look the user's DN up with the search account before binding (see
        ldapauthenticator). DataHub always does: it needs the search account to read
        groups and to refresh users.""",
    ).tag(config=True)

    refresh_pre_spawn = Bool(
        True,
        help="""Ask the directory about the user again before every spawn.

        A person removed from the allowed groups, disabled or deleted in the directory
        cannot start a server even with a valid cookie, and their groups (which decide
        quotas) are current when the server starts. If the directory cannot be reached
        the spawn goes ahead with what the hub already knows.
        """,
    ).tag(config=True)

    auth_refresh_strict = Bool(
        True,
        help="""Refuse API requests of users whose refresh says they are gone.

        `refresh_user` only answers "sign in again" when the directory *says* the account
        was deleted, disabled or left the allowed groups (never because the directory is
        down), so refusing their token-authenticated requests too is safe and closes the
        door on their servers' tokens. See JupyterHub's `Authenticator.auth_refresh_strict`.
        """,
    ).tag(config=True)

    valid_username_regex = Unicode(
        names.USERNAME_PATTERN,
        help="""Regular expression a normalised user name must match entirely.

        The default comes from `datahub.names` (lowercase ASCII account names), shared by
        the hub and the gateway; change both if you change it. Non-ASCII names are refused
        whatever this says, so look-alike names never reach the directory.
        """,
    ).tag(config=True)

    # --- Groups and admins ------------------------------------------------------------

    admin_groups = List(
        Unicode(),
        help="""DNs of LDAP groups whose members are JupyterHub admins.

        Admin status follows the directory at every sign-in and refresh: someone removed
        from the group stops being an admin within `auth_refresh_age` seconds (and before
        their next spawn). People in `admin_users` stay admins. With no admin groups, the
        directory does not decide admin status at all.

        Example: ``["cn=datahub-admins,ou=groups,dc=example,dc=com"]``
        """,
    ).tag(config=True)

    @validate("admin_groups", "allowed_groups")
    def _validate_group_dns(self, proposal):
        for dn in proposal.value or ():
            try:
                dn_key(dn)
            except ValueError as e:
                raise TraitError(f"{proposal.trait.name}: {e}") from None
        return proposal.value

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

    # --- Input limits ----------------------------------------------------------------------

    max_username_length = Int(
        names.MAX_USERNAME_LENGTH,
        help="""Longer user names are refused before the directory is asked. Company
        account names are short; the limit keeps hostile input (and log lines) small.""",
    ).tag(config=True)

    max_password_length = Int(
        1024,
        help="""Longer passwords are refused before the directory is asked, so nobody can
        make the hub send megabytes to LDAP.""",
    ).tag(config=True)

    # ----------------------------------------------------------------------------------------

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._health = ServerHealth(self.server_retry_after)

    def get_handlers(self, app):
        return [(r"/login", DataHubLoginHandler)]

    def normalize_username(self, username):
        """One account per person: see :mod:`datahub.names` (then `username_map`)."""
        username = names.normalize_username(username)
        return self.username_map.get(username, username)

    def validate_username(self, username):
        """Hub user names follow :mod:`datahub.names`, also when an admin creates them."""
        problem = names.username_problem(
            username, self.valid_username_regex, self.max_username_length
        )
        return problem is None and super().validate_username(username)

    # --- Sign-in --------------------------------------------------------------------------

    async def authenticate(self, handler, data):
        typed = data.get("username") or ""
        password = data.get("password") or ""

        def refuse(message: str, log_reason: str):
            # A bounded repr of the name (no log injection); never the password.
            self.log.warning("Login refused for %r: %s", typed[:64], log_reason)
            if handler is not None:
                handler.datahub_login_error = message
            return None

        username = names.normalize_username(typed)
        problem = names.username_problem(
            username, self.valid_username_regex, self.max_username_length
        )
        if problem:
            return refuse(problem, "invalid username")
        problem = password_problem(password, self.max_password_length)
        if problem:
            return refuse(problem, "unacceptable password")

        try:
            account = await asyncio.to_thread(self.login_account, username, password)
        except DirectoryUnavailable as e:
            self.log.error("No LDAP server could be reached for a login: %s", e)
            return refuse(DIRECTORY_DOWN, "directory unreachable")
        except DirectoryError as e:
            self.log.error("LDAP directory error during a login: %s", e)
            return refuse(DIRECTORY_ERROR, "directory error")
        if account is None:
            return refuse(INVALID_CREDENTIALS, "unknown user or wrong password")
        if account.disabled:
            return refuse(ACCOUNT_DISABLED, "account disabled in the directory")
        model = self.auth_model(account)
        if model is None:
            return refuse(INVALID_USERNAME, f"directory name {account.name!r} is not valid")
        if not self.is_allowed(model["name"], account.group_dns):
            return refuse(NOT_ALLOWED, "not in an allowed group")
        return model

    async def check_allowed(self, username, auth_model):
        """Allowed by `allow_all`, `allowed_users` or membership of `allowed_groups`
        (DNs compared case-insensitively, unlike ldapauthenticator's exact strings)."""
        group_dns = ((auth_model or {}).get("auth_state") or {}).get("ldap_groups") or []
        return self.is_allowed(username, group_dns)

    def is_allowed(self, username: str, group_dns: Iterable[str]) -> bool:
        """May ``username``, member of ``group_dns``, use the hub?"""
        if self.allow_all or username in self.allowed_users:
            return True
        return bool(self.allowed_groups) and is_member(group_dns, self.allowed_groups)

    def auth_model(self, account: Account) -> dict[str, Any] | None:
        """The JupyterHub auth model for ``account``, or None if its directory name is not
        a valid hub name. The name is the directory's spelling, normalised: whatever
        matched in the directory, the person gets the one account that is theirs."""
        name = self.normalize_username(account.name)
        if not self.validate_username(name):
            return None
        admin = None
        if self.admin_groups:
            admin = name in self.admin_users or is_member(account.group_dns, self.admin_groups)
        model = {
            "name": name,
            "admin": admin,
            "groups": account.group_names,
            "auth_state": {"ldap_dn": account.dn, "ldap_groups": account.group_dns},
        }
        if self.auth_state_attributes:
            model["auth_state"]["user_attributes"] = account.attributes
        return model

    # --- Refresh --------------------------------------------------------------------------

    async def refresh_user(self, user, handler=None):
        """Ask the directory about ``user`` again (search account only).

        Returns the updated auth model (groups, admin), False when the account was
        deleted, disabled or left the allowed groups (JupyterHub then requires a new
        sign-in, which will say why), and True when the directory cannot be asked: people
        already signed in carry on while the directory is down.
        """
        if handler is not None and not hasattr(handler, "_token_authenticated"):
            # JupyterHub 6.1's BaseHandler.refresh_auth reads this attribute when we return
            # False, but only token-authenticated requests set it: a cookie request would
            # fail with AttributeError (a 500 on /hub/spawn) instead of going to the login.
            handler._token_authenticated = False
        try:
            account = await asyncio.to_thread(self.lookup_account, user.name)
        except (DirectoryUnavailable, DirectoryError) as e:
            self.log.warning(
                "Could not refresh %s from LDAP, keeping what the hub knows: %s", user.name, e
            )
            return True
        reason = self.account_problem(user.name, account)
        if reason:
            self.log.warning("%s %s; signing them out", user.name, reason)
            return False
        return self.auth_model(account)

    def account_problem(self, username: str, account: Account | None) -> str | None:
        """Why ``username`` (whose directory entry is ``account``, None if there is
        none) may not use DataHub now, as the end of a sentence starting with their name;
        None if they may. The one rule for refresh and for admins acting as someone."""
        if username in self.blocked_users:
            return "is blocked on this hub (blocked_users)"
        if account is None:
            return "is no longer in the LDAP directory"
        if account.disabled:
            return "is disabled in the LDAP directory"
        model = self.auth_model(account)
        if model is None or model["name"] != username:
            return "no longer matches a valid directory name"
        if not self.is_allowed(username, account.group_dns):
            return "is not in an allowed LDAP group"
        return None

    async def account_refusal(self, username: str) -> str | None:
        """Ask the directory whether ``username`` may use DataHub now: None if so, else
        why not (see `account_problem`). For the DataHub service, which checks the user an
        admin acts as. Raises DirectoryUnavailable or DirectoryError when the directory
        cannot say."""
        account = await asyncio.to_thread(self.lookup_account, username)
        return self.account_problem(username, account)

    # --- LDAP -------------------------------------------------------------------------------

    def server_list(self) -> list[LDAPServer]:
        """The configured servers (`servers`, else `server_address`/`server_port`)."""
        strategy = TlsStrategy(self.tls_strategy).name
        if self.servers:
            return [parse_server_url(url, strategy) for url in self.servers]
        if not self.server_address:
            return []
        security = {"on_connect": "ldaps", "insecure": "plain"}.get(strategy, "starttls")
        return [LDAPServer(self.server_address, self.server_port, security)]

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

    def connect(self, server: LDAPServer, user: str, password: str) -> ldap3.Connection:
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

    def _search(
        self,
        conn: ldap3.Connection,
        base: str,
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

    def _search_connection(self, server: LDAPServer) -> ldap3.Connection:
        try:
            return self.connect(server, self.lookup_dn_search_user, self.lookup_dn_search_password)
        except LDAPBindError:
            raise DirectoryError(
                f"{server.url} refused the search account {self.lookup_dn_search_user!r}; "
                "check lookup_dn_search_user and lookup_dn_search_password"
            ) from None

    def _find_user(self, conn: ldap3.Connection, username: str) -> Account | None:
        """Look ``username`` up; the returned Account has no groups yet."""
        name_attribute = self.lookup_dn_user_dn_attribute or self.user_attribute
        search_filter = self.lookup_dn_search_filter.format(
            login_attr=self.user_attribute, login=escape_filter_chars(username)
        )
        if self.search_filter:
            restriction = self.search_filter.format(
                userattr=self.user_attribute, username=escape_filter_chars(username)
            )
            search_filter = f"(&{search_filter}{restriction})"
        attributes = [name_attribute, *self.auth_state_attributes]
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
        values = _values(attrs, name_attribute)
        if len(values) != 1:
            raise DirectoryError(f"{dn} has {len(values)} values of {name_attribute!r}, not one")
        member_of = _values(attrs, self.memberof_attribute) if self.memberof_attribute else []
        extra = {a: _values(attrs, a) for a in self.auth_state_attributes}
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
            group_filter = self.group_membership_filter.format(
                userdn=escape_filter_chars(account.dn), uid=escape_filter_chars(account.name)
            )
            found = self._search(conn, self.group_search_base, group_filter, [ldap3.NO_ATTRIBUTES])
            searched = [dn for dn, _ in found]
        groups = merge_groups(searched, account.group_dns, self.group_search_base)
        for dn in {*searched, *account.group_dns}:
            if dn_within(dn, self.group_search_base) and not group_key(dn, self.group_search_base):
                self.log.warning(
                    "LDAP group %r of %s is not a hub group: its DN cannot give it a name "
                    "of its own (see group_search_base)",
                    dn,
                    account.name,
                )
        return Account(account.dn, account.name, tuple(groups), disabled, account.attributes)

    def _on_some_server(self, operation):
        """Run ``operation(server)`` on the first server that can be reached."""
        reasons = []
        for server in self._health.order(self.server_list(), time.monotonic()):
            try:
                result = operation(server)
            except UNREACHABLE_ERRORS as e:
                self._health.failed(server, time.monotonic())
                reasons.append(f"{server.url}: {type(e).__name__}: {e}")
                self.log.warning("LDAP server %s failed, trying the next: %s", server.url, e)
                continue
            except LDAPException as e:
                raise DirectoryError(f"{server.url}: {type(e).__name__}: {e}") from e
            self._health.succeeded(server)
            return result
        raise DirectoryUnavailable(reasons)

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


def _values(attributes: dict[str, Any], name: str) -> list:
    """The values of attribute ``name`` (case-insensitive), always as a list."""
    for key, value in attributes.items():
        if key.lower() == name.lower():
            if value is None:
                return []
            return list(value) if isinstance(value, list | tuple) else [value]
    return []
