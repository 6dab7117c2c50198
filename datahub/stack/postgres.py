"""A private PostgreSQL server for the tests and benchmarks of the PostgreSQL store.

Debian's `postgresql` package provides the binaries; this runs its own cluster in a
directory owned by the `postgres` account (PostgreSQL refuses to run as root), listening on
a free port on 127.0.0.1 with password authentication.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from .process import ManagedProcess, ManagedServer, free_port

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
OS_USER = "postgres"


def find_pg_bin() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError(
        "PostgreSQL is not installed; `make install` installs Debian's postgresql package."
    )


class PostgresServer(ManagedServer):
    """``PostgresServer().start()`` → a database ``datahub`` at :attr:`url`."""

    def __init__(self, port: int | None = None, database: str = "datahub") -> None:
        self.port = port or free_port()
        self.database = database
        self.user = "datahub"
        self.password = secrets.token_urlsafe(18)
        self.bin = find_pg_bin()
        # Outside any root-only directory: the postgres account must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="datahub-pg-"))
        self.data = self.base / "data"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}"
            f"@{self.host}:{self.port}/{self.database}"
        )

    def _as_postgres(self, *args: str | os.PathLike[str], **kwargs) -> subprocess.CompletedProcess:
        account = pwd.getpwnam(OS_USER)

        def demote() -> None:
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

        return subprocess.run(
            [os.fspath(a) for a in args],
            preexec_fn=demote,  # noqa: PLW1509 - no threads touch this child
            check=True,
            capture_output=True,
            text=True,
            cwd=self.base,
            **kwargs,
        )

    def start(self, timeout: float = 60) -> PostgresServer:
        """Create the cluster, start PostgreSQL, wait until it accepts connections and
        create the database."""
        if self.running:
            return self
        account = pwd.getpwnam(OS_USER)
        os.chown(self.base, account.pw_uid, account.pw_gid)
        os.chmod(self.base, 0o700)
        password_file = self.base / "pwfile"
        password_file.write_text(self.password + "\n")
        os.chown(password_file, account.pw_uid, account.pw_gid)
        self._as_postgres(
            self.bin / "initdb",
            "-D",
            self.data,
            "-U",
            self.user,
            "--pwfile",
            password_file,
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        password_file.unlink()
        process = ManagedProcess(
            "postgres",
            [
                "runuser",
                "-u",
                OS_USER,
                "--",
                self.bin / "postgres",
                "-D",
                self.data,
                "-p",
                str(self.port),
                "-h",
                self.host,
                "-k",
                self.base,
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            log_file=self.base / "postgres.log",
        )
        self._launch(process, (self._ready, timeout, "PostgreSQL to accept connections"))
        self._as_postgres(
            self.bin / "createdb",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            self.database,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return self

    def _ready(self) -> bool:
        result = subprocess.run(
            [self.bin / "pg_isready", "-h", self.host, "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    def stop(self, timeout: float | None = None) -> None:
        """Stop PostgreSQL and remove its cluster."""
        super().stop(timeout)
        shutil.rmtree(self.base, ignore_errors=True)
