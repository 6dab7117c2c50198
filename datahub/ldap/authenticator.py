"""Sign-in to DataHub with the company LDAP directory: the hub's authenticator.

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

This module decides who may sign in and what the hub knows of them; the directory's
options are :mod:`.options`, talking to it :mod:`.directory`, and DN and group-name logic
:mod:`.names`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from jupyterhub.handlers.login import LoginHandler
from traitlets import Bool, Int, List, TraitError, Unicode, validate

from .. import names
from ..names import INVALID_USERNAME, NON_ASCII_USERNAME  # noqa: F401 - part of this API
from .directory import Account, DirectoryError, DirectoryUnavailable
from .names import dn_key, is_member
from .options import LDAPDirectoryOptions

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


class DataHubLoginHandler(LoginHandler):
    """The hub's login page, showing the authenticator's reason for a refusal."""

    datahub_login_error: str | None = None

    def _render(self, login_error=None, username=None, **kwargs):
        if login_error and self.datahub_login_error:
            login_error = self.datahub_login_error
        return super()._render(login_error=login_error, username=username, **kwargs)


class DataHubLDAPAuthenticator(LDAPDirectoryOptions):
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

    The user's DN is always looked up, because the search account is needed anyway to read
    groups and to refresh. The inherited ldapauthenticator options DataHub does not use
    (`bind_dn_template`, `use_lookup_dn_username`, `group_search_filter`,
    `group_attributes`, `attributes`, and `lookup_dn` set to False) are named in a warning
    at startup when the configuration sets them.
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

    # --- Admins -------------------------------------------------------------------------

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
