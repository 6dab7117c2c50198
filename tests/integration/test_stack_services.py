"""A real slapd and a real Trino, as the local stack runs them."""

import subprocess

import ldap3
import pytest
import requests
import trino
from ldap3.core.exceptions import LDAPPasswordIsMandatoryError

from datahub.stack import demo
from datahub.stack.ldap import Slapd
from datahub.stack.process import ManagedProcess, ProcessError


@pytest.fixture(scope="session")
def service_secrets(stack):
    return stack.secrets["services"]


@pytest.fixture(scope="session")
def slapd(stack):
    """The test stack's directory (started once per session)."""
    return stack.slapd


@pytest.fixture(scope="session")
def trino_server(stack):
    """The test stack's Trino (started once per session)."""
    return stack.trino


def ldap_bind(slapd, dn, password):
    connection = ldap3.Connection(ldap3.Server(slapd.url), dn, password)
    return connection, connection.bind()


def trino_connect(server, user, *, principal=demo.TRINO_SERVICE_ACCOUNT, password=None):
    """The way the gateway connects: HTTPS, service account, session user = employee."""
    if password is None:
        password = server.secrets[principal]
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=server.https_port,
        http_scheme="https",
        # requests ignores session.verify when REQUESTS_CA_BUNDLE is set; this session
        # trusts exactly the cluster's certificate.
        http_session=server.http_session(),
        auth=trino.auth.BasicAuthentication(principal, password),
        user=user,
    )


def run(server, user, sql, **kwargs):
    cursor = trino_connect(server, user, **kwargs).cursor()
    cursor.execute(sql)
    return cursor.fetchall()


# --------------------------------------------------------------------------- LDAP


def test_person_binds_with_their_password(slapd):
    connection, ok = ldap_bind(slapd, demo.user_dn("alice"), "alice-pass")
    assert ok
    assert connection.extend.standard.who_am_i() == f"dn:{demo.user_dn('alice')}"


def test_wrong_password_is_refused(slapd):
    connection, ok = ldap_bind(slapd, demo.user_dn("alice"), "bob-pass")
    assert not ok
    assert connection.result["description"] == "invalidCredentials"


def test_empty_password_never_binds(slapd):
    # ldap3 refuses to send it ...
    with pytest.raises(LDAPPasswordIsMandatoryError):
        ldap_bind(slapd, demo.user_dn("alice"), "")
    # ... and slapd refuses the "unauthenticated bind" other clients send for it.
    result = subprocess.run(
        ["ldapwhoami", "-x", "-H", slapd.url, "-D", demo.user_dn("alice"), "-w", ""],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "unauthenticated bind" in result.stderr.lower()


def test_anonymous_cannot_read_the_directory(slapd):
    connection = ldap3.Connection(ldap3.Server(slapd.url))
    assert connection.bind()
    connection.search(demo.BASE_DN, "(uid=alice)", attributes=["*"])
    assert connection.entries == []


def test_hub_account_searches_people_and_groups_but_not_passwords(slapd, service_secrets):
    connection, ok = ldap_bind(
        slapd,
        demo.service_dn(demo.HUB_SERVICE_ACCOUNT),
        service_secrets[demo.HUB_SERVICE_ACCOUNT],
    )
    assert ok
    connection.search(demo.PEOPLE_DN, "(uid=*)", attributes=["uid", "userPassword"])
    assert sorted(e.uid.value for e in connection.entries) == sorted(p.uid for p in demo.PEOPLE)
    assert all(not r["raw_attributes"].get("userPassword") for r in connection.response)
    connection.search(demo.GROUPS_DN, f"(member={demo.user_dn('dave')})", attributes=["cn"])
    assert sorted(e.cn.value for e in connection.entries) == ["analysts", "contractors"]


def test_data_survives_a_restart(tmp_path, service_secrets):
    server = Slapd(tmp_path, service_secrets)
    server.start()
    server.stop()
    assert not server.pid_file.exists()
    server.start()
    try:
        assert ldap_bind(server, demo.user_dn("bob"), "bob-pass")[1]
    finally:
        server.stop()


# --------------------------------------------------------------------------- Trino


def test_trino_serves_https_with_its_own_certificate(trino_server):
    assert trino_server.url.startswith("https://127.0.0.1:")
    info = requests.get(f"{trino_server.url}/v1/info", verify=str(trino_server.ca_file))
    assert info.json()["starting"] is False


def test_trino_plain_http_refuses_clients(trino_server):
    response = requests.post(
        f"http://127.0.0.1:{trino_server.http_port}/v1/statement",
        data="SELECT 1",
        headers={"X-Trino-User": "alice"},
    )
    assert response.status_code == 403


def test_gateway_account_runs_queries_as_the_employee(trino_server):
    assert run(trino_server, "alice", "SELECT current_user") == [["alice"]]


def test_alice_reads_customers(trino_server):
    assert run(trino_server, "alice", "SELECT count(*) FROM tpch.sf1.customer") == [[150000]]
    assert run(trino_server, "alice", "SELECT count(*) FROM tpch.tiny.customer") == [[1500]]


def test_bob_may_not_read_customers(trino_server):
    with pytest.raises(trino.exceptions.TrinoUserError) as denied:
        run(trino_server, "bob", "SELECT count(*) FROM tpch.sf1.customer")
    assert denied.value.message == "Access Denied: Cannot select from table tpch.sf1.customer"
    assert run(trino_server, "bob", "SELECT count(*) FROM tpch.sf1.nation") == [[25]]


def test_contractors_read_only_tpch_tiny(trino_server):
    assert run(trino_server, "dave", "SELECT count(*) FROM tpch.tiny.nation") == [[25]]
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        run(trino_server, "dave", "SELECT count(*) FROM tpch.sf1.nation")


def test_people_outside_the_employee_group_cannot_query(trino_server):
    with pytest.raises(trino.exceptions.TrinoUserError, match="Cannot execute query"):
        run(trino_server, "eve", "SELECT 1")


def test_employees_write_tables_in_memory_default(trino_server):
    run(trino_server, "carol", "CREATE TABLE memory.default.carol_t AS SELECT 42 AS answer")
    assert run(trino_server, "carol", "SELECT answer FROM memory.default.carol_t") == [[42]]
    with pytest.raises(trino.exceptions.TrinoUserError, match="Cannot create schema"):
        run(trino_server, "carol", "CREATE SCHEMA memory.mine")


def test_show_catalogs_lists_what_employees_may_use(trino_server):
    catalogs = {row[0] for row in run(trino_server, "alice", "SHOW CATALOGS")}
    assert {"tpch", "memory"} <= catalogs


def test_gateway_account_reads_no_data_as_itself(trino_server):
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        run(trino_server, demo.TRINO_SERVICE_ACCOUNT, "SELECT count(*) FROM tpch.tiny.nation")


def test_other_principals_cannot_impersonate(trino_server):
    with pytest.raises(trino.exceptions.TrinoUserError, match="cannot impersonate user alice"):
        run(trino_server, "alice", "SELECT 1", principal=demo.HUB_SERVICE_ACCOUNT)


def test_gateway_account_cannot_impersonate_a_service_account(trino_server):
    with pytest.raises(trino.exceptions.TrinoUserError, match="cannot impersonate"):
        run(trino_server, demo.HUB_SERVICE_ACCOUNT, "SELECT 1")


def test_people_cannot_sign_in_to_trino_directly(trino_server):
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        run(trino_server, "alice", "SELECT 1", principal="alice", password="alice-pass")


def test_unknown_principal_is_refused(trino_server):
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        run(trino_server, "alice", "SELECT 1", principal="mallory", password="x")


def test_wrong_service_password_is_refused(trino_server):
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        run(trino_server, "alice", "SELECT 1", password="not-the-password")


# --------------------------------------------------------------------------- processes


def test_process_that_exits_early_fails_with_its_log(tmp_path):
    process = ManagedProcess(
        "failing", ["sh", "-c", "echo boom; exit 3"], log_file=tmp_path / "failing.log"
    )
    process.start()
    with pytest.raises(ProcessError, match=r"failing exited with status 3[\s\S]*boom"):
        process.wait_ready(lambda: False, 10, "nothing")


def test_process_that_never_gets_ready_times_out(tmp_path):
    process = ManagedProcess("sleeper", ["sleep", "60"], log_file=tmp_path / "sleeper.log")
    process.start()
    try:
        with pytest.raises(ProcessError, match="Timed out after 0.5s waiting for the moon"):
            process.wait_ready(lambda: False, 0.5, "the moon")
    finally:
        process.stop()
        process.stop()  # idempotent
    assert not process.running
