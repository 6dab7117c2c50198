"""DNs, hub group names and search filters (datahub.ldap.names): pure, no directory.

The same escaping against a real slapd is in tests/integration/test_ldap_directory.py.
"""

import pytest

from datahub.ldap.names import (
    dn_key,
    dn_within,
    group_filter,
    group_key,
    is_member,
    merge_groups,
    unnamed_groups,
    user_filter,
)

GROUPS = "ou=groups,dc=example,dc=com"
ANALYSTS = f"cn=analysts,{GROUPS}"
ADMINS = f"cn=hub-admins,{GROUPS}"
LOOKUP = "({login_attr}={login})"


# --- DNs --------------------------------------------------------------------------------------


def test_dns_compare_regardless_of_case_and_spaces():
    assert dn_key("CN=Analysts, OU=Groups,dc=Example,DC=com") == dn_key(ANALYSTS)
    assert dn_key(ANALYSTS) != dn_key(ADMINS)
    with pytest.raises(ValueError, match="not a valid LDAP DN"):
        dn_key("not a dn")


def test_escaped_and_hex_escaped_dn_values_compare_as_written():
    assert dn_key(f"cn=Smith\\, John,{GROUPS}") == dn_key(f"CN=smith\\, john,{GROUPS}")
    assert dn_key(f"cn=Smith\\, John,{GROUPS}") != dn_key(f"cn=Smith,cn=John,{GROUPS}")


def test_dn_within_a_base():
    assert dn_within(ANALYSTS, GROUPS)
    assert dn_within(ANALYSTS, "OU=Groups, DC=example,DC=com")
    assert dn_within(GROUPS, GROUPS)
    assert not dn_within("cn=analysts,ou=other,dc=example,dc=com", GROUPS)
    assert not dn_within("dc=com", GROUPS)
    assert dn_within(ANALYSTS, "")
    assert not dn_within("garbage", GROUPS)
    assert not dn_within(ANALYSTS, "garbage")


# --- Hub group names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        (ANALYSTS, "analysts"),
        (f"CN=Data Team,{GROUPS}", "Data Team"),
        (f"cn=Smith\\, John,{GROUPS}", "Smith, John"),
        (f"cn=caf\\C3\\A9,{GROUPS}", "café"),
        (f"cn=\\23hash\\2Bplus,{GROUPS}", "#hash+plus"),
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
        (f"cn=admins\\40sales,{GROUPS}", None),  # "@" written as a hex escape
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


def test_groups_below_the_base_without_a_name_of_their_own_are_reported():
    dns = [
        ANALYSTS,
        f"cn=admins@sales,{GROUPS}",
        f"cn=a+ou=b,{GROUPS}",
        f"cn=a+ou=b,{GROUPS}",  # once
        "cn=elsewhere,ou=apps,dc=example,dc=com",  # outside: not a hub group by design
    ]
    assert unnamed_groups(dns, GROUPS) == [f"cn=a+ou=b,{GROUPS}", f"cn=admins@sales,{GROUPS}"]


def test_membership_compares_dns_not_strings():
    assert is_member(["CN=ANALYSTS,ou=groups,dc=example,dc=com"], [ANALYSTS])
    assert not is_member([ADMINS], [ANALYSTS])
    assert not is_member([], [ANALYSTS])
    assert not is_member(["garbage"], ["garbage"])


# --- Filters: a name never widens a search ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", "(uid=alice)"),
        ("*", "(uid=\\2a)"),
        ("*)(uid=*", "(uid=\\2a\\29\\28uid=\\2a)"),
        ("alice)(|(userPassword=*", "(uid=alice\\29\\28|\\28userPassword=\\2a)"),
        ("alice\\", "(uid=alice\\5c)"),
        ("alice\x00", "(uid=alice\\00)"),
    ],
)
def test_a_typed_name_is_escaped_in_the_user_filter(name, expected):
    assert user_filter(LOOKUP, "uid", name) == expected


def test_search_filter_restricts_the_lookup_with_the_name_escaped_there_too():
    restriction = "(&({userattr}={username})(employeeType=staff))"
    assert user_filter(LOOKUP, "uid", "a*", restriction) == (
        "(&(uid=a\\2a)(&(uid=a\\2a)(employeeType=staff)))"
    )


def test_the_user_dn_and_uid_are_escaped_in_the_group_filter():
    template = "(|(member={userdn})(memberUid={uid}))"
    dn = "cn=Smith (IT)\\, John*,ou=people,dc=example,dc=com"
    assert group_filter(template, dn, "j*") == (
        "(|(member=cn=Smith \\28IT\\29\\5c, John\\2a,ou=people,dc=example,dc=com)(memberUid=j\\2a))"
    )
