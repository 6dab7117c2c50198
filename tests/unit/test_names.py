"""User names: one spelling per person, look-alikes refused (datahub.names)."""

import pytest

from datahub import names


@pytest.mark.parametrize(
    "typed",
    ["alice", "Alice", "ALICE", " alice", "alice ", "  Alice\t", "\talice\n", "\u3000alice\xa0"],
)
def test_case_and_surrounding_whitespace_give_one_account(typed):
    assert names.normalize_username(typed) == "alice"
    assert names.validate_username(typed) == "alice"


def test_only_ascii_letters_are_lowercased():
    # str.lower() would turn the Kelvin sign into "k" and collide with a real name.
    assert names.normalize_username("\u212aate") == "\u212aate"
    assert names.normalize_username("\u212aate") != "kate"
    assert names.normalize_username("İrem") == "İrem"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", names.EMPTY_USERNAME),
        ("   ", names.EMPTY_USERNAME),
        ("ａｌｉｃｅ", names.NON_ASCII_USERNAME),  # fullwidth: NFKC would make it "alice"
        ("\u0430lice", names.NON_ASCII_USERNAME),  # Cyrillic a
        ("\u212aate", names.NON_ASCII_USERNAME),  # Kelvin sign
        ("al\u200bice", names.NON_ASCII_USERNAME),  # zero-width space inside
        ("alice\u200b", names.NON_ASCII_USERNAME),  # zero-width space is not whitespace
        ("ali ce", names.INVALID_USERNAME),
        ("ali\nce", names.INVALID_USERNAME),
        ("alice\x00", names.INVALID_USERNAME),
        ("*", names.INVALID_USERNAME),
        ("alice)(uid=*", names.INVALID_USERNAME),
        ("uid=alice,ou=people", names.INVALID_USERNAME),
        ("alice+cn=x", names.INVALID_USERNAME),
        ('"alice"', names.INVALID_USERNAME),
        ("alice\\", names.INVALID_USERNAME),
        ("<alice>", names.INVALID_USERNAME),
        ("alice;bob", names.INVALID_USERNAME),
        ("#alice", names.INVALID_USERNAME),
        ("1alice", names.INVALID_USERNAME),
        ("-alice", names.INVALID_USERNAME),
        ("a" * 65, names.USERNAME_TOO_LONG),
    ],
)
def test_unacceptable_names_are_refused_with_a_reason(typed, message):
    assert names.username_problem(names.normalize_username(typed)) == message
    with pytest.raises(names.UsernameError) as refused:
        names.validate_username(typed)
    assert refused.value.message == message


def test_longest_allowed_name_is_accepted():
    assert names.validate_username("a" * 64) == "a" * 64


@pytest.mark.parametrize("name", ["alice", "a", "jean-luc.picard_2", "x.y"])
def test_company_account_names_are_valid(name):
    assert names.is_valid_username(name)


@pytest.mark.parametrize("name", ["Alice", " alice", "ａｌｉｃｅ", ""])
def test_is_valid_username_needs_the_normalised_form(name):
    assert not names.is_valid_username(name)


def test_a_custom_pattern_still_refuses_non_ascii():
    assert names.username_problem("ａｌｉｃｅ", pattern=r".+") == names.NON_ASCII_USERNAME
    assert names.username_problem("Bob", pattern=r"[A-Za-z]+") is None


def test_normalising_is_idempotent():
    for typed in [" Alice ", "ａｌｉｃｅ", "BOB\t", "x"]:
        once = names.normalize_username(typed)
        assert names.normalize_username(once) == once
