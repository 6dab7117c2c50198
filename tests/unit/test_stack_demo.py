"""The demo directory's data and its LDIF rendering."""

import base64
import hashlib

import pytest

from datahub.stack import demo
from datahub.stack.trino import access_rules, render_group_file


def parse_ldif(text: str) -> dict[str, dict[str, list[str]]]:
    """A small LDIF reader: entries separated by blank lines, ``name: value`` lines."""
    entries = {}
    for block in text.strip().split("\n\n"):
        attrs: dict[str, list[str]] = {}
        for line in block.splitlines():
            name, sep, value = line.partition(": ")
            assert sep, f"not an LDIF attribute line: {line!r}"
            attrs.setdefault(name, []).append(value)
        (dn,) = attrs.pop("dn")
        assert dn not in entries, f"duplicate entry {dn}"
        entries[dn] = attrs
    return entries


def check_ssha(hashed: str, password: str) -> bool:
    raw = base64.b64decode(hashed.removeprefix("{SSHA}"))
    digest, salt = raw[:20], raw[20:]
    return hashlib.sha1(password.encode() + salt).digest() == digest


@pytest.fixture
def secrets():
    return {demo.HUB_SERVICE_ACCOUNT: "hub-secret", demo.TRINO_SERVICE_ACCOUNT: "trino-secret"}


def test_every_person_is_listed_in_each_of_their_groups():
    members = demo.group_members()
    for person in demo.PEOPLE:
        for group in person.groups:
            assert person.uid in members[group]
    assert members[demo.ALLOWED_GROUP] == ["alice", "bob", "carol", "dave"]
    assert members[demo.ADMIN_GROUP] == ["carol"]
    assert members[demo.CONTRACTORS_GROUP] == ["dave"]
    assert "eve" not in members[demo.ALLOWED_GROUP]


def test_demo_passwords_are_fixed_and_printable():
    assert demo.person("alice").password == "alice-pass"
    assert demo.demo_password("eve") == "eve-pass"


def test_ldif_parses_with_parents_before_children(secrets):
    entries = parse_ldif(demo.render_ldif(secrets))
    seen = set()
    for dn in entries:
        parent = dn.partition(",")[2]
        assert dn == demo.BASE_DN or parent in seen, f"{dn} comes before its parent"
        seen.add(dn)


def test_ldif_has_people_with_hashed_passwords(secrets):
    entries = parse_ldif(demo.render_ldif(secrets))
    for person in demo.PEOPLE:
        entry = entries[person.dn]
        assert entry["uid"] == [person.uid]
        assert {"inetOrgPerson", "posixAccount"} <= set(entry["objectClass"])
        (hashed,) = entry["userPassword"]
        assert hashed.startswith("{SSHA}")
        assert check_ssha(hashed, person.password)
        assert person.password not in demo.render_ldif(secrets)


def test_ldif_groups_are_group_of_names_with_member_dns(secrets):
    entries = parse_ldif(demo.render_ldif(secrets))
    for group, uids in demo.group_members().items():
        entry = entries[demo.group_dn(group)]
        assert entry["objectClass"] == ["groupOfNames"]
        assert entry["member"] == [demo.user_dn(uid) for uid in uids]


def test_service_passwords_are_hashed_and_never_in_clear(secrets):
    text = demo.render_ldif(secrets)
    entries = parse_ldif(text)
    for uid, password in secrets.items():
        assert password not in text
        (hashed,) = entries[demo.service_dn(uid)]["userPassword"]
        assert check_ssha(hashed, password)


def test_service_account_without_secret_has_no_password():
    entries = parse_ldif(demo.render_ldif({demo.HUB_SERVICE_ACCOUNT: "hub-secret"}))
    assert "userPassword" in entries[demo.service_dn(demo.HUB_SERVICE_ACCOUNT)]
    trino_entry = entries[demo.service_dn(demo.TRINO_SERVICE_ACCOUNT)]
    assert "userPassword" not in trino_entry
    assert trino_entry["objectClass"] == ["account"]


def test_unknown_service_account_is_refused():
    with pytest.raises(ValueError, match="Unknown service accounts: mallory"):
        demo.render_ldif({"mallory": "x"})


def test_new_service_secrets_are_random_per_call():
    first, second = demo.new_service_secrets(), demo.new_service_secrets()
    assert set(first) == set(demo.SERVICE_ACCOUNTS)
    assert first != second
    assert all(len(password) >= 24 for password in first.values())


def test_trino_group_file_lists_members():
    text = render_group_file(demo.group_members())
    assert "analysts:alice,bob,carol,dave\n" in text
    assert "contractors:dave\n" in text


def test_only_the_gateway_account_may_impersonate_and_never_a_service_account():
    rules = access_rules()["impersonation"]
    assert all(rule["original_user"] == "datahub\\-trino" for rule in rules)
    assert rules[0] == {
        "original_user": "datahub\\-trino",
        "new_user": "datahub\\-hub|datahub\\-trino",
        "allow": False,
    }
