"""The authenticator (datahub.ldap.authenticator): its options, the warnings about
inherited options it ignores, password checks, and its flow with the directory replaced by
stubs. DNs and group names are in test_ldap_names.py, server order in test_ldap_servers.py.

The same flows against a real slapd are in tests/integration/test_ldap_*.py.
"""

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
from ldap3.core.exceptions import LDAPBindError
from ldapauthenticator import LDAPAuthenticator
from traitlets import TraitError
from traitlets.config import Config

import datahub.authenticator
from datahub import names
from datahub.ldap import authenticator as auth
from datahub.ldap import options
from datahub.ldap.authenticator import DataHubLDAPAuthenticator, password_problem
from datahub.ldap.directory import Account, DirectoryError, DirectoryUnavailable
from datahub.ldap.servers import LDAPServer

GROUPS = "ou=groups,dc=example,dc=com"
ANALYSTS = f"cn=analysts,{GROUPS}"
ADMINS = f"cn=hub-admins,{GROUPS}"


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
    tls = authenticator.directory().tls_settings()
    assert tls.validate == ssl.CERT_REQUIRED


def test_tls_kwargs_override_the_defaults(authenticator, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    authenticator.tls_ca_file = str(ca)
    assert authenticator.directory().tls_settings().ca_certs_file == str(ca)
    authenticator.tls_kwargs = {"validate": ssl.CERT_NONE}
    assert authenticator.directory().tls_settings().validate == ssl.CERT_NONE


def test_a_missing_ca_file_is_a_directory_error(authenticator, tmp_path):
    authenticator.tls_ca_file = str(tmp_path / "missing.pem")
    with pytest.raises(DirectoryError, match="TLS"):
        authenticator.directory().tls_settings()


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
    directory = authenticator.directory()
    for user, password in [("uid=alice,dc=x", ""), ("", "pw"), (None, None)]:
        with pytest.raises(LDAPBindError):
            directory.connect(directory.servers[0], user, password)


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
        (DirectoryUnavailable(["ldap1: refused"]), auth.DIRECTORY_DOWN),
        (DirectoryError("two entries match"), auth.DIRECTORY_ERROR),
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
    [DirectoryUnavailable(["ldap1: timed out"]), DirectoryError("search refused")],
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


# --- The directory the options describe ---------------------------------------------------------


def test_the_directory_is_built_from_the_current_options(authenticator):
    directory = authenticator.directory()
    assert [s.url for s in directory.servers] == [
        "ldaps://ldap1.example.com:636",
        "ldap://ldap2.example.com:389",
    ]
    assert directory.search_user == "uid=hub,ou=services,dc=example,dc=com"
    assert directory.user_search_base == "ou=people,dc=example,dc=com"
    assert directory.name_attribute == "uid"  # user_attribute, without lookup_dn_user_dn_attribute
    assert directory.group_search_base == GROUPS
    authenticator.lookup_dn_user_dn_attribute = "cn"
    assert authenticator.directory().name_attribute == "cn"
    # Each question gets a fresh Directory; what failed recently is remembered across them.
    assert authenticator.directory().health is directory.health


# --- Inherited options DataHub ignores -----------------------------------------------------------

#: A value a deployment might set for each ignored option.
IGNORED_VALUES = {
    "bind_dn_template": "uid={username},ou=people,dc=example,dc=com",
    "use_lookup_dn_username": True,
    "group_search_filter": "(member={userdn})",
    "group_attributes": ["member"],
    "attributes": ["mail"],
}


def started(caplog, config: Config) -> list[str]:
    """The warnings logged while an authenticator starts with ``config``."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        DataHubLDAPAuthenticator(config=config)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("section", ["DataHubLDAPAuthenticator", "LDAPAuthenticator"])
@pytest.mark.parametrize("name", sorted(options.IGNORED_OPTIONS))
def test_an_ignored_inherited_option_is_named_in_one_warning_at_startup(caplog, section, name):
    config = Config()
    config[section][name] = IGNORED_VALUES[name]
    assert started(caplog, config) == [
        f"{section}.{name} is set, but DataHub ignores it ({options.IGNORED_OPTIONS[name]}); "
        "remove it from the configuration."
    ]


def test_lookup_dn_false_is_named_in_a_warning_and_true_is_not(caplog):
    config = Config()
    config.DataHubLDAPAuthenticator.lookup_dn = True
    assert started(caplog, config) == []
    config.DataHubLDAPAuthenticator.bind_dn_template = IGNORED_VALUES["bind_dn_template"]
    config.DataHubLDAPAuthenticator.lookup_dn = False
    warnings = started(caplog, config)
    assert len(warnings) == 2
    assert "DataHubLDAPAuthenticator.bind_dn_template is set" in warnings[0]
    assert warnings[1].startswith("DataHubLDAPAuthenticator.lookup_dn is set to False, but DataHub")


def test_the_options_datahub_uses_start_without_warnings(caplog):
    # The options of jupyterhub_config.py and the inherited ones DataHub reads.
    config = Config()
    a = config.DataHubLDAPAuthenticator
    a.server_address = "ldap.example.com"
    a.server_port = 389
    a.tls_strategy = "before_bind"
    a.tls_kwargs = {"validate": ssl.CERT_REQUIRED}
    a.lookup_dn = True
    a.lookup_dn_search_user = "uid=hub,ou=services,dc=example,dc=com"
    a.lookup_dn_search_password = "search-secret"
    a.lookup_dn_search_filter = "({login_attr}={login})"
    a.lookup_dn_user_dn_attribute = "uid"
    a.user_search_base = "ou=people,dc=example,dc=com"
    a.user_attribute = "uid"
    a.search_filter = "(employeeType=staff)"
    a.auth_state_attributes = ["mail"]
    a.group_search_base = GROUPS
    a.allowed_groups = [ANALYSTS]
    a.admin_groups = [ADMINS]
    a.auth_refresh_age = 300
    config.LDAPAuthenticator.valid_username_regex = names.USERNAME_PATTERN
    assert started(caplog, config) == []


#: Inherited options neither read by name nor in IGNORED_OPTIONS, and why that is right.
HANDLED_UPSTREAM = {
    "use_ssl": "ldapauthenticator turns use_ssl=True into tls_strategy, which DataHub reads",
    "escape_userdn": "ldapauthenticator itself warns that it has no effect",
    "lookup_dn": "DataHub's own (always on); False is warned about",
}


def test_every_inherited_option_is_either_read_or_named_as_ignored():
    source = "\n".join(p.read_text() for p in Path(auth.__file__).parent.glob("*.py"))
    for name in LDAPAuthenticator.class_own_traits(config=True):
        read = f"self.{name}" in source
        if name in options.IGNORED_OPTIONS:
            assert not read, f"DataHub reads {name} now; take it out of IGNORED_OPTIONS"
        elif name not in HANDLED_UPSTREAM:
            assert read, f"DataHub never reads LDAPAuthenticator.{name}; add it to IGNORED_OPTIONS"


# --- The former module path ------------------------------------------------------------------


def test_configuration_files_may_still_name_the_former_module():
    from traitlets.utils.importstring import import_item

    assert import_item("datahub.authenticator.DataHubLDAPAuthenticator") is (
        DataHubLDAPAuthenticator
    )
    assert datahub.authenticator.group_key(ANALYSTS, GROUPS) == "analysts"
