"""Admins acting as a user: who may, the identity it yields, what the audit keeps of it,
what the history shows, and the `%%sql --as` option."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from IPython.core.error import UsageError
from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from trino.exceptions import HttpError

from datahub import scopes, wire
from datahub.audit import events, records, views
from datahub.audit.models import AdminAccess, AuditedQuery
from datahub.extensions import sql as sql_magic
from datahub.extensions import trino_compat
from datahub.gateway import protocol
from datahub.identity import (
    ACT_AS_ADMINS_ONLY,
    ACT_AS_HEADER,
    ACT_AS_NEEDS_SCOPE,
    ACT_AS_OFF,
    AuthError,
    Identity,
    IdentityResolver,
    IdentityUnavailable,
    act_as_target,
    acting_identity,
)
from datahub.store import Store

CAROL = Identity("carol", ("datahub-admins",), admin=True, via="token", can_act_as=True)
#: carol with a token that lacks the act-as scope (her server's, a narrow one).
CAROL_NARROW = Identity("carol", ("datahub-admins",), admin=True, via="token")
BOB = Identity("bob", ("analysts",), admin=False, via="token")
ALICE_MODEL = {"kind": "user", "name": "alice", "admin": False, "groups": ["analysts"]}
SCOPE = "access:services!service=datahub"
TOKENS = {
    "carol-token": {
        **ALICE_MODEL,
        "name": "carol",
        "admin": True,
        "scopes": [SCOPE, scopes.ADMIN, scopes.ACT_AS],
    },
    "carol-narrow": {**ALICE_MODEL, "name": "carol", "admin": True, "scopes": [SCOPE]},
    "bob-token": {**ALICE_MODEL, "name": "bob", "scopes": [SCOPE]},
}


# ------------------------------------------------------------------ who may act as whom


@pytest.mark.parametrize("requested", [None, "", "   ", "carol", " CAROL "])
def test_no_header_or_ones_own_name_acts_as_oneself(requested):
    assert act_as_target(CAROL, requested, allowed=False) is None


def test_an_admin_may_act_as_a_user_when_the_service_allows_it():
    assert act_as_target(CAROL, " Alice ", allowed=True) == "alice"


def test_with_the_switch_off_everyone_hears_that_it_is_off():
    for actor in (CAROL, BOB):
        with pytest.raises(AuthError) as raised:
            act_as_target(actor, "alice", allowed=False)
        assert (raised.value.message, raised.value.status) == (ACT_AS_OFF, 403)


def test_a_non_admin_may_not_act_as_anyone():
    with pytest.raises(AuthError) as raised:
        act_as_target(BOB, "alice", allowed=True)
    assert (raised.value.message, raised.value.status) == (ACT_AS_ADMINS_ONLY, 403)


def test_an_admins_token_without_the_act_as_scope_may_not_act_as_anyone():
    # The hub's admin flag grants nothing: only the token's scope does.
    with pytest.raises(AuthError) as raised:
        act_as_target(CAROL_NARROW, "alice", allowed=True)
    assert (raised.value.message, raised.value.status) == (ACT_AS_NEEDS_SCOPE, 403)
    assert scopes.ACT_AS in ACT_AS_NEEDS_SCOPE


@pytest.mark.parametrize("requested", ["al ice", "alice*", "ａｌｉｃｅ", "x" * 200])
def test_a_name_that_cannot_be_a_user_is_an_unknown_user(requested):
    with pytest.raises(AuthError, match="There is no DataHub user") as raised:
        act_as_target(CAROL, requested, allowed=True)
    assert len(raised.value.message) < 200


def test_the_identity_is_the_users_with_the_admin_recorded():
    identity = acting_identity(CAROL, "alice", ALICE_MODEL)
    assert identity == Identity(
        "alice", ("analysts",), admin=False, via="token", acting_admin="carol"
    )


@pytest.mark.parametrize("model", [None, {}, {"kind": "service", "name": "alice"}])
def test_a_user_the_hub_does_not_know_is_refused(model):
    with pytest.raises(AuthError, match="There is no DataHub user 'alice'"):
        acting_identity(CAROL, "alice", model)


class HubUsers(IdentityResolver):
    """Tokens and hub users from dicts (the hub's API is tested below)."""

    async def user_model(self, token: str) -> dict[str, Any] | None:
        return TOKENS.get(token)

    async def hub_user(self, name: str) -> dict[str, Any] | None:
        return ALICE_MODEL if name == "alice" else None


def resolve(token: str, act_as: str | None, allow: bool = True) -> Identity:
    resolver = HubUsers(service_name="datahub")
    return asyncio.run(resolver.resolve(f"Bearer {token}", act_as, allow_act_as=allow))


def test_resolving_an_admins_request_to_act_as_a_user():
    assert resolve("carol-token", "alice").acting_admin == "carol"
    assert resolve("carol-token", "alice").groups == ("analysts",)
    assert resolve("carol-token", None) == Identity(
        "carol", ("analysts",), admin=True, can_act_as=True
    )
    with pytest.raises(AuthError, match=scopes.ACT_AS):
        resolve("carol-narrow", "alice")
    with pytest.raises(AuthError, match="no DataHub user 'nobody'"):
        resolve("carol-token", "nobody")
    with pytest.raises(AuthError, match="Only DataHub administrators"):
        resolve("bob-token", "alice")
    with pytest.raises(AuthError, match="turned off"):
        resolve("carol-token", "alice", allow=False)


def resolve_checked(account_check, act_as: str = "alice") -> Identity:
    resolver = HubUsers(service_name="datahub", account_check=account_check)
    return asyncio.run(resolver.resolve("Bearer carol-token", act_as, allow_act_as=True))


def test_acting_as_an_account_the_directory_refuses_is_refused():
    async def disabled(name):
        return "is disabled in the LDAP directory"

    with pytest.raises(AuthError) as raised:
        resolve_checked(disabled)
    assert raised.value.status == 403
    assert raised.value.message == (
        "You cannot act as alice: alice is disabled in the LDAP directory."
    )


def test_acting_as_an_account_the_directory_allows_goes_ahead():
    asked = []

    async def allowed(name):
        asked.append(name)
        return None

    assert resolve_checked(allowed).name == "alice"
    assert asked == ["alice"]


def test_when_the_directory_cannot_tell_nobody_is_acted_as():
    async def down(name):
        raise ConnectionError("ldap://ldap1: timed out")

    with pytest.raises(IdentityUnavailable, match="cannot confirm alice's account"):
        resolve_checked(down)


class _FakeHubUsersAPI:
    """GET /hub/api/users/{name} like the hub: 200 with a model, 404, or 403."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        calls = self.calls

        class UserHandler(web.RequestHandler):
            def get(self, name: str) -> None:
                calls.append(name)
                assert self.request.headers["Authorization"] == "token svc-token"
                if name == "alice":
                    self.write(ALICE_MODEL)
                elif name == "noscope":
                    self.write({"kind": "user", "name": "noscope", "admin": False})
                elif name == "forbidden":
                    raise web.HTTPError(403)
                else:
                    raise web.HTTPError(404)

        self.app = web.Application([(r"/hub/api/users/([^/]+)", UserHandler)])


def test_users_are_looked_up_on_the_hub_with_the_services_token_and_found_ones_cached():
    hub = _FakeHubUsersAPI()

    async def scenario() -> list[Any]:
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(hub.app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        hub_auth = HubAuth(api_url=f"http://127.0.0.1:{port}/hub/api", api_token="svc-token")
        resolver = IdentityResolver(service_name="datahub", hub_auth=hub_auth)
        try:
            found = [await resolver.hub_user("alice"), await resolver.hub_user("alice")]
            # "No such user" is asked again: the user may sign in for the first time.
            found += [await resolver.hub_user("nobody"), await resolver.hub_user("nobody")]
            for name in ("forbidden", "noscope"):
                with pytest.raises(IdentityUnavailable, match="try again shortly"):
                    await resolver.hub_user(name)
            return found
        finally:
            server.stop()

    assert asyncio.run(scenario()) == [ALICE_MODEL, ALICE_MODEL, None, None]
    assert hub.calls == ["alice", "nobody", "nobody", "forbidden", "noscope"]


# ------------------------------------------------------------------------ the audit

RECORD = records.new_record(
    query_id="20250131_093000_00001_abcde",
    **records.identity_fields(acting_identity(CAROL, "alice", ALICE_MODEL)),
    cluster="trino",
    sql="SELECT current_user",
    state="FINISHED",
    submitted_at=dt.datetime(2025, 1, 31, 9, 30, tzinfo=dt.UTC),
)


def test_the_record_keeps_both_identities_and_gives_them_back():
    assert (RECORD["user"], RECORD["acting_admin"], RECORD["admin"]) == ("alice", "carol", False)
    assert records.identity_of(RECORD) == acting_identity(CAROL, "alice", ALICE_MODEL)
    assert records.identity_of({**RECORD, "acting_admin": None}).acting_admin is None


def test_events_carry_the_acting_admin():
    for kind in (events.SUBMITTED, events.FINISHED, events.REJECTED):
        line = json.loads(json.dumps(events.event(kind, RECORD), default=str))
        assert (line["user"], line["acting_admin"]) == ("alice", "carol")


def test_the_history_marks_queries_an_admin_ran():
    assert views.page_row(RECORD)["run_by"] == "run by carol (admin)"
    assert views.page_row({**RECORD, "acting_admin": None})["run_by"] == ""
    assert dict(views.page_detail(RECORD))["Run by admin"] == "carol"
    assert views.api_query_detail(RECORD)["acting_admin"] == "carol"


def test_admin_views_are_shown_to_the_user():
    at = dt.datetime(2025, 1, 31, 9, 30, 5, tzinfo=dt.UTC)
    access = {"id": 1, "at": at, "admin": "carol", "user": "alice", "what": "history page"}
    assert views.page_access(access) == {
        "at": "2025-01-31 09:30:05",
        "admin": "carol",
        "what": "history page",
    }


@pytest.fixture
def sqlite_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    yield store
    store.dispose()


def test_the_migration_adds_the_act_as_column_and_table_as_modelled(sqlite_store):
    inspector = sa.inspect(sqlite_store.engine)
    for model in (AdminAccess, AuditedQuery):
        columns = {c["name"] for c in inspector.get_columns(model.__tablename__)}
        assert columns == set(model.__table__.columns.keys())
    indexes = {i["name"] for i in inspector.get_indexes(AdminAccess.__tablename__)}
    assert indexes == {i.name for i in AdminAccess.__table__.indexes}
    with sqlite_store.session() as session:
        records.insert_closed(session, RECORD)
        assert records.get_query(session, RECORD["query_id"])["acting_admin"] == "carol"


def test_admin_views_are_listed_per_user_newest_first(sqlite_store):
    t0 = dt.datetime(2025, 1, 31, 9, 0, tzinfo=dt.UTC)
    with sqlite_store.session() as session:
        for minutes, admin, user in [
            (0, "carol", "alice"),
            (5, "dave", "alice"),
            (9, "carol", "bob"),
        ]:
            records.record_admin_access(
                session, admin, user, "history page", t0 + dt.timedelta(minutes=minutes)
            )
        found = records.admin_accesses(session, "alice")
        assert [(a["admin"], a["at"]) for a in found] == [
            ("dave", t0 + dt.timedelta(minutes=5)),
            ("carol", t0),
        ]
        assert len(records.admin_accesses(session, "alice", limit=1)) == 1


# ------------------------------------------------------------------ %%sql --as USER


def test_the_magic_sends_the_header_the_gateway_reads():
    assert sql_magic.ACT_AS_HEADER == ACT_AS_HEADER


def test_as_is_an_option_of_the_magic_with_help():
    magic = sql_magic.SqlMagic(shell=None)
    flags, valued = sql_magic._option_names(magic.sql.parser)
    assert "--as" in valued
    assert sql_magic.split_options("--as alice SELECT 1", flags, valued) == (
        "--as alice",
        "SELECT 1",
    )
    assert "--as USER" in magic.sql.parser.format_help()


def test_a_connection_acting_as_a_user_sends_the_header_on_every_request():
    magic = sql_magic.SqlMagic(shell=None, gateway_url="http://127.0.0.1:1", token="t")
    acting = magic.connection(act_as="alice")
    assert trino_compat.new_request(acting).http_headers[ACT_AS_HEADER] == "alice"
    own = magic.connection()
    assert own is not acting
    assert ACT_AS_HEADER not in trino_compat.new_request(own).http_headers


def test_as_is_refused_for_the_subcommands():
    magic = sql_magic.SqlMagic(shell=None, gateway_url="http://127.0.0.1:1", token="t")
    with pytest.raises(UsageError, match="--as runs queries only"):
        magic.sql("--as alice history")


def test_the_summary_says_who_ran_the_query_as_whom():
    assert sql_magic.acting_note("alice", "carol") == "as alice (acting as admin carol)"
    assert sql_magic.acting_note(None, "carol") == ""


def test_a_gateway_refusal_shows_its_sentence():
    body = protocol.trino_error_body(ACT_AS_OFF, *wire.PERMISSION_DENIED)
    message = sql_magic._gateway_error(HttpError(f"error 403: {body!r}"), "http://gw")
    assert message == f"The DataHub gateway refused the query: {ACT_AS_OFF}"
    unknown = protocol.trino_error_body("There is no DataHub user 'x'.", "N", "USER_ERROR", 4)
    message = sql_magic._gateway_error(HttpError(f"error 403: {unknown!r}"), "http://gw")
    assert message.endswith("There is no DataHub user 'x'.")
