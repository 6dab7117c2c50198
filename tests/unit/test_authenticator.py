"""The authenticator's pure decisions, and its flow with the directory replaced by stubs.

The same flows against a real slapd are in tests/integration/test_ldap_*.py.
"""

import asyncio
import ssl

import pytest
from ldap3.core.exceptions import LDAPBindError
from traitlets import TraitError

from datahub import authenticator as auth
from datahub import names
from datahub.authenticator import (
    Account,
    DataHubLDAPAuthenticator,
    LDAPServer,
    ServerHealth,
    dn_key,
    dn_within,
    group_key,
    is_member,
    merge_groups,
    parse_server_url,
    password_problem,
)

GROUPS = "ou=groups,dc=example,dc=com"
ANALYSTS = f"cn=analysts,{GROUPS}"
ADMINS = f"cn=hub-admins,{GROUPS}"


# --- Server URLs and failover order ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "strategy", "expected"),
    [
        ("ldap://ldap1.example.com", "before_bind", ("ldap1.example.com", 389, "starttls")),
        ("ldap://ldap1.example.com:1389", "insecure", ("ldap1.example.com", 1389, "plain")),
        ("ldaps://ldap1.example.com", "before_bind", ("ldap1.example.com", 636, "ldaps")),
        ("ldaps://ldap1.example.com:1636/", "insecure", ("ldap1.example.com", 1636, "ldaps")),
        ("ldap://10.0.0.5:3389", "on_connect", ("10.0.0.5", 3389, "ldaps")),
        ("ldap://[::1]:389", "before_bind", ("::1", 389, "starttls")),
    ],
)
def test_server_urls_say_where_and_how_to_connect(url, strategy, expected):
    server = parse_server_url(url, strategy)
    assert (server.host, server.port, server.security) == expected


@pytest.mark.parametrize(
    "url",
    ["http://ldap.example.com", "ldap.example.com", "ldap://", "ldap://h:99999", "ldap://h/dc=x"],
)
def test_malformed_server_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_server_url(url)


def test_server_url_round_trips():
    assert LDAPServer("::1", 636, "ldaps").url == "ldaps://[::1]:636"
    assert parse_server_url("ldap://h:1389").url == "ldap://h:1389"


def test_failed_servers_go_last_until_they_may_be_retried():
    a, b, c = (LDAPServer(h, 389, "starttls") for h in ("a", "b", "c"))
    health = ServerHealth(retry_after=60)
    assert health.order([a, b, c], now=0) == [a, b, c]
    health.failed(a, now=10)
    assert health.order([a, b, c], now=11) == [b, c, a]
    health.failed(b, now=20)
    # Both failed: still tried (oldest failure first), after the healthy one.
    assert health.order([a, b, c], now=21) == [c, a, b]
    assert health.order([a, b, c], now=71) == [a, c, b]  # a may be retried
    health.succeeded(b)
    assert health.order([a, b, c], now=71) == [a, b, c]


# --- DNs and groups ----------------------------------------------------------------------


def test_dns_compare_regardless_of_case_and_spaces():
    assert dn_key("CN=Analysts, OU=Groups,dc=Example,DC=com") == dn_key(ANALYSTS)
    assert dn_key(ANALYSTS) != dn_key(ADMINS)
    with pytest.raises(ValueError):
        dn_key("not a dn")


def test_dn_within_a_base():
    assert dn_within(ANALYSTS, GROUPS)
    assert dn_within(ANALYSTS, "OU=Groups, DC=example,DC=com")
    assert dn_within(GROUPS, GROUPS)
    assert not dn_within("cn=analysts,ou=other,dc=example,dc=com", GROUPS)
    assert not dn_within("dc=com", GROUPS)
    assert dn_within(ANALYSTS, "")
    assert not dn_within("garbage", GROUPS)


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        (ANALYSTS, "analysts"),
        (f"CN=Data Team,{GROUPS}", "Data Team"),
        (f"cn=Smith\\, John,{GROUPS}", "Smith, John"),
        (f"cn=caf\\C3\\A9,{GROUPS}", "café"),
        ("not a dn", None),
    ],
)
def test_a_group_directly_below_the_base_is_named_by_its_rdn_value(dn, name):
    assert group_key(dn, GROUPS) == name


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        (f"cn=admins,ou=sales,{GROUPS}", "admins@sales"),
        (f"cn=admins,ou=it,{GROUPS}", "admins@it"),
        (f"cn=admins,ou=emea,ou=sales,{GROUPS}", "admins@emea@sales"),
        # Names that could pass for another group's are left out.
        (f"cn=admins@sales,{GROUPS}", None),
        (f"cn=admins+ou=sales,{GROUPS}", None),
        (f"cn=admins,ou=sal@es,{GROUPS}", None),
        ("cn=admins,ou=groups,dc=other,dc=com", None),  # outside the base
        (GROUPS, None),  # the base itself
    ],
)
def test_groups_in_ous_below_the_base_are_named_by_their_path(dn, name):
    assert group_key(dn, GROUPS) == name


def test_same_named_groups_in_different_ous_never_share_a_hub_name():
    names_ = {group_key(f"cn=admins,{ou}{GROUPS}", GROUPS) for ou in ("", "ou=it,", "ou=sales,")}
    assert names_ == {"admins", "admins@it", "admins@sales"}


def test_groups_from_search_and_memberof_are_merged_once():
    searched = [ANALYSTS, f"cn=unix,{GROUPS}"]
    member_of = [
        "CN=Analysts,OU=Groups,DC=example,DC=com",  # same group, other spelling
        ADMINS,
        f"cn=hub-admins,ou=sales,{GROUPS}",  # same name, another OU: another group
        "cn=elsewhere,ou=apps,dc=example,dc=com",  # outside the group base
        "not a dn",
    ]
    merged = merge_groups(searched, member_of, GROUPS)
    assert merged == [
        (ANALYSTS, "analysts"),
        (ADMINS, "hub-admins"),
        (f"cn=hub-admins,ou=sales,{GROUPS}", "hub-admins@sales"),
        (f"cn=unix,{GROUPS}", "unix"),
    ]
    # Without a base, every group counts, named by its whole DN.
    assert [name for _, name in merge_groups([], [ADMINS], "")] == ["hub-admins@groups@example@com"]


def test_membership_compares_dns_not_strings():
    assert is_member(["CN=ANALYSTS,ou=groups,dc=example,dc=com"], [ANALYSTS])
    assert not is_member([ADMINS], [ANALYSTS])
    assert not is_member([], [ANALYSTS])
    assert not is_member(["garbage"], ["garbage"])


# --- Passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", auth.EMPTY_PASSWORD),
        ("   ", auth.EMPTY_PASSWORD),
        ("\t\n", auth.EMPTY_PASSWORD),
        ("x" * 1025, auth.PASSWORD_TOO_LONG),
        ("secret\x00anything", auth.PASSWORD_NULL_BYTE),
        ("correct horse", None),
        (" leading and trailing spaces are kept ", None),
        ("ünïcödé-pass", None),
    ],
)
def test_passwords_refused_before_the_directory_is_asked(password, message):
    assert password_problem(password, 1024) == message


# --- The authenticator with stubbed directory calls -------------------------------------------


@pytest.fixture
def authenticator():
    return DataHubLDAPAuthenticator(
        servers=["ldaps://ldap1.example.com", "ldap://ldap2.example.com"],
        lookup_dn_search_user="uid=hub,ou=services,dc=example,dc=com",
        lookup_dn_search_password="search-secret",
        user_search_base="ou=people,dc=example,dc=com",
        user_attribute="uid",
        group_search_base=GROUPS,
        allowed_groups=[ANALYSTS],
        admin_groups=[ADMINS],
    )


class Handler:
    datahub_login_error = None


def account(name="alice", groups=((ANALYSTS, "analysts"),), disabled=False):
    return Account(f"uid={name},ou=people,dc=example,dc=com", name, tuple(groups), disabled)


def sign_in(authenticator, username, password="pw"):
    handler = Handler()
    model = asyncio.run(
        authenticator.authenticate(handler, {"username": username, "password": password})
    )
    return model, handler.datahub_login_error


def test_defaults_refresh_before_spawn_and_verify_certificates(authenticator):
    assert authenticator.manage_groups is True
    assert authenticator.refresh_pre_spawn is True
    assert authenticator.auth_refresh_strict is True
    tls = authenticator.tls_settings()
    assert tls.validate == ssl.CERT_REQUIRED


def test_tls_kwargs_override_the_defaults(authenticator, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    authenticator.tls_ca_file = str(ca)
    assert authenticator.tls_settings().ca_certs_file == str(ca)
    authenticator.tls_kwargs = {"validate": ssl.CERT_NONE}
    assert authenticator.tls_settings().validate == ssl.CERT_NONE


def test_a_missing_ca_file_is_a_directory_error(authenticator, tmp_path):
    authenticator.tls_ca_file = str(tmp_path / "missing.pem")
    with pytest.raises(auth.DirectoryError, match="TLS"):
        authenticator.tls_settings()


def test_servers_from_server_address_follow_tls_strategy():
    a = DataHubLDAPAuthenticator(server_address="ldap.example.com")
    assert a.server_list() == [LDAPServer("ldap.example.com", 389, "starttls")]
    a = DataHubLDAPAuthenticator(server_address="ldap.example.com", tls_strategy="on_connect")
    assert a.server_list() == [LDAPServer("ldap.example.com", 636, "ldaps")]
    a = DataHubLDAPAuthenticator(server_address="ldap.example.com", tls_strategy="insecure")
    assert a.server_list()[0].security == "plain"


def test_bad_configuration_is_refused_at_startup():
    with pytest.raises(TraitError, match="servers"):
        DataHubLDAPAuthenticator(servers=["http://ldap.example.com"])
    with pytest.raises(TraitError, match="admin_groups"):
        DataHubLDAPAuthenticator(admin_groups=["analysts"])
    with pytest.raises(TraitError, match="allowed_groups"):
        DataHubLDAPAuthenticator(allowed_groups=["not a dn"])


def test_never_binds_without_a_password(authenticator):
    server = authenticator.server_list()[0]
    for user, password in [("uid=alice,dc=x", ""), ("", "pw"), (None, None)]:
        with pytest.raises(LDAPBindError):
            authenticator.connect(server, user, password)


def test_hub_names_follow_datahub_names(authenticator):
    assert authenticator.normalize_username(" Alice ") == "alice"
    assert authenticator.validate_username("alice")
    assert not authenticator.validate_username("ａｌｉｃｅ")
    assert not authenticator.validate_username("a" * 65)
    authenticator.username_map = {"al": "alice"}
    assert authenticator.normalize_username(" AL ") == "alice"


def test_sign_in_uses_the_directorys_spelling(authenticator, monkeypatch):
    seen = []

    def login_account(username, password):
        seen.append(username)
        return account("alice")

    monkeypatch.setattr(authenticator, "login_account", login_account)
    model, error = sign_in(authenticator, "  ALICE ")
    assert error is None
    assert seen == ["alice"]
    assert model == {
        "name": "alice",
        "admin": False,
        "groups": ["analysts"],
        "auth_state": {
            "ldap_dn": "uid=alice,ou=people,dc=example,dc=com",
            "ldap_groups": [ANALYSTS],
        },
    }


def test_admin_group_members_are_admins_and_others_are_not(authenticator, monkeypatch):
    carol = account("carol", [(ANALYSTS, "analysts"), (ADMINS, "hub-admins")])
    monkeypatch.setattr(authenticator, "login_account", lambda u, p: carol)
    model, _ = sign_in(authenticator, "carol")
    assert model["admin"] is True
    assert model["groups"] == ["analysts", "hub-admins"]
    monkeypatch.setattr(authenticator, "login_account", lambda u, p: account("bob"))
    assert sign_in(authenticator, "bob")[0]["admin"] is False


def test_without_admin_groups_the_directory_leaves_admin_alone(authenticator, monkeypatch):
    authenticator.admin_groups = []
    monkeypatch.setattr(authenticator, "login_account", lambda u, p: account())
    assert sign_in(authenticator, "alice")[0]["admin"] is None


def test_admin_users_stay_admins(authenticator, monkeypatch):
    authenticator.admin_users = {"alice"}
    monkeypatch.setattr(authenticator, "login_account", lambda u, p: account())
    assert sign_in(authenticator, "alice")[0]["admin"] is True


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (None, auth.INVALID_CREDENTIALS),
        (account(disabled=True), auth.ACCOUNT_DISABLED),
        (account(groups=[]), auth.NOT_ALLOWED),
        (account(name="Ａlice"), names.INVALID_USERNAME),  # the directory's own name is bad
        (auth.DirectoryUnavailable(["ldap1: refused"]), auth.DIRECTORY_DOWN),
        (auth.DirectoryError("two entries match"), auth.DIRECTORY_ERROR),
    ],
    ids=["wrong", "disabled", "not-allowed", "bad-dir-name", "down", "dir-error"],
)
def test_each_refusal_has_its_own_message(authenticator, monkeypatch, outcome, message):
    def login_account(username, password):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(authenticator, "login_account", login_account)
    model, error = sign_in(authenticator, "alice")
    assert model is None
    assert error == message


def test_allowed_users_may_sign_in_outside_the_groups(authenticator, monkeypatch):
    authenticator.allowed_users = {"eve"}
    monkeypatch.setattr(authenticator, "login_account", lambda u, p: account("eve", []))
    assert sign_in(authenticator, "eve")[0]["name"] == "eve"


def test_check_allowed_compares_group_dns_case_insensitively(authenticator):
    model = {"auth_state": {"ldap_groups": ["CN=Analysts,OU=Groups,DC=example,DC=com"]}}
    assert asyncio.run(authenticator.check_allowed("alice", model)) is True
    assert asyncio.run(authenticator.check_allowed("alice", {"auth_state": None})) is False


def test_bad_input_never_reaches_the_directory(authenticator, monkeypatch):
    def login_account(username, password):
        raise AssertionError("the directory must not be asked")

    monkeypatch.setattr(authenticator, "login_account", login_account)
    for username, password in [("*", "pw"), ("alice", ""), ("ａｌｉｃｅ", "pw"), ("a" * 65, "x")]:
        assert sign_in(authenticator, username, password)[0] is None


class User:
    def __init__(self, name):
        self.name = name


def refresh(authenticator, monkeypatch, outcome, name="alice"):
    def lookup_account(username):
        assert username == name
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(authenticator, "lookup_account", lookup_account)
    return asyncio.run(authenticator.refresh_user(User(name)))


def test_refresh_returns_current_groups_and_admin(authenticator, monkeypatch):
    carol = account("carol", [(ANALYSTS, "analysts"), (ADMINS, "hub-admins")])
    model = refresh(authenticator, monkeypatch, carol, "carol")
    assert model["admin"] is True
    assert model["groups"] == ["analysts", "hub-admins"]
    demoted = refresh(authenticator, monkeypatch, account("carol"), "carol")
    assert demoted["admin"] is False
    assert demoted["groups"] == ["analysts"]


@pytest.mark.parametrize(
    "outcome",
    [None, account(disabled=True), account(groups=[(ADMINS, "hub-admins")])],
    ids=["deleted", "disabled", "left-allowed-groups"],
)
def test_refresh_signs_out_accounts_the_directory_revoked(authenticator, monkeypatch, outcome):
    assert refresh(authenticator, monkeypatch, outcome) is False


@pytest.mark.parametrize(
    "error",
    [auth.DirectoryUnavailable(["ldap1: timed out"]), auth.DirectoryError("search refused")],
    ids=["down", "error"],
)
def test_refresh_keeps_people_signed_in_when_the_directory_cannot_answer(
    authenticator, monkeypatch, error
):
    assert refresh(authenticator, monkeypatch, error) is True


@pytest.mark.parametrize(
    ("outcome", "blocked", "reason"),
    [
        (account(), set(), None),
        (None, set(), "is no longer in the LDAP directory"),
        (account(disabled=True), set(), "is disabled in the LDAP directory"),
        (account(groups=[(ADMINS, "hub-admins")]), set(), "is not in an allowed LDAP group"),
        (account(), {"alice"}, "is blocked on this hub (blocked_users)"),
    ],
    ids=["allowed", "deleted", "disabled", "not-allowed", "blocked"],
)
def test_account_refusal_says_why_someone_may_not_be_acted_as(
    authenticator, monkeypatch, outcome, blocked, reason
):
    authenticator.blocked_users = blocked
    monkeypatch.setattr(authenticator, "lookup_account", lambda username: outcome)
    assert asyncio.run(authenticator.account_refusal("alice")) == reason
