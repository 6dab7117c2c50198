"""``%%sql`` cells in alice's real kernel, driven through the proxy as JupyterLab drives
it: progress updated in place, a kernel interrupt cancelling the query on Trino, and the
welcome notebook running top to bottom."""

from __future__ import annotations

import re

import nbformat

from datahub.spawners.mixin import WELCOME_NOTEBOOK
from datahub.testing import assert_cancelled, interrupted


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


def test_interrupting_the_kernel_cancels_the_query_on_trino(stack, users, trino_query_info):
    kernel = users.kernel("alice")
    out, query_id = interrupted(
        kernel, stack.trino, "%%sql\nSELECT count(*) FROM tpch.sf1000.lineitem"
    )
    assert_cancelled(out)
    info = trino_query_info(query_id)
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
