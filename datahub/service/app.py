"""The DataHub service: a JupyterHub managed service that is the Trino gateway (the Trino
protocol at the root of its listener) and serves DataHub's REST API and pages under its
service prefix.

Start it as a managed service from jupyterhub_config.py, or by hand::

    python -m datahub.service -f jupyterhub_config.py

It reads the same configuration file as the hub (``c.DataHubService.*``,
``c.IdentityResolver.*``, ``c.HubAuth.*``) and the ``JUPYTERHUB_*`` environment the hub
gives its services.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import secrets
import signal
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubAuth, HubOAuth
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import (
    Bool,
    Bytes,
    Callable,
    CaselessStrEnum,
    Dict,
    Float,
    Instance,
    Integer,
    List,
    Set,
    TraitError,
    Type,
    Unicode,
    Union,
    default,
    validate,
)
from traitlets.config import Application, catch_config_error

from .. import __version__
from ..audit import records
from ..audit.events import EventLogFile
from ..audit.handlers import default_handlers as audit_handlers
from ..audit.journal import AuditJournal
from ..audit.log import AuditLog
from ..catalog.catalog import MetadataCatalog, gateway_listener_url
from ..catalog.handlers import default_handlers as metadata_handlers
from ..events.config import KafkaEvents
from ..events.handlers import default_handlers as incident_handlers
from ..events.publisher import EventPublisher
from ..events.watch import CrashWatch, CrashWatcher
from ..gateway.admission import Listeners, QueryAdmission, QueryListener
from ..gateway.clusters import ClusterConfigError, load_clusters, routing_group_engines
from ..gateway.core import Gateway
from ..gateway.handlers import NotFoundHandler
from ..gateway.handlers import default_handlers as gateway_handlers
from ..gateway.health import ClusterMonitor
from ..gateway.metrics import GatewayMetrics
from ..gateway.routing import Router, RoutingConfigError, RoutingRule
from ..gateway.signing import FollowupSigner
from ..gateway.tracker import QueryTracker
from ..gateway.upstream import Upstream
from ..identity import IdentityResolver
from ..quotas.handlers import default_handlers as quota_handlers
from ..quotas.hooks import QuotaAdmission, QuotaListener
from ..quotas.manager import Access, QuotaManager
from ..sharing.context import SharingContext
from ..sharing.handlers import default_handlers as sharing_handlers
from ..spawners.local import limits_notice
from ..store import Store
from ..store.core import DEFAULT_SQLITE_SYNCHRONOUS, DEFAULT_THREADS, SQLITE_SYNCHRONOUS
from ..web.base import oauth_handlers, template_environment
from ..web.pages import default_handlers as page_handlers

# Service pages load nothing from elsewhere and run no inline script.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'; "
    "form-action 'self'"
)


def _service_url() -> Any:
    return urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))


class DataHubService(Application):
    """The gateway between Trino clients (with a hub token) and the Trino clusters."""

    name = "datahub-gateway"
    version = __version__
    description = __doc__

    aliases = {
        "f": "DataHubService.config_file",
        "config": "DataHubService.config_file",
        "ip": "DataHubService.ip",
        "port": "DataHubService.port",
        "log-level": "Application.log_level",
    }
    classes = [IdentityResolver, HubAuth, HubOAuth, MetadataCatalog]

    config_file = Unicode(
        "jupyterhub_config.py",
        help="""The configuration file to load: the hub's own jupyterhub_config.py, so
        the hub and the gateway are configured in one place.

        Example: python -m datahub.service -f /etc/datahub/jupyterhub_config.py
        """,
    ).tag(config=True)

    clusters = List(
        Dict(),
        help="""The Trino clusters behind the gateway, in order of preference.

        Each entry: name (letters, digits, - or _; it appears in follow-up URIs), url,
        user and password (or password_file) of the DataHub service account, which Trino
        must allow to impersonate employees (and to view and kill every query, for health
        checks, final statistics and the reconciler); ca_file (the PEM of the cluster's CA
        or self-signed certificate) or verify=False (development only); routing_group
        (default "default"): the clusters of one routing group are interchangeable, and a
        query goes to the healthy one with the fewest queued, then running, queries;
        engine: "trino" (default) or "presto" (a PrestoDB cluster: the gateway translates
        between the clients' Trino protocol and Presto's; one engine per routing group).
        Example::

            c.DataHubService.clusters = [
                {"name": "adhoc-1", "url": "https://trino-a.example.com:8443",
                 "user": "datahub", "password_file": "/etc/datahub/trino-password",
                 "ca_file": "/etc/datahub/trino-ca.pem", "routing_group": "adhoc"},
                {"name": "etl-1", "url": "https://trino-e.example.com:8443",
                 "user": "datahub", "password_file": "/etc/datahub/trino-password",
                 "ca_file": "/etc/datahub/trino-ca.pem", "routing_group": "etl"},
            ]
        """,
    ).tag(config=True)

    @validate("clusters")
    def _validate_clusters(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            load_clusters(proposal["value"])
        except (ClusterConfigError, OSError) as e:
            raise TraitError(str(e)) from e
        return proposal["value"]

    default_routing_group = Unicode(
        "default",
        help="""The routing group of queries that no routing rule (and no hint) sends
        elsewhere. It needs at least one cluster.

        Example: c.DataHubService.default_routing_group = "adhoc"
        """,
    ).tag(config=True)

    routing_rules = List(
        Dict(),
        help="""Ordered routing rules: the first whose conditions all hold sends the query
        to its routing_group (or, with engine: "trino" or "presto" instead, to the routing
        group of that engine: the default one if it runs it, else the first).
        Conditions (any subset, at least one):

        - users: user names; groups: hub groups (any of them);
        - source: a regex the whole Trino source must match (X-Trino-Source; the %%sql
          cells send "datahub-sql", Airflow "airflow", the CLI "trino-cli");
        - client_tags: tags that must all be present (X-Trino-Client-Tags);
        - hint: the routing hint a cell sends (%%sql --cluster NAME, the
          X-DataHub-Routing-Group header), one name or a list;
        - catalogs: catalogs of which the SQL references a table (parsed with sqlglot;
          unqualified tables count in the session catalog), any of them.

        Rules come after a routing_hook and before the plain hint and the default routing
        group. Example::

            c.DataHubService.routing_rules = [
                {"name": "scheduled jobs", "source": "airflow|dbt.*", "routing_group": "etl"},
                {"name": "contractors", "groups": ["contractors"], "routing_group": "sandbox"},
                {"name": "lake", "catalogs": ["hive", "iceberg"], "routing_group": "etl"},
                {"name": "batch tag", "client_tags": ["batch"], "routing_group": "etl"},
            ]
        """,
    ).tag(config=True)

    @validate("routing_rules")
    def _validate_routing_rules(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            for i, entry in enumerate(proposal["value"]):
                RoutingRule.from_config(entry, i)
        except RoutingConfigError as e:
            raise TraitError(str(e)) from e
        return proposal["value"]

    routing_group_access = Dict(
        help="""Deprecated: which routing groups people may use is the quota policies'
        routing_groups limit (c.QuotaManager.default_limits, and the default, group and
        user policies of the admin pages). Still honoured, with a warning at start.

        Routing group -> {"users": [...], "groups": [...]}; routing groups not listed are
        open to everyone. It maps into the quota policy as its configured layer of
        routing_groups, per user (the layer of c.QuotaManager.default_limits, below every
        stored policy): every routing group it does not list, and those listing the user
        or one of their groups. A user's, group's or the default policy's routing_groups
        overrides it; with it set, c.QuotaManager.default_limits must not set
        routing_groups. Every query is checked at admission, whatever routed it: one using
        a routing group the user may not use is refused with one sentence listing theirs.

        Instead of c.DataHubService.routing_group_access = {"etl": {"groups":
        ["data-engineers"]}} with clusters in "adhoc" and "etl", set
        c.QuotaManager.default_limits = {"routing_groups": ["adhoc"], ...} and give the
        group data-engineers a policy with routing_groups adhoc, etl.
        """,
    ).tag(config=True)

    @validate("routing_group_access")
    def _validate_routing_group_access(self, proposal: dict[str, Any]) -> dict[str, Any]:
        try:
            for group, entry in proposal["value"].items():
                Access.from_config(group, entry)
        except RoutingConfigError as e:
            raise TraitError(str(e)) from e
        return proposal["value"]

    routing_hook = Callable(
        None,
        allow_none=True,
        help="""A Python function for routing decisions the rules cannot express. It gets
        a datahub.gateway.routing.RoutingRequest (user, groups, source, client_tags,
        hint, sql, catalog) and returns a routing group, or None to let the rules decide.
        It runs on the event loop for every query: keep it fast and free of I/O.

        Example::

            def route_big_joins(request):
                return "etl" if request.sql.upper().count(" JOIN ") > 5 else None
            c.DataHubService.routing_hook = route_big_joins
        """,
    ).tag(config=True)

    health_check_interval = Float(
        5.0,
        help="""Seconds between health checks of each cluster (GET /v1/info and the
        running and queued queries of GET /v1/query?state=...). A failed check (or a request
        to the cluster that fails) takes it out of routing (see health_check_failures); a
        passing one brings it back. Also how often each process re-reads the drain flags.

        Example: c.DataHubService.health_check_interval = 10
        """,
    ).tag(config=True)

    health_check_failures = Integer(
        2,
        min=1,
        help="""Failures in a row (health checks, and the gateway's requests to the
        cluster, that timed out or broke off) that take a cluster out of routing; a
        passing check starts the count again. One slow answer of a busy cluster then
        does not turn every new query away. A cluster that refuses the connection, or
        answers that it cannot serve (starting, HTTP errors), is taken out at once, and
        so is one that has not passed a check since the gateway started. A request that
        breaks off or times out has the cluster checked at once, so a cluster that
        crashed mid-query leaves routing without waiting for the next check.

        Example: c.DataHubService.health_check_failures = 3
        """,
    ).tag(config=True)

    health_check_timeout = Float(
        3.0,
        help="""Seconds a health check (and the gateway's own small requests to a cluster:
        final statistics, cancels, the reconciler) may take before counting as failed.

        Example: c.DataHubService.health_check_timeout = 5
        """,
    ).tag(config=True)

    reconcile_interval = Float(
        30.0,
        help="""Seconds between runs of the reconciler, which closes queries left without
        a finished event (their cluster or gateway process died, or the client went away):
        with Trino's final state if the cluster has one, as LOST if the cluster no longer
        knows the query or stayed unreachable for lost_after seconds. Queries are checked
        once they are this old. 0 turns it off.

        Example: c.DataHubService.reconcile_interval = 60
        """,
    ).tag(config=True)

    lost_after = Float(
        30.0,
        help="""Seconds a cluster must stay unreachable before the reconciler gives up on
        its open queries and records them as LOST.

        Example: c.DataHubService.lost_after = 120
        """,
    ).tag(config=True)

    watch_interval = Float(
        2.0,
        help="""Seconds between passes of the query watcher, which looks at every query
        this gateway process follows, whether or not its client polls: a query its
        cluster says has ended is closed at once (its quota slot freed, even when the
        client stopped reading after the data), and the day's CPU seconds and bytes
        scanned are counted while queries run, so a query that takes its user past a
        daily limit is cancelled. Each pass costs one small request (as the service
        account) per followed query whose client has not polled within this time (the
        others' last pages are as fresh). 0 turns it off (usage is then counted when
        queries end, and ended queries are found by the reconciler).

        Example: c.DataHubService.watch_interval = 5
        """,
    ).tag(config=True)

    fetch_final_stats = Bool(
        True,
        help="""After a query ends, ask its cluster for Trino's query info (one small
        request, after the client has its last page) when the result pages lacked
        something: the number of output rows of a query over the direct protocol (a
        spooled query's rows are counted from its segments, so it is not asked about),
        and the SQL of queries whose submitted event was lost.

        Example: c.DataHubService.fetch_final_stats = False (fewer requests to Trino)
        """,
    ).tag(config=True)

    event_log_file = Unicode(
        "",
        help="""A file that gets one JSON line per query event (query_submitted,
        query_finished, query_rejected) for a log shipper (Fluent Bit, Vector, a Singer
        tap) to carry to Kafka or a warehouse. Created mode 0600 (it holds SQL); opened
        per batch, so rotating it needs no signal. Empty turns it off.

        Example: c.DataHubService.event_log_file = "/var/log/datahub/query-events.jsonl"
        """,
    ).tag(config=True)

    admission = Instance(
        QueryAdmission,
        allow_none=True,
        help="""What decides, after routing, whether each query runs now, waits its turn
        or is refused (a datahub.gateway.admission.QueryAdmission: admit, recheck,
        withdraw). There is one; None (the default) is the quotas' (QuotaAdmission).

        Example: c.DataHubService.admission = MyAdmission()
        """,
    ).tag(config=True)

    query_listeners = List(
        Instance(QueryListener),
        help="""Listeners told of every admitted query's progress and end, in order
        (datahub.gateway.admission.QueryListener: on_progress and on_running may return
        a reason to stop the query; on_finished is called exactly once per admitted
        query). Their exceptions are logged and ignored. The quotas' listener is added
        after these.

        Example: c.DataHubService.query_listeners = [MyListener()]
        """,
    ).tag(config=True)

    query_hooks = List(
        Instance(QueryListener),
        help="""Deprecated: the listeners of query_listeners (the one admission is
        c.DataHubService.admission). Entries are added to query_listeners, with a warning.
        """,
    ).tag(config=True)

    ip = Unicode(
        help="""The address the gateway listens on for the Trino protocol.

        Defaults to the host of $JUPYTERHUB_SERVICE_URL (set by the hub from the
        service's "url"), else 127.0.0.1. Example: c.DataHubService.ip = "0.0.0.0"
        """,
    ).tag(config=True)

    @default("ip")
    def _default_ip(self) -> str:
        return _service_url().hostname or "127.0.0.1"

    port = Integer(
        help="""The HTTP port of the Trino protocol and the health check.

        Defaults to the port of $JUPYTERHUB_SERVICE_URL, else 10101. Kernels connect
        here with their hub token. Example: c.DataHubService.port = 10101
        """,
    ).tag(config=True)

    @default("port")
    def _default_port(self) -> int:
        return _service_url().port or 10101

    https_port = Integer(
        0,
        help="""An extra HTTPS port for external clients (Trino CLI, JDBC, DBeaver), which
        send the hub token as a password and so refuse plain HTTP. 0 turns it off.

        Needs certfile and keyfile. Example: c.DataHubService.https_port = 8443
        """,
    ).tag(config=True)

    https_ip = Unicode(
        help="""The address of the HTTPS listener; defaults to ip.

        Example: c.DataHubService.https_ip = "0.0.0.0" (reachable from laptops)
        """,
    ).tag(config=True)

    @default("https_ip")
    def _default_https_ip(self) -> str:
        return self.ip

    certfile = Unicode(
        "",
        help="""PEM certificate (chain) of the HTTPS listener.

        Example: c.DataHubService.certfile = "/etc/datahub/gateway.crt"
        """,
    ).tag(config=True)

    keyfile = Unicode(
        "",
        help="""PEM private key of the HTTPS listener.

        Example: c.DataHubService.keyfile = "/etc/datahub/gateway.key"
        """,
    ).tag(config=True)

    public_url = Unicode(
        "",
        help="""Base URL clients use to reach the gateway, for the rewritten nextUri.

        Empty (the default) uses the scheme and Host of each request, which is right
        unless a proxy in front changes them. Example: "https://datahub.example.com:8443"
        """,
    ).tag(config=True)

    secret = Union(
        [Bytes(), Unicode()],
        default_value=b"",
        help="""The key that signs follow-up URIs (HMAC-SHA256): bytes, or a hex string.
        Every gateway process serving the same clients must share it; at least 16 bytes.

        Empty (the default) reads secret_file, creating it if needed.
        Example: c.DataHubService.secret = "5f0c...e1" (e.g. from secrets.token_hex(32))
        """,
    ).tag(config=True)

    @validate("secret")
    def _validate_secret(self, proposal: dict[str, Any]) -> bytes:
        value = proposal["value"]
        if isinstance(value, str):
            try:
                value = bytes.fromhex(value)
            except ValueError:
                raise TraitError("DataHubService.secret must be bytes or a hex string.") from None
        if value and len(value) < 16:
            raise TraitError("DataHubService.secret must be at least 16 bytes long.")
        return value

    secret_file = Unicode(
        "datahub_gateway_secret",
        help="""File holding the signing secret in hex, used when secret is empty;
        created with 32 random bytes (mode 0600) if missing. Relative to the working
        directory, like jupyterhub_cookie_secret.

        Example: c.DataHubService.secret_file = "/srv/datahub/gateway_secret"
        """,
    ).tag(config=True)

    service_name = Unicode(
        help="""The gateway's JupyterHub service name: tokens need the scope
        access:services!service=<service_name>.

        Defaults to $JUPYTERHUB_SERVICE_NAME, else "datahub".
        Example: c.DataHubService.service_name = "datahub"
        """,
    ).tag(config=True)

    @default("service_name")
    def _default_service_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_NAME") or "datahub"

    service_prefix = Unicode(
        help="""URL prefix of the service behind the hub's proxy; the health check is
        {service_prefix}api/health.

        Defaults to $JUPYTERHUB_SERVICE_PREFIX, else /services/<service_name>/.
        """,
    ).tag(config=True)

    @default("service_prefix")
    def _default_service_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{self.service_name}/"

    connect_timeout = Float(
        5.0,
        help="""Seconds to wait for a connection to a cluster before telling the user it
        is unreachable (rather than hanging). Example: c.DataHubService.connect_timeout = 3
        """,
    ).tag(config=True)

    read_timeout = Float(
        120.0,
        help="""Seconds to wait for a cluster's answer. Trino answers follow-ups within
        about a second while a query runs, so a long wait means trouble.

        Example: c.DataHubService.read_timeout = 60
        """,
    ).tag(config=True)

    max_connections = Integer(
        200,
        help="""Connections kept open to each cluster at most (kept alive between the
        requests of a query). Example: c.DataHubService.max_connections = 500
        """,
    ).tag(config=True)

    page_collapse_seconds = Float(
        0.25,
        help="""While a query is queued or planning, Trino answers each poll with a page
        that carries nothing but "not yet". The gateway follows such pages for the client,
        for up to this many seconds per client request, so a short query costs the client
        one or two round trips instead of five or six (it saves the most where the client
        is far from the gateway). Clients see fewer intermediate progress numbers; pages
        with data, errors, warnings, updates or session changes always reach them (the
        columns come with the first rows). 0 turns it off.

        Example: c.DataHubService.page_collapse_seconds = 0.5
        """,
    ).tag(config=True)

    page_carry_seconds = Float(
        0.1,
        help="""After the page with a short query's rows, Trino sends two or three pages
        that only report the query finishing. The gateway holds a small page of rows
        (up to 64 KB, no warnings or session changes) for up to this many seconds while
        it follows those pages itself, asking Trino to answer each within the time left,
        and answers with the rows on the query's last page: SELECT 1 then costs the
        client one request instead of two. When anything else comes first (more rows, an
        error, a warning) or the time is up, the client gets the rows at once, and then
        the page the gateway fetched last, which the cluster (Trino or Presto) gives
        again. A query whose rows trickle gets its first rows up to this much later
        (Trino takes some 10 to 30 ms to finish a short query after its rows). 0 turns
        it off.

        Example: c.DataHubService.page_carry_seconds = 0
        """,
    ).tag(config=True)

    metrics_scopes = Set(
        Unicode(),
        default_value={"read:metrics"},
        help="""Scopes a hub token must carry (any one of them) to read /metrics on the
        HTTPS listener (https_port), the one external clients reach. Anonymous requests
        there get 401, tokens without such a scope 403. The plain HTTP listener (port) is
        the internal one, for kernels and a Prometheus inside the same network: it
        serves /metrics without a token, so never expose it beyond that network.

        The default is JupyterHub's own read:metrics (the scope of the hub's /hub/metrics),
        which hub admins hold; give a Prometheus its own hub service with a role granting
        it, and scrape with that service's token (Authorization: Bearer <token>).
        Example: c.DataHubService.metrics_scopes = {"read:metrics"}
        """,
    ).tag(config=True)

    allow_spooling = Bool(
        True,
        help="""Forward X-Trino-Query-Data-Encoding, letting Trino answer with the
        spooling protocol when the cluster has it configured (others answer with the
        direct protocol, as do all clusters for clients that do not ask). The segments'
        URIs on the cluster are rewritten to signed gateway URIs that name the cluster
        and the user and expire (segment_uri_seconds), and the gateway relays their
        downloads and acknowledgements as the service account; URIs of an object store
        (Trino's STORAGE retrieval mode) are left for clients to read directly. %%sql
        asks for json+zstd. Set False to keep every query on the direct protocol.
        Example: c.DataHubService.allow_spooling = False
        """,
    ).tag(config=True)

    segment_uri_seconds = Integer(
        3600,
        help="""How long the gateway's URI of a spooled result segment stays valid, in
        seconds from the page that carried it. Clients download segments without
        credentials (the URI is the credential, as Trino's own segment URIs are), so keep
        it short; a client reading a result more slowly than this gets one sentence and
        runs the query again. Example: c.DataHubService.segment_uri_seconds = 600
        """,
    ).tag(config=True)

    store_threads = Integer(
        DEFAULT_THREADS,
        help="""Store calls that may run at once for the pages, the REST API and the
        features (the store's own bounded thread pool, Store.run): the event loop never
        waits for the database; a call beyond this many waits for a free thread, holding
        nothing but its own request. Keep it below what the database accepts from one
        service process (PostgreSQL: the engine's pool of 10 connections plus 20 more).

        Example: c.DataHubService.store_threads = 16
        """,
    ).tag(config=True)

    @validate("store_threads")
    def _validate_store_threads(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise TraitError("DataHubService.store_threads must be at least 1.")
        return proposal["value"]

    store_url = Unicode(
        "sqlite:///datahub.sqlite",
        help="""Database of the query audit, quota policies and usage, and shared
        notebooks (SQLAlchemy URL). SQLite suits one machine; use PostgreSQL when the
        service runs in several processes or at scale. The service migrates it on start.

        Example: c.DataHubService.store_url = "postgresql+psycopg://datahub:…@db/datahub"
        """,
    ).tag(config=True)

    store_sqlite_synchronous = CaselessStrEnum(
        list(SQLITE_SYNCHRONOUS),
        DEFAULT_SQLITE_SYNCHRONOUS,
        help="""How durable a SQLite store's commits are (SQLite's PRAGMA synchronous, on
        every connection; the store runs in WAL mode). NORMAL: a commit waits for no
        fsync; the database stays consistent and a crash of the DataHub process loses
        nothing, but a power loss or an OS crash may lose the last commits (queries'
        audit records, quota usage). FULL: every commit waits for an fsync (milliseconds
        on each query's path, as the quota's admission commits before the query goes to
        Trino) and survives power loss too. Not used with PostgreSQL, whose durability is
        the server's synchronous_commit, the operator's choice.

        Example: c.DataHubService.store_sqlite_synchronous = "FULL"
        """,
    ).tag(config=True)

    allow_admin_act_as = Bool(
        False,
        help="""Let hub admins run queries as another user, for support ("your query
        fails; let me run it as you"). An admin's request with their own hub token and
        the header X-DataHub-Act-As: <user> (what %%sql --as USER sends) then runs as
        that user: impersonated on Trino as them, under their hub groups, routing and
        quota. Only hub admins may, and only for users the hub knows. The audit records
        both (user, and acting_admin), and the user sees those queries marked in their
        history. Off, the header is refused with a one-sentence error.

        Admins can always open a user's history and quota (admin/users/<name>), and
        those views are recorded for the user to see; this switch is only about queries.
        Example: c.DataHubService.allow_admin_act_as = True
        """,
    ).tag(config=True)

    identity_resolver_class = Type(
        IdentityResolver,
        klass=IdentityResolver,
        help="""The class turning Authorization headers into hub identities.

        Replace it to identify users some other way (tests use a static map).
        Example: c.DataHubService.identity_resolver_class = "mypackage.MyResolver"
        """,
    ).tag(config=True)

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    def get_default_logging_config(self) -> dict[str, Any]:
        """traitlets' logging configuration, with the service's logger at ``log_level``.

        traitlets keeps the logger at DEBUG and filters in its handler, so every debug
        call on a query's path (the request log, the submit line) would build a record
        only to drop it. A ``logging_config`` that wants debug records for a handler of
        its own sets the logger's level too.
        """
        config = super().get_default_logging_config()
        level = logging.getLevelName(self.log_level)
        for logger in config.get("loggers", {}).values():
            logger["level"] = level
        return config

    @default("log_format")
    def _default_log_format(self) -> str:
        # JupyterHub's layout, so hub and gateway logs read alike.
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s"

    @default("log_datefmt")
    def _default_log_datefmt(self) -> str:
        return "%Y-%m-%d %H:%M:%S"

    identity_resolver = Instance(IdentityResolver)
    signer = Instance(FollowupSigner)
    upstream = Instance(Upstream)
    cluster_map = Dict()
    store = Instance(Store)
    started_at = Float()
    router = Instance(Router)
    monitor = Instance(ClusterMonitor)
    audit = Instance(AuditLog)
    #: Sends the query events' outbox to Kafka (None unless c.KafkaEvents is set).
    event_publisher = Instance(EventPublisher, allow_none=True)
    #: Crash detection from the query events (None unless Kafka is set and
    #: c.CrashWatch.run_in_service).
    crash_watcher = Instance(CrashWatcher, allow_none=True)
    metrics = Instance(GatewayMetrics)
    tracker = Instance(QueryTracker)
    metadata_catalog = Instance(MetadataCatalog)
    quotas = Instance(QuotaManager)
    sharing = Instance(SharingContext)

    @catch_config_error
    def initialize(self, argv: list[str] | None = None) -> None:
        """Parse the command line, load the configuration file and set everything up."""
        super().initialize(argv)
        self.parse_command_line(argv)
        config_path = Path(self.config_file)
        if config_path.exists():
            self.load_config_file(str(config_path))
        elif "config_file" in self.config.get("DataHubService", {}):
            self.log.critical("Configuration file %s does not exist.", config_path)
            self.exit(1)
        self.init()

    def init(self) -> None:
        """Build the parts from the current configuration (no I/O beyond files)."""
        self.started_at = time.monotonic()
        # httpx logs every request URL at INFO; follow-up URLs carry Trino's tokens.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.store = Store(
            self.store_url,
            threads=self.store_threads,
            sqlite_synchronous=self.store_sqlite_synchronous,
        )
        self.store.migrate()
        self.cluster_map = load_clusters(self.clusters)
        if not self.cluster_map:
            self.log.warning(
                "No cluster configured (c.DataHubService.clusters); queries will fail."
            )
        for cluster in self.cluster_map.values():
            self.log.info("Cluster %s at %s as %s", cluster.name, cluster.url, cluster.user)
        self._secret_bytes = self._load_secret()
        self.signer = FollowupSigner(self._secret_bytes)
        self.identity_resolver = self.identity_resolver_class(
            parent=self, service_name=self.service_name, account_check=self._account_check()
        )
        self.upstream = Upstream(
            self.cluster_map,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_connections=self.max_connections,
        )
        self._init_gateway()
        self._init_features()
        # The quotas' admission (unless one is configured) and listener, on their manager.
        self.tracker.admission = self.admission or QuotaAdmission(self.quotas)
        self.query_listeners.append(QuotaListener(self.quotas))

    def _init_features(self) -> None:
        """The features' parts, built once on the store (the handlers read them from
        the tornado settings, see make_app)."""
        self.quotas = QuotaManager(parent=self, store=self.store)
        self.quotas.server_limits_notice = functools.partial(limits_notice, self.config)
        if self.routing_group_access:
            self.log.warning(
                "c.DataHubService.routing_group_access is deprecated: it still gives each "
                "user the routing groups it does not list and those it lists them for, as "
                "the configured layer of the quota policies' routing_groups (below every "
                "stored policy). Set routing_groups in c.QuotaManager.default_limits and in "
                "group or user policies instead."
            )
            self.quotas.use_routing_group_access(
                self.routing_group_access,
                [cluster.routing_group for cluster in self.cluster_map.values()],
            )
        self.sharing = SharingContext.build(self, self.store)
        self.metadata_catalog = MetadataCatalog(parent=self, log=self.log)
        if not self.metadata_catalog.gateway_url:
            # Metadata statements go through this service's own gateway listener.
            self.metadata_catalog.gateway_url = gateway_listener_url(self.ip, self.port)

    def _account_check(self) -> Any:
        """The hub's LDAP authenticator's account check (configured in the same file),
        asked before an admin acts as someone; None without one."""
        if "DataHubLDAPAuthenticator" not in self.config:
            return None
        from ..ldap.authenticator import DataHubLDAPAuthenticator

        return DataHubLDAPAuthenticator(parent=self).account_refusal

    def _init_gateway(self) -> None:
        """Routing, health, audit (and the query events' publisher), metrics and the
        query tracker (its journal is the audit; its admission and listeners are completed
        by init)."""
        self.router = Router.from_config(
            {name: c.routing_group for name, c in self.cluster_map.items()},
            self.routing_rules,
            self.default_routing_group,
            self.routing_hook,
            engines=routing_group_engines(self.cluster_map),
        )
        if self.cluster_map:
            for warning in self.router.config_warnings():
                self.log.warning("%s", warning)
        self.audit = AuditLog(
            self.store,
            event_log=EventLogFile(self.event_log_file) if self.event_log_file else None,
            log=self.log,
        )
        kafka_events = KafkaEvents(parent=self, log=self.log)
        self.event_publisher = (
            kafka_events.publisher(self.store, self.log) if kafka_events.enabled else None
        )
        self.monitor = ClusterMonitor(
            self.cluster_map,
            self.upstream,
            interval=self.health_check_interval,
            timeout=self.health_check_timeout,
            failures=self.health_check_failures,
            log=self.log,
            load_draining=self._load_draining,
        )
        if self.query_hooks:
            self.log.warning(
                "c.DataHubService.query_hooks is deprecated: its entries are added to "
                "c.DataHubService.query_listeners; set that instead."
            )
            self.query_listeners.extend(self.query_hooks)
        self.metrics = GatewayMetrics(
            lambda: self.monitor.statuses.values(), lambda: len(self.tracker.active)
        )
        crash_watch = CrashWatch(parent=self, log=self.log)
        self.crash_watcher = None
        if kafka_events.enabled and crash_watch.run_in_service:
            self.crash_watcher = crash_watch.watcher(
                self.store, kafka_events.bootstrap_servers, kafka_events.topic, self.log
            )
            self.metrics.registry.register(self.crash_watcher)
        self.tracker = QueryTracker(
            journal=AuditJournal(
                self.audit,
                query_events=self.event_publisher is not None,
                wake=self.event_publisher.wake if self.event_publisher else None,
            ),
            admission=self.admission or QueryAdmission(),
            # The list itself, so listeners appended later in init (by features) are told too.
            listeners=Listeners(self.query_listeners, self.log),
            metrics=self.metrics,
            monitor=self.monitor,
            upstream=self.upstream,
            clusters=self.cluster_map,
            log=self.log,
            fetch_final_stats=self.fetch_final_stats,
            request_timeout=self.health_check_timeout,
            reconcile_interval=self.reconcile_interval,
            lost_after=self.lost_after,
            watch_interval=self.watch_interval,
        )

        async def allowed_routing_groups(user: str, groups: Sequence[str]) -> Any:
            # The quota policy's routing_groups (self.quotas is built by _init_features).
            policy = await self.store.run(self.quotas.effective, user, groups)
            return policy["routing_groups"]

        # What the gateway's handlers read (settings["gateway"]), never the service.
        self.gateway = Gateway(
            clusters=self.cluster_map,
            router=self.router,
            monitor=self.monitor,
            upstream=self.upstream,
            signer=self.signer,
            tracker=self.tracker,
            metrics=self.metrics,
            identity_resolver=self.identity_resolver,
            log=self.log,
            set_draining=self.set_draining,
            allowed_routing_groups=allowed_routing_groups,
            prefix=self.prefix,
            public_url=self.public_url or None,
            allow_admin_act_as=self.allow_admin_act_as,
            allow_spooling=self.allow_spooling,
            segment_uri_seconds=self.segment_uri_seconds,
            page_collapse_seconds=self.page_collapse_seconds,
            page_carry_seconds=self.page_carry_seconds,
            metrics_scopes=frozenset(self.metrics_scopes),
            started_at=self.started_at,
        )

    async def _load_draining(self) -> set[str]:
        return await self.audit.run(records.draining_clusters)

    async def set_draining(self, name: str, draining: bool, by: str) -> None:
        """Drain a cluster (no new queries; running ones finish) or bring it back, in
        every gateway process (they re-read the flag with each health check)."""
        if name not in self.cluster_map:
            raise KeyError(name)
        await self.audit.run(lambda db: records.set_draining(db, name, draining, by))
        self.monitor.set_draining(name, draining)
        self.log.info("Cluster %s %s by %s", name, "drained" if draining else "brought back", by)

    def _load_secret(self) -> bytes:
        if self.secret:
            return self.secret
        path = Path(self.secret_file)
        if path.exists():
            return bytes.fromhex(path.read_text().strip())
        secret = secrets.token_bytes(32)
        # Create it private from the start: the secret lets anyone forge follow-ups.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex())
        self.log.info("Wrote a new gateway secret to %s", path)
        return secret

    @property
    def prefix(self) -> str:
        """The service prefix as a path with slashes at both ends (``/services/datahub/``)."""
        inner = self.service_prefix.strip("/")
        return f"/{inner}/" if inner else "/"

    def make_app(self) -> web.Application:
        """The tornado application: the Trino protocol at the root, pages and the REST
        API under the service prefix."""
        prefix = self.prefix
        handlers = [
            *gateway_handlers(prefix),
            *oauth_handlers(prefix),
            *page_handlers(prefix),
            *audit_handlers(prefix),
            *quota_handlers(prefix),
            *sharing_handlers(prefix),
            *metadata_handlers(prefix),
            *incident_handlers(prefix),
        ]
        return web.Application(
            handlers,
            # The named parts handlers read (the gateway's, datahub.web.base.BaseHandler
            # and each feature's base handler); never the service itself.
            gateway=self.gateway,
            datahub_prefix=prefix,
            datahub_store=self.store,
            datahub_clusters=self.cluster_map,
            datahub_identity=self.identity_resolver,
            datahub_allow_admin_act_as=self.allow_admin_act_as,
            datahub_audit=self.audit,
            datahub_quotas=self.quotas,
            datahub_sharing=self.sharing,
            datahub_catalog=self.metadata_catalog,
            hub_auth=HubOAuth(parent=self, cache_max_age=60),
            jinja_env=template_environment(),
            page_csp=PAGE_CSP,
            # Shared by every process of the service, like the follow-up signatures.
            cookie_secret=hashlib.sha256(b"datahub-cookies\0" + self._secret_bytes).digest(),
            xsrf_cookies=True,
            default_handler_class=NotFoundHandler,
            log_function=self._log_request,
        )

    def _log_request(self, handler: web.RequestHandler) -> None:
        # Follow-up paths carry Trino's tokens; the query id is logged by the handlers.
        status = handler.get_status()
        if status >= 500 or self.log.isEnabledFor(10):
            self.log.log(
                40 if status >= 500 else 10,
                "%d %s %s %.1fms",
                status,
                handler.request.method,
                handler.request.path.split("/v1/dh/")[0] or "/v1/dh/...",
                1000 * handler.request.request_time(),
            )

    async def serve(self) -> list[HTTPServer]:
        """Start listening (HTTP, and HTTPS if configured); return the servers."""
        app = self.make_app()
        servers = []
        http = HTTPServer(app, xheaders=False)
        http.listen(self.port, self.ip)
        servers.append(http)
        self.log.info("DataHub gateway listening on http://%s:%d", self.ip, self.port)
        if self.https_port:
            if not (self.certfile and self.keyfile):
                raise ValueError("https_port needs certfile and keyfile; set both or https_port=0.")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certfile, self.keyfile)
            https = HTTPServer(app, ssl_options=context)
            https.listen(self.https_port, self.https_ip)
            servers.append(https)
            self.log.info(
                "DataHub gateway listening on https://%s:%d", self.https_ip, self.https_port
            )
        self.audit.start()
        if self.event_publisher is not None:
            self.event_publisher.start()
        if self.crash_watcher is not None:
            self.crash_watcher.start()
        self.monitor.start()
        self.tracker.start()
        return servers

    async def stop(self, servers: list[HTTPServer]) -> None:
        """Stop listening, let the queries being closed reach the audit, close the
        connections to the clusters."""
        for server in servers:
            server.stop()
        await self.tracker.stop()
        if self.crash_watcher is not None:
            await self.crash_watcher.stop()
        await self.monitor.stop()
        await self.upstream.aclose()
        await self.metadata_catalog.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.audit.close)
        if self.event_publisher is not None:
            # What it has not sent waits in the outbox for the next start.
            await self.event_publisher.stop()
        self.store.dispose()

    async def _run(self) -> None:
        servers = await self.serve()
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
        self.log.info("Stopping the DataHub gateway")
        await self.stop(servers)

    def start(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        asyncio.run(self._run())


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m datahub.service``."""
    DataHubService.launch_instance(argv)
