"""The whole DataHub on one machine: slapd, Trino, and JupyterHub with the gateway service
(and Kafka, for the query events, and a PrestoDB cluster, when asked).

`make demo` (through `datahub up`) and the test suite's session fixtures use this. Each
part gets free ports on 127.0.0.1 and its own directory under one state directory; the
settings the hub and the gateway need (ports, URLs, service-account secrets) are written
to ``stack.json`` there (mode 0600), which `jupyterhub_config.py` reads through the
`DATAHUB_STACK_FILE` environment variable.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import demo
from .hub import proxy_command
from .kafka import KafkaServer
from .ldap import Slapd
from .presto import PrestoServer
from .process import ManagedProcess, ManagedServer, Progress, free_port, start_together
from .s3 import S3Storage
from .tls import write_self_signed_certificate
from .trino import TrinoServer, checked_retrieval_mode

STACK_FILE_ENV = "DATAHUB_STACK_FILE"


def load_stack_settings(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The local stack's settings, or ``{}`` when not running under the local stack.

    Reads the file named by `DATAHUB_STACK_FILE` unless ``path`` is given.
    """
    path = path or os.environ.get(STACK_FILE_ENV)
    if not path:
        return {}
    return json.loads(Path(path).read_text())


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _load_or_create_json(path: Path, create) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    value = create()
    path.write_text(json.dumps(value, indent=2))
    os.chmod(path, 0o600)
    return value


def _listed(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
        return response.status == 200


class LocalStack:
    """Starts and stops slapd, Trino and JupyterHub (which starts the proxy and gateway)."""

    def __init__(
        self,
        state_dir: Path,
        config_file: Path,
        *,
        progress: Progress | None = None,
        hub_port: int | None = None,
        trino_cache: Path | None = None,
        store_url: str | None = None,
        trino_routing_groups: Sequence[str] = ("default",),
        kafka: bool = False,
        presto: bool | PrestoServer = False,
        spooling: bool = True,
        spooling_retrieval_mode: str = "COORDINATOR_PROXY",
    ) -> None:
        """``trino_routing_groups`` starts one Trino cluster per entry, in that routing
        group: ``("default",)`` (the default) one cluster named ``trino``;
        ``("default", "etl")`` adds ``trino-2`` in routing group ``etl`` (about 1.5 GB
        more memory and 20 s more start-up). ``kafka`` also starts a Kafka broker for the
        query events (about 500 MB more memory) and puts its address in the settings.
        ``presto`` also starts a PrestoDB cluster named ``presto`` in routing group
        ``presto`` (about 1.2 GB more memory and a minute more start-up); a running
        `PrestoServer` instead (the test session's) joins the stack as that cluster, and
        the stack neither starts nor stops it.
        ``spooling`` offers Trino's spooling protocol, its segments in a local S3Proxy
        (about 150 MB more memory), which clients reach as ``spooling_retrieval_mode``
        says (`datahub.stack.trino.spooling_config`: through the coordinator by
        default)."""
        self.state_dir = _private_dir(Path(state_dir).resolve())
        self.config_file = Path(config_file).resolve()
        self.progress = progress or Progress()
        self.hub_port = hub_port or free_port()
        self.trino_cache = trino_cache
        self.store_url = store_url
        if not trino_routing_groups:
            raise ValueError("The local stack needs at least one Trino cluster.")
        self.trino_routing_groups = tuple(trino_routing_groups)
        self.with_kafka = kafka
        self.with_presto = bool(presto)
        #: Whether this stack started its PrestoDB (and so stops it).
        self._owns_presto = presto is True
        self.spooling = spooling
        self.spooling_retrieval_mode = checked_retrieval_mode(spooling_retrieval_mode)
        self.storage: S3Storage | None = None
        self.secrets = _load_or_create_json(
            self.state_dir / "secrets.json",
            lambda: {
                "services": demo.new_service_secrets(),
                "gateway_hmac": secrets.token_hex(32),
                "ops_token": secrets.token_hex(32),
            },
        )
        self.slapd: Slapd | None = None
        self.trino: TrinoServer | None = None
        self.trinos: list[TrinoServer] = []
        self.kafka: KafkaServer | None = None
        self.presto: PrestoServer | None = presto if isinstance(presto, PrestoServer) else None
        self.hub: ManagedProcess | None = None
        self.settings: dict[str, Any] = {}

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    def start(self) -> LocalStack:
        """Start every part: slapd first (Trino signs in its service account there), then
        the servers that need nothing of one another side by side (`start_together`), then
        the hub, which reads their settings; on failure or Ctrl-C stop what was started."""
        try:
            self._start_ldap()
            self._start_servers()
            self._write_settings()
            self._start_hub()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_ldap(self) -> None:
        self.progress.step("Starting the LDAP directory (slapd)")
        self.slapd = Slapd(self.state_dir / "ldap", self.secrets["services"])
        self.slapd.start()

    def _start_servers(self) -> None:
        """S3Proxy, each Trino, PrestoDB and Kafka, side by side: none needs another
        running to start. A Trino needs only the storage's address and credentials (its
        queries spool there later; only its pruner of expired segments, ten seconds or so
        into its start, logs an error if the storage does not answer yet, and tries again
        on its next round). Each JVM's start keeps about 1.5 cores busy: on two cores this
        saves little (a few seconds with two Trinos and Kafka), on more it saves the most."""
        servers: dict[str, ManagedServer] = {}
        if self.spooling:
            self.storage = S3Storage(self.state_dir / "spooling", progress=self.progress)
            # The Trinos' settings (below) make the storage's secret key in its directory,
            # before its thread reads the key.
            self.storage.state_dir.mkdir(parents=True, exist_ok=True)
            servers["the spooling storage (S3Proxy)"] = self.storage
        self.trinos = self._make_trinos()
        self.trino = self.trinos[0]
        servers.update({f"Trino cluster {server.name}": server for server in self.trinos})
        if self._owns_presto:
            self.presto = PrestoServer(
                self.state_dir / "presto", secrets=self.secrets["services"], progress=self.progress
            )
            servers["PrestoDB"] = self.presto
        if self.with_kafka:
            self.kafka = KafkaServer(self.state_dir / "kafka", progress=self.progress)
            servers["Kafka"] = self.kafka
        together = " side by side" if len(servers) > 1 else ""
        self.progress.step(
            f"Starting {_listed(servers)}{together} (the first run downloads from Maven Central)"
        )
        start_together(servers, self.progress)

    def _make_trinos(self) -> list[TrinoServer]:
        """One TrinoServer per routing group: ``trino``, ``trino-2``, ... (not started)."""
        servers = []
        for i, _group in enumerate(self.trino_routing_groups):
            name = "trino" if i == 0 else f"trino-{i + 1}"
            servers.append(
                TrinoServer(
                    self.state_dir / name,
                    name=name,
                    ldap_url=self.slapd.url,
                    secrets=self.secrets["services"],
                    groups=demo.group_members(),
                    cache_dir=self.trino_cache,
                    progress=self.progress,
                    spooling=self.storage.spooling_properties() if self.storage else None,
                    spooling_retrieval_mode=self.spooling_retrieval_mode,
                )
            )
        return servers

    def _gateway_certificate(self) -> tuple[Path, Path]:
        """The gateway's HTTPS certificate for external clients (kept across restarts)."""
        directory = _private_dir(self.state_dir / "gateway")
        pem, ca = directory / "gateway.pem", directory / "ca.pem"
        if not pem.exists():
            write_self_signed_certificate(pem, ca, "DataHub gateway")
        return pem, ca

    def _write_settings(self) -> None:
        gateway_port = free_port()
        gateway_https_port = free_port()
        gateway_pem, gateway_ca = self._gateway_certificate()
        self.settings = {
            "state_dir": str(self.state_dir),
            "hub_port": self.hub_port,
            "hub_api_port": free_port(),
            "proxy_api_port": free_port(),
            "gateway_port": gateway_port,
            "gateway_url": f"http://127.0.0.1:{gateway_port}",
            "gateway_https_port": gateway_https_port,
            "gateway_https_url": f"https://127.0.0.1:{gateway_https_port}",
            "gateway_certfile": str(gateway_pem),
            "gateway_ca_file": str(gateway_ca),
            "gateway_hmac": self.secrets["gateway_hmac"],
            "ops_token": self.secrets["ops_token"],
            "spooling": self.storage is not None,
            "store_url": self.store_url or f"sqlite:///{self.state_dir / 'datahub.sqlite'}",
            "proxy_command": proxy_command(self.config_file.parent),
            "ldap": {
                "host": "127.0.0.1",
                "port": self.slapd.port,
                "base_dn": demo.BASE_DN,
                "people_dn": demo.PEOPLE_DN,
                "groups_dn": demo.GROUPS_DN,
                "search_user_dn": demo.service_dn(demo.HUB_SERVICE_ACCOUNT),
                "search_password": self.secrets["services"][demo.HUB_SERVICE_ACCOUNT],
                "allowed_groups": [demo.group_dn(demo.ALLOWED_GROUP)],
                "admin_groups": [demo.group_dn(demo.ADMIN_GROUP)],
            },
            "clusters": [
                server.cluster_entry(routing_group=group)
                for server, group in zip(self.trinos, self.trino_routing_groups, strict=True)
            ]
            + ([self.presto.cluster_entry(routing_group="presto")] if self.presto else []),
        }
        if self.kafka is not None:
            self.settings["kafka"] = dict(self.kafka.settings())
        self.stack_file.write_text(json.dumps(self.settings, indent=2))
        os.chmod(self.stack_file, 0o600)

    def _start_hub(self) -> None:
        self.progress.step(f"Starting JupyterHub on {self.hub_url}")
        hub_dir = _private_dir(self.state_dir / "hub")
        jupyterhub = Path(sys.executable).with_name("jupyterhub")
        env = {
            **os.environ,
            STACK_FILE_ENV: str(self.stack_file),
            "PATH": os.pathsep.join([str(jupyterhub.parent), os.environ.get("PATH", "")]),
        }
        self.hub = ManagedProcess(
            "jupyterhub",
            [jupyterhub, "-f", self.config_file],
            log_file=self.state_dir / "logs" / "jupyterhub.log",
            env=env,
            cwd=hub_dir,
        )
        self.hub.start()
        self.hub.wait_ready(lambda: _http_ok(f"{self.hub_url}/hub/api/"), 90, "the hub API")
        self.progress.step("Waiting for the DataHub gateway service")
        self.hub.wait_ready(
            lambda: _http_ok(f"{self.settings['gateway_url']}/v1/info"), 60, "the gateway"
        )

    def stop(self) -> None:
        """Stop everything that was started (the hub stops the proxy, servers, gateway)."""
        presto = self.presto if self._owns_presto else None
        for part in (self.hub, self.kafka, presto, *self.trinos, self.storage, self.slapd):
            if part is not None:
                part.stop()
