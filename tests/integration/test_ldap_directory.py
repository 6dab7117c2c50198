"""The authenticator against real slapd servers of its own (no hub): groups from every
kind of group and from memberOf, admins, disabled and deleted accounts, refresh, TLS
(StartTLS and LDAPS with a test CA), failover between servers and timeouts.

Each test that changes the directory works on people of its own, so the order of the
tests does not matter. The hub-level behaviour is in test_ldap_hub.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import subprocess
import threading

import ldap3
import pytest
from ldap3.core.exceptions import LDAPBindError

from datahub.ldap import authenticator as auth
from datahub.ldap.authenticator import DataHubLDAPAuthenticator
from datahub.stack import demo
from datahub.stack.ldap import Slapd
from datahub.stack.process import free_port
from datahub.stack.tls import LocalCA

ANALYSTS, ADMINS = demo.ALLOWED_GROUP, demo.ADMIN_GROUP
# ldap3 checks host names with ssl.match_hostname, deprecated in Python 3.7+.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


def person(uid, *groups, locked=False, number=[30000]):  # noqa: B006 - a counter on purpose
    number[0] += 1
    return demo.Person(uid, f"{uid.title()} Test", groups, number[0], locked=locked)


PEOPLE = (
    person("alice", ANALYSTS),
    person("carol", ANALYSTS, ADMINS),
    person("dave", ANALYSTS),
    person("eve", "marketing"),
    person("frank", ANALYSTS, locked=True),
    # One person per test that changes the directory.
    person("henry", ANALYSTS, ADMINS),
    person("ivan", ANALYSTS),
    person("judy", ANALYSTS),
    person("kate", ANALYSTS),
    person("leo", ANALYSTS),
    person("mia", ANALYSTS),
)
GROUPS = demo.groups_of(PEOPLE) + (
    demo.Group("auditors", ("dave",), kind="groupOfUniqueNames"),
    demo.Group("unix-users", ("dave", "alice"), kind="posixGroup", gid_number=5000),
)


@pytest.fixture(scope="module")
def ca():
    return LocalCA("DataHub test CA")


@pytest.fixture(scope="module")
def secrets():
    return demo.new_service_secrets()


@pytest.fixture(scope="module")
def slapd(tmp_path_factory, ca, secrets):
    server = Slapd(
        tmp_path_factory.mktemp("ldap-primary"), secrets, people=PEOPLE, groups=GROUPS, ca=ca
    )
    server.start()
    yield server
    server.stop()


def make_authenticator(slapd, **settings) -> DataHubLDAPAuthenticator:
    defaults = dict(
        servers=[slapd.url],  # StartTLS
        tls_ca_file=str(slapd.ca_file),
        lookup_dn_search_user=demo.service_dn(demo.HUB_SERVICE_ACCOUNT),
        lookup_dn_search_password=slapd.secrets[demo.HUB_SERVICE_ACCOUNT],
        user_search_base=demo.PEOPLE_DN,
        user_attribute="uid",
        group_search_base=demo.GROUPS_DN,
        allowed_groups=[demo.group_dn(ANALYSTS)],
        admin_groups=[demo.group_dn(ADMINS)],
        connect_timeout=2,
        response_timeout=2,
    )
    return DataHubLDAPAuthenticator(**{**defaults, **settings})


class Handler:
    datahub_login_error = None


def sign_in(authenticator, username, password=None):
    handler = Handler()
    password = demo.demo_password(username.strip().lower()) if password is None else password
    data = {"username": username, "password": password}
    model = asyncio.run(authenticator.authenticate(handler, data))
    return model, handler.datahub_login_error


class User:
    def __init__(self, name):
        self.name = name


def refresh(authenticator, name):
    return asyncio.run(authenticator.refresh_user(User(name)))


def modify_member(slapd, group, uid, change="add", attribute="member"):
    value = demo.user_dn(uid) if attribute in ("member", "uniqueMember") else uid
    slapd.modify(
        f"dn: {demo.group_dn(group)}\nchangetype: modify\n{change}: {attribute}\n"
        f"{attribute}: {value}\n"
    )


# --- Groups -------------------------------------------------------------------------------


def test_groups_come_from_member_unique_member_member_uid_and_memberof(slapd):
    model, error = sign_in(make_authenticator(slapd), "dave")
    assert error is None
    # analysts: groupOfNames (member + memberOf), auditors: groupOfUniqueNames,
    # unix-users: posixGroup (memberUid).
    assert model["groups"] == ["analysts", "auditors", "unix-users"]
    assert demo.group_dn("auditors") in model["auth_state"]["ldap_groups"]


def test_memberof_alone_finds_the_groups_the_overlay_maintains(slapd):
    memberof_only = make_authenticator(slapd, group_membership_filter="")
    model, _ = sign_in(memberof_only, "dave")
    assert model["groups"] == ["analysts"]  # the overlay tracks groupOfNames only
    model, _ = sign_in(memberof_only, "carol")
    assert model["groups"] == ["analysts", "datahub-admins"]
    assert model["admin"] is True


def test_group_search_alone_finds_every_kind_of_group(slapd):
    search_only = make_authenticator(slapd, memberof_attribute="")
    model, _ = sign_in(search_only, "dave")
    assert model["groups"] == ["analysts", "auditors", "unix-users"]


def test_all_groups_become_hub_groups_not_only_allowed_ones(slapd):
    model, _ = sign_in(make_authenticator(slapd), "carol")
    assert model["groups"] == ["analysts", "datahub-admins"]
    assert model["admin"] is True
    assert sign_in(make_authenticator(slapd), "alice")[0]["admin"] is False


def test_people_outside_the_allowed_groups_are_refused(slapd):
    model, error = sign_in(make_authenticator(slapd), "eve")
    assert model is None
    assert error == auth.NOT_ALLOWED


@pytest.mark.parametrize("source", ["search", "memberof"])
def test_refresh_sees_new_groups_by_search_and_by_memberof(slapd, source):
    settings = {"group_membership_filter": ""} if source == "memberof" else {}
    settings |= {"memberof_attribute": ""} if source == "search" else {}
    authenticator = make_authenticator(slapd, **settings)
    group = f"new-{source}"
    before = refresh(authenticator, "ivan")
    assert group not in before["groups"]
    slapd.modify(
        f"dn: {demo.group_dn(group)}\nchangetype: add\nobjectClass: groupOfNames\n"
        f"cn: {group}\nmember: {demo.user_dn('ivan')}\n"
    )
    assert group in refresh(authenticator, "ivan")["groups"]
    slapd.modify(f"dn: {demo.group_dn(group)}\nchangetype: delete\n")
    assert group not in refresh(authenticator, "ivan")["groups"]


def test_removing_someone_from_the_admin_group_removes_admin_on_refresh(slapd):
    authenticator = make_authenticator(slapd)
    assert sign_in(authenticator, "henry")[0]["admin"] is True
    modify_member(slapd, ADMINS, "henry", "delete")
    model = refresh(authenticator, "henry")
    assert model["admin"] is False
    assert model["groups"] == ["analysts"]


def test_leaving_the_allowed_groups_signs_out_on_refresh(slapd):
    authenticator = make_authenticator(slapd)
    assert refresh(authenticator, "leo")["name"] == "leo"
    modify_member(slapd, ANALYSTS, "leo", "delete")
    assert refresh(authenticator, "leo") is False
    assert sign_in(authenticator, "leo")[1] == auth.NOT_ALLOWED


# --- Disabled and deleted accounts ------------------------------------------------------------


def test_a_locked_account_cannot_sign_in_and_refresh_signs_it_out(slapd):
    authenticator = make_authenticator(slapd)
    # Locked in the loaded data: ppolicy refuses the bind itself.
    assert sign_in(authenticator, "frank") == (None, auth.INVALID_CREDENTIALS)
    assert refresh(authenticator, "frank") is False
    # Locked by an administrator while signed in.
    assert sign_in(authenticator, "kate")[0]["name"] == "kate"
    slapd.modify(
        f"dn: {demo.user_dn('kate')}\nchangetype: modify\nadd: pwdAccountLockedTime\n"
        f"pwdAccountLockedTime: {demo.LOCKED_FOREVER}\n"
    )
    assert refresh(authenticator, "kate") is False
    assert sign_in(authenticator, "kate") == (None, auth.INVALID_CREDENTIALS)


def test_other_disabled_conventions_say_the_account_is_disabled(slapd):
    # A directory whose binds still work for disabled people (a flag attribute only).
    authenticator = make_authenticator(slapd, disabled_filter="(employeeType=disabled)")
    assert sign_in(authenticator, "mia")[0]["name"] == "mia"
    slapd.modify(
        f"dn: {demo.user_dn('mia')}\nchangetype: modify\nadd: employeeType\n"
        "employeeType: disabled\n"
    )
    assert sign_in(authenticator, "mia") == (None, auth.ACCOUNT_DISABLED)
    assert refresh(authenticator, "mia") is False


def test_a_deleted_account_is_signed_out_on_refresh(slapd):
    authenticator = make_authenticator(slapd)
    assert sign_in(authenticator, "judy")[0]["name"] == "judy"
    # refint (with memberof) removes her from her groups too.
    slapd.modify(f"dn: {demo.user_dn('judy')}\nchangetype: delete\n")
    assert refresh(authenticator, "judy") is False
    assert sign_in(authenticator, "judy") == (None, auth.INVALID_CREDENTIALS)


# --- No anonymous or unauthenticated binds, escaping -----------------------------------------


def test_slapd_refuses_unauthenticated_binds_and_anonymous_reads(slapd):
    # ldap3 will not even send a DN with an empty password; ask slapd with ldapwhoami.
    result = subprocess.run(
        ["ldapwhoami", "-x", "-H", slapd.url, "-D", demo.user_dn("alice"), "-w", ""],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "unauthenticated bind" in result.stderr
    anonymous = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE), auto_bind=True
    )
    anonymous.search(demo.BASE_DN, "(uid=*)", attributes=["uid"])
    assert anonymous.entries == []


def test_the_authenticator_never_binds_without_a_password(slapd):
    authenticator = make_authenticator(slapd)
    server = authenticator.server_list()[0]
    with pytest.raises(LDAPBindError):
        authenticator.directory().connect(server, demo.user_dn("alice"), "")
    for password in ("", " ", "\t"):
        assert sign_in(authenticator, "alice", password) == (None, auth.EMPTY_PASSWORD)


def test_an_empty_search_password_is_a_configuration_error_not_an_anonymous_search(slapd):
    authenticator = make_authenticator(slapd, lookup_dn_search_password="")
    assert sign_in(authenticator, "alice") == (None, auth.DIRECTORY_ERROR)
    wrong = make_authenticator(slapd, lookup_dn_search_password="wrong")
    assert sign_in(wrong, "alice") == (None, auth.DIRECTORY_ERROR)


@pytest.mark.parametrize(
    "name",
    [
        "*",
        "a*",
        "alic*",
        "*)(uid=*",
        "alice)(uid=*",
        "alice)(|(uid=*",
        "alice\x00",
        "alice\\",
        "\\2a",
        "alice,ou=people",
        "uid=alice",
        "(uid=alice)",
    ],
)
def test_escaping_holds_even_if_a_hostile_name_reached_the_directory(slapd, name):
    # The login form refuses these names first; this proves the filter escaping alone
    # never matches anyone else.
    authenticator = make_authenticator(slapd)
    assert authenticator.lookup_account(name) is None
    assert authenticator.login_account(name, "alice-pass") is None


def test_look_alike_names_would_match_in_slapd_so_they_are_refused_first(slapd):
    authenticator = make_authenticator(slapd)
    # slapd folds fullwidth letters (RFC 4518), so the directory alone would say "alice".
    assert authenticator.lookup_account("ａｌｉｃｅ").name == "alice"
    assert sign_in(authenticator, "ａｌｉｃｅ", "alice-pass")[1] == auth.NON_ASCII_USERNAME


# --- TLS -----------------------------------------------------------------------------------


def test_starttls_with_the_test_ca(slapd):
    authenticator = make_authenticator(slapd)
    server = authenticator.server_list()[0]
    assert server.security == "starttls"
    conn = authenticator.directory().connect(server, demo.user_dn("alice"), "alice-pass")
    assert conn.tls_started
    conn.unbind()
    assert sign_in(authenticator, "alice")[0]["name"] == "alice"


def test_ldaps_with_the_test_ca(slapd):
    authenticator = make_authenticator(slapd, servers=[slapd.ldaps_url])
    server = authenticator.server_list()[0]
    assert server.security == "ldaps"
    conn = authenticator.directory().connect(server, demo.user_dn("alice"), "alice-pass")
    assert conn.server.ssl
    conn.unbind()
    assert sign_in(authenticator, "alice")[0]["name"] == "alice"


@pytest.mark.parametrize("transport", ["starttls", "ldaps"])
def test_a_certificate_from_another_ca_is_refused(slapd, tmp_path, caplog, transport):
    wrong_ca = LocalCA("Someone else's CA").write_certificate(tmp_path / "wrong-ca.pem")
    url = slapd.url if transport == "starttls" else slapd.ldaps_url
    authenticator = make_authenticator(slapd, servers=[url], tls_ca_file=str(wrong_ca))
    with caplog.at_level(logging.WARNING):
        assert sign_in(authenticator, "alice") == (None, auth.DIRECTORY_DOWN)
    assert "certificate verify failed" in caplog.text.lower()


def test_certificates_are_verified_by_default(slapd):
    # No tls_ca_file: the system's CAs, which do not know the test CA.
    authenticator = make_authenticator(slapd, tls_ca_file="")
    assert sign_in(authenticator, "alice") == (None, auth.DIRECTORY_DOWN)
    # Turning verification off is an explicit choice.
    unverified = make_authenticator(slapd, tls_ca_file="", tls_kwargs={"validate": ssl.CERT_NONE})
    assert sign_in(unverified, "alice")[0]["name"] == "alice"


# --- Failover and timeouts ------------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never answers: a hung LDAP server."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class FullBacklog:
    """A listener whose accept queue is full: new connections are never completed, so
    connecting waits until the connect timeout (like a host dropping packets)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)

    def close(self):
        for s in [*self.fillers, self.sock]:
            s.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def full_backlog():
    server = FullBacklog()
    yield server
    server.close()


@pytest.fixture(scope="module")
def replica(tmp_path_factory, ca, secrets):
    """A second slapd with the same people: the failover target."""
    server = Slapd(
        tmp_path_factory.mktemp("ldap-replica"), secrets, people=PEOPLE, groups=GROUPS, ca=ca
    )
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(60)
def test_a_refused_server_fails_over_to_the_next(slapd, caplog):
    dead = f"ldap://127.0.0.1:{free_port()}"
    authenticator = make_authenticator(slapd, servers=[dead, slapd.url])
    with caplog.at_level(logging.WARNING):
        assert sign_in(authenticator, "alice")[0]["name"] == "alice"
    assert f"LDAP server {dead} failed" in caplog.text
    # The failed server is tried last from now on.
    order = authenticator._health.order(authenticator.server_list(), now=0)
    assert [s.url for s in order][-1] == dead


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_times_out_and_fails_over(slapd, silent_server):
    hung = f"ldap://127.0.0.1:{silent_server.port}"
    authenticator = make_authenticator(slapd, servers=[hung, slapd.url], response_timeout=1)
    assert sign_in(authenticator, "alice")[0]["name"] == "alice"
    assert silent_server.accepted  # it was tried, and given up on


@pytest.mark.timeout(60)
def test_a_server_that_cannot_be_connected_to_times_out_and_fails_over(slapd, full_backlog):
    unreachable = f"ldap://127.0.0.1:{full_backlog.port}"
    authenticator = make_authenticator(slapd, servers=[unreachable, slapd.url], connect_timeout=0.5)
    assert sign_in(authenticator, "alice")[0]["name"] == "alice"


@pytest.mark.timeout(60)
def test_when_every_server_is_down_the_user_is_told_and_it_is_logged(silent_server, caplog):
    dead = f"ldap://127.0.0.1:{free_port()}"
    hung = f"ldaps://127.0.0.1:{silent_server.port}"
    authenticator = DataHubLDAPAuthenticator(
        servers=[dead, hung],
        lookup_dn_search_user="uid=hub,dc=x",
        lookup_dn_search_password="pw",
        user_search_base="dc=x",
        user_attribute="uid",
        allowed_groups=["cn=analysts,dc=x"],
        connect_timeout=1,
        response_timeout=1,
    )
    with caplog.at_level(logging.WARNING):
        assert sign_in(authenticator, "alice", "pw") == (None, auth.DIRECTORY_DOWN)
        assert refresh(authenticator, "alice") is True  # signed-in people carry on
    assert "No LDAP server could be reached" in caplog.text
    assert dead in caplog.text and hung in caplog.text
    assert "Could not refresh alice" in caplog.text


@pytest.mark.timeout(60)
def test_failover_to_a_replica_while_the_primary_is_stopped(slapd, replica):
    authenticator = make_authenticator(slapd, servers=[slapd.url, replica.ldaps_url])
    assert refresh(authenticator, "alice")["name"] == "alice"
    slapd.stop()
    try:
        assert sign_in(authenticator, "alice")[0]["name"] == "alice"
        assert refresh(authenticator, "carol")["admin"] is True
    finally:
        slapd.start()
    # Back up: after server_retry_after the primary is first again.
    authenticator._health.succeeded(authenticator.server_list()[0])
    assert sign_in(authenticator, "alice")[0]["name"] == "alice"
