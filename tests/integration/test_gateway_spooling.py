"""Trino's spooling protocol through the gateway, on the test stack's Trino (spooling into
its local S3 storage, segments through the coordinator).

A gateway runs in-process (`BackgroundGateway`) with tokens from a static map. Proves: the
segments' URIs reach clients as the gateway's signed URIs, the rows and types are those of
the direct protocol (the kernel's fetch and the unmodified ``trino`` client), a segment URI
is refused to another user, after its time, or altered, a gone segment is one sentence,
the heartbeat is relayed, the audit records a spooled query as a direct one, and a page
whose segments start late (after a huge column name) still has them signed.
%%sql through the stack's own gateway runs spooled.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
import requests
from IPython.utils.capture import capture_output

from datahub.extensions.query import run_query
from datahub.gateway import rewrite
from datahub.gateway.signing import FollowupSigner
from datahub.testing import (
    SMALL_SEGMENTS,
    ZSTD_SMALL_SEGMENTS,
    BackgroundGateway,
    bearer,
    closed_record,
    gateway_connection,
    user_token,
)

SECRET = b"spooling-test-secret-0123456789abcdef"
TOKENS = {"alice-token": user_token("alice", "analysts"), "bob-token": user_token("bob")}
#: 60,175 rows, about ten segments.
SQL = "SELECT * FROM tpch.tiny.lineitem"


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=tmp_path_factory.mktemp("spooling-gateway"),
        secret=SECRET,
    )
    yield running
    running.close()


def spooled_pages(gateway, sql: str, token: str = "alice-token") -> list[dict[str, Any]]:
    """Every page of *sql* asked for with json+zstd (1 MB segments), followed by hand."""
    headers = {**bearer(token), **ZSTD_SMALL_SEGMENTS}
    response = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=headers, timeout=60)
    pages = [response.json()]
    while pages[-1].get("nextUri"):
        response = requests.get(pages[-1]["nextUri"], headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def spooled_segments(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        segment
        for page in pages
        if isinstance(page.get("data"), dict)
        for segment in page["data"]["segments"]
        if segment["type"] == "spooled"
    ]


@pytest.fixture(scope="module")
def segment_uri(gateway) -> str:
    """A download URI of alice's, not yet downloaded (the query's other segments stay)."""
    pages = spooled_pages(gateway, SQL)
    segments = spooled_segments(pages)
    assert segments, "Trino spooled no segment"
    return segments[-1]["uri"]


def test_segment_uris_lead_to_the_gateway_and_name_the_cluster_and_user(gateway):
    segments = spooled_segments(spooled_pages(gateway, SQL))
    assert len(segments) >= 3
    for segment in segments:
        for key in ("uri", "ackUri"):
            assert segment[key].startswith(f"{gateway.url}/v1/dh-segment/main/alice/"), segment


def test_spooled_rows_and_types_are_the_direct_protocols(gateway):
    connection = gateway_connection(gateway, session_properties=SMALL_SEGMENTS)
    direct = run_query(connection, SQL + " ORDER BY orderkey, linenumber", spooling=False)
    spooled = run_query(connection, SQL + " ORDER BY orderkey, linenumber")
    assert len(direct.frame) > 50_000
    pd.testing.assert_frame_equal(spooled.frame, direct.frame)
    assert list(spooled.frame.dtypes) == list(direct.frame.dtypes)


def test_a_small_spooled_results_rows_and_types_are_the_direct_protocols(gateway):
    # Inline rows: the answer to the POST may carry them as direct-protocol rows.
    sql = (
        "SELECT n, 'x' || CAST(n AS varchar) AS s, DATE '2020-01-02' + n * INTERVAL '1' DAY AS d, "
        "CAST(n AS DECIMAL(10,2)) / 3 AS m, n / 7e0 AS f, ARRAY[n] AS a, "
        "TIMESTAMP '2020-01-02 03:04:05.123' AS t, CAST(NULL AS BIGINT) AS z "
        "FROM UNNEST(sequence(1, 20)) AS u(n) ORDER BY n"
    )
    direct = run_query(gateway_connection(gateway), sql, spooling=False)
    spooled = run_query(gateway_connection(gateway), sql)
    assert len(direct.frame) == 20
    pd.testing.assert_frame_equal(spooled.frame, direct.frame)
    assert list(spooled.frame.dtypes) == list(direct.frame.dtypes)


def test_the_trino_client_asking_for_json_zstd_works_unchanged(gateway):
    sql = "SELECT orderkey, extendedprice, shipdate, comment FROM tpch.tiny.lineitem "
    sql += "ORDER BY orderkey, linenumber"
    connection = gateway_connection(
        gateway, encoding="json+zstd", session_properties=SMALL_SEGMENTS
    )
    cursor = connection.cursor()
    cursor.execute(sql)
    spooled = cursor.fetchall()
    cursor = gateway_connection(gateway).cursor()
    cursor.execute(sql)
    assert spooled == cursor.fetchall()
    assert len(spooled) > 50_000


def test_a_segment_uri_is_refused_to_another_user_in_one_sentence(gateway, segment_uri):
    response = requests.get(segment_uri, headers=bearer("bob-token"), timeout=30)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "This result segment URI was not issued to you; run the query yourself."
    )


def test_a_segment_uri_with_another_user_written_in_is_refused(gateway, segment_uri):
    forged = segment_uri.replace("/main/alice/", "/main/bob/")
    for headers in ({}, bearer("bob-token")):
        response = requests.get(forged, headers=headers, timeout=30)
        assert response.status_code == 403
        assert "not issued to you" in response.json()["error"]["message"]


def test_a_segment_uri_with_a_later_expiry_written_in_is_refused(gateway, segment_uri):
    parts = segment_uri.split("/")
    expires = parts.index("alice") + 1
    parts[expires] = str(int(parts[expires]) + 86400)
    response = requests.get("/".join(parts), timeout=30)
    assert response.status_code == 403


def test_an_expired_segment_uri_is_refused_in_one_sentence(gateway, segment_uri):
    path = urlsplit(segment_uri).path
    upstream = path[path.index("/v1/spooled/") :]
    expired = FollowupSigner(SECRET).segment_uri(
        gateway.url, "main", "alice", upstream, int(time.time()) - 1
    )
    response = requests.get(expired, headers=bearer("alice-token"), timeout=30)
    assert response.status_code == 410
    assert response.json()["error"]["message"] == (
        "This result segment URI has expired; run the query again."
    )


def test_a_segment_uri_cannot_be_turned_to_another_trino_path(gateway):
    signer = FollowupSigner(SECRET)
    uri = signer.segment_uri(gateway.url, "main", "alice", "/v1/query", int(time.time()) + 60)
    response = requests.get(uri, headers=bearer("alice-token"), timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "This DataHub segment URI is malformed."


def test_a_segment_downloads_acks_and_is_then_gone_in_one_sentence(gateway):
    pages = spooled_pages(gateway, SQL)
    segment = spooled_segments(pages)[0]
    # Without credentials, as the trino client downloads: the URI is the credential.
    response = requests.get(segment["uri"], timeout=60)
    assert response.status_code == 200
    assert len(response.content) == segment["metadata"]["segmentSize"]
    assert requests.get(segment["ackUri"], headers=bearer("alice-token"), timeout=30).ok
    gone = requests.get(segment["uri"], headers=bearer("alice-token"), timeout=30)
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == (
        "Cluster main no longer has this result segment (it was acknowledged or expired); "
        "run the query again."
    )
    assert "java" not in gone.text.lower()


def test_the_heartbeat_on_a_next_uri_is_relayed(gateway):
    headers = {**bearer("alice-token"), **ZSTD_SMALL_SEGMENTS}
    response = requests.post(
        f"{gateway.url}/v1/statement", data=SQL, headers=headers, timeout=60
    ).json()
    # Clients send it while they download a page's segments: on a nextUri of Trino's
    # executing resource, which knows the query once it was asked for a page there.
    response = requests.get(response["nextUri"], headers=headers, timeout=60).json()
    assert requests.head(response["nextUri"], headers=headers, timeout=30).status_code == 200
    assert (
        requests.head(response["nextUri"], headers=bearer("bob-token"), timeout=30).status_code
        == 403
    )
    requests.delete(response["nextUri"], headers=headers, timeout=30)


def test_the_audit_records_a_spooled_query_as_a_direct_one(gateway):
    connection = gateway_connection(gateway, session_properties=SMALL_SEGMENTS)
    spooled = run_query(connection, SQL)
    direct = run_query(connection, SQL, spooling=False)

    a, b = closed_record(gateway, spooled.query_id), closed_record(gateway, direct.query_id)
    fields = ("user", "cluster", "state", "error", "output_rows", "processed_rows")
    assert {k: a[k] for k in fields} == {k: b[k] for k in fields}
    assert (a["state"], a["output_rows"]) == ("FINISHED", len(spooled.frame))
    assert a["processed_bytes"] == b["processed_bytes"]


def test_sql_magic_fetches_through_spooling_on_the_stack(ip, stack):
    assert stack.settings["spooling"] is True
    with capture_output():
        result = ip.run_cell(f"%sql {SQL}")
    assert result.error_in_exec is None
    df = result.result
    (count,) = stack.trino.query(f"SELECT count(*) FROM ({SQL})", user="alice")
    assert len(df) == count[0] > 50_000
    assert str(df["orderkey"].dtype) == "Int64"
    assert str(df["shipdate"].dtype).startswith("datetime64")


def test_segments_after_a_long_column_name_are_the_gateways(stack, gateway):
    """Attack: a 900,000-character column name puts a spooled page's ``data`` (its
    segments) beyond the first bytes the gateway looks at; the cluster's segment URIs
    still reach the user only as the gateway's signed URIs."""
    long_name = "c" * 900_000  # within Trino's query.max-length (1,000,000)
    sql = f'SELECT orderkey AS "{long_name}", comment FROM tpch.tiny.lineitem'
    headers = {**bearer("alice-token"), **ZSTD_SMALL_SEGMENTS}
    response = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=headers, timeout=60)
    pages = [response]
    while response.json().get("nextUri"):
        response = requests.get(response.json()["nextUri"], headers=headers, timeout=60)
        pages.append(response)
    spooled = [p for p in pages if isinstance(p.json().get("data"), dict)]
    assert spooled, "no spooled page came"
    assert all(len(p.content) > rewrite.WHOLE_PAGE for p in spooled)
    trino_url = stack.settings["clusters"][0]["url"]
    segments = [s for p in spooled for s in p.json()["data"]["segments"] if s["type"] == "spooled"]
    assert segments and all(trino_url not in p.text for p in spooled)
    for segment in segments:
        assert segment["uri"].startswith(f"{gateway.url}/v1/dh-segment/main/alice/")
        assert segment["ackUri"].startswith(f"{gateway.url}/v1/dh-segment/main/alice/")
    assert pages[-1].json()["stats"]["state"] == "FINISHED"
