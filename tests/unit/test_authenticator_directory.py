"""The directory data and the test CA that the authenticator's integration tests (and the
local stack) run against: group kinds, memberOf, locked accounts, certificates."""

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from datahub.stack import demo
from datahub.stack.tls import LocalCA

SECRETS = {demo.HUB_SERVICE_ACCOUNT: "hub-secret"}


def entries(ldif: str) -> dict[str, dict[str, list[str]]]:
    parsed = {}
    for block in ldif.strip().split("\n\n"):
        attrs: dict[str, list[str]] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            attrs.setdefault(name, []).append(value)
        parsed[attrs.pop("dn")[0]] = attrs
    return parsed


PEOPLE = (
    demo.Person("ann", "Ann A", ("analysts",), 1),
    demo.Person("ben", "Ben B", ("analysts", "admins"), 2, locked=True),
)
GROUPS = demo.groups_of(PEOPLE) + (
    demo.Group("auditors", ("ann",), kind="groupOfUniqueNames"),
    demo.Group("unix", ("ann", "ben"), kind="posixGroup", gid_number=7000),
)


def test_groups_of_people_are_group_of_names_with_their_members():
    assert demo.groups_of(PEOPLE) == (
        demo.Group("analysts", ("ann", "ben")),
        demo.Group("admins", ("ben",)),
    )


def test_each_group_kind_lists_members_its_own_way():
    rendered = entries(demo.render_ldif(SECRETS, PEOPLE, GROUPS, password_policy=True))
    assert rendered[demo.group_dn("analysts")]["member"] == [
        demo.user_dn("ann"),
        demo.user_dn("ben"),
    ]
    auditors = rendered[demo.group_dn("auditors")]
    assert auditors["objectClass"] == ["groupOfUniqueNames"]
    assert auditors["uniqueMember"] == [demo.user_dn("ann")]
    unix = rendered[demo.group_dn("unix")]
    assert unix["objectClass"] == ["posixGroup"]
    assert unix["memberUid"] == ["ann", "ben"]
    assert unix["gidNumber"] == ["7000"]


def test_unknown_group_kinds_are_refused():
    with pytest.raises(ValueError, match="Unknown group kind"):
        demo.Group("x", ("ann",), kind="groupOfURLs")


def test_memberof_lists_group_of_names_only_as_the_overlay_does():
    rendered = entries(
        demo.render_ldif(SECRETS, PEOPLE, GROUPS, memberof=True, password_policy=True)
    )
    assert rendered[demo.user_dn("ann")]["memberOf"] == [demo.group_dn("analysts")]
    assert rendered[demo.user_dn("ben")]["memberOf"] == [
        demo.group_dn("analysts"),
        demo.group_dn("admins"),
    ]
    plain = entries(demo.render_ldif(SECRETS, PEOPLE[:1], GROUPS[:1]))
    assert "memberOf" not in plain[demo.user_dn("ann")]


def test_locked_people_and_the_password_policy():
    rendered = entries(demo.render_ldif(SECRETS, PEOPLE, GROUPS, password_policy=True))
    assert rendered[demo.user_dn("ben")]["pwdAccountLockedTime"] == [demo.LOCKED_FOREVER]
    assert "pwdAccountLockedTime" not in rendered[demo.user_dn("ann")]
    policy = rendered[demo.PASSWORD_POLICY_DN]
    assert "pwdPolicy" in policy["objectClass"]
    assert policy["pwdMaxFailure"] == ["0"]  # failed binds never lock anyone
    with pytest.raises(ValueError, match="password_policy"):
        demo.render_ldif(SECRETS, PEOPLE, GROUPS)


def test_the_demo_directory_is_unchanged_by_default():
    rendered = entries(demo.render_ldif(SECRETS))
    assert {dn for dn in rendered if dn.startswith("uid=") and "people" in dn} == {
        p.dn for p in demo.PEOPLE
    }
    assert demo.POLICIES_DN not in rendered


def test_local_ca_signs_server_certificates_for_local_names(tmp_path):
    ca = LocalCA("Test CA")
    ca_file = ca.write_certificate(tmp_path / "ca.pem")
    ca.issue(tmp_path / "server.pem", tmp_path / "server.key")
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
    assert cert.issuer == ca_cert.subject
    ca_cert.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0


def test_two_local_cas_are_unrelated():
    assert LocalCA().certificate_pem != LocalCA().certificate_pem
