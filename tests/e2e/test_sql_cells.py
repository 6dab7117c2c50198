"""``%%sql`` cells in alice's real kernel, driven through the proxy as JupyterLab drives
it: progress updated in place, a kernel interrupt cancelling the query on Trino, and the
welcome notebook running top to bottom."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import nbformat
import requests

from datahub.spawners.mixin import WELCOME_NOTEBOOK


def _displays(out: dict) -> list[dict]:
    return [o for o in out["outputs"] if o["type"] in ("display_data", "update_display_data")]


def test_progress_updates_in_place_and_becomes_the_summary(users):
    kernel = users.kernel("alice")
    out = kernel.execute("%%sql\nSELECT count(*) AS n FROM tpch.sf1.orders")
    assert out["status"] == "ok", out
    progress = [
        o for o in _displays(out) if "datahub-sql-progress" in o["data"].get("text/html", "")
    ]
    first, last = progress[0], progress[-1]
    assert first["type"] == "display_data"
    line = first["data"]["text/plain"]
    assert re.match(
        r"^(QUEUED|WAITING_FOR_RESOURCES|DISPATCHING|PLANNING|STARTING|RUNNING|"
        r"FINISHING|FINISHED) · .* rows · ",
        line,
    ), line
    assert " · cluster trino · query " in line
    # Every later version replaced the same output rather than adding one.
    display_id = first["transient"]["display_id"]
    assert all(o["type"] == "update_display_data" for o in progress[1:])
    assert {o["transient"]["display_id"] for o in progress} == {display_id}
    summary = last["data"]["text/plain"]
    assert summary.startswith("✔ 1 row · ") and " · cluster trino · query " in summary
    assert "<progress" not in last["data"]["text/html"]


def running_query_id(stack, marker: str, timeout: float = 120) -> str:
    """The id of the query containing ``marker`` once Trino runs it (read as the service
    account, which may see every query)."""
    session = stack.trino.http_session()
    session.auth = (stack.trino.service_user, stack.trino.service_password)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for query in session.get(f"{stack.trino.url}/v1/query", timeout=30).json():
            if marker in query["query"] and query["state"] == "RUNNING":
                return query["queryId"]
        time.sleep(0.2)
    raise AssertionError(f"no running query with {marker}")


def test_interrupting_the_kernel_cancels_the_query_on_trino(stack, users, trino_query_info):
    kernel = users.kernel("alice")
    marker = uuid.uuid4().hex
    seen: list[str] = []

    def interrupt_once_it_runs():
        seen.append(running_query_id(stack, marker))
        requests.post(
            f"{kernel.base}/api/kernels/{kernel.id}/interrupt", headers=kernel.headers, timeout=30
        ).raise_for_status()

    thread = threading.Thread(target=interrupt_once_it_runs)
    thread.start()
    out = kernel.execute(f"%%sql\nSELECT count(*) FROM tpch.sf1000.lineitem -- {marker}")
    thread.join()
    assert out["status"] == "error"
    (error,) = [o for o in out["outputs"] if o["type"] == "error"]
    assert error["ename"] == "SqlError" and error["traceback"] == ["Query cancelled"]
    shown = json.dumps(out["outputs"]) + out["stdout"] + out["stderr"]
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    info = trino_query_info(seen[0])
    assert info["session"]["user"] == "alice"
    assert info["state"] == "FAILED" and info["errorCode"]["name"] == "USER_CANCELED"
    # The kernel is fine afterwards.
    assert kernel.execute("%sql SELECT 1")["status"] == "ok"


def test_welcome_notebook_runs_top_to_bottom(users):
    notebook = nbformat.read(WELCOME_NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    kernel = users.kernel("alice")
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        out = kernel.execute(cell.source)
        assert out["status"] == "ok", (cell.source, out)
        errors = [o for o in out["outputs"] if o["type"] == "error"]
        assert not errors, (cell.source, errors)
