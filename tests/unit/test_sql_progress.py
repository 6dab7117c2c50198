"""Live progress and the summary line (datahub.extensions.progress)."""

import io

from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from datahub.extensions.progress import Progress, format_progress, format_summary

STATS = {
    "state": "RUNNING",
    "totalSplits": 10,
    "completedSplits": 5,
    "processedRows": 1_234_567,
    "processedBytes": 2048,
    "cluster": "adhoc",
    "queryId": "20240601_120000_00001_abcde",
}


def test_progress_line_has_state_splits_rows_bytes_time_cluster_and_query():
    assert format_progress(STATS, 3.2) == (
        "RUNNING · 50% of 10 splits · 1.23M rows · 2.0 KiB · 3.20 s · cluster adhoc"
        " · query 20240601_120000_00001_abcde"
    )
    assert format_progress({"state": "QUEUED"}, 0.1) == "QUEUED · 0 rows · 0 B · 0.10 s"


def test_a_query_in_the_quota_queue_shows_the_gateways_reason():
    reason = "Queued: waiting for one of your 3 concurrent query slots (3 in use)"
    line = format_progress({"state": "QUEUED", "datahubQueueReason": reason}, 4.2)
    assert line.startswith(reason + " · ") and "4" in line.split(" · ")[1]
    # Queued on Trino itself (no reason from the gateway): the usual line.
    assert format_progress({"state": "QUEUED"}, 1).startswith("QUEUED · ")


def test_trinos_own_percentage_wins_over_splits():
    assert "42% of 10 splits" in format_progress({**STATS, "progressPercentage": 42.0}, 1)


def test_summary_line():
    assert format_summary(3, 0.5, "q1") == "✔ 3 rows · 0.50 s · query q1"
    assert format_summary(
        1, 75, "q2", {"processedBytes": 3 * 2**20}, cluster="etl", what="INSERT"
    ) == ("✔ INSERT · 1 row · 1 min 15 s · 3.0 MiB scanned · cluster etl · query q2")


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_updates_one_line_in_place_and_ends_with_the_summary():
    out = Tty()
    progress = Progress(jupyter=False, stream=out)
    progress.tty_interval = 0
    progress(STATS)
    progress({**STATS, "completedSplits": 10})
    progress.done("✔ 3 rows")
    assert out.getvalue().count("\r\x1b[K") == 3
    assert "50% of 10 splits" in out.getvalue() and "100% of 10 splits" in out.getvalue()
    assert out.getvalue().endswith("\r\x1b[K✔ 3 rows\n")


def test_terminal_line_is_erased_when_the_query_fails():
    out = Tty()
    progress = Progress(jupyter=False, stream=out)
    progress(STATS)
    progress.clear()
    assert out.getvalue().endswith("\r\x1b[K") and "\n" not in out.getvalue()


def test_logs_get_plain_lines_only_for_slow_queries():
    out = io.StringIO()
    progress = Progress(jupyter=False, stream=out)
    progress(STATS)  # within the first seconds: quiet
    assert out.getvalue() == ""
    progress.log_quiet = progress.log_interval = 0
    progress(STATS)
    progress.done("✔ 3 rows")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("RUNNING · 50% of 10 splits")
    assert lines[1] == "✔ 3 rows" and "\r" not in out.getvalue()


def test_jupyter_progress_is_one_output_updated_in_place():
    globalipapp.start_ipython()
    with capture_output() as captured:
        progress = Progress(jupyter=True)
        progress(STATS)
        progress.done("✔ 3 rows · query q1")
    first, last = captured.outputs[0], captured.outputs[-1]
    assert "<progress" in first.data["text/html"] and "50% of 10 splits" in first.data["text/plain"]
    assert last.data["text/plain"] == "✔ 3 rows · query q1"
    assert "<progress" not in last.data["text/html"]
    # The summary replaced the progress output rather than adding one.
    assert last.transient["display_id"] == first.transient["display_id"]
    assert last.update
