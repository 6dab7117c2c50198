"""LDAP identity through a real JupyterHub's login form.

Two hubs:

* the shared local stack (``stack``, ``sign_in``), configured by jupyterhub_config.py:
  hostile input on the login page (and nothing logged that contains a password), and
  one account per person whatever the case or spaces typed;
* a small hub of this module's own, with its own slapd (StartTLS with a test CA) and a
  two-second ``auth_refresh_age``, for what needs the directory changed or stopped:
  refresh of groups, admin and disabled accounts over time and before every spawn, and
  the directory going down while people are signed in. Its servers are JupyterHub's
  mock single-user servers, so spawning takes a moment.
"""

from __future__ import annotations

import html
import secrets
import time
import uuid
from pathlib import Path

import pytest
import requests

from datahub import names
from datahub.ldap import authenticator as messages
from datahub.stack import demo
from datahub.stack.hub import HubProcess
from datahub.stack.ldap import Slapd
from datahub.stack.tls import LocalCA

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


def page_text(response: requests.Response) -> str:
    return html.unescape(response.content.decode(errors="replace"))


# --- Hostile input on the shared stack's login page -------------------------------------------


def _pw() -> str:
    """A password nobody has, recognisable if it ever shows up in a log."""
    return f"hostile-{secrets.token_hex(8)}"


# (username, password, message). Tornado strips the username and turns control characters
# (\x00-\x08, \x0e-\x1f) into spaces before the authenticator sees either field.
HOSTILE = [
    ("*", _pw(), messages.INVALID_USERNAME),
    ("*)(uid=*", _pw(), messages.INVALID_USERNAME),
    ("alice)(|(userPassword=*", _pw(), messages.INVALID_USERNAME),
    ("\\00", _pw(), messages.INVALID_USERNAME),
    ("ali\x00ce", _pw(), messages.INVALID_USERNAME),
    ("alice\x00", _pw(), messages.INVALID_CREDENTIALS),  # normalised to alice; wrong password
    ("uid=alice,ou=people,dc=datahub,dc=example", _pw(), messages.INVALID_USERNAME),
    ("alice,ou=people", _pw(), messages.INVALID_USERNAME),
    ("alice+uid=bob", _pw(), messages.INVALID_USERNAME),
    ('"alice"', _pw(), messages.INVALID_USERNAME),
    ("alice\\", _pw(), messages.INVALID_USERNAME),
    ("<script>alert(1)</script>", _pw(), messages.INVALID_USERNAME),
    ("alice;bob", _pw(), messages.INVALID_USERNAME),
    ("alice=bob", _pw(), messages.INVALID_USERNAME),
    ("#alice", _pw(), messages.INVALID_USERNAME),
    (" alice\n", _pw(), messages.INVALID_CREDENTIALS),  # normalised to alice; wrong password
    ("ali\nce", _pw(), messages.INVALID_USERNAME),
    ("alice\r\nX-Injected: 1", _pw(), messages.INVALID_USERNAME),
    ("a" * 65, _pw(), names.USERNAME_TOO_LONG),
    ("b" * 10_000, _pw(), names.USERNAME_TOO_LONG),
    ("ａｌｉｃｅ", "alice-pass", names.NON_ASCII_USERNAME),  # slapd itself would match alice
    ("\u0430lice", "alice-pass", names.NON_ASCII_USERNAME),  # Cyrillic а
    ("\u212aate", _pw(), names.NON_ASCII_USERNAME),  # Kelvin sign lowercases to k
    ("al\u200bice", "alice-pass", names.NON_ASCII_USERNAME),  # zero-width space
    ("", _pw(), names.EMPTY_USERNAME),
    ("alice", "x" * 1025 + _pw(), messages.PASSWORD_TOO_LONG),
    ("alice", "y" * 200_000 + _pw(), messages.PASSWORD_TOO_LONG),
    ("alice", "alice-pass\x00" + _pw(), messages.INVALID_CREDENTIALS),
    ("alice", "*", messages.INVALID_CREDENTIALS),
    ("alice", ")(uid=*", messages.INVALID_CREDENTIALS),
    ("alice", "\n", messages.EMPTY_PASSWORD),
    ("alice", "\x00", messages.EMPTY_PASSWORD),
    ("alice", "ALICE-PASS", messages.INVALID_CREDENTIALS),
    ("dc=datahub,dc=example", _pw(), messages.INVALID_USERNAME),
    ("admin", _pw(), messages.INVALID_CREDENTIALS),
]


@pytest.fixture(scope="module")
def hostile_results(stack, sign_in):
    """Every hostile sign-in, tried once: ``[(case, response)]``, plus the hub log offset."""
    log_file = stack.state_dir / "logs" / "jupyterhub.log"
    start = log_file.stat().st_size
    cases = list(HOSTILE)
    # The hub's own search account cannot sign in to the hub, with its real password.
    cases.append(
        (
            demo.HUB_SERVICE_ACCOUNT,
            stack.settings["ldap"]["search_password"],
            messages.INVALID_CREDENTIALS,
        )
    )
    results = [(case, sign_in(case[0], case[1])[1]) for case in cases]
    # One more refusal, of a name nobody has: once its line is in the log, so are the
    # lines of every sign-in before it (the hub handles them in order).
    marker = f"logmark{uuid.uuid4().hex[:12]}"
    sign_in(marker, "not-the-password")
    deadline = time.monotonic() + 60
    while True:
        log = log_file.read_bytes()[start:].decode(errors="replace")
        if marker in log or time.monotonic() > deadline:
            return results, log
        time.sleep(0.1)


def test_at_least_twenty_hostile_inputs_are_tried():
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("index", range(len(HOSTILE) + 1))
def test_hostile_sign_ins_are_refused_with_a_clear_message(hostile_results, index):
    results, _ = hostile_results
    (username, password, message), response = results[index]
    assert response.status_code == 403, (username[:40], response.status_code)
    page = page_text(response)
    assert message in page, (username[:40], message)
    assert "Sign in · DataHub" in page
    if len(password) >= 8:
        assert password not in page  # never echoed back
    assert "<script>alert(1)</script>" not in response.content.decode(errors="replace")


def test_no_password_reaches_the_hub_log(hostile_results):
    results, log = hostile_results
    assert "Login refused" in log  # the refusals were logged...
    for (username, password, _), _response in results:
        if len(password) >= 8:
            assert password not in log, f"password of {username[:20]!r} is in the hub log"
            assert password[-24:] not in log


def test_refusal_log_lines_cannot_be_forged(hostile_results):
    _, log = hostile_results
    assert "\nX-Injected: 1" not in log  # usernames are logged as repr, newlines escaped


def test_hostile_names_never_become_hub_users(hostile_results, hub):
    response = hub.api("GET", "/users")
    assert response.status_code == 200
    for user in response.json():
        assert names.is_valid_username(user["name"]), user["name"]


# --- One account per person --------------------------------------------------------------


@pytest.mark.parametrize("typed", [" Alice ", "ALICE", "alice\t", "  aLiCe"])
def test_case_and_spaces_sign_in_to_the_same_account(sign_in, hub, typed):
    session, response = sign_in(typed, "alice-pass")
    assert response.status_code == 302, page_text(response)[:300]
    me = session.get(response.url.split("/hub/")[0] + "/hub/api/user", timeout=30)
    assert me.json()["name"] == "alice"
    assert hub.api("GET", f"/users/{typed.strip()}").status_code in (404, 200)
    assert not any(u["name"] != u["name"].strip().lower() for u in hub.api("GET", "/users").json())


def test_a_fullwidth_look_alike_with_the_right_password_is_refused(sign_in, hub):
    _, response = sign_in("ａｌｉｃｅ", "alice-pass")
    assert response.status_code == 403
    assert names.NON_ASCII_USERNAME in page_text(response)
    assert hub.api("GET", "/users/ａｌｉｃｅ").status_code == 404


# --- A hub of our own: refresh, spawn, directory down -------------------------------------


PEOPLE = tuple(
    demo.Person(uid, f"{uid.title()} Refresh", groups, 40000 + i)
    for i, (uid, groups) in enumerate(
        [
            ("alice", (demo.ALLOWED_GROUP,)),
            ("nina", (demo.ALLOWED_GROUP, demo.ADMIN_GROUP)),
            ("otto", (demo.ALLOWED_GROUP,)),
            ("pia", (demo.ALLOWED_GROUP,)),
            ("quinn", (demo.ALLOWED_GROUP,)),
            ("rosa", (demo.ALLOWED_GROUP,)),
            ("sam", (demo.ALLOWED_GROUP,)),
            ("tom", (demo.ALLOWED_GROUP,)),
            ("uma", (demo.ALLOWED_GROUP,)),
            ("walt", (demo.ALLOWED_GROUP,)),
            ("vera", (demo.ALLOWED_GROUP, demo.ADMIN_GROUP)),  # keeps the admin group non-empty
            ("xena", (demo.ALLOWED_GROUP,)),
        ]
    )
)
#: Sales keeps a group named like the admin group in an OU of its own; xena is in it.
SALES_ADMINS = demo.Group(demo.ADMIN_GROUP, ("xena",), ou="sales")
GROUPS = demo.groups_of(PEOPLE) + (demo.Group("reporting", ("alice",)), SALES_ADMINS)
REFRESH_AGE = 2

# JupyterHub's own page templates: DataHub's need the nav bar of jupyterhub_config.py, and
# the login page's refusal messages come from the authenticator either way.
HUB_CONFIG = """\
import sys
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "datahub-ldap"
c.DataHubLDAPAuthenticator.servers = [{ldap_url!r}]
c.DataHubLDAPAuthenticator.tls_ca_file = {ca_file!r}
c.DataHubLDAPAuthenticator.lookup_dn_search_user = {search_user!r}
c.DataHubLDAPAuthenticator.lookup_dn_search_password = {search_password!r}
c.DataHubLDAPAuthenticator.user_search_base = {people!r}
c.DataHubLDAPAuthenticator.user_attribute = "uid"
c.DataHubLDAPAuthenticator.group_search_base = {groups!r}
c.DataHubLDAPAuthenticator.allowed_groups = [{allowed!r}]
c.DataHubLDAPAuthenticator.admin_groups = [{admins!r}]
c.DataHubLDAPAuthenticator.connect_timeout = 2
c.DataHubLDAPAuthenticator.response_timeout = 2
c.DataHubLDAPAuthenticator.auth_refresh_age = {refresh_age}
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.tests.mocksu"]
# DataHub's admin scopes go to the hub group of the LDAP admin group, as in
# jupyterhub_config.py.
from datahub import scopes
from datahub.ldap.names import group_key
c.JupyterHub.custom_scopes = scopes.CUSTOM_SCOPES
admin_group = group_key({admins!r}, {groups!r})
c.JupyterHub.load_roles.append(
    {{"name": "datahub-admin", "scopes": [scopes.ADMIN], "groups": [admin_group]}}
)
"""


class RefreshHub(HubProcess):
    """A JupyterHub with DataHubLDAPAuthenticator against its own slapd."""

    def __init__(self, state: Path):
        self.slapd = Slapd(state / "ldap", demo.new_service_secrets(), people=PEOPLE,
                           groups=GROUPS, ca=LocalCA())  # fmt: skip
        config = HUB_CONFIG.format(
            ldap_url=self.slapd.url,
            ca_file=str(self.slapd.ca_file),
            search_user=demo.service_dn(demo.HUB_SERVICE_ACCOUNT),
            search_password=self.slapd.secrets[demo.HUB_SERVICE_ACCOUNT],
            people=demo.PEOPLE_DN,
            groups=demo.GROUPS_DN,
            allowed=demo.group_dn(demo.ALLOWED_GROUP),
            admins=demo.group_dn(demo.ADMIN_GROUP),
            refresh_age=REFRESH_AGE,
        )
        super().__init__(state / "hub", config, checkout=REPO)

    def start(self):
        self.slapd.start()
        super().start(timeout=60)

    def stop(self):
        super().stop()
        self.slapd.stop()

    def sign_in(self, username, password=None):
        password = demo.demo_password(username) if password is None else password
        return super().sign_in(username, password)

    def signed_in(self, username):
        session, response = self.sign_in(username)
        assert response.status_code == 302, page_text(response)[:500]
        return session

    def still_signed_in(self, session) -> bool:
        """A browser request to the home page: does the cookie still work?"""
        response = session.get(f"{self.url}/hub/home", allow_redirects=False, timeout=60)
        if response.status_code == 200:
            return True
        assert response.status_code == 302, response.status_code
        assert "/hub/login" in response.headers["Location"]
        return False

    def spawn(self, session, name):
        """Start the user's server as the browser does (GET /hub/spawn)."""
        return session.get(f"{self.url}/hub/spawn/{name}", allow_redirects=False, timeout=120)


@pytest.fixture(scope="module")
def refresh_hub(tmp_path_factory):
    hub = RefreshHub(tmp_path_factory.mktemp("refresh-hub"))
    hub.start()
    yield hub
    hub.stop()


def wait_for_refresh_age():
    time.sleep(REFRESH_AGE + 0.5)


def lock(slapd, uid):
    slapd.modify(
        f"dn: {demo.user_dn(uid)}\nchangetype: modify\nadd: pwdAccountLockedTime\n"
        f"pwdAccountLockedTime: {demo.LOCKED_FOREVER}\n"
    )


def change_member(slapd, group, uid, change):
    slapd.modify(
        f"dn: {demo.group_dn(group)}\nchangetype: modify\n{change}: member\n"
        f"member: {demo.user_dn(uid)}\n"
    )


def test_private_hub_signs_in_over_starttls_with_groups(refresh_hub):
    refresh_hub.signed_in("alice")
    user = refresh_hub.user("alice")
    assert set(user["groups"]) == {"analysts", "reporting"}
    assert user["admin"] is False


def test_group_changes_reach_the_hub_after_the_refresh_age(refresh_hub):
    session = refresh_hub.signed_in("otto")
    assert refresh_hub.user("otto")["groups"] == ["analysts"]
    change_member(refresh_hub.slapd, "reporting", "otto", "add")
    wait_for_refresh_age()
    assert refresh_hub.still_signed_in(session)
    assert set(refresh_hub.user("otto")["groups"]) == {"analysts", "reporting"}


def test_an_admin_removed_from_the_admin_group_loses_admin(refresh_hub):
    session = refresh_hub.signed_in("nina")
    assert refresh_hub.user("nina")["admin"] is True
    change_member(refresh_hub.slapd, demo.ADMIN_GROUP, "nina", "delete")
    wait_for_refresh_age()
    assert refresh_hub.still_signed_in(session)
    assert refresh_hub.user("nina")["admin"] is False


def test_a_disabled_account_is_signed_out_and_its_tokens_refused(refresh_hub):
    session = refresh_hub.signed_in("pia")
    token = refresh_hub.api("POST", "/users/pia/tokens", json={"expires_in": 600}).json()["token"]
    as_pia = {"Authorization": f"token {token}"}
    me = requests.get(f"{refresh_hub.url}/hub/api/user", headers=as_pia, timeout=30)
    assert me.status_code == 200
    lock(refresh_hub.slapd, "pia")
    wait_for_refresh_age()
    assert not refresh_hub.still_signed_in(session)
    me = requests.get(f"{refresh_hub.url}/hub/api/user", headers=as_pia, timeout=30)
    assert me.status_code == 403
    _, again = refresh_hub.sign_in("pia")
    assert again.status_code == 403
    assert messages.INVALID_CREDENTIALS in page_text(again)


def test_a_disabled_accounts_tokens_are_refused_even_without_a_browser(refresh_hub):
    # A server's token, or one for the Trino CLI, that no browser session goes with: the
    # refresh on the token's own request refuses it (the DataHub gateway asks the hub).
    refresh_hub.signed_in("walt")
    token = refresh_hub.api("POST", "/users/walt/tokens", json={"expires_in": 600}).json()["token"]
    as_walt = {"Authorization": f"token {token}"}
    me = requests.get(f"{refresh_hub.url}/hub/api/user", headers=as_walt, timeout=30)
    assert me.status_code == 200
    lock(refresh_hub.slapd, "walt")
    wait_for_refresh_age()
    me = requests.get(f"{refresh_hub.url}/hub/api/user", headers=as_walt, timeout=30)
    assert me.status_code == 403
    me = requests.get(f"{refresh_hub.url}/hub/api/user", headers=as_walt, timeout=30)
    assert me.status_code == 403
    assert "walt is disabled in the LDAP directory" in refresh_hub.log()


def test_a_deleted_account_is_signed_out(refresh_hub):
    session = refresh_hub.signed_in("quinn")
    refresh_hub.slapd.modify(f"dn: {demo.user_dn('quinn')}\nchangetype: delete\n")
    wait_for_refresh_age()
    assert not refresh_hub.still_signed_in(session)
    assert "quinn is no longer in the LDAP directory" in refresh_hub.log()


def test_groups_are_refreshed_at_spawn_without_waiting(refresh_hub):
    session = refresh_hub.signed_in("rosa")
    change_member(refresh_hub.slapd, "reporting", "rosa", "add")
    # Well inside the refresh age: only the spawn's own refresh can see the change.
    response = refresh_hub.spawn(session, "rosa")
    assert response.status_code == 302, page_text(response)[:500]
    refresh_hub.wait_for_server("rosa")
    assert set(refresh_hub.user("rosa")["groups"]) == {"analysts", "reporting"}
    assert refresh_hub.api("DELETE", "/users/rosa/server").status_code in (202, 204)


def test_a_disabled_account_cannot_spawn(refresh_hub):
    session = refresh_hub.signed_in("sam")
    lock(refresh_hub.slapd, "sam")
    response = refresh_hub.spawn(session, "sam")
    assert response.status_code == 403  # "auth has expired for sam, login again"
    time.sleep(1)
    assert refresh_hub.user("sam")["servers"] == {}


def test_when_the_directory_is_down_the_login_page_says_so_and_sessions_carry_on(refresh_hub):
    session = refresh_hub.signed_in("tom")
    token = refresh_hub.api("POST", "/users/tom/tokens", json={"expires_in": 600}).json()["token"]
    refresh_hub.slapd.stop()
    try:
        _, response = refresh_hub.sign_in("uma")
        assert response.status_code == 403
        page = page_text(response)
        assert messages.DIRECTORY_DOWN in page
        assert messages.INVALID_CREDENTIALS not in page
        wait_for_refresh_age()
        # Signed-in people keep working: browser, API token and a new server.
        assert refresh_hub.still_signed_in(session)
        me = requests.get(
            f"{refresh_hub.url}/hub/api/user",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert me.status_code == 200
        assert refresh_hub.spawn(session, "tom").status_code == 302
        refresh_hub.wait_for_server("tom")
        log = refresh_hub.log()
        assert "No LDAP server could be reached for a login" in log
        assert "Could not refresh tom from LDAP" in log
    finally:
        refresh_hub.slapd.start()
    refresh_hub.api("DELETE", "/users/tom/server")
    assert refresh_hub.sign_in("uma")[1].status_code == 302


# --- Same-named groups in different OUs -----------------------------------------------------


def token_scopes(hub, name):
    token = hub.api("POST", f"/users/{name}/tokens", json={"expires_in": 600}).json()["token"]
    me = requests.get(
        f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert me.status_code == 200, me.text
    return set(me.json()["scopes"])


def test_a_same_named_group_in_another_ou_does_not_make_an_admin(refresh_hub):
    # xena is in cn=datahub-admins,ou=sales,ou=groups: named like the admin group, but
    # another group. She must not join the hub group the admin role is granted to.
    refresh_hub.signed_in("xena")
    xena = refresh_hub.user("xena")
    assert xena["admin"] is False
    assert set(xena["groups"]) == {"analysts", "datahub-admins@sales"}
    assert "custom:datahub:admin" not in token_scopes(refresh_hub, "xena")
    # The real admin group's member gets the admin scopes through the role.
    refresh_hub.signed_in("vera")
    assert demo.ADMIN_GROUP in refresh_hub.user("vera")["groups"]
    assert {"custom:datahub:admin", "custom:datahub:quotas"} <= token_scopes(refresh_hub, "vera")
