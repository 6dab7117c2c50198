"""Sign-in to DataHub with the company LDAP directory.

`DataHubLDAPAuthenticator` builds on ldapauthenticator's pieces (DN lookup with a search
account, bind as the user, its TLS options) and adds what a company hub needs: every LDAP
group of the user becomes a hub group, an admin group makes hub admins, and each refusal
tells the user *why* on the login page (without telling an attacker which names exist).
"""

from __future__ import annotations

import asyncio
import re

import ldap3
from jupyterhub.handlers.login import LoginHandler
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldapauthenticator import LDAPAuthenticator
from traitlets import Bool, Int, List, Unicode, default

# The messages a person sees on the login page. One sentence each, saying what to do.
INVALID_CREDENTIALS = "Invalid username or password."
EMPTY_PASSWORD = "Enter your password; empty passwords are not accepted."
INVALID_USERNAME = (
    "That is not a valid username: use your company account name "
    "(letters, digits, '.', '-' and '_')."
)
NOT_ALLOWED = (
    "Your account is not in a group allowed to use DataHub; "
    "ask your DataHub administrator for access."
)
DIRECTORY_DOWN = (
    "The company directory (LDAP) cannot be reached right now, so nobody can sign in; "
    "try again in a few minutes."
)


class DataHubLoginHandler(LoginHandler):
    """The hub's login page, showing the authenticator's reason for a refusal."""

    datahub_login_error: str | None = None

    def _render(self, login_error=None, username=None, **kwargs):
        if login_error and self.datahub_login_error:
            login_error = self.datahub_login_error
        return super()._render(login_error=login_error, username=username, **kwargs)


class DataHubLDAPAuthenticator(LDAPAuthenticator):
    """LDAP sign-in with group sync and an admin group.

    Flow: look the user up with the search account (`lookup_dn_search_user`), bind as the
    user with their password, then find all groups that list them (`group_search_base`,
    `group_membership_filter`). Members of `allowed_groups` may sign in; members of
    `admin_groups` are hub admins. All LDAP groups become JupyterHub groups.
    """

    manage_groups = Bool(
        True,
        help="""Keep the user's JupyterHub groups equal to their LDAP groups.

        DataHub's quotas and sharing work per hub group, so the default is on.
        """,
    ).tag(config=True)

    lookup_dn = Bool(
        True,
        help="""Look the user's DN up with the search account before binding (see
        ldapauthenticator). DataHub needs the search account anyway to read groups.""",
    ).tag(config=True)

    admin_groups = List(
        Unicode(),
        help="""DNs of LDAP groups whose members are JupyterHub admins.

        Admin status follows the directory at every login: someone removed from the group
        is no longer an admin after their next sign-in.

        Example: ``["cn=datahub-admins,ou=groups,dc=example,dc=com"]``
        """,
    ).tag(config=True)

    group_search_base = Unicode(
        "",
        help="""Where to look for the groups a user belongs to, e.g.
        ``"ou=groups,dc=example,dc=com"``. Defaults to the parent of the first allowed
        group, or `user_search_base`.""",
    ).tag(config=True)

    @default("group_search_base")
    def _group_search_base_default(self):
        if self.allowed_groups:
            return self.allowed_groups[0].split(",", 1)[1]
        return self.user_search_base

    group_membership_filter = Unicode(
        "(|(member={userdn})(uniqueMember={userdn})(memberUid={uid}))",
        help="""LDAP filter for the groups that contain a user. `{userdn}` and `{uid}` are
        escaped before they are put in. Covers groupOfNames, groupOfUniqueNames and
        posixGroup.""",
    ).tag(config=True)

    group_name_attribute = Unicode(
        "cn",
        help="The attribute of a group entry used as the JupyterHub group name.",
    ).tag(config=True)

    max_username_length = Int(
        64,
        help="Longer usernames are refused before the directory is asked.",
    ).tag(config=True)

    max_password_length = Int(
        1024,
        help="Longer passwords are refused before the directory is asked.",
    ).tag(config=True)

    def get_handlers(self, app):
        return [(r"/login", DataHubLoginHandler)]

    def normalize_username(self, username):
        """One account per person: case and surrounding spaces never make a new user."""
        return super().normalize_username(username.strip())

    async def authenticate(self, handler, data):
        username = (data.get("username") or "").strip()
        password = data.get("password") or ""

        def refuse(message: str, log_reason: str):
            # Log the reason with a bounded, repr'd name; never the password.
            self.log.warning("Login refused for %r: %s", username[:64], log_reason)
            if handler is not None:
                handler.datahub_login_error = message
            return None

        if not password.strip():
            return refuse(EMPTY_PASSWORD, "empty password")
        if len(username) > self.max_username_length or len(password) > self.max_password_length:
            return refuse(INVALID_CREDENTIALS, "username or password too long")
        username = self.normalize_username(username)
        if not re.fullmatch(self.valid_username_regex, username):
            return refuse(INVALID_USERNAME, "illegal characters in username")

        try:
            found = await asyncio.to_thread(self._bind_and_find_groups, username, password)
        except LDAPException as e:
            self.log.error("LDAP directory unreachable during login: %s", type(e).__name__)
            return refuse(DIRECTORY_DOWN, "directory unreachable")
        if found is None:
            return refuse(INVALID_CREDENTIALS, "unknown user or wrong password")
        userdn, group_dns, group_names = found

        lowered = {dn.lower() for dn in group_dns}
        if self.allowed_groups and not any(g.lower() in lowered for g in self.allowed_groups):
            return refuse(NOT_ALLOWED, "not in an allowed group")
        is_admin = any(g.lower() in lowered for g in self.admin_groups)
        return {
            "name": username,
            "admin": is_admin,
            "groups": sorted(group_names),
            "auth_state": {"ldap_dn": userdn, "ldap_groups": group_dns},
        }

    def _bind_and_find_groups(self, username: str, password: str):
        """Resolve the DN, bind as the user, then read their groups with the search account.

        Returns ``(userdn, group_dns, group_names)``, or None for unknown users and wrong
        passwords. Raises LDAPException when the directory cannot be reached.
        """
        resolved, userdn = self.resolve_username(username)
        if not userdn:
            return None
        user_conn = self.get_connection(userdn, password)
        if user_conn is None:
            return None
        user_conn.unbind()
        search_conn = self.get_connection(
            self.lookup_dn_search_user, self.lookup_dn_search_password
        )
        if search_conn is None:
            raise LDAPException("the search account could not bind")
        try:
            search_conn.search(
                search_base=self.group_search_base,
                search_scope=ldap3.SUBTREE,
                search_filter=self.group_membership_filter.format(
                    userdn=escape_filter_chars(userdn), uid=escape_filter_chars(resolved)
                ),
                attributes=[self.group_name_attribute],
            )
            group_dns, group_names = [], []
            for entry in search_conn.entries:
                names = entry.entry_attributes_as_dict.get(self.group_name_attribute) or []
                if names:
                    group_dns.append(entry.entry_dn)
                    group_names.append(str(names[0]))
        finally:
            search_conn.unbind()
        return userdn, group_dns, group_names
