"""A SQLite store's records survive a crash of the gateway process (SIGKILL), with the
store's default durability (``PRAGMA synchronous=NORMAL`` in WAL mode: a commit waits for
no fsync, and what a process committed is the database's however that process ends).

The gateway runs in a process of its own (`BackgroundGateway` in a child Python) against
the test stack's Trino; queries go through it with the unmodified ``trino`` client; the
process is killed without a chance to close anything, and a new store on the same file
finds every query's closed audit record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from datahub.audit import records
from datahub.store import Store
from datahub.testing import gateway_connection, wait_for

CHILD = """
import json, sys, time
from datahub.testing import BackgroundGateway, resolver_for

scope = "access:services!service=datahub"
tokens = {"alice-token": {"kind": "user", "name": "alice", "scopes": [scope], "groups": []}}
gateway = BackgroundGateway(
    clusters=json.loads(sys.argv[1]),
    store_url=sys.argv[2],
    secret=b"store-crash-test-secret-0123456789abcdef",
    identity_resolver_class=resolver_for(tokens),
)
print(gateway.port, flush=True)
time.sleep(3600)
"""


class ChildGateway:
    def __init__(self, port: int) -> None:
        self.port = port


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'datahub.sqlite'}"


def closed_records(store: Store, ids: list[str]) -> dict[str, dict]:
    with store.session() as session:
        found = {i: records.get_query(session, i) for i in ids}
    return {i: r for i, r in found.items() if r and r["finished_at"]}


def test_query_records_survive_a_sigkill_of_the_gateway(stack, store_url):
    clusters = json.dumps([{**stack.settings["clusters"][0], "name": "main"}])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, clusters, store_url],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        port = int(child.stdout.readline())
        ids = []
        for n in range(5):
            cursor = gateway_connection(ChildGateway(port)).cursor()
            cursor.execute(f"SELECT {n}")
            assert cursor.fetchall() == [[n]]
            ids.append(cursor.query_id)
        watcher = Store(store_url)
        try:
            # Every query closed and committed by the gateway process...
            wait_for(lambda: len(closed_records(watcher, ids)) == len(ids) or None, 60)
        finally:
            watcher.dispose()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    # ...is in the database after the process died without closing anything.
    after = Store(store_url)
    try:
        found = closed_records(after, ids)
        assert sorted(found) == sorted(ids)
        assert {(r["user"], r["state"], r["output_rows"]) for r in found.values()} == {
            ("alice", "FINISHED", 1)
        }
    finally:
        after.dispose()
