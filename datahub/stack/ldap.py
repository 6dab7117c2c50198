"""A private OpenLDAP server (Debian's ``slapd``) holding the demo directory.

It has its own config file and mdb database under a state directory and never touches the
system's ``/etc/ldap`` database. The data is loaded with ``slapadd`` before the first start;
later starts reuse it.

Like a company directory it runs the memberof overlay (people carry ``memberOf``) and the
ppolicy overlay (an administrator disables an account with ``pwdAccountLockedTime``). Given
a :class:`~datahub.stack.tls.LocalCA` it also speaks StartTLS on its ``ldap://`` port and
LDAPS on a second port, with a certificate that CA signed.
"""

from __future__ import annotations

import secrets as _secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from . import demo
from .process import ManagedProcess, ManagedServer, ProcessError, free_port, write_private
from .tls import LocalCA

SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
MODULE_DIR = Path("/usr/lib/ldap")

# Only the owner (self) may change a password and only binding (auth) may test it; the rest
# of the directory is readable by bound users such as the hub's search account, and not
# at all anonymously. The root DSE and schema stay public because LDAP clients (ldap3)
# read them to discover the server.
ACCESS_RULES = """\
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""


def _find(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")
    if not path:
        raise FileNotFoundError(
            f"{tool} is not installed; install the Debian packages slapd and ldap-utils."
        )
    return path


def _run_with_private_file(
    command: list[str],
    path: Path,
    content: str,
    failure: str,
    input: str | None = None,  # noqa: A002 - subprocess.run's name
) -> None:
    """Run ``command`` (a tool that reads ``path``) while ``path`` holds ``content``,
    readable by its owner only and removed afterwards; raise ProcessError with
    ``failure`` and the end of the tool's stderr when it fails."""
    write_private(path, content)
    try:
        result = subprocess.run(command, input=input, capture_output=True, text=True, check=False)
    finally:
        path.unlink()
    if result.returncode != 0:
        raise ProcessError(f"{failure}: {result.stderr.strip()[-2000:]}")


class Slapd(ManagedServer):
    """A slapd listening on ``ldap://127.0.0.1:<port>`` with the demo directory.

    ``secrets`` maps service account uids to their passwords (see
    :func:`datahub.stack.demo.new_service_secrets`); the root password is random per start
    and only kept in memory (``root_dn``/``root_password``) for tests that modify the
    directory. ``people`` and ``groups`` replace the demo directory's (tests build their
    own). With ``ca``, slapd gets a certificate signed by it, offers StartTLS on
    :attr:`url` and LDAPS on :attr:`ldaps_url`; clients trust :attr:`ca_file`.
    """

    base_dn = demo.BASE_DN
    root_dn = f"cn=admin,{demo.BASE_DN}"

    def __init__(
        self,
        state_dir: Path,
        secrets: Mapping[str, str],
        port: int | None = None,
        *,
        people: tuple[demo.Person, ...] = demo.PEOPLE,
        groups: tuple[demo.Group, ...] | None = None,
        ca: LocalCA | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.secrets = dict(secrets)
        self.port = port or free_port()
        self.people = people
        self.groups = groups
        self.ca = ca
        self.ldaps_port = free_port() if ca else None
        self.root_password = _secrets.token_urlsafe(24)
        self.config_file = self.state_dir / "slapd.conf"
        self.data_dir = self.state_dir / "data"
        self.pid_file = self.state_dir / "slapd.pid"
        self.log_file = self.state_dir / "slapd.log"
        self.tls_dir = self.state_dir / "tls"

    @property
    def url(self) -> str:
        """The LDAP URL clients connect to.

        Without the trailing ``/``: ldap3's ``Server`` rejects ``host:port/``.
        """
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str | None:
        """The LDAPS URL (TLS from the first byte), when slapd has a certificate."""
        return f"ldaps://{self.host}:{self.ldaps_port}" if self.ldaps_port else None

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate that signed slapd's certificate, for clients to trust."""
        return self.tls_dir / "ca.pem" if self.ca else None

    def _write_tls_files(self) -> str:
        """Issue slapd's certificate (once) and return the config lines that use it."""
        if not self.ca:
            return ""
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        cert, key = self.tls_dir / "slapd.pem", self.tls_dir / "slapd.key"
        if not cert.exists():
            self.ca.issue(cert, key)
            self.ca.write_certificate(self.ca_file)
        return (
            f"TLSCACertificateFile {self.ca_file}\n"
            f"TLSCertificateFile {cert}\n"
            f"TLSCertificateKeyFile {key}\n"
        )

    def _write_config(self) -> None:
        includes = "\n".join(f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS)
        config = f"""\
# Generated by datahub.stack.ldap; rewritten on every start.
{includes}
pidfile {self.pid_file}
argsfile {self.state_dir / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload memberof
moduleload ppolicy
# ldap3 and ldapauthenticator send a DN with an empty password as an "unauthenticated
# bind"; slapd's default (no "allow bind_anon_cred") refuses it, which is what we want.
{self._write_tls_files()}
database mdb
maxsize 104857600
suffix "{self.base_dn}"
rootdn "{self.root_dn}"
rootpw {demo.ssha(self.root_password)}
directory {self.data_dir}
index objectClass eq
index uid,member,uniqueMember,memberUid,memberOf eq

# People's memberOf follows changes to groupOfNames groups (and deletions, with refint).
overlay memberof
memberof-refint TRUE
# An account with pwdAccountLockedTime {demo.LOCKED_FOREVER} cannot bind.
overlay ppolicy
ppolicy_default "{demo.PASSWORD_POLICY_DN}"

{ACCESS_RULES}"""
        write_private(self.config_file, config)

    def _load_data(self) -> None:
        ldif = self.state_dir / "directory.ldif"
        try:
            _run_with_private_file(
                [_find("slapadd"), "-q", "-f", str(self.config_file), "-l", str(ldif)],
                ldif,
                demo.render_ldif(
                    self.secrets, self.people, self.groups, memberof=True, password_policy=True
                ),
                "slapadd could not load the demo directory",
            )
        except ProcessError:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise

    def _accepts_connections(self) -> bool:
        for port in (self.port, self.ldaps_port):
            if port:
                with socket.create_connection((self.host, port), timeout=1):
                    pass
        return True

    def modify(self, ldif: str) -> None:
        """Apply LDIF change records (``changetype: ...``) as the directory's root.

        For tests and operators of the local stack: lock an account, change a group. The
        changes go through slapd, so its overlays (memberof, ppolicy) see them. The root
        password reaches ``ldapmodify`` through a private file, not its command line.
        """
        password_file = self.state_dir / "root.pw"
        _run_with_private_file(
            [_find("ldapmodify"), "-x", "-H", self.url, "-D", self.root_dn]
            + ["-y", str(password_file)],
            password_file,
            self.root_password,
            "ldapmodify failed",
            input=ldif,
        )

    def start(self, timeout: float = 30) -> Slapd:
        """Write the config, load the directory on first use, start slapd and wait for it."""
        if self.running:
            return self
        slapd = _find("slapd")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.data_dir / "data.mdb").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._load_data()
        if self.pid_file.exists():
            # A previous run was killed without cleaning up; slapd would refuse to start.
            self.pid_file.unlink()
        # -d 0 keeps slapd in the foreground (so we own its process) without debug output.
        listeners = " ".join(f"{url}/" for url in (self.url, self.ldaps_url) if url)
        process = ManagedProcess(
            "slapd",
            [slapd, "-f", self.config_file, "-h", listeners, "-d", "0"],
            log_file=self.log_file,
        )
        self._launch(
            process, (self._accepts_connections, timeout, f"slapd to listen on {self.url}")
        )
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop slapd and wait until it removed its pidfile (it flushes the database first)."""
        if self._process is None:
            return
        timeout = self.stop_timeout if timeout is None else timeout
        super().stop(timeout)
        deadline = time.monotonic() + timeout
        while self.pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
