"""A real PrestoDB 0.296, as the local stack runs it: HTTPS only, the gateway's service
account signing in by password and acting as employees, catalog-level access rules."""

import ipaddress
import os
import shutil
import socket
import ssl
from pathlib import Path

import pytest
import requests

from datahub.stack import demo
from datahub.stack.maven import COMPLETE
from datahub.stack.presto import (
    DEFAULT_CACHE_DIR,
    PrestoQueryError,
    ensure_presto,
)


def refused(presto, sql, user=None, **kwargs) -> PrestoQueryError:
    with pytest.raises(PrestoQueryError) as error:
        presto.query(sql, user, **kwargs)
    return error.value


# --------------------------------------------------------------------------- identity


def test_presto_serves_https_with_its_own_certificate(presto):
    assert presto.url.startswith("https://127.0.0.1:")
    with presto.http_session() as session:
        info = session.get(
            f"{presto.url}/v1/info", auth=(presto.service_user, presto.service_password)
        )
        anonymous = session.get(f"{presto.url}/v1/info")
    assert info.json()["starting"] is False
    assert info.json()["nodeVersion"]["version"].startswith("0.296")
    assert anonymous.status_code == 401


def test_presto_refuses_plain_http(presto):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{presto.https_port}/v1/info", timeout=10)


def test_service_account_signs_in_by_password(presto):
    assert presto.query("SELECT current_user") == [[demo.TRINO_SERVICE_ACCOUNT]]


def test_wrong_service_password_is_refused(presto):
    error = refused(presto, "SELECT 1", password="not-the-password")
    assert error.name == "HTTP 401"
    assert str(error) == "Access Denied: Invalid credentials"


def test_people_and_unknown_principals_cannot_sign_in(presto):
    assert refused(presto, "SELECT 1", principal="alice", password="alice-pass").name == (
        "HTTP 401"
    )
    assert refused(presto, "SELECT 1", principal="mallory", password="x").name == "HTTP 401"


def test_service_account_acts_as_the_employee(presto):
    assert presto.query("SELECT current_user", "alice") == [["alice"]]
    assert presto.query("SELECT current_user", "dave") == [["dave"]]


def test_service_account_cannot_act_as_another_service_account(presto):
    error = refused(presto, "SELECT 1", demo.HUB_SERVICE_ACCOUNT)
    assert error.name == "PERMISSION_DENIED"
    assert str(error) == (
        f"Access Denied: Principal User[name={demo.TRINO_SERVICE_ACCOUNT}] cannot become "
        f"user {demo.HUB_SERVICE_ACCOUNT}"
    )


# --------------------------------------------------------------------------- rules


def test_alice_reads_tpch(presto):
    assert presto.query("SELECT count(*) FROM tpch.tiny.customer", "alice") == [[1500]]
    assert presto.query("SELECT count(*) FROM tpch.sf1.nation", "alice") == [[25]]


def test_bob_may_not_read_customers(presto):
    # Trino denies bob tpch.*.customer only; PrestoDB grants whole catalogs, so bob gets
    # none of tpch rather than the customers.
    error = refused(presto, "SELECT count(*) FROM tpch.tiny.customer", "bob")
    assert error.name == "PERMISSION_DENIED"
    assert str(error) == "Access Denied: Cannot access catalog tpch"


def test_contractors_read_nothing_beyond_tpch_tiny(presto):
    # What Trino denies dave is denied; tpch.tiny alone cannot be granted in PrestoDB.
    for sql in ("SELECT count(*) FROM tpch.sf1.nation", "SELECT count(*) FROM tpch.tiny.nation"):
        assert refused(presto, sql, "dave").name == "PERMISSION_DENIED"


def test_people_outside_the_employee_group_read_nothing(presto):
    assert refused(presto, "SELECT count(*) FROM tpch.tiny.nation", "eve").name == (
        "PERMISSION_DENIED"
    )


def test_only_the_service_account_sees_everybodys_queries(presto):
    presto.query("SELECT count(*) FROM tpch.tiny.region", "alice")
    error = refused(presto, "SELECT query FROM system.runtime.queries", "alice")
    assert str(error) == "Access Denied: Cannot access catalog system"
    users = {row[0] for row in presto.query('SELECT "user" FROM system.runtime.queries')}
    assert "alice" in users


def test_show_catalogs_lists_what_the_employee_may_use(presto):
    assert presto.query("SHOW CATALOGS", "alice") == [["tpch"]]
    # PrestoDB 0.296 cannot list no catalogs: its rewrite to an empty VALUES fails.
    error = refused(presto, "SHOW CATALOGS", "bob")
    assert (error.name, str(error)) == ("GENERIC_INTERNAL_ERROR", "Internal error")


def test_cluster_entry_is_what_the_gateway_takes(presto):
    entry = presto.cluster_entry()
    assert entry == {
        "name": "presto",
        "engine": "presto",
        "url": presto.url,
        "ca_file": str(presto.ca_file),
        "user": demo.TRINO_SERVICE_ACCOUNT,
        "password": presto.service_password,
        "routing_group": "default",
    }


# --------------------------------------------------------------------------- listeners


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: 32-bit words in the host's (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def _loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def listening_sockets(pid: int) -> set[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """The (address, port) pairs process *pid* listens on (TCP, IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def speaks_tls(port: int, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)):
            return True
    except (ssl.SSLError, OSError):
        return False


def answer_to(port: int, data: bytes) -> bytes:
    """What a listener sends back to *data* (nothing if it closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            return sock.recv(1024)
        except (ConnectionResetError, TimeoutError):
            return b""


def test_beyond_loopback_only_the_thrift_task_port_and_the_jvms_local_jmx_listen(presto):
    """PrestoDB 0.296 starts its Thrift task server unconditionally and binds it to every
    interface (drift's ``thrift.server.*`` settings have no address): it speaks TLS only.
    The JVM's local JMX connector (started with the JMX agent, which keeps Airlift from
    starting an unauthenticated one) binds every interface too, takes connections from
    this machine only and serves one object under a random id. Everything else, HTTPS and
    the JMX agent itself, is on loopback (README, "Trino and Presto clusters")."""
    listeners = listening_sockets(presto._process.pid)
    assert {address for address, port in listeners if port == presto.https_port} in (
        {ipaddress.ip_address("127.0.0.1")},
        {ipaddress.ip_address("::ffff:127.0.0.1")},
    )
    beyond = {port for address, port in listeners if not _loopback(address)}
    assert len(beyond) == 2 and presto.https_port not in beyond
    (thrift,) = [port for port in beyond if speaks_tls(port, presto.ca_file)]
    (jmx,) = beyond - {thrift}
    # A plain Thrift call (framed, binary) gets no answer: the connection is closed.
    call = b"\x00\x00\x00\x0d\x80\x01\x00\x01\x00\x00\x00\x01x\x00\x00\x00\x01"
    assert answer_to(thrift, call) == b""
    # Java RMI's handshake (JRMI, stream protocol) is answered: the JMX connector.
    assert answer_to(jmx, b"JRMI\x00\x02\x4b").startswith(b"N")


# --------------------------------------------------------------------------- install, stop


def test_a_second_start_reuses_the_cache(presto):
    # (That the server stops cleanly is checked when the session's `presto` stops.)
    steps = []
    home = ensure_presto(DEFAULT_CACHE_DIR, steps.append)
    assert steps == []  # nothing downloaded or compiled again
    assert (home / COMPLETE).exists()


def test_killed_download_is_redone(tmp_path):
    cache = tmp_path / "cache"
    # What a download killed midway leaves: its temporary folder, and no marker.
    (cache / ".download-abc" / "server" / "lib").mkdir(parents=True)
    (cache / "server" / "lib").mkdir(parents=True)
    (cache / "server" / "lib" / "half.jar").write_bytes(b"PK")
    steps = []
    home = ensure_presto(cache, steps.append)
    assert steps == ["Downloading PrestoDB 0.296 with Maven (about 125 MB, once)"]
    assert (home / COMPLETE).exists()
    assert not (home / "lib" / "half.jar").exists()
    assert not (cache / ".download-abc").exists()
    assert (home / "lib" / "presto-main-0.296.jar").exists()
    plugins = {p.name for p in (home / "plugin").iterdir()}
    assert plugins == {"tpch", "datahub-password"}
    # The tpch plugin carries its own runtime dependencies, not the server's SPI.
    tpch = {p.name for p in (home / "plugin" / "tpch").iterdir()}
    assert "presto-tpch-0.296.jar" in tpch and any(n.startswith("guava-") for n in tpch)
    assert not any(n.startswith("presto-spi") for n in tpch)
    # A plugin built from another version of its source is built again, and only it.
    marker = home / "plugin" / "datahub-password" / COMPLETE
    marker.write_text("built from older source\n")
    assert ensure_presto(cache, steps.append) == home
    assert len(steps) == 1
    assert marker.read_text() != "built from older source\n"
    assert (home / "plugin" / "datahub-password" / "datahub-password.jar").exists()
    shutil.rmtree(cache)
