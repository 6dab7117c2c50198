"""A real PrestoDB 0.296, as the local stack runs it: HTTPS only, the gateway's service
account signing in by password and acting as employees, catalog-level access rules."""

import os
import shutil
import socket

import pytest
import requests

from datahub.stack import demo
from datahub.stack.maven import COMPLETE
from datahub.stack.presto import (
    DEFAULT_CACHE_DIR,
    PrestoQueryError,
    PrestoServer,
    ensure_presto,
)


def refused(presto, sql, user=None, **kwargs) -> PrestoQueryError:
    with pytest.raises(PrestoQueryError) as error:
        presto.query(sql, user, **kwargs)
    return error.value


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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


# --------------------------------------------------------------------------- install, stop


def test_second_cluster_reuses_the_cache_and_stops_cleanly(presto, tmp_path):
    steps = []
    home = ensure_presto(DEFAULT_CACHE_DIR, steps.append)
    assert steps == []  # nothing downloaded or compiled again
    server = PrestoServer(tmp_path / "second", name="second", secrets=presto.secrets)
    server.start()
    try:
        assert server.query("SELECT current_user", "alice") == [["alice"]]
        pid = server._process.pid
    finally:
        server.stop()
    assert not server.running
    assert not listening(server.https_port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
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
