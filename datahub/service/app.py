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
import hashlib
import logging
import os
import secrets
import signal
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubAuth, HubOAuth
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import (
    Bool,
    Bytes,
    Dict,
    Float,
    Instance,
    Integer,
    List,
    TraitError,
    Type,
    Unicode,
    Union,
    default,
    validate,
)
from traitlets.config import Application, catch_config_error

from .. import __version__
from ..audit.handlers import default_handlers as audit_handlers
from ..gateway.clusters import ClusterConfigError, load_clusters
from ..gateway.handlers import NotFoundHandler
from ..gateway.handlers import default_handlers as gateway_handlers
from ..gateway.protocol import FollowupSigner
from ..gateway.upstream import Upstream
from ..identity import IdentityResolver
from ..quotas.handlers import default_handlers as quota_handlers
from ..sharing.handlers import default_handlers as sharing_handlers
from ..store import Store
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
    classes = [IdentityResolver, HubAuth, HubOAuth]

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
        must allow to impersonate employees; ca_file (the PEM of the cluster's CA or
        self-signed certificate) or verify=False (development only); routing_group.
        Example::

            c.DataHubService.clusters = [{
                "name": "main", "url": "https://trino.example.com:8443",
                "user": "datahub", "password_file": "/etc/datahub/trino-password",
                "ca_file": "/etc/datahub/trino-ca.pem",
            }]
        """,
    ).tag(config=True)

    @validate("clusters")
    def _validate_clusters(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            load_clusters(proposal["value"])
        except (ClusterConfigError, OSError) as e:
            raise TraitError(str(e)) from e
        return proposal["value"]

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

    allow_spooling = Bool(
        False,
        help="""Forward X-Trino-Query-Data-Encoding, letting Trino answer with the
        spooling protocol. Off by default: spooled segments are downloaded from URIs
        pointing at the cluster or its object storage, which bypasses the gateway (and
        is often unreachable for kernels). Example: c.DataHubService.allow_spooling = True
        """,
    ).tag(config=True)

    store_url = Unicode(
        "sqlite:///datahub.sqlite",
        help="""Database of the query audit, quota policies and usage, and shared
        notebooks (SQLAlchemy URL). SQLite suits one machine; use PostgreSQL when the
        service runs in several processes or at scale. The service migrates it on start.

        Example: c.DataHubService.store_url = "postgresql+psycopg://datahub:…@db/datahub"
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
        self.store = Store(self.store_url)
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
            parent=self, service_name=self.service_name
        )
        self.upstream = Upstream(
            self.cluster_map,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_connections=self.max_connections,
        )

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
        ]
        return web.Application(
            handlers,
            datahub_service=self,
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
        return servers

    async def stop(self, servers: list[HTTPServer]) -> None:
        """Stop listening and close the connections to the clusters."""
        for server in servers:
            server.stop()
        await self.upstream.aclose()

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
