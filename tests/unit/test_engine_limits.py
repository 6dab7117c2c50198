"""Per-query limits as Trino session properties: set on every query, never raised by a
client; and the quota arithmetic of usage counted while queries run."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from datahub.gateway.engine_limits import (
    EngineLimits,
    limit_messages_for,
    limited_session_headers,
    parse_data_size,
    parse_duration,
)
from datahub.identity import Identity
from datahub.quotas.admission import Ticket
from datahub.quotas.counters import daily_limit_hit, uncounted
from datahub.quotas.hooks import engine_limits, limit_messages

LOG = logging.getLogger("tests")
ALICE = Identity("alice", ("analysts",))
TWO_SECONDS = EngineLimits(cpu_seconds=2, run_seconds=60, scan_bytes=1 << 20)


def run(coroutine):
    return asyncio.run(coroutine)


def session_of(headers: list[tuple[str, str]]) -> list[str]:
    values = [v for n, v in headers if n.lower() == "x-trino-session"]
    assert len(values) <= 1, values
    return values[0].split(",") if values else []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2.0), ("1.5h", 5400.0), ("500ms", 0.5), (" 3 m ", 180.0), ("1d", 86400.0)],
)
def test_trino_durations_are_read_in_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [("10GB", 10 << 30), ("512kB", 512 << 10), ("7B", 7)])
def test_trino_data_sizes_are_read_in_bytes(text, size):
    assert parse_data_size(text) == size


@pytest.mark.parametrize("text", ["", "2", "two seconds", "-1s", "1 fortnight"])
def test_what_is_no_trino_duration_is_none(text):
    assert parse_duration(text) is None
    assert parse_data_size(text) is None


def test_every_query_gets_the_limits_as_session_properties():
    headers = limited_session_headers([("X-Trino-Catalog", "tpch")], TWO_SECONDS)
    assert headers[0] == ("X-Trino-Catalog", "tpch")
    assert session_of(headers) == [
        "query_max_cpu_time=2000ms",
        "query_max_run_time=60000ms",
        "query_max_execution_time=60000ms",
        "query_max_scan_physical_bytes=1048576B",
    ]


def test_a_client_asking_for_more_gets_the_limit():
    client = [
        ("X-Trino-Session", "query_max_cpu_time=1h,query_max_run_time=100d"),
        ("x-trino-session", "QUERY_MAX_SCAN_PHYSICAL_BYTES=1PB, query_max_execution_time=1d"),
    ]
    assert session_of(limited_session_headers(client, TWO_SECONDS)) == [
        "query_max_cpu_time=2000ms",
        "query_max_run_time=60000ms",
        "query_max_execution_time=60000ms",
        "query_max_scan_physical_bytes=1048576B",
    ]


def test_a_client_may_lower_a_limit_and_keeps_its_other_properties_as_sent():
    client = [
        ("X-Trino-Session", "join_distribution_type=BROADCAST, query_max_cpu_time=1500ms"),
        ("X-Trino-Session", "tpch.splits_per_node=4,query_max_run_time=30%20s"),
    ]
    assert session_of(limited_session_headers(client, TWO_SECONDS)) == [
        "join_distribution_type=BROADCAST",
        "tpch.splits_per_node=4",
        "query_max_cpu_time=1500ms",
        "query_max_run_time=30000ms",
        "query_max_execution_time=60000ms",
        "query_max_scan_physical_bytes=1048576B",
    ]


def test_a_client_value_trino_cannot_read_gives_way_to_the_limit():
    client = [("X-Trino-Session", "query_max_cpu_time=forever")]
    assert session_of(limited_session_headers(client, EngineLimits(cpu_seconds=2))) == [
        "query_max_cpu_time=2000ms"
    ]


def test_without_limits_the_clients_session_passes_unchanged():
    client = [("X-Trino-Session", "query_max_cpu_time=1h,join_distribution_type=BROADCAST")]
    assert session_of(limited_session_headers(client, EngineLimits())) == [
        "join_distribution_type=BROADCAST",
        "query_max_cpu_time=1h",
    ]
    assert limited_session_headers([("X-Trino-Schema", "tiny")], EngineLimits()) == [
        ("X-Trino-Schema", "tiny")
    ]


def test_the_stricter_of_two_limits_wins():
    merged = EngineLimits(cpu_seconds=5, scan_bytes=100).stricter(
        EngineLimits(cpu_seconds=2, run_seconds=9)
    )
    assert merged == EngineLimits(cpu_seconds=2, run_seconds=9, scan_bytes=100)
    assert EngineLimits.from_data(merged.to_data()) == merged
    assert not EngineLimits() and merged


def test_a_quota_ticket_gives_trino_its_per_query_limits():
    ticket = Ticket(
        user="bob",
        slot_id=1,
        admitted_at=dt.datetime.now(dt.UTC),
        limits={
            "query_cpu_seconds": 2.0,
            "query_runtime_seconds": None,
            "query_bytes_scanned": 1000,
            "cpu_seconds_per_day": 60.0,
        },
    )
    assert engine_limits(ticket) == EngineLimits(cpu_seconds=2.0, scan_bytes=1000)


def test_a_quota_ticket_says_in_the_quotas_words_which_per_query_limit_stopped_a_query():
    ticket = Ticket(
        user="bob",
        slot_id=1,
        admitted_at=dt.datetime.now(dt.UTC),
        limits={"query_cpu_seconds": 2.0, "query_runtime_seconds": None},
    )
    assert limit_messages(ticket, "the data team (#data-help)") == {
        "EXCEEDED_CPU_LIMIT": "QuotaExceeded: this query went over your limit of 2 s of CPU "
        "per query, so the cluster stopped it; ask the data team (#data-help) for more."
    }


MESSAGES = {
    "EXCEEDED_CPU_LIMIT": "cpu quota",
    "EXCEEDED_TIME_LIMIT": "time quota",
    "EXCEEDED_SCAN_LIMIT": "scan quota",
}


def test_the_limits_the_gateway_set_keep_their_messages():
    assert limit_messages_for([], TWO_SECONDS, MESSAGES) == MESSAGES
    # A client asking for more, or for the same, or for nonsense still runs under ours.
    asked = [("X-Trino-Session", "query_max_cpu_time=1h,query_max_run_time=1m")]
    asked.append(("x-trino-session", "query_max_scan_physical_bytes=lots"))
    assert limit_messages_for(asked, TWO_SECONDS, MESSAGES) == MESSAGES
    assert limit_messages_for([], EngineLimits(cpu_seconds=2), MESSAGES) == {
        "EXCEEDED_CPU_LIMIT": "cpu quota"
    }


def test_a_limit_the_client_lowered_itself_keeps_trinos_message():
    lowered = [("X-Trino-Session", "query_max_cpu_time=1500ms,query_max_scan_physical_bytes=1kB")]
    assert limit_messages_for(lowered, TWO_SECONDS, MESSAGES) == {
        "EXCEEDED_TIME_LIMIT": "time quota"
    }
    # Either of Trino's two time limits, lowered, is the client's.
    lowered = [("X-Trino-Session", "query_max_execution_time=10s")]
    assert "EXCEEDED_TIME_LIMIT" not in limit_messages_for(lowered, TWO_SECONDS, MESSAGES)


def test_usage_counted_while_running_is_not_counted_again_at_the_end():
    assert uncounted(
        {"cpu_ms": 5000, "bytes_scanned": 10}, {"cpu_ms": 3000, "bytes_scanned": 10}
    ) == {
        "cpu_ms": 2000,
        "bytes_scanned": 0,
    }
    # Trino's numbers never shrink, but a final page may report less than the last info.
    assert uncounted({"cpu_ms": 10, "bytes_scanned": 0}, {"cpu_ms": 30, "bytes_scanned": 0}) == {
        "cpu_ms": 0,
        "bytes_scanned": 0,
    }


def test_a_daily_limit_refuses_when_used_up_and_stops_a_query_once_passed():
    limits = {"cpu_seconds_per_day": 10.0, "bytes_scanned_per_day": None}
    used_up = {"queries": 3, "cpu_ms": 10_000, "bytes_scanned": 10**12}
    assert daily_limit_hit(limits, used_up) == ("cpu_seconds_per_day", 10.0)
    assert daily_limit_hit(limits, used_up, passed=True) is None
    over = {**used_up, "cpu_ms": 10_001}
    assert daily_limit_hit(limits, over, passed=True) == ("cpu_seconds_per_day", 10.001)
    assert daily_limit_hit({}, over, passed=True) is None


def test_a_presto_cluster_gets_the_limits_under_prestos_property_names():
    client = [
        ("X-Trino-Session", "query_max_scan_raw_input_bytes=1TB,join_distribution_type=BROADCAST")
    ]
    session = session_of(limited_session_headers(client, TWO_SECONDS, "presto"))
    assert sorted(session) == [
        "join_distribution_type=BROADCAST",
        "query_max_cpu_time=2000ms",
        "query_max_execution_time=60000ms",
        "query_max_run_time=60000ms",
        f"query_max_scan_raw_input_bytes={1 << 20}B",  # the client's 1TB only lowers ours
    ]
    # Trino's name is no Presto property: it passes, and Presto refuses it by name.
    client = [("X-Trino-Session", "query_max_scan_physical_bytes=1kB")]
    assert "query_max_scan_physical_bytes=1kB" in session_of(
        limited_session_headers(client, TWO_SECONDS, "presto")
    )


def test_a_presto_scan_limit_the_client_lowered_keeps_prestos_message():
    lowered = [("X-Trino-Session", "query_max_scan_raw_input_bytes=1kB")]
    assert "EXCEEDED_SCAN_LIMIT" not in limit_messages_for(lowered, TWO_SECONDS, MESSAGES, "presto")
    assert "EXCEEDED_SCAN_LIMIT" in limit_messages_for(lowered, TWO_SECONDS, MESSAGES)
