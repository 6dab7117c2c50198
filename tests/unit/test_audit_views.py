"""What the query history API and pages show, and the event log's lines."""

from __future__ import annotations

import datetime as dt
import json
import stat

import pytest

from datahub.audit import events, records, views
from datahub.gateway.clusters import ClusterStatus
from datahub.gateway.pages import api_cluster

SUBMITTED = dt.datetime(2025, 1, 31, 9, 30, 0, 123000, tzinfo=dt.UTC)
RECORD = records.new_record(
    query_id="20250131_093000_00001_abcde",
    user="alice",
    groups=["analysts"],
    principal="datahub-trino",
    auth_via="token",
    cluster="trino",
    routing_group="default",
    routing_reason="default",
    sql="SELECT  *\nFROM tpch.tiny.nation",
    source="datahub-sql",
    client_tags=["x"],
    admission={"quota_slot": 7},
    state="FINISHED",
    submitted_at=SUBMITTED,
    finished_at=SUBMITTED + dt.timedelta(seconds=2),
    elapsed_ms=1500,
    output_rows=25,
    cpu_ms=40,
    processed_bytes=3 * 1024 * 1024,
)


def test_the_api_lists_queries_in_the_shape_the_sql_magic_reads():
    assert views.api_query(RECORD) == {
        "query_id": "20250131_093000_00001_abcde",
        "user": "alice",
        "acting_admin": None,
        "cluster": "trino",
        "state": "FINISHED",
        "sql": "SELECT  *\nFROM tpch.tiny.nation",
        "submitted": "2025-01-31T09:30:00.123Z",
        "finished": "2025-01-31T09:30:02.123Z",
        "elapsed_ms": 1500,
        "rows": 25,
        "error": None,
        "source": "datahub-sql",
    }


def test_the_detail_has_every_field_but_the_hooks_private_data():
    detail = views.api_query_detail(RECORD)
    assert "admission" not in detail
    assert detail["principal"] == "datahub-trino"
    assert detail["submitted_at"] == "2025-01-31T09:30:00.123Z"
    assert detail["rows"] == 25


def test_clusters_are_listed_with_health_drain_and_load():
    status = ClusterStatus("trino", "default", 0, healthy=None, running=2, queued=1)
    assert api_cluster(status, engine="trino") == {
        "name": "trino",
        "engine": "trino",
        "routing_group": "default",
        "healthy": False,
        "draining": False,
        "running": 2,
        "queued": 1,
    }
    assert "error" in api_cluster(status, engine="trino", admin=True)
    assert api_cluster(status, engine="presto")["engine"] == "presto"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31T09:30:00Z", dt.datetime(2025, 1, 31, 9, 30, tzinfo=dt.UTC)),
        ("2025-01-31T10:30:00+01:00", dt.datetime(2025, 1, 31, 9, 30, tzinfo=dt.UTC)),
        ("2025-01-31 09:30", dt.datetime(2025, 1, 31, 9, 30, tzinfo=dt.UTC)),
        ("", None),
    ],
)
def test_filter_times_are_iso_and_utc_without_a_zone(text, expected):
    assert views.parse_time("since", text) == expected


def test_bad_filters_say_how_to_write_them():
    with pytest.raises(views.FilterError, match="since must be an ISO-8601 time like"):
        views.parse_time("since", "yesterday")
    with pytest.raises(views.FilterError, match="limit must be a number from 1 to 1000"):
        views.parse_limit("5000")
    with pytest.raises(views.FilterError, match="state must be one of"):
        views.parse_state("DONE")
    assert views.parse_state("cancelled") == "CANCELED"
    assert views.parse_limit(None) == views.DEFAULT_LIMIT


def test_page_rows_shorten_the_sql_and_format_numbers():
    row = views.page_row({**RECORD, "sql": "SELECT " + "x, " * 100, "output_rows": 1234567})
    assert len(row["sql"]) == 118 and row["sql"].endswith("…")
    assert (row["rows"], row["elapsed"], row["submitted"]) == (
        "1,234,567",
        "1.5 s",
        "2025-01-31 09:30:00",
    )
    labels = dict(views.page_detail(RECORD))
    assert labels["Processed bytes"] == "3.0 MB"
    assert labels["Authenticated as"] == "datahub-trino (via token)"


def test_events_are_json_lines_with_the_fields_of_their_kind(tmp_path):
    log = events.EventLogFile(tmp_path / "logs" / "events.jsonl")
    log.write([events.event(events.SUBMITTED, RECORD), events.event(events.FINISHED, RECORD)])
    lines = [
        json.loads(line) for line in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()
    ]
    submitted, finished = lines
    assert submitted["event"] == "query_submitted" and submitted["sql"].startswith("SELECT")
    assert submitted["submitted_at"] == "2025-01-31T09:30:00.123Z"
    assert finished["event"] == "query_finished" and "sql" not in finished
    assert (finished["state"], finished["output_rows"], finished["cpu_ms"]) == ("FINISHED", 25, 40)
    assert "admission" not in finished
    assert stat.S_IMODE((tmp_path / "logs" / "events.jsonl").stat().st_mode) == 0o600
