"""Admins acting as a user, through the whole stack (hub, DataHub service, Trino) where the
switch is on (jupyterhub_config.py), and through a second gateway in front of the same
Trino where it is off: who may, what runs on Trino, what the audit and the user see, and
the admin's page of one user."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import trino
from trino.auth import JWTAuthentication

from datahub.audit import records
from datahub.identity import ACT_AS_ADMINS_ONLY, ACT_AS_HEADER, ACT_AS_OFF
from datahub.testing import BackgroundGateway, resolver_for, user_token

pytestmark = pytest.mark.e2e


def service_url(stack, path: str = "") -> str:
    return f"{stack.hub_url}/services/datahub/{path}"


def api(stack, token: str, path: str) -> requests.Response:
    return requests.get(
        service_url(stack, path), headers={"Authorization": f"token {token}"}, timeout=60
    )


def connect(gateway_port: int, token: str, act_as: str | None = None) -> Any:
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=gateway_port,
        http_scheme="http",
        user="whoever",
        auth=JWTAuthentication(token),
        allow_insecure_auth=True,
        http_headers={ACT_AS_HEADER: act_as} if act_as else None,
    )


def marked(sql: str) -> tuple[str, str]:
    """*sql* with a unique marker column, and the marker."""
    marker = f"act-as-{uuid.uuid4().hex[:12]}"
    return f"{sql}, '{marker}' AS marker", marker


def audit_record(stack, admin_token: str, query_id: str) -> dict[str, Any]:
    """Every audited field of a query once it finished (read as an admin)."""
    deadline = time.monotonic() + 30
    while True:
        detail = api(stack, admin_token, f"api/queries/{query_id}").json()
        if detail.get("finished") or time.monotonic() > deadline:
            return detail
        time.sleep(0.2)


def all_sql(stack, admin_token: str) -> str:
    return json.dumps(api(stack, admin_token, "api/queries?user=*&limit=1000").json())


def history_row(html: str, query_id: str) -> str:
    row = re.search(rf'<tr data-query-id="{query_id}">(.*?)</tr>', html, re.S)
    assert row, f"query {query_id} is not on the page"
    return row.group(1)


@pytest.fixture(scope="module")
def acted(stack, tokens, trino_query_info) -> dict[str, Any]:
    """carol runs a query as alice: its id, rows, and Trino's record of it."""
    sql, marker = marked("SELECT current_user AS who")
    cursor = connect(stack.settings["gateway_port"], tokens["carol"], act_as="alice").cursor()
    cursor.execute(sql)
    rows = cursor.fetchall()
    return {
        "query_id": cursor.query_id,
        "rows": rows,
        "marker": marker,
        "trino": trino_query_info(cursor.query_id),
    }


def test_an_admin_runs_a_query_as_the_user_on_trino(acted):
    assert acted["rows"] == [["alice", acted["marker"]]]
    assert acted["trino"]["session"]["user"] == "alice"


def test_the_audit_and_the_event_log_record_both_identities(stack, tokens, acted):
    record = audit_record(stack, tokens["carol"], acted["query_id"])
    assert (record["user"], record["acting_admin"], record["state"]) == (
        "alice",
        "carol",
        "FINISHED",
    )
    assert (record["groups"], record["admin"]) == (["analysts"], False)  # alice's, from the hub
    events = [
        json.loads(line)
        for line in (Path(stack.state_dir) / "logs" / "query-events.jsonl").read_text().splitlines()
        if acted["query_id"] in line
    ]
    assert {e["event"] for e in events} == {"query_submitted", "query_finished"}
    assert all((e["user"], e["acting_admin"]) == ("alice", "carol") for e in events)
    metrics = requests.get(f"{stack.settings['gateway_url']}/metrics", timeout=30).text
    assert "carol" not in metrics and "alice" not in metrics


def test_the_user_sees_the_query_marked_in_their_history(stack, tokens, pages, acted):
    assert acted["query_id"] in json.dumps(api(stack, tokens["alice"], "api/queries").json())
    page = pages("alice").get(service_url(stack, "queries"), timeout=60)
    assert page.status_code == 200
    assert "run by carol (admin)" in history_row(page.text, acted["query_id"])
    detail = pages("alice").get(service_url(stack, f"queries/{acted['query_id']}"), timeout=60)
    assert re.search(r"Run by admin</th><td>carol<", detail.text)


def test_follow_ups_are_authorised_again_and_bound_to_the_user(stack, tokens):
    gateway = stack.settings["gateway_url"]
    acting = {"Authorization": f"Bearer {tokens['carol']}", ACT_AS_HEADER: "alice"}
    # More rows than the gateway carries to a query's last page: a follow-up URI comes.
    sql = "SELECT current_user FROM tpch.tiny.orders"
    page = requests.post(f"{gateway}/v1/statement", data=sql, headers=acting, timeout=30).json()
    assert "nextUri" in page, page
    own = {"Authorization": f"Bearer {tokens['carol']}"}
    refused = requests.get(page["nextUri"], headers=own, timeout=30)
    assert refused.status_code == 403
    assert "was not issued to you" in refused.text
    rows = list(page.get("data") or [])
    while "nextUri" in page:
        page = requests.get(page["nextUri"], headers=acting, timeout=30).json()
        assert "error" not in page, page
        rows += page.get("data") or []
    assert rows == [["alice"]] * 15000


def test_a_non_admin_asking_to_act_as_someone_is_refused_and_nothing_runs(stack, tokens):
    sql, marker = marked("SELECT current_user AS who")
    cursor = connect(stack.settings["gateway_port"], tokens["bob"], act_as="alice").cursor()
    with pytest.raises(trino.exceptions.HttpError) as raised:
        cursor.execute(sql)
    assert str(raised.value).startswith("error 403")
    assert ACT_AS_ADMINS_ONLY in str(raised.value)
    assert marker not in all_sql(stack, tokens["carol"])


def test_acting_as_a_user_the_hub_does_not_know_says_so(stack, tokens):
    response = requests.post(
        f"{stack.settings['gateway_url']}/v1/statement",
        data="SELECT 1",
        headers={"Authorization": f"Bearer {tokens['carol']}", ACT_AS_HEADER: "nobody-here"},
        timeout=30,
    )
    assert response.status_code == 403
    assert json.loads(response.text)["error"]["message"].startswith(
        "There is no DataHub user 'nobody-here' to act as;"
    )


def test_with_the_switch_off_the_header_is_refused_and_nothing_runs(stack, tmp_path):
    carol = user_token("carol", "datahub-admins", admin=True)
    gateway = BackgroundGateway(
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        store_url=f"sqlite:///{tmp_path / 'datahub.sqlite'}",
        secret=b"act-as-switch-off-secret-0123456789",
        identity_resolver_class=resolver_for({"carol-token": carol}),
    )
    with gateway:
        assert gateway.service.allow_admin_act_as is False  # the default
        sql, marker = marked("SELECT current_user AS who")
        with pytest.raises(trino.exceptions.HttpError) as raised:
            connect(gateway.port, "carol-token", act_as="alice").cursor().execute(sql)
        assert ACT_AS_OFF in str(raised.value)
        own = connect(gateway.port, "carol-token").cursor()
        own.execute(sql)
        assert own.fetchall() == [["carol", marker]]
        with gateway.service.store.session() as session:
            ran = records.list_queries(session, records.QueryFilter())
        assert [(r["user"], r["acting_admin"]) for r in ran] == [("carol", None)]


def test_an_admin_opens_a_users_history_and_quota_and_the_user_sees_it(stack, tokens, pages, acted):
    carol = pages("carol")
    # Asking for HTML, as a browser's navigation does (no <img> or frame would be served).
    page = carol.get(
        service_url(stack, "admin/users/alice"), headers={"Accept": "text/html"}, timeout=60
    )
    assert page.status_code == 200
    text = page.text
    assert "Run queries as alice" in text and "%%sql --as alice" in text
    assert 'data-limit="queries_per_day"' in text  # alice's quota table
    assert "run by carol (admin)" in history_row(text, acted["query_id"])
    # alice's own history page lists carol's view.
    mine = pages("alice").get(service_url(stack, "queries"), timeout=60).text
    access = mine.split("Admin access to your account", 1)[1]
    assert re.search(r"<td>carol</td><td>history and quota page</td>", access)
    # The admin's list of everyone's queries links to the page of each user.
    everyone = carol.get(service_url(stack, "queries/all"), timeout=60).text
    assert 'href="/services/datahub/admin/users/alice"' in everyone


def test_the_users_view_as_json_for_admins(stack, tokens):
    view = api(stack, tokens["carol"], "api/admin/users/alice")
    assert view.status_code == 200
    body = view.json()
    assert (body["user"], body["groups"], body["act_as"]) == (
        "alice",
        ["analysts"],
        {"allowed": True, "header": ACT_AS_HEADER},
    )
    assert body["quota"]["user"] == "alice" and body["quota"]["lines"]
    assert all(q["user"] == "alice" for q in body["queries"])
    assert api(stack, tokens["carol"], "api/admin/users/nobody-here").status_code == 404


def test_non_admins_may_not_open_a_users_page_or_its_api(stack, tokens, pages):
    assert pages("bob").get(service_url(stack, "admin/users/alice"), timeout=60).status_code == 403
    refused = api(stack, tokens["bob"], "api/admin/users/alice")
    assert refused.status_code == 403
    assert refused.json()["message"] == "Only DataHub administrators may do this."


def test_sql_as_a_user_in_an_admins_notebook(users):
    kernel = users.kernel("carol")
    help_text = kernel.execute("%sql --help")["stdout"]
    assert "--as USER" in help_text
    out = kernel.execute("%%sql --as alice -o who\nSELECT current_user AS who")
    assert out["status"] == "ok", out
    assert kernel.value("who['who'].tolist()") == ["alice"]
    shown = json.dumps(out["outputs"])
    assert "as alice (acting as admin carol)" in shown
