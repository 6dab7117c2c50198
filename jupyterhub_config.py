"""DataHub's JupyterHub configuration, read by the hub and by the DataHub service.

Under the local stack (`make demo`, `make test`) the addresses and service-account
secrets come from the stack's settings file (`DATAHUB_STACK_FILE`, written by
`datahub up`). In production, replace the `stack[...]` values with your own: your LDAP
servers, your Trino clusters, and secrets from your secret store.
"""

import sys
from pathlib import Path

from jupyterhub.scopes import get_scopes_for

from datahub import scopes
from datahub.ldap.names import group_key
from datahub.stack.local import STACK_FILE_ENV, load_stack_settings
from datahub.web.nav import hub_template_nav

c = get_config()  # noqa: F821 - provided by traitlets when this file is loaded

stack = load_stack_settings()
if not stack:
    raise SystemExit(
        f"Set {STACK_FILE_ENV} (as `datahub up` does) or edit jupyterhub_config.py "
        "with your own LDAP, Trino and gateway settings."
    )
state_dir = Path(stack["state_dir"])
here = Path(__file__).resolve().parent

# --- The hub -----------------------------------------------------------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = stack["hub_port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = stack["hub_api_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{stack['proxy_api_port']}"
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "hub" / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state_dir / "hub" / "jupyterhub.pid")
c.ConfigurableHTTPProxy.command = [stack["proxy_command"]]
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "hub" / "proxy.pid")
c.JupyterHub.template_paths = [str(here / "templates")]
# Hub pages draw the same nav bar as the DataHub service's pages (datahub.web.nav), with
# links to the service at /services/<its name>/; admin items for holders of the admin scope.
c.JupyterHub.template_vars = {
    "datahub_nav": hub_template_nav(
        hub_prefix="/hub/",
        service_prefix="/services/datahub/",
        is_admin=lambda user: scopes.holds(get_scopes_for(user), scopes.ADMIN),
    )
}
c.JupyterHub.cleanup_servers = True

# --- Sign-in: the company LDAP directory ------------------------------------------------
ldap = stack["ldap"]
c.JupyterHub.authenticator_class = "datahub-ldap"
c.DataHubLDAPAuthenticator.server_address = ldap["host"]
c.DataHubLDAPAuthenticator.server_port = ldap["port"]
# Certificates are verified by default. The local stack's slapd speaks plain LDAP on
# loopback unless it has a CA ("ca_file"). Against a real directory list your servers, in
# failover order, e.g. servers = ["ldaps://ldap1.example.com", "ldaps://ldap2.example.com"],
# with tls_ca_file = your company CA.
if ldap.get("ca_file"):
    c.DataHubLDAPAuthenticator.tls_strategy = "before_bind"  # StartTLS
    c.DataHubLDAPAuthenticator.tls_ca_file = ldap["ca_file"]
else:
    c.DataHubLDAPAuthenticator.tls_strategy = "insecure"
c.DataHubLDAPAuthenticator.lookup_dn = True
c.DataHubLDAPAuthenticator.lookup_dn_search_user = ldap["search_user_dn"]
c.DataHubLDAPAuthenticator.lookup_dn_search_password = ldap["search_password"]
c.DataHubLDAPAuthenticator.user_search_base = ldap["people_dn"]
c.DataHubLDAPAuthenticator.user_attribute = "uid"
c.DataHubLDAPAuthenticator.lookup_dn_user_dn_attribute = "uid"
c.DataHubLDAPAuthenticator.group_search_base = ldap["groups_dn"]
c.DataHubLDAPAuthenticator.allowed_groups = ldap["allowed_groups"]
c.DataHubLDAPAuthenticator.admin_groups = ldap["admin_groups"]
# Group changes, removed admins, disabled and deleted accounts reach signed-in people within
# this many seconds (and before every spawn: refresh_pre_spawn is on by default).
c.DataHubLDAPAuthenticator.auth_refresh_age = 300

# --- Users' servers ------------------------------------------------------------------
c.JupyterHub.spawner_class = "datahub-local"
c.DataHubLocalSpawner.gateway_url = stack["gateway_url"]
# Admins may run `%%sql --as USER` from their own notebooks: their servers' tokens get the
# act-as scope (and no other DataHub admin scope). Off by default; see its help.
c.DataHubLocalSpawner.server_token_act_as = True
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90

# --- The DataHub service: gateway, pages, API -----------------------------------------
c.JupyterHub.services = [
    {
        "name": "datahub",
        "url": stack["gateway_url"],
        "command": [sys.executable, "-m", "datahub.service", "-f", str(Path(__file__).resolve())],
        "environment": {STACK_FILE_ENV: str(state_dir / "stack.json")},
        "oauth_no_confirm": True,
        # What the service may do for a signed-in user with the OAuth token behind its
        # page cookie: only on that user's own server (list notebooks to publish, start
        # it and write "Open a copy" into it). The service itself gets no such power.
        "oauth_client_allowed_scopes": [
            "read:servers!user",
            "start:servers!user",
            "access:servers!user",
            # DataHub's admin scopes: the hub puts in a browser session's token only
            # those its user holds (the admin role below), so admin pages work in an
            # admin's browser and nobody else's session gets them.
            *scopes.ALL,
        ],
        "display": False,
    },
    {
        # The local stack's operator token (tests, `datahub` CLI); not in production.
        "name": "datahub-ops",
        "api_token": stack["ops_token"],
    },
]
# DataHub's admin power is these scopes (datahub.scopes), held by the tokens that carry
# them, never the hub's admin flag.
c.JupyterHub.custom_scopes = scopes.CUSTOM_SCOPES
c.JupyterHub.load_roles = [
    # Every user may use the gateway; their servers' tokens get this scope (see the
    # spawner's server_token_scopes) and nothing beyond their own server.
    {"name": "user", "scopes": ["self", "access:services!service=datahub"]},
    {
        # DataHub administrators: the hub group that *is* the LDAP admin group. Its name
        # comes from the group's DN (see DataHubLDAPAuthenticator.group_search_base), so
        # a same-named group in another OU is another hub group and gets nothing.
        "name": "datahub-admin",
        "scopes": [scopes.ADMIN],
        "groups": [group_key(dn, ldap["groups_dn"]) for dn in ldap["admin_groups"]],
    },
    {
        # Sharing notebooks checks that the users and groups named exist on the hub.
        "name": "datahub-sharing",
        "scopes": ["read:users:name", "read:groups:name"],
        "services": ["datahub"],
    },
    {
        # Admins acting as a user, and the admin page of one user, read that user's hub
        # groups (their routing and quota) with the service's own token.
        "name": "datahub-users",
        "scopes": ["read:users:name", "read:users:groups"],
        "services": ["datahub"],
    },
    {
        "name": "datahub-ops",
        "scopes": [
            "admin:users",
            "admin:servers",
            "tokens",
            "read:hub",
            "admin:groups",
            "access:servers",
            "access:services",
        ],
        "services": ["datahub-ops"],
    },
]

c.DataHubService.clusters = stack["clusters"]
# --- Routing across the Trino clusters ---------------------------------------------------
# Queries go to the routing group of the first matching rule, else the one a cell asks for
# (%%sql --cluster NAME), else the default; within a routing group, to the healthy cluster
# with the fewest queued, then running, queries.
c.DataHubService.default_routing_group = "default"
if any(cluster.get("routing_group") == "etl" for cluster in stack["clusters"]):
    # With an "etl" cluster (LocalStack(trino_routing_groups=("default", "etl"))):
    # scheduled jobs and batch-tagged queries go there. Only DataHub admins may use it:
    # routing_group_access is the configured default of the quota policies'
    # routing_groups limit, checked for every query however it was routed (rules
    # included); admins can open it to others with a policy on the quotas page.
    c.DataHubService.routing_rules = [
        {"name": "scheduled jobs", "source": "airflow|dbt.*|cron", "routing_group": "etl"},
        {"name": "batch tag", "client_tags": ["batch"], "routing_group": "etl"},
    ]
    c.DataHubService.routing_group_access = {"etl": {"groups": ["datahub-admins"]}}
if any(cluster.get("engine") == "presto" for cluster in stack["clusters"]):
    # With a PrestoDB cluster (`datahub up --presto`): %%sql --cluster presto reaches it, and
    # clients that cannot send the routing hint (the Trino CLI, JDBC tools) the client tag
    # "presto" (trino --client-tags presto).
    presto_rule = {"name": "presto client tag", "client_tags": ["presto"], "engine": "presto"}
    earlier = c.DataHubService.routing_rules if "routing_rules" in c.DataHubService else []
    c.DataHubService.routing_rules = [*earlier, presto_rule]
# Admins may run queries as a user (%%sql --as USER) to help them; every such query is
# audited with both names and the user sees it in their history. Off unless turned on.
c.DataHubService.allow_admin_act_as = True
# One JSON line per query event, for a log shipper (Fluent Bit, Vector) to carry to Kafka.
c.DataHubService.event_log_file = str(state_dir / "logs" / "query-events.jsonl")
# Query events on Kafka (`datahub up --kafka` starts a local broker): each query's events
# go through the store's outbox to the topic c.KafkaEvents.topic, keyed by query id.
if "kafka" in stack:
    c.KafkaEvents.bootstrap_servers = stack["kafka"]["bootstrap_servers"]
c.DataHubService.secret = stack["gateway_hmac"]
c.DataHubService.store_url = stack["store_url"]
# The service writes "Open a copy" into users' servers through the hub's proxy.
c.SharedNotebooks.hub_url = f"http://127.0.0.1:{stack['hub_port']}"
# HTTPS for external clients (Trino CLI, JDBC, the trino client on a laptop): username +
# hub token as password. Kernels use the plain listener on the internal network.
c.DataHubService.https_port = stack["gateway_https_port"]
c.DataHubService.certfile = stack["gateway_certfile"]
c.DataHubService.keyfile = stack["gateway_certfile"]
