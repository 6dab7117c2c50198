"""A local PrestoDB cluster (one coordinator) for the demo and the tests.

PrestoDB's ``presto-server`` tarball and most of its plugins are not served to us from
Maven Central, but ``presto-main`` and ``presto-tpch`` are, with their dependencies: the
server is assembled from those jars (:func:`ensure_presto`) and cached like Trino. PrestoDB
0.296 has no password authenticator of its own, so a small one (a PBKDF2 password file,
``data/DataHubPasswordPlugin.java``) is compiled into a plugin with the Eclipse compiler,
which Maven also fetches, so no JDK is needed beyond a Java runtime.

Each :class:`PrestoServer` serves HTTPS only (no plain HTTP port: PrestoDB would not
authenticate anybody there): clients sign in with a password, the nodes to each other with
the cluster's own certificate. Identity and rules, as PrestoDB 0.296 expresses them
(:func:`access_rules`):

- Impersonation: the authenticated principal (``Authorization``) may act as the user of
  ``X-Presto-User`` only if a ``principals`` rule of the file-based access control allows
  that principal/user pair; the service account may act as employees, never as another
  service account; nobody else may act as anyone.
- Catalogs only: PrestoDB's file rules grant whole catalogs (all / read-only / none) per
  user regex, with no groups, schemas or tables for reading. Trino's finer rules (bob may
  not read ``customer``, contractors only ``tpch.tiny``) cannot be written, so a person
  whose Trino grant on a catalog is partial gets no access to it here: PrestoDB never lets
  anybody read more than Trino does.
- ``system`` (whose ``runtime.queries`` shows everybody's SQL; PrestoDB has no rule for
  whose queries one may see) is for the service account only.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets as _secrets
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import demo
from .maven import COMPLETE, cache_lock, copy_artifact, copy_dependencies
from .process import ProcessError, Progress, free_port
from .trino import (
    SYSTEM_JVM_DIRS,
    Coordinator,
    JavaCandidate,
    choose_java,
    describe_javas,
    java_candidates,
    render_properties,
)

#: The one place the PrestoDB version lives.
PRESTO_VERSION = "0.296"
SERVER_ARTIFACTS = (f"com.facebook.presto:presto-main:{PRESTO_VERSION}",)
#: Connector plugins, each in its own folder with its own runtime dependencies (the SPI is
#: the server's). ``presto-memory`` (and ``presto-password-authenticators``) 0.296 are not
#: served to us (404), so there is no memory catalog.
PLUGINS = {"tpch": (f"com.facebook.presto:presto-tpch:{PRESTO_VERSION}",)}
#: The Eclipse compiler: compiles the password plugin on a Java runtime without javac.
ECJ = "org.eclipse.jdt:ecj:3.40.0:jar"
PASSWORD_PLUGIN = "datahub-password"
PASSWORD_PLUGIN_SOURCE = Path(__file__).with_name("data") / "DataHubPasswordPlugin.java"
PASSWORD_AUTHENTICATOR = "datahub-password-file"
#: PrestoDB 0.296 runs on Java 17; its ASM 9.7.1 reads class files up to Java 23, and on
#: Java 25 it fails to start ("Unsupported class file major version 69").
MIN_JAVA = 17
MAX_JAVA = 23
#: PBKDF2-SHA256 iterations of the password file.
PASSWORD_ITERATIONS = 100_000

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "datahub" / f"presto-{PRESTO_VERSION}"

Step = Callable[[str], Any]


# --------------------------------------------------------------------------- install


def ensure_presto(
    cache_dir: Path = DEFAULT_CACHE_DIR, step: Step = print, java_home: Path | None = None
) -> Path:
    """Return the PrestoDB installation under ``cache_dir``, downloading it if needed.

    ``lib/`` holds the server's jars, ``plugin/<name>/`` each plugin with its own
    dependencies, and ``plugin/datahub-password/`` the password plugin compiled from this
    checkout's source (rebuilt when the source changes). Once installed, this is instant.
    """
    cache_dir = Path(cache_dir).expanduser()
    home = cache_dir / "server"
    if not (home / COMPLETE).exists():
        with cache_lock(cache_dir):
            if not (home / COMPLETE).exists():
                _download(cache_dir, home, step)
    if not _password_plugin_current(home):
        with cache_lock(cache_dir):
            if not _password_plugin_current(home):
                _build_password_plugin(home, java_home or find_java())
    return home


def _download(cache_dir: Path, home: Path, step: Step) -> None:
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        server = Path(tmp) / "server"
        step(f"Downloading PrestoDB {PRESTO_VERSION} with Maven (about 125 MB, once)")
        copy_dependencies(SERVER_ARTIFACTS, server / "lib")
        for name, artifacts in PLUGINS.items():
            copy_dependencies(artifacts, server / "plugin" / name)
        copy_artifact(ECJ, server / "tools")
        for leftover in server.glob(".pom-*"):
            shutil.rmtree(leftover)
        for leftover in (server / "plugin").glob(".pom-*"):
            shutil.rmtree(leftover)
        (server / COMPLETE).write_text(PRESTO_VERSION + "\n")
        if home.exists():
            shutil.rmtree(home)
        server.rename(home)


def _source_digest() -> str:
    return hashlib.sha256(PASSWORD_PLUGIN_SOURCE.read_bytes()).hexdigest()


def _password_plugin_current(home: Path) -> bool:
    marker = home / "plugin" / PASSWORD_PLUGIN / COMPLETE
    return marker.exists() and marker.read_text().strip() == _source_digest()


def _build_password_plugin(home: Path, java_home: Path) -> None:
    """Compile ``DataHubPasswordPlugin.java`` against the server's SPI into a plugin jar."""
    (ecj,) = (home / "tools").glob("ecj-*.jar")
    target = home / "plugin" / PASSWORD_PLUGIN
    # Under the cache lock, which removes what a killed build leaves (".download-*").
    with tempfile.TemporaryDirectory(dir=home.parent, prefix=".download-") as tmp:
        classes = Path(tmp) / "classes"
        spi = [home / "lib" / f"presto-{m}-{PRESTO_VERSION}.jar" for m in ("spi", "common")]
        result = subprocess.run(
            [
                str(java_home / "bin" / "java"),
                "-jar",
                str(ecj),
                "--release",
                str(MIN_JAVA),
                "-nowarn",
                "-proc:none",
                "-cp",
                os.pathsep.join(map(str, spi)),
                "-d",
                str(classes),
                str(PASSWORD_PLUGIN_SOURCE),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            raise ProcessError(
                f"Could not compile the PrestoDB password plugin: {result.stdout}{result.stderr}"
            )
        jar = Path(tmp) / f"{PASSWORD_PLUGIN}.jar"
        with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(
                "META-INF/services/com.facebook.presto.spi.Plugin",
                "io.datahub.presto.DataHubPasswordPlugin\n",
            )
            for path in sorted(classes.rglob("*.class")):
                zf.write(path, path.relative_to(classes).as_posix())
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        jar.rename(target / jar.name)
        (target / COMPLETE).write_text(_source_digest() + "\n")


def find_java(system_dirs: Sequence[Path] = SYSTEM_JVM_DIRS) -> Path:
    """A JDK home for PrestoDB: Java :data:`MIN_JAVA` to :data:`MAX_JAVA`, chosen like
    Trino's (``$JAVA_HOME`` first, then the newest system JDK); newer ones are passed over."""
    java_home, system, bundled = java_candidates(system_dirs)

    def supported(candidate: JavaCandidate | None) -> JavaCandidate | None:
        fits = candidate is not None and (candidate.version or 0) <= MAX_JAVA
        return candidate if fits else None

    chosen = choose_java(
        supported(java_home), [c for c in system if supported(c)], supported(bundled), MIN_JAVA
    )
    if chosen is None:
        raise FileNotFoundError(
            f"PrestoDB {PRESTO_VERSION} needs Java {MIN_JAVA} to {MAX_JAVA} and found "
            f"{describe_javas(java_home, *system, bundled)}; install Debian's "
            "openjdk-17-jre-headless or set JAVA_HOME."
        )
    return chosen.home


# --------------------------------------------------------------------------- configuration


def _any_of(names: Sequence[str]) -> str:
    """A Java regex matching exactly one of ``names``."""
    return "|".join(re.escape(n) for n in names)


def access_rules(
    service_account: str = demo.TRINO_SERVICE_ACCOUNT,
    *,
    protected_accounts: Sequence[str] = demo.SERVICE_ACCOUNTS,
    tpch_readers: Sequence[str] = ("alice",),
) -> dict[str, Any]:
    """PrestoDB's file-based system access control rules for the demo (first match wins).

    - ``principals``: the service account may act as itself and as anybody but another
      service account; no other principal may act as anybody (PrestoDB then refuses the
      query: "Principal ... cannot become user ...").
    - ``catalogs``: the service account reads ``system`` and ``tpch`` (the readiness
      probe); ``tpch_readers`` read ``tpch``: the people Trino lets read all of it (alice;
      Trino keeps bob and carol from ``customer`` and contractors in ``tpch.tiny``, which
      PrestoDB cannot express). Nobody else reaches ``system`` (PrestoDB would otherwise
      add a rule giving everybody ``system``, with everybody's queries) or any catalog.
    """
    service = re.escape(service_account)
    others = [a for a in protected_accounts if a != service_account]
    return {
        "principals": [
            {"principal": service, "user": service, "allow": True},
            *([{"principal": service, "user": _any_of(others), "allow": False}] if others else []),
            {"principal": service, "user": ".+", "allow": True},
        ],
        "catalogs": [
            {"user": service, "catalog": "system|tpch", "allow": "read-only"},
            *(
                [{"user": _any_of(tpch_readers), "catalog": "tpch", "allow": "read-only"}]
                if tpch_readers
                else []
            ),
            {"catalog": "system", "allow": "none"},
        ],
        # Nobody owns a schema: nobody creates or drops one.
        "schemas": [],
    }


def password_file_line(user: str, password: str, *, salt: bytes | None = None) -> str:
    """One line of the password plugin's file: ``user:iterations:salt:hash`` (hex)."""
    if ":" in user or not user:
        raise ValueError(f"Unusable account name {user!r}.")
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PASSWORD_ITERATIONS)
    return f"{user}:{PASSWORD_ITERATIONS}:{salt.hex()}:{digest.hex()}\n"


# --------------------------------------------------------------------------- server


class PrestoQueryError(RuntimeError):
    """PrestoDB refused or failed a query: ``name`` is its error name
    (``PERMISSION_DENIED``…), or ``HTTP <status>`` when the request itself was refused."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class PrestoServer(Coordinator):
    """One PrestoDB coordinator (also its only worker) with its own state directory.

    ``secrets`` maps service account uids to passwords; only the gateway's account
    (:data:`demo.TRINO_SERVICE_ACCOUNT`, the same as for Trino) may sign in. Clients use
    :attr:`url` (HTTPS, verify with :attr:`ca_file`).
    """

    product = "PrestoDB"
    engine = "presto"
    #: About a minute on a quiet machine.
    start_timeout = 240

    def __init__(
        self,
        state_dir: Path,
        *,
        name: str = "presto",
        secrets: Mapping[str, str],
        https_port: int | None = None,
        cache_dir: Path | None = None,
        presto_home: Path | None = None,
        java_home: Path | None = None,
        rules: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(
            state_dir, name=name, secrets=secrets, https_port=https_port, progress=progress
        )
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.presto_home = presto_home
        self.java_home = java_home
        self.rules = dict(rules) if rules is not None else access_rules()
        self._jmx_port = free_port()

    def _write_etc(self, home: Path) -> None:
        etc = self.etc_dir
        (etc / "catalog").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tmp").mkdir(parents=True, exist_ok=True)
        # The nodes present it to each other as clients too (CERTIFICATE authentication).
        self._write_certificate(client_auth=True)
        write = self._write_etc_file
        write(
            "config.properties",
            render_properties(
                {
                    "node.environment": "datahub",
                    "node.id": f"datahub-{self.name}",
                    "node.bind-ip": self.host,
                    "node.internal-address": self.host,
                    "coordinator": "true",
                    "node-scheduler.include-coordinator": "true",
                    "discovery-server.enabled": "true",
                    # HTTPS only: PrestoDB authenticates nobody over plain HTTP, where
                    # anybody could list and kill queries.
                    "http-server.http.enabled": "false",
                    "http-server.admin.enabled": "false",
                    "http-server.https.enabled": "true",
                    "http-server.https.port": self.https_port,
                    "http-server.https.keystore.path": self._keystore,
                    "http-server.https.truststore.path": self.ca_file,
                    "discovery.uri": self.url,
                    # Clients by password; the node itself (discovery, announcements,
                    # tasks) by the certificate only it holds.
                    "http-server.authentication.type": "CERTIFICATE,PASSWORD",
                    "internal-communication.https.required": "true",
                    "internal-communication.https.keystore.path": self._keystore,
                    "internal-communication.https.trust-store-path": self.ca_file,
                    "internal-communication.jwt.enabled": "true",
                    "internal-communication.shared-secret": _secrets.token_urlsafe(32),
                    # The Thrift task endpoint accepts TLS only (there is no way to bind
                    # it to loopback).
                    "thrift.server.ssl.enabled": "true",
                    "thrift.server.allow-plaintext": "false",
                    "thrift.server.ssl.key": self._keystore,
                    "thrift.server.ssl.trust-certificate": self.ca_file,
                    "query.max-memory": "512MB",
                    "query.max-total-memory": "512MB",
                    "query.max-memory-per-node": "256MB",
                    "query.max-total-memory-per-node": "384MB",
                    "plugin.dir": home / "plugin",
                    "catalog.config-dir": etc / "catalog",
                    # The JVM's own agent on this port (see _command); Airlift checks.
                    "jmx.rmiregistry.port": self._jmx_port,
                    "jmx.rmiserver.port": self._jmx_port,
                }
            ),
            private=True,
        )
        write(
            "log.properties",
            render_properties(
                {
                    "com.facebook": "WARN",
                    "Bootstrap": "WARN",
                    "org.eclipse.jetty": "WARN",
                    # Keeps the "SERVER STARTED" line.
                    "com.facebook.presto.server.PrestoServer": "INFO",
                }
            ),
        )
        write("catalog/tpch.properties", render_properties({"connector.name": "tpch"}))
        write(
            "passwords",
            "".join(
                password_file_line(user, pw)
                for user, pw in self.secrets.items()
                if user == self.service_user
            ),
            private=True,
        )
        # PrestoDB reads these two from etc/ under its working directory (state_dir).
        write(
            "password-authenticator.properties",
            render_properties(
                {
                    "password-authenticator.name": PASSWORD_AUTHENTICATOR,
                    "datahub.password-file": etc / "passwords",
                }
            ),
        )
        self._write_access_control()
        # Airlift starts an unauthenticated JMX agent unless one runs already: start the
        # JVM's own, on loopback, behind a password nobody is told.
        write("jmx.password", f"monitorRole {_secrets.token_urlsafe(24)}\n", private=True)

    def _command(self, java_home: Path, home: Path) -> list[str]:
        return [
            str(java_home / "bin" / "java"),
            "-server",
            "-Xmx1G",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:ReservedCodeCacheSize=256M",
            # Guice fails without it ("Can not attach to current VM").
            "-Djdk.attach.allowAttachSelf=true",
            f"-Djava.io.tmpdir={self.data_dir / 'tmp'}",
            f"-Dcom.sun.management.jmxremote.port={self._jmx_port}",
            f"-Dcom.sun.management.jmxremote.rmi.port={self._jmx_port}",
            "-Dcom.sun.management.jmxremote.host=127.0.0.1",
            "-Djava.rmi.server.hostname=127.0.0.1",
            "-Djava.rmi.server.randomIDs=true",
            "-Dcom.sun.management.jmxremote.authenticate=true",
            f"-Dcom.sun.management.jmxremote.password.file={self.etc_dir / 'jmx.password'}",
            "-Dcom.sun.management.jmxremote.ssl=false",
            f"-Dconfig={self.etc_dir / 'config.properties'}",
            f"-Dlog.levels-file={self.etc_dir / 'log.properties'}",
            "-cp",
            f"{home / 'lib'}/*",
            "com.facebook.presto.server.PrestoServer",
        ]

    def _prepare(self) -> tuple[list[str | os.PathLike[str]], dict[str, str]]:
        java_home = self.java_home or find_java()
        home = self.presto_home or ensure_presto(self.cache_dir, self.progress.step, java_home)
        self._write_etc(home)
        return self._command(java_home, home), {**os.environ, "JAVA_HOME": str(java_home)}

    def query(
        self,
        sql: str,
        user: str | None = None,
        *,
        principal: str | None = None,
        password: str | None = None,
        timeout: float = 120,
    ) -> list[list[Any]]:
        """Run ``sql`` with PrestoDB's protocol as ``principal`` (the service account by
        default) acting as ``user``, and return all rows; raise :class:`PrestoQueryError`
        when PrestoDB refuses or fails it."""
        principal = principal or self.service_user
        if password is None:
            password = self.password_of(principal)
        auth = (principal, password)
        rows: list[list[Any]] = []
        with self.http_session() as session:
            response = session.post(
                f"{self.url}/v1/statement",
                data=sql.encode(),
                headers={"X-Presto-User": user or principal, "X-Presto-Source": "datahub-stack"},
                auth=auth,
                timeout=timeout,
            )
            while True:
                if response.status_code != 200:
                    raise PrestoQueryError(
                        response.text.strip()[:500], f"HTTP {response.status_code}"
                    )
                page = response.json()
                rows.extend(page.get("data") or [])
                if "error" in page:
                    error = page["error"]
                    raise PrestoQueryError(error.get("message", ""), error.get("errorName", ""))
                if not page.get("nextUri"):
                    return rows
                response = session.get(page["nextUri"], auth=auth, timeout=timeout)
