"""``%sql history`` and ``%sql clusters`` against the real DataHub service's REST API,
as alice with her hub token (the API of issue 4: ``/services/datahub/api/queries`` and
``/services/datahub/api/clusters``)."""

import time
import uuid

import pandas as pd
from IPython.utils.capture import capture_output

from datahub.extensions.sql import result_mimebundle


def run(ip, cell):
    with capture_output() as captured:
        result = ip.run_cell(cell)
    assert result.error_in_exec is None, captured.stdout + captured.stderr
    return result.result, captured


def history_until_ended(ip, marker: str, count: int, n: int = 10) -> pd.DataFrame:
    """``%sql history n`` once the ``count`` queries containing ``marker`` have ended:
    the gateway records a query's end just after relaying its last page."""
    deadline = time.monotonic() + 15
    while True:
        history, _ = run(ip, f"%sql history {n}")
        mine = history[history["sql"].str.contains(marker, regex=False)]
        ended = mine["state"].isin(["FINISHED", "FAILED"]).all()
        if (len(mine) == count and ended) or time.monotonic() > deadline:
            return history
        time.sleep(0.3)


def test_history_lists_my_last_queries_newest_first(ip):
    marker = uuid.uuid4().hex
    run(ip, f"%sql SELECT '{marker}' AS first")
    _, out = run(ip, f"%sql SELECT '{marker}' AS second, name FROM tpch.tiny.region")
    second_id = out.stderr.strip().rsplit("query ", 1)[1]
    history = history_until_ended(ip, marker, 2, n=5)
    assert isinstance(history, pd.DataFrame) and len(history) <= 5
    mine = history[history["sql"].str.contains(marker, regex=False)]
    assert mine["sql"].tolist()[0].endswith(f"'{marker}' AS second, name FROM tpch.tiny.region")
    assert len(mine) == 2  # newest first
    latest = mine.iloc[0]
    assert latest["query_id"] == second_id
    assert latest["state"] == "FINISHED" and latest["user"] == "alice"
    assert latest["cluster"] == "trino" and latest["rows"] == 5
    assert latest["submitted"] <= latest["finished"]
    assert history["user"].eq("alice").all()
    bundle = result_mimebundle(history)
    assert marker in bundle["text/html"] and "FINISHED" in bundle["text/plain"]


def test_history_shows_failed_queries_with_their_error(ip):
    marker = uuid.uuid4().hex
    with capture_output():
        failed = ip.run_cell(f"%sql SELECT '{marker}' FROM tpch.tiny.no_such_table")
    assert failed.error_in_exec is not None
    history = history_until_ended(ip, marker, 1, n=3)
    (entry,) = history[history["sql"].str.contains(marker, regex=False)].itertuples()
    assert entry.state == "FAILED" and "no_such_table" in entry.error


def test_clusters_lists_the_stacks_cluster_as_healthy(ip):
    clusters, _ = run(ip, "%sql clusters")
    trino = clusters[clusters["name"] == "trino"].iloc[0]
    assert bool(trino["healthy"]) is True and bool(trino["draining"]) is False
    assert trino["routing_group"]
    assert trino["running"] >= 0 and trino["queued"] >= 0
    assert "✔ healthy" in result_mimebundle(clusters)["text/plain"]
