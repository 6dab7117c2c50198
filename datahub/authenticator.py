"""The hub's authenticator under its former module path, for existing configuration files.

DataHub's LDAP sign-in lives in :mod:`datahub.ldap` (`datahub.ldap.authenticator`); this
module only re-exports what configuration files used to import from here
(``authenticator_class = "datahub.authenticator.DataHubLDAPAuthenticator"``, and
``group_key`` for the admin role's hub group). New code imports from :mod:`datahub.ldap`.
"""

from .ldap.authenticator import DataHubLDAPAuthenticator
from .ldap.names import group_key

__all__ = ["DataHubLDAPAuthenticator", "group_key"]
