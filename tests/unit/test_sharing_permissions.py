"""Who may see, publish, change and unpublish a shared notebook; share specs."""

import pytest

from datahub.sharing.errors import SharingError
from datahub.sharing.metadata import parse_settings, parse_tags
from datahub.sharing.permissions import Role, Share, Viewer, access_for, parse_share, parse_shares

ALICE = Viewer("alice", frozenset({"analysts"}))
BOB = Viewer("bob", frozenset({"analysts"}))
DAVE = Viewer("dave", frozenset({"analysts", "contractors"}))
CAROL = Viewer("carol", frozenset({"datahub-admins"}), admin=True)


def test_the_owner_may_do_everything():
    access = access_for(ALICE, "alice", False, ())
    assert access.role is Role.OWNER
    assert access.can_view and access.can_publish and access.can_edit and access.can_unpublish


def test_a_private_notebook_is_invisible_to_others():
    access = access_for(BOB, "alice", False, ())
    assert access.role is Role.NONE
    assert not access.can_view


def test_a_group_share_makes_members_viewers_who_cannot_publish():
    access = access_for(BOB, "alice", False, (Share("group", "analysts"),))
    assert access.role is Role.VIEWER
    assert access.can_view and not access.can_publish and not access.can_edit
    assert not access.can_unpublish


def test_a_user_share_excludes_everyone_else_in_the_group():
    shares = (Share("user", "bob"),)
    assert access_for(BOB, "alice", False, shares).can_view
    assert not access_for(DAVE, "alice", False, shares).can_view


def test_editors_publish_versions_but_do_not_change_settings():
    access = access_for(BOB, "alice", False, (Share("user", "bob", "editor"),))
    assert access.role is Role.EDITOR
    assert access.can_publish and not access.can_edit and not access.can_unpublish


def test_the_highest_grant_wins():
    shares = (Share("group", "analysts", "viewer"), Share("user", "bob", "editor"))
    assert access_for(BOB, "alice", False, shares).role is Role.EDITOR


def test_public_notebooks_are_visible_to_everyone_as_viewers():
    access = access_for(DAVE, "alice", True, ())
    assert access.role is Role.VIEWER and access.can_view and not access.can_publish


def test_admins_see_and_unpublish_anything_but_do_not_edit_or_publish():
    access = access_for(CAROL, "alice", False, ())
    assert access.role is Role.NONE
    assert access.can_view and access.can_unpublish
    assert not access.can_publish and not access.can_edit


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("group:analysts", Share("group", "analysts", "viewer")),
        ("user:Bob", Share("user", "bob", "viewer")),
        ("user:bob:editor", Share("user", "bob", "editor")),
        ("group:Data Science:viewer", Share("group", "Data Science", "viewer")),
        (
            {"kind": "group", "name": "analysts", "role": "editor"},
            Share("group", "analysts", "editor"),
        ),
    ],
)
def test_share_specs_parse(spec, expected):
    assert parse_share(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("analysts", "should look like"),
        ("team:analysts", "share with user:NAME or group:NAME"),
        ("user:bob:owner", "is not a valid hub user name"),
        ("user:", "is not a valid hub user name"),
        ("user:../../admin", "is not a valid hub user name"),
        (42, "should be a string"),
    ],
)
def test_bad_share_specs_are_clear_errors(spec, message):
    with pytest.raises(SharingError) as error:
        parse_share(spec)
    assert message in error.value.message
    assert error.value.status == 400


def test_a_user_listed_twice_is_refused_and_the_owner_is_dropped():
    with pytest.raises(SharingError, match="listed twice"):
        parse_shares(["user:bob", "user:bob:editor"])
    assert parse_shares(["user:alice", "group:analysts"], owner="alice") == [
        Share("group", "analysts")
    ]


def test_settings_parse_only_what_is_given():
    settings = parse_settings({"title": "  Sales   by region ", "shares": ["group:analysts"]})
    assert settings.title == "Sales by region"
    assert settings.shares == (Share("group", "analysts"),)
    assert settings.description is None and settings.tags is None and settings.public is None
    assert settings.given == {"title", "shares"}


def test_tags_are_normalised_and_checked():
    assert parse_tags("Sales, weekly #sales") == ("sales", "weekly")
    with pytest.raises(SharingError, match="not allowed"):
        parse_tags(["<script>"])
    with pytest.raises(SharingError, match="title"):
        parse_settings({"title": "   "})


def test_the_publish_form_only_sends_the_settings_filled_in():
    from datahub.sharing.metadata import publish_form_settings

    form = {"title": "", "description": " ", "tags": "", "shares": "", "public": False}
    assert publish_form_settings(form) == {}
    form = {
        "title": "T",
        "tags": "a, b",
        "shares": "group:analysts\nuser:bob:editor",
        "public": True,
    }
    assert publish_form_settings(form) == {
        "title": "T",
        "tags": "a, b",
        "shares": ["group:analysts", "user:bob:editor"],
        "public": True,
    }
