"""DataHub's own JupyterHub scopes: the one place that says what admin power is.

Power in DataHub comes from the scopes a *token* carries, never from the hub's ``admin``
flag (every token of an admin says ``"admin": true``, however narrowly it is scoped).
The scopes are JupyterHub custom scopes, declared with ``c.JupyterHub.custom_scopes =
CUSTOM_SCOPES`` and granted by a role (``load_roles``) to the hub group synced from the
LDAP admin group. JupyterHub puts a scope in a token only if the token's owner holds it,
so nobody outside that role can get one:

* an admin's browser session holds them because the service's OAuth client asks for them
  (``oauth_client_allowed_scopes``);
* an admin's API token holds them if it was created with them (or with no scopes, which
  means all of the owner's);
* a server's ``JUPYTERHUB_API_TOKEN`` holds none, except act-as when the spawner's
  ``server_token_act_as`` is on.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Everything below: the scope the admin role grants.
ADMIN = "custom:datahub:admin"
#: Read and change quota policies; everyone's usage, refusals and changes.
QUOTAS = "custom:datahub:quotas"
#: Read everyone's query history and the admin page of one user (recorded for the user).
AUDIT = "custom:datahub:audit"
#: Run queries as another user (X-DataHub-Act-As, ``%%sql --as USER``).
ACT_AS = "custom:datahub:act-as"

#: The value of ``c.JupyterHub.custom_scopes``.
CUSTOM_SCOPES: dict[str, dict[str, object]] = {
    QUOTAS: {"description": "Read and change DataHub quota policies and everyone's usage."},
    AUDIT: {"description": "Read every DataHub user's query history and account page."},
    ACT_AS: {"description": "Run DataHub queries as another user (audited for both)."},
    ADMIN: {
        "description": "Administer DataHub: quotas, everyone's queries, clusters, "
        "shared notebooks, and running queries as another user.",
        "subscopes": [QUOTAS, AUDIT, ACT_AS],
    },
}

#: Every DataHub scope, for ``oauth_client_allowed_scopes`` of the service: a browser
#: session gets those its user holds.
ALL: tuple[str, ...] = (ADMIN, QUOTAS, AUDIT, ACT_AS)


def holds(scopes: Iterable[str] | None, scope: str) -> bool:
    """Whether a token's (expanded) ``scopes`` grant ``scope`` in full.

    DataHub's scopes take no filters: ``custom:datahub:act-as!user=bob`` does not grant
    acting as anyone.
    """
    return scope in set(scopes or ())


def missing_scope_message(scope: str) -> str:
    """The sentence for an admin whose token lacks ``scope``."""
    return (
        f"This token does not carry the scope {scope}, which this needs; use your browser "
        f"session or a hub token created with that scope (or with all your scopes)."
    )
