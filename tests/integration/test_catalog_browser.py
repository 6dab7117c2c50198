"""The schema browser's API on the real stack: every answer is read through the gateway as
the caller, so it is what Trino's rules let that person see (alice reads tpch's
``customer`` tables, bob does not, dave, a contractor, only ``tpch.tiny``); a schema of
thousands of tables pages from one metadata statement, and a search is one statement per
page. Also through a user's own server (the JupyterLab panel's way), with its hub token."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import trino

from datahub.stack import demo

TPCH_TABLES = {"customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"}
#: How many tables the "thousands of tables" schema gets.
MANY = 2000
#: How many statements at once make (and drop) them: each mostly waits on its round trips
#: to Trino, so on a quiet 2-core machine 16 at once take a third of the time 4 do (~6 s
#: instead of ~18 s for 2,000; under load both are bound by the CPU).
AT_ONCE = 16


@pytest.fixture(scope="module")
def metadata(stack, users):
    """``metadata(user, kind, **params) -> requests.Response`` from the service's API,
    with *user*'s hub token."""
    session = requests.Session()

    def ask(user: str, kind: str, **params) -> requests.Response:
        return session.get(
            f"{stack.hub_url}/services/datahub/api/metadata/{kind}",
            params=params,
            headers={"Authorization": f"token {users.token(user)}"},
            timeout=180,
        )

    return ask


def ok(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def trino_as(stack, user: str):
    """A cursor on the stack's Trino as *user* (the gateway's way in: the service account
    impersonating them), for setting up tables without spending anyone's quota."""
    server = stack.trino
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=server.https_port,
        http_scheme="https",
        http_session=server.http_session(),
        auth=trino.auth.BasicAuthentication(
            demo.TRINO_SERVICE_ACCOUNT, server.secrets[demo.TRINO_SERVICE_ACCOUNT]
        ),
        user=user,
    ).cursor()


def run_as(stack, user: str, statements: list[str], threads: int = AT_ONCE) -> None:
    def run(chunk: list[str]) -> None:
        cursor = trino_as(stack, user)
        for sql in chunk:
            cursor.execute(sql)
            cursor.fetchall()

    chunks = [statements[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, chunks))


def metadata_statements(stack, users, user: str) -> set[str]:
    """The ids of *user*'s latest metadata statements (their audited history)."""
    r = requests.get(
        f"{stack.hub_url}/services/datahub/api/queries",
        params={"user": "me", "limit": 1000},
        headers={"Authorization": f"token {users.token(user)}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return {q["query_id"] for q in r.json()["queries"] if q["source"] == "datahub-metadata"}


# --------------------------------------------------------------------------- tree


def stack_routing_groups(stack) -> dict[str, list[str]]:
    """The stack's routing groups and their clusters: ``default`` (and ``presto`` when a
    test of the run uses the session's PrestoDB)."""
    groups: dict[str, list[str]] = {}
    for cluster in stack.settings["clusters"]:
        groups.setdefault(cluster["routing_group"], []).append(cluster["name"])
    return groups


def test_alice_browses_the_routing_group_her_quota_allows(stack, metadata):
    assert ok(metadata("alice", "routing-groups")) == {
        "routing_groups": [
            {"name": name, "clusters": clusters, "default": name == "default"}
            for name, clusters in stack_routing_groups(stack).items()
        ]
    }


def test_routing_groups_follow_the_quota_policy(stack, users, metadata):
    policy = f"{stack.hub_url}/services/datahub/api/quota/policies/user/bob"
    admin = {"Authorization": f"token {users.token('carol')}"}
    r = requests.put(policy, json={"limits": {"routing_groups": []}}, headers=admin, timeout=60)
    assert r.status_code == 200, r.text
    try:
        assert ok(metadata("bob", "routing-groups")) == {"routing_groups": []}
    finally:
        requests.delete(policy, headers=admin, timeout=60)
    assert [g["name"] for g in ok(metadata("bob", "routing-groups"))["routing_groups"]] == list(
        stack_routing_groups(stack)
    )


def test_each_level_is_what_trino_lets_each_user_see(metadata):
    assert {"memory", "tpch"} <= set(
        ok(metadata("alice", "catalogs", cluster="default"))["catalogs"]
    )
    assert {"tiny", "sf1"} <= set(ok(metadata("alice", "schemas", catalog="tpch"))["schemas"])
    names = {
        t["name"] for t in ok(metadata("alice", "tables", catalog="tpch", schema="tiny"))["tables"]
    }
    assert names == TPCH_TABLES
    names = {
        t["name"] for t in ok(metadata("bob", "tables", catalog="tpch", schema="tiny"))["tables"]
    }
    assert names == TPCH_TABLES - {"customer"}
    assert ok(metadata("dave", "tables", catalog="tpch", schema="sf1"))["tables"] == []
    assert "orders" in {
        t["name"] for t in ok(metadata("dave", "tables", catalog="tpch", schema="tiny"))["tables"]
    }


def test_a_tables_columns_have_types_and_comments_and_row_fields_as_children(
    stack, users, metadata
):
    table = f"browse_{uuid.uuid4().hex[:8]}"
    run_as(
        stack,
        "alice",
        [
            f"CREATE TABLE memory.default.{table} (id bigint COMMENT 'the key', "
            "address ROW(street varchar, geo ROW(lat double, lon double))) "
            "COMMENT 'People and where they live'"
        ],
        threads=1,
    )
    try:
        for user in ("alice", "dave"):  # each reads the comment as themselves
            requests.post(
                f"{stack.hub_url}/services/datahub/api/metadata/refresh",
                headers={"Authorization": f"token {users.token(user)}"},
                timeout=60,
            ).raise_for_status()
            tables = ok(metadata(user, "tables", catalog="memory", schema="default"))["tables"]
            assert {
                "name": table,
                "type": "BASE TABLE",
                "comment": "People and where they live",
            } in tables
        columns = ok(
            metadata("alice", "describe", catalog="memory", schema="default", table=table)
        )["describe"]
    finally:
        run_as(stack, "alice", [f"DROP TABLE memory.default.{table}"], threads=1)
    assert columns[0] == {"name": "id", "type": "bigint", "comment": "the key"}
    address = columns[1]
    assert address["name"] == "address" and address["type"].startswith("row(")
    assert [f["name"] for f in address["fields"]] == ["street", "geo"]
    assert [(f["name"], f["type"]) for f in address["fields"][1]["fields"]] == [
        ("lat", "double"),
        ("lon", "double"),
    ]


def test_tables_without_a_comment_have_none_and_hidden_ones_stay_hidden(metadata):
    tables = ok(metadata("bob", "tables", catalog="tpch", schema="tiny"))["tables"]
    assert {"name": "orders", "type": "BASE TABLE"} in tables
    assert "customer" not in {t["name"] for t in tables}


def test_metadata_statements_go_through_the_users_quota_and_routing(stack, users, metadata):
    """A metadata statement is a query of the user's like any other: their quota can
    refuse it, and a routing hint they may not use is refused by the gateway's router."""
    policy = f"{stack.hub_url}/services/datahub/api/quota/policies/user/bob"
    admin = {"Authorization": f"token {users.token('carol')}"}
    r = requests.put(policy, json={"limits": {"queries_per_day": 0}}, headers=admin, timeout=60)
    assert r.status_code == 200, r.text
    try:
        requests.post(  # a statement on Trino, not an answer cached earlier
            f"{stack.hub_url}/services/datahub/api/metadata/refresh",
            headers={"Authorization": f"token {users.token('bob')}"},
            timeout=60,
        ).raise_for_status()
        refused = metadata("bob", "schemas", catalog="tpch")
        assert refused.status_code == 502
        assert refused.json()["message"].startswith("QuotaExceeded: ")
    finally:
        requests.delete(policy, headers=admin, timeout=60)
    assert "tiny" in ok(metadata("bob", "schemas", catalog="tpch"))["schemas"]
    routed = metadata("alice", "catalogs", cluster="nosuchgroup")
    assert routed.status_code == 502
    assert "There is no routing group or cluster named 'nosuchgroup'" in routed.json()["message"]


def test_bob_cannot_describe_the_customer_table_trino_hides_from_him(metadata):
    columns = ok(metadata("alice", "describe", catalog="tpch", schema="tiny", table="customer"))
    assert "custkey" in [c["name"] for c in columns["describe"]]
    refused = metadata("bob", "describe", catalog="tpch", schema="tiny", table="customer")
    assert refused.status_code == 502
    message = refused.json()["message"]
    assert "customer" in message and "\n" not in message and "at " not in message


def test_a_bad_request_gets_one_sentence(metadata):
    r = metadata("alice", "search", catalog="tpch")
    assert r.status_code == 400
    assert r.json()["message"] == "Listing search needs the text to search for (?text=…)."
    r = metadata("alice", "tables", catalog="tpch", schema="tiny", limit="5000")
    assert r.status_code == 400
    assert r.json()["message"] == "offset must be 0 or more and limit between 1 and 1000."


# --------------------------------------------------------------------------- search


def test_search_finds_tables_and_columns_trino_shows_the_user(metadata):
    def hits(user: str) -> set[tuple[str, str, str | None]]:
        answer = ok(metadata(user, "search", catalog="tpch", schema="tiny", text="CUSTKEY"))
        assert answer["next_offset"] is None
        return {(h["schema"], h["table"], h.get("column")) for h in answer["search"]}

    assert hits("alice") == {
        ("tiny", "customer", "custkey"),
        ("tiny", "orders", "custkey"),
    }
    assert hits("bob") == {("tiny", "orders", "custkey")}
    tables = ok(metadata("alice", "search", catalog="tpch", schema="tiny", text="item"))["search"]
    assert tables == [{"schema": "tiny", "table": "lineitem", "type": "BASE TABLE"}]


def test_search_text_is_matched_literally_not_as_a_like_pattern(stack, metadata):
    table = f"browse_{uuid.uuid4().hex[:8]}"
    run_as(
        stack, "alice", [f"CREATE TABLE memory.default.{table} (a_b bigint, axb bigint)"], threads=1
    )
    try:

        def columns(text: str) -> list[str]:
            answer = ok(metadata("alice", "search", catalog="memory", schema="default", text=text))
            return [h["column"] for h in answer["search"] if h["table"] == table and "column" in h]

        assert columns("a_b") == ["a_b"]
        assert columns("%") == []
        assert columns("a") == ["a_b", "axb"]
    finally:
        run_as(stack, "alice", [f"DROP TABLE memory.default.{table}"], threads=1)


# --------------------------------------------------------------------------- thousands


@pytest.fixture(scope="module")
def many_tables(stack):
    """``MANY`` tables in memory.default, named ``<prefix>_0000`` …, made as alice."""
    prefix = f"many_{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{i:04d}" for i in range(MANY)]
    run_as(stack, "alice", [f"CREATE TABLE memory.default.{n} (id bigint)" for n in names])
    yield prefix, names
    run_as(stack, "alice", [f"DROP TABLE IF EXISTS memory.default.{n}" for n in names])


def test_thousands_of_tables_page_from_one_metadata_statement(stack, users, metadata, many_tables):
    prefix, names = many_tables
    requests.post(
        f"{stack.hub_url}/services/datahub/api/metadata/refresh",
        headers={"Authorization": f"token {users.token('alice')}"},
        timeout=60,
    ).raise_for_status()
    before = metadata_statements(stack, users, "alice")
    listed, offset, pages = [], 0, 0
    while offset is not None:
        page = ok(
            metadata(
                "alice", "tables", catalog="memory", schema="default", offset=offset, limit=500
            )
        )
        assert len(page["tables"]) <= 500
        listed += [t["name"] for t in page["tables"]]
        offset, pages = page["next_offset"], pages + 1
    assert page["total"] == len(listed) >= MANY
    assert [n for n in listed if n.startswith(prefix)] == names
    assert pages == -(-len(listed) // 500)
    assert len(metadata_statements(stack, users, "alice") - before) == 1


def test_a_search_of_thousands_of_tables_is_one_statement_per_page(
    stack, users, metadata, many_tables
):
    prefix, names = many_tables
    before = metadata_statements(stack, users, "alice")
    found, offset, pages = [], 0, 0
    while offset is not None:
        answer = ok(
            metadata(
                "alice", "search", catalog="memory", text=f"{prefix}_01", offset=offset, limit=50
            )
        )
        assert len(answer["search"]) <= 50
        found += [h["table"] for h in answer["search"] if "column" not in h]
        offset, pages = answer["next_offset"], pages + 1
    expected = [n for n in names if n.startswith(f"{prefix}_01")]
    assert found == expected and len(expected) == 100
    assert pages == 2
    assert len(metadata_statements(stack, users, "alice") - before) == pages


# --------------------------------------------------------------------------- the panel's way


def test_a_users_server_answers_the_panel_with_the_servers_token(stack, users):
    """The JupyterLab panel asks the user's own server, which asks the service with the
    server's hub token: alice's server answers as alice, bob's as bob."""

    def tables(user: str) -> set[str]:
        r = requests.get(
            f"{stack.hub_url}/user/{user}/datahub/api/metadata/tables",
            params={"catalog": "tpch", "schema": "tiny"},
            headers={"Authorization": f"token {users.token(user)}"},
            timeout=180,
        )
        return {t["name"] for t in ok(r)["tables"]}

    assert tables("alice") == TPCH_TABLES
    assert tables("bob") == TPCH_TABLES - {"customer"}
    r = requests.get(
        f"{stack.hub_url}/user/alice/datahub/api/metadata/tables",
        params={"catalog": "tpch"},
        headers={"Authorization": f"token {users.token('alice')}"},
        timeout=60,
    )
    assert r.status_code == 400
    assert r.json()["message"] == "Listing tables needs the schema name (?schema=…)."


def test_the_panels_refresh_through_a_users_server_drops_that_users_answers(stack, users):
    def through_server(method: str, kind: str) -> requests.Response:
        return requests.request(
            method,
            f"{stack.hub_url}/user/alice/datahub/api/metadata/{kind}",
            params={"catalog": "tpch", "schema": "tiny"} if method == "GET" else None,
            headers={"Authorization": f"token {users.token('alice')}"},
            timeout=180,
        )

    ok(through_server("GET", "tables"))  # at least this answer is cached now
    assert ok(through_server("POST", "refresh"))["forgotten"] >= 1
    assert ok(through_server("POST", "refresh"))["forgotten"] == 0
    refused = through_server("POST", "tables")
    assert refused.status_code == 405
    assert refused.json()["message"] == "Only the refresh of metadata is a POST."
