"""What the quota feature shows and hands out, as pure functions: usage lines, usage
charts, Trino resource groups, the OpenAPI document, the CLI's parsing and tables, and
the notebook's display bundle."""

from __future__ import annotations

import datetime as dt

import pytest

from datahub.extensions.quota import fetch_quota, format_quota
from datahub.extensions.service_client import ServiceError
from datahub.quotas import charts
from datahub.quotas.cli import CLIError, format_user, parse_assignments, parse_subject
from datahub.quotas.openapi import openapi_document
from datahub.quotas.policy import LIMITS, Policy, input_value, parse_limit
from datahub.quotas.report import usage_lines
from datahub.quotas.resource_groups import UNLIMITED, resource_groups

USAGE = {"queries": 45, "cpu_ms": 90_500, "bytes_scanned": 2_500_000_000, "running": 2, "queued": 0}
LIMITS_JSON = {
    "concurrent_queries": 3,
    "queued_queries": 10,
    "queries_per_day": 50,
    "cpu_seconds_per_day": None,
    "bytes_scanned_per_day": 10_000_000_000,
    "query_runtime_seconds": 300.0,
    "query_cpu_seconds": None,
    "query_bytes_scanned": None,
    "routing_groups": ["adhoc"],
    "server_cpu": 2.0,
    "server_memory": 4_000_000_000,
}


def test_usage_lines_put_todays_usage_next_to_each_limit():
    lines = {
        line["limit"]: line
        for line in usage_lines(LIMITS_JSON, USAGE, {"queries_per_day": "default"})
    }
    assert list(lines) == list(LIMITS)
    assert lines["queries_per_day"] | {"source": "default"} == lines["queries_per_day"]
    assert (lines["queries_per_day"]["used_text"], lines["queries_per_day"]["percent"]) == (
        "45",
        90.0,
    )
    assert lines["cpu_seconds_per_day"]["used_text"] == "90 s"
    assert lines["cpu_seconds_per_day"]["allowed_text"] == "unlimited"
    assert lines["cpu_seconds_per_day"]["percent"] is None
    assert lines["bytes_scanned_per_day"]["used_text"] == "2.5 GB"
    assert lines["bytes_scanned_per_day"]["percent"] == 25.0
    assert lines["concurrent_queries"]["used"] == 2
    assert lines["server_memory"]["used"] is None
    assert lines["server_memory"]["allowed_text"] == "4 GB"
    assert lines["routing_groups"]["allowed_text"] == "adhoc"


@pytest.mark.parametrize("name", list(LIMITS))
def test_form_values_read_back_exactly(name):
    samples = {
        "count": [0, 7, 1234567],
        "seconds": [0.5, 90.0, 7200.0, 1e6],
        "bytes": [1, 1_234_567_891, 10**13],
        "cores": [0.25, 1.0, 16.0],
        "names": [(), ("adhoc", "etl")],
    }[LIMITS[name].kind]
    for value in [*samples, None]:
        assert parse_limit(name, input_value(name, value)) == value


def test_usage_summary_fills_every_day_and_ranks_users_and_groups():
    day = dt.date(2025, 6, 1)
    rows = [
        {"day": day, "user": "alice", "groups": ["analysts"], "queries": 5, "cpu_ms": 1000,
         "bytes_scanned": 10, "refused": 1, "cancelled": 0},
        {"day": day + dt.timedelta(days=2), "user": "bob", "groups": ["analysts", "etl"],
         "queries": 9, "cpu_ms": 500, "bytes_scanned": 0, "refused": 0, "cancelled": 2},
        {"day": day - dt.timedelta(days=9), "user": "old", "groups": [], "queries": 99,
         "cpu_ms": 0, "bytes_scanned": 0, "refused": 0, "cancelled": 0},
    ]  # fmt: skip
    summary = charts.summarize(rows, day, day + dt.timedelta(days=2))
    assert [d["day"] for d in summary["days"]] == ["2025-06-01", "2025-06-02", "2025-06-03"]
    assert [d["queries"] for d in summary["days"]] == [5, 0, 9]
    assert [u["name"] for u in summary["top_users"]] == ["bob", "alice"]
    assert [(g["name"], g["queries"]) for g in summary["top_groups"]] == [
        ("analysts", 14),
        ("etl", 9),
    ]
    figures = charts.figures(summary)
    assert [f["layout"]["title"]["text"] for f in figures][:3] == [
        "Queries per day",
        "CPU seconds per day",
        "GB scanned per day",
    ]
    queries = figures[0]["data"]
    assert queries[0]["y"] == [5, 0, 9]
    assert [t["name"] for t in queries[1:]] == ["Refused", "Cancelled by quota"]
    assert figures[1]["data"][0]["y"] == [1.0, 0.0, 0.5]
    assert figures[3]["data"][0]["y"] == ["alice", "bob"]  # largest at the top


def test_resource_groups_give_each_known_user_their_effective_limits():
    policies = [
        Policy("default", "default", {"concurrent_queries": 2, "queued_queries": 5}),
        Policy("group", "etl", {"concurrent_queries": 8, "cpu_seconds_per_day": 3600.0}),
        Policy("user", "a.b", {"concurrent_queries": None}),
    ]
    config = resource_groups(policies, {}, {"carol": ["etl"], "dave": []})
    groups = {g["name"]: g for g in config["rootGroups"][0]["subGroups"]}
    assert groups["user-carol"]["hardConcurrencyLimit"] == 8
    assert groups["user-carol"]["hardCpuLimit"] == "3600s"
    assert groups["user-a_b"]["hardConcurrencyLimit"] == UNLIMITED
    assert groups["${USER}"] == {
        "name": "${USER}",
        "softMemoryLimit": "100%",
        "hardConcurrencyLimit": 2,
        "maxQueued": 6,
    }
    assert config["selectors"][0] == {"user": r"^a\.b$", "group": "datahub.user-a_b"}
    assert config["selectors"][-1] == {"group": "datahub.${USER}"}
    assert config["cpuQuotaPeriod"] == "1d"


def test_the_openapi_document_covers_every_limit_and_path():
    doc = openapi_document("/services/datahub/")
    assert set(doc["components"]["schemas"]["Limits"]["properties"]) == set(LIMITS)
    for path, operations in doc["paths"].items():
        assert path.startswith("/services/datahub/api/quota/")
        for operation in operations.values():
            assert operation["summary"] and operation["responses"]


def test_the_cli_reads_subjects_and_assignments():
    assert parse_subject(["default", "a=1"]) == ("default", None, ["a=1"])
    assert parse_subject(["user", "alice", "a=1"]) == ("user", "alice", ["a=1"])
    assert parse_assignments(["queries_per_day=5", "server_memory=4G"]) == {
        "queries_per_day": "5",
        "server_memory": "4G",
    }
    for words, message in [
        ([], "Say whose policy"),
        (["team", "x"], "Unknown subject 'team'"),
        (["user"], "Name the user"),
    ]:
        with pytest.raises(CLIError, match=message):
            parse_subject(words)
    with pytest.raises(CLIError, match="NAME=VALUE"):
        parse_assignments(["queries_per_day"])
    with pytest.raises(CLIError, match="whole number"):
        parse_assignments(["queries_per_day=1.5"])


def _report() -> dict:
    return {
        "user": "alice",
        "groups": ["analysts"],
        "resets": "00:00 UTC",
        "contact": "your DataHub admin (datahub-admins)",
        "lines": usage_lines(LIMITS_JSON, USAGE, dict.fromkeys(LIMITS, "default")),
    }


def test_the_cli_prints_a_users_limits_as_a_table():
    text = format_user(_report())
    assert text.splitlines()[0] == "alice (analysts); daily counters reset 00:00 UTC"
    assert "queries per day          45          50         default" in text


def test_the_notebook_bundle_has_text_and_html():
    bundle = format_quota(_report())
    assert bundle["text/plain"].splitlines()[0] == (
        "Quota of alice — daily counters reset 00:00 UTC"
    )
    assert "queries per day" in bundle["text/plain"]
    assert "45 of 50 (90%)" in bundle["text/plain"]
    assert "<progress max='100' value='90.0'>" in bundle["text/html"]


def test_the_notebook_explains_a_missing_or_unreachable_gateway():
    with pytest.raises(ServiceError, match="DATAHUB_GATEWAY_URL is empty"):
        fetch_quota("", "token")
    reach = "Cannot reach the DataHub service at http://127.0.0.1:9 to show your quota"
    with pytest.raises(ServiceError, match=reach):
        fetch_quota("http://127.0.0.1:9", "token", timeout=5)
