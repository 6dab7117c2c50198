"""Trino's statistics in plain numbers, and what counts as queued or running."""

from __future__ import annotations

import pytest

from datahub.gateway.stats import (
    count_queries,
    final_state,
    merge_final,
    parse_data_size,
    parse_duration_ms,
    stats_from_page,
    stats_from_query_info,
)

PAGE_STATS = {
    "state": "FINISHED",
    "cpuTimeMillis": 46,
    "wallTimeMillis": 115,
    "queuedTimeMillis": 3,
    "elapsedTimeMillis": 833,
    "processedRows": 25,
    "processedBytes": 2734,
    "physicalInputBytes": 100,
    "peakMemoryBytes": 3998,
}

QUERY_INFO = {
    "state": "FINISHED",
    "query": "SELECT * FROM tpch.tiny.nation",
    "queryStats": {
        "elapsedTime": "128.30ms",
        "queuedTime": "1.81ms",
        "totalCpuTime": "3.00ms",
        "totalScheduledTime": "15.00ms",
        "rawInputPositions": 25,
        "rawInputDataSize": "2734B",
        "physicalInputDataSize": "1.50MB",
        "peakUserMemoryReservation": "3998B",
        "outputPositions": 25,
    },
}


@pytest.mark.parametrize(
    ("text", "ms"),
    [("128.30ms", 128), ("2.56s", 2560), ("351.44us", 0), ("1.50m", 90_000), ("x", 0), (7, 7)],
)
def test_durations_become_milliseconds(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "size"),
    [("2734B", 2734), ("1.50MB", 1_572_864), ("2kB", 2048), ("1GB", 1 << 30), ("?", 0)],
)
def test_data_sizes_become_bytes(text, size):
    assert parse_data_size(text) == size


def test_page_stats_map_to_query_stats():
    stats = stats_from_page(PAGE_STATS)
    assert (stats.state, stats.elapsed_ms, stats.cpu_ms, stats.processed_rows) == (
        "FINISHED",
        833,
        46,
        25,
    )
    assert (stats.physical_bytes, stats.peak_memory_bytes, stats.output_rows) == (100, 3998, None)
    failed = stats_from_page(
        {"state": "FAILED"},
        {"errorName": "SYNTAX_ERROR", "errorType": "USER_ERROR", "message": "line 1:1: x"},
    )
    assert (failed.error_name, failed.error_type, failed.error) == (
        "SYNTAX_ERROR",
        "USER_ERROR",
        "line 1:1: x",
    )


def test_query_info_adds_output_rows_and_merges_with_the_last_page():
    info = stats_from_query_info(QUERY_INFO)
    assert (info.elapsed_ms, info.cpu_ms, info.physical_bytes, info.output_rows) == (
        128,
        3,
        1_572_864,
        25,
    )
    merged = merge_final(stats_from_page(PAGE_STATS), info)
    assert (merged.elapsed_ms, merged.cpu_ms, merged.output_rows) == (833, 46, 25)
    assert merge_final(None, info) is info
    assert merge_final(stats_from_page(PAGE_STATS), None).output_rows is None


def test_a_cancelled_query_is_canceled_not_failed():
    assert final_state("FAILED", "USER_CANCELED") == "CANCELED"
    assert final_state("FAILED", "SYNTAX_ERROR") == "FAILED"
    assert final_state("FINISHED", None) == "FINISHED"
    assert final_state("RUNNING", None) == "FAILED"


def test_running_and_queued_queries_are_counted_from_the_query_list():
    infos = [
        {"state": s}
        for s in ("RUNNING", "FINISHING", "PLANNING", "QUEUED", "WAITING_FOR_RESOURCES", "FINISHED")
    ]
    assert count_queries(infos) == (3, 2)
    assert count_queries({"not": "a list"}) == (0, 0)
