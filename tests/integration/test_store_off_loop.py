"""A slow store call never delays anyone else: while a gallery search or the quota page
waits on the store (its table locked in PostgreSQL by this test), a concurrent query's
result pages keep flowing through the same gateway process.

The gateway runs in-process (`BackgroundGateway`) on a private PostgreSQL store, in
front of the stack's Trino, and asks the stack's hub about tokens like the real service
(so the gallery API and the query are alice's, with her own hub token). The proof is an
order of events, not a duration: the search is seen waiting on the lock in
``pg_locks``, then the query makes several page round trips, and only after them is the
lock released and the request answered.
"""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import nbformat
import pytest
import requests
import sqlalchemy as sa
from traitlets.config import Config

from datahub.testing import BackgroundGateway, wait_for

PREFIX = "/services/datahub/"
#: A query with many result pages (about 150 MB of rows); the test reads a few and
#: cancels it.
MANY_PAGES = "SELECT * FROM tpch.sf1.orders"
#: Page round trips the query must make while the search waits.
ROUND_TRIPS = 5


@pytest.fixture
def empty_postgres(postgres) -> str:
    engine = sa.create_engine(postgres.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return postgres.url


@pytest.fixture
def gateway(stack, empty_postgres):
    trino = stack.trino
    config = Config()
    # Tokens are checked by the stack's hub, as the managed service's are.
    config.HubAuth.api_url = f"{stack.hub_url}/hub/api"
    config.HubAuth.api_token = stack.settings["ops_token"]
    config.HubOAuth.oauth_client_id = "service-datahub-store-test"
    config.HubOAuth.access_scopes = {"access:services!service=datahub"}
    running = BackgroundGateway(
        clusters=[
            {
                "name": "trino",
                "url": trino.url,
                "ca_file": str(trino.ca_file),
                "user": trino.service_user,
                "password": trino.service_password,
            }
        ],
        store_url=empty_postgres,
        secret=b"store-off-the-loop-test-secret-0123",
        service_name="datahub",
        health_check_interval=0.5,
        reconcile_interval=0,
        config=config,
    )
    try:
        statuses = running.service.monitor.statuses
        wait_for(lambda: statuses["trino"].healthy, interval=0.05, what="a healthy cluster")
        yield running
    finally:
        running.close()


@pytest.fixture
def alice(users) -> dict[str, str]:
    return {"Authorization": f"token {users.token('alice')}"}


def published(gateway, headers: dict[str, str], title: str) -> int:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("%%sql\nSELECT 1"))
    response = requests.post(
        f"{gateway.url}{PREFIX}api/notebooks",
        json={"content": json.loads(nbformat.writes(nb)), "title": title},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def waiting_on(engine: sa.Engine, table: str) -> int:
    """How many sessions wait for a lock on *table*."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks "
                "WHERE relation = CAST(:table AS regclass) AND NOT granted"
            ),
            {"table": table},
        ).scalar_one()


def pages_flow_while_the_store_waits(
    gateway, headers: dict[str, str], table: str, path: str, params: dict[str, str]
) -> requests.Response:
    """Lock *table*, ask the service for *path* (whose store call then waits on the
    lock), and follow a running query's pages meanwhile; release the lock and return
    the answer to *path*."""
    # A query is running and its pages are being read.
    submitted = requests.post(
        f"{gateway.url}/v1/statement", data=MANY_PAGES, headers=headers, timeout=30
    )
    assert submitted.status_code == 200, submitted.text
    page = submitted.json()

    def next_page(page: dict[str, Any]) -> dict[str, Any]:
        response = requests.get(page["nextUri"], headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        following = response.json()
        assert "error" not in following, following["error"]
        return following

    page = wait_for(
        lambda: (p := next_page(page)).get("data") and p, interval=0.05, what="the first rows"
    )

    engine = sa.create_engine(gateway.service.store_url)
    slow = concurrent.futures.ThreadPoolExecutor(1)
    locker = engine.connect()
    try:
        # The store gets slow: the table is locked until we say so.
        locker.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        pending = slow.submit(
            requests.get,
            f"{gateway.url}{PREFIX}{path}",
            params=params,
            headers=headers,
            timeout=120,
        )
        wait_for(
            lambda: waiting_on(engine, table), interval=0.05, what=f"{path} waiting on the store"
        )

        # Meanwhile the query's pages flow: each round trip is answered while the
        # request is still waiting for the store.
        rows = 0
        for _ in range(ROUND_TRIPS):
            assert page.get("nextUri"), "the query ended before the test could follow it"
            page = next_page(page)
            rows += len(page.get("data") or ())
            assert not pending.done()
            # Still held up by the lock: the request, and maybe the query's own
            # accounting (a query still running a second after it started is recorded
            # running), which waits off the loop too.
            assert waiting_on(engine, table) >= 1
        assert rows > 0

        locker.commit()  # the store is fast again
        return pending.result(timeout=60)
    finally:
        locker.close()
        slow.shutdown(wait=True)
        engine.dispose()
        if page.get("nextUri"):
            requests.delete(page["nextUri"], headers=headers, timeout=30)


def test_a_slow_gallery_search_does_not_hold_up_a_concurrent_querys_pages(gateway, alice):
    notebook_id = published(gateway, alice, "Searched while the store is slow")
    answer = pages_flow_while_the_store_waits(
        gateway, alice, "shared_notebooks", "api/notebooks", {"q": "searched"}
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["total"] == 1
    assert [n["id"] for n in found["notebooks"]] == [notebook_id]


def test_a_slow_quota_page_does_not_hold_up_a_concurrent_querys_pages(gateway, alice):
    answer = pages_flow_while_the_store_waits(gateway, alice, "quota_usage", "quota", {})
    assert answer.status_code == 200, answer.text
    assert "<h1>My quota</h1>" in answer.text
