"""A local Apache Kafka (one KRaft node: broker and controller) for the demo and the tests.

Kafka's jars come from Maven Central (``org.apache.kafka:kafka_2.13`` with its runtime
dependencies) and are cached like Trino's. Each :class:`KafkaServer` has its own state
directory and ports, which it keeps across :meth:`~KafkaServer.stop` and
:meth:`~KafkaServer.start`, so a client's bootstrap address stays valid while the broker is
down: the tests stop it and start it again to prove that no event is lost meanwhile.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .maven import COMPLETE, cache_lock, copy_dependencies
from .process import ManagedProcess, ManagedServer, ProcessError, Progress, free_port
from .trino import find_java, render_properties

#: The one place the Kafka version lives (4.x: KRaft only, no ZooKeeper).
KAFKA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
#: Kafka logs through SLF4J 1.7 but ships no binding for it; this one sends its logs to
#: log4j 2, the version Kafka itself depends on.
LOG4J_VERSION = "2.25.5"
ARTIFACTS = (
    f"org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION}",
    f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
)
#: Kafka 4 runs on Java 17 or newer (Debian 12's own JDK will do).
MIN_JAVA = 17

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "datahub" / f"kafka-{KAFKA_VERSION}"

Step = Callable[[str], Any]


def ensure_kafka(cache_dir: Path = DEFAULT_CACHE_DIR, step: Step = print) -> Path:
    """Return the directory of Kafka's jars under ``cache_dir``, downloading them if needed
    (about 45 MB, once); once installed, this is instant."""
    cache_dir = Path(cache_dir).expanduser()
    libs = cache_dir / "libs"
    if (libs / COMPLETE).exists():
        return libs
    with cache_lock(cache_dir):
        if (libs / COMPLETE).exists():
            return libs
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
            step(f"Downloading Kafka {KAFKA_VERSION} with Maven (about 45 MB, once)")
            downloaded = Path(tmp) / "libs"
            copy_dependencies(ARTIFACTS, downloaded)
            (downloaded / COMPLETE).write_text(KAFKA_VERSION + "\n")
            if libs.exists():
                shutil.rmtree(libs)
            downloaded.rename(libs)
    return libs


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's
    ``Uuid.randomUuid().toString()``). Like Kafka's, never one starting with ``-``: the
    storage tool would read it as an option and refuse to format (1 id in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    *, port: int, controller_port: int, log_dir: Path, partitions: int = 3
) -> dict[str, object]:
    """One node that is both broker and controller, on 127.0.0.1 only, without TLS or
    authentication; internal topics have one replica (there is one broker)."""
    return {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": log_dir,
        # Several partitions, so that keys (query ids) decide where a record goes.
        "num.partitions": partitions,
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
    }


LOG4J_CONFIG = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
# Keeps the start and stop lines ("Kafka Server started", "shut down completed").
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def api_versions_request(correlation_id: int, client_id: str = "datahub-stack") -> bytes:
    """A Kafka ApiVersions request, version 0 (size-prefixed), which every broker answers."""
    client = client_id.encode()
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client)) + client
    return struct.pack(">i", len(body)) + body


def answers_api_versions(host: str, port: int, timeout: float = 2) -> bool:
    """True when a broker at ``host:port`` answers ApiVersions without an error: its
    client listener is open, which Kafka does last, once the broker has started."""
    correlation_id = 7
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(api_versions_request(correlation_id))
        header = _receive(sock, 4)
        (size,) = struct.unpack(">i", header)
        response = _receive(sock, size)
    answered_id, error_code = struct.unpack(">ih", response[:6])
    return answered_id == correlation_id and error_code == 0


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


class KafkaServer(ManagedServer):
    """One Kafka node (broker and controller) with its own state directory and ports.

    Clients use :attr:`bootstrap_servers`. The storage is formatted on the first start
    only, so topics and records survive a stop and start.
    """

    #: A stop is a controlled shutdown (SIGTERM), given a minute before SIGKILL.
    stop_timeout = 60

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        cache_dir: Path | None = None,
        libs: Path | None = None,
        java_home: Path | None = None,
        heap: str = "512m",
        progress: Progress | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.libs = libs
        self.java_home = java_home
        self.heap = heap
        self.progress = progress or Progress()
        self.config_file = self.state_dir / "server.properties"
        self.log4j_file = self.state_dir / "log4j2.properties"
        self.data_dir = self.state_dir / "data"
        self.log_file = self.state_dir / "server.log"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the client listener (plain text, no authentication)."""
        return f"{self.host}:{self.port}"

    def _java(self) -> Path:
        java_home = self.java_home or find_java(
            minimum=MIN_JAVA, needed_by=f"Kafka {KAFKA_VERSION}"
        )
        return java_home / "bin" / "java"

    def _run_java(self, java: Path, libs: Path, *arguments: str | os.PathLike[str]) -> list[str]:
        return [
            os.fspath(java),
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Djava.io.tmpdir={self.state_dir / 'tmp'}",
            "-cp",
            f"{libs}/*",
            *(os.fspath(a) for a in arguments),
        ]

    def _write_config(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "tmp").mkdir(exist_ok=True)
        properties = server_properties(
            port=self.port, controller_port=self.controller_port, log_dir=self.data_dir
        )
        self.config_file.write_text(render_properties(properties))
        self.log4j_file.write_text(LOG4J_CONFIG)

    def _format(self, java: Path, libs: Path) -> None:
        """Format the KRaft storage once (``meta.properties`` says it is)."""
        if (self.data_dir / "meta.properties").exists():
            return
        formatter = ManagedProcess(
            "kafka-storage-format",
            self._run_java(
                java,
                libs,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                new_cluster_id(),
                "--config",
                self.config_file,
            ),
            log_file=self.state_dir / "format.log",
            cwd=self.state_dir,
        )
        formatter.start()
        assert formatter.process is not None
        try:
            code = formatter.process.wait(120)
        except BaseException:
            formatter.stop()
            raise
        if code != 0:
            raise ProcessError(
                f"Kafka could not format its storage (status {code}); log "
                f"{formatter.log_file}:\n{formatter.log_tail()}"
            )

    def start(self, timeout: float = 120) -> KafkaServer:
        """Fetch Kafka if needed, format the storage on first use, start the node and
        wait until its client listener answers."""
        if self.running:
            return self
        libs = self.libs or ensure_kafka(self.cache_dir, self.progress.step)
        java = self._java()
        self._write_config()
        self._format(java, libs)
        self.progress.step(f"Starting Kafka {KAFKA_VERSION} on {self.bootstrap_servers}")
        process = ManagedProcess(
            "kafka",
            self._run_java(java, libs, "kafka.Kafka", self.config_file),
            log_file=self.log_file,
            cwd=self.state_dir,
        )
        self._launch(
            process,
            (
                lambda: answers_api_versions(self.host, self.port),
                timeout,
                f"Kafka to answer on {self.bootstrap_servers}",
            ),
            interval=0.3,
        )
        return self

    def settings(self) -> Mapping[str, object]:
        """What a client needs, for the local stack's settings file."""
        return {"bootstrap_servers": self.bootstrap_servers}
