"""Spooled pages and segment URIs in the gateway (pure parts: signing, page rewriting)."""

from __future__ import annotations

import json

import pytest

from datahub.gateway import spooled
from datahub.gateway.signing import FollowupError, FollowupSigner, parse_followup, parse_segment
from datahub.gateway.stats import merge_final, stats_from_page, stats_from_query_info

SIGNER = FollowupSigner(b"unit-test-secret-0123456789abcdef")
BASE = "https://gateway.example:8443"
DOWNLOAD = "https://trino:8443/v1/spooled/download/vjs1K8Yody_AQdgAb99uIkKJh0="
ACK = "https://trino:8443/v1/spooled/ack/vjs1K8Yody_AQdgAb99uIkKJh0="


def path_of(uri: str) -> str:
    return uri[len(BASE) :]


def test_a_segment_uri_names_cluster_user_expiry_and_keeps_only_the_trino_path():
    uri = SIGNER.segment_uri(BASE, "main", "alice", DOWNLOAD, 2_000_000_000)
    assert uri.startswith(f"{BASE}/v1/dh-segment/main/alice/2000000000/")
    assert "trino:8443" not in uri
    segment = parse_segment(path_of(uri))
    assert (segment.cluster, segment.user, segment.expires) == ("main", "alice", 2_000_000_000)
    assert segment.path == "/v1/spooled/download/vjs1K8Yody_AQdgAb99uIkKJh0="
    assert SIGNER.verify_segment(segment)


@pytest.mark.parametrize(
    ("old", "new"),
    [("/main/", "/other/"), ("/alice/", "/bob/"), ("/2000000000/", "/2000000001/")],
)
def test_a_segment_uri_with_any_part_changed_fails_its_signature(old, new):
    uri = SIGNER.segment_uri(BASE, "main", "alice", DOWNLOAD, 2_000_000_000)
    assert not SIGNER.verify_segment(parse_segment(path_of(uri).replace(old, new)))


def test_a_segment_uri_for_the_ack_differs_from_the_downloads():
    down = parse_segment(path_of(SIGNER.segment_uri(BASE, "main", "alice", DOWNLOAD, 10)))
    ack = parse_segment(path_of(SIGNER.segment_uri(BASE, "main", "alice", ACK, 10)))
    assert down.signature != ack.signature
    assert ack.path.startswith("/v1/spooled/ack/")


def test_a_segment_uri_expires():
    segment = parse_segment(path_of(SIGNER.segment_uri(BASE, "main", "alice", DOWNLOAD, 100)))
    assert not segment.expired(100)
    assert segment.expired(100.5)


@pytest.mark.parametrize(
    "upstream",
    [
        "https://trino/v1/query/20240101_000000_00000_abcde",
        "https://trino/v1/statement/executing/x/y/1",
        "https://trino/v1/spooled/download/../../v1/query",
        "https://trino/v1/spooled/download/a%2Fb",
        "https://trino/v1/spooled/other/abc",
    ],
)
def test_only_trinos_segment_paths_can_be_reached(upstream):
    uri = SIGNER.segment_uri(BASE, "main", "alice", upstream, 2_000_000_000)
    with pytest.raises(FollowupError, match="segment URI is malformed"):
        parse_segment(path_of(uri))


def test_segment_and_followup_signatures_never_pass_for_each_other():
    followup = SIGNER.gateway_uri(BASE, "main", "alice", DOWNLOAD)
    with pytest.raises(FollowupError):
        parse_followup(path_of(followup))  # /v1/spooled is no follow-up path
    segment = parse_segment(path_of(SIGNER.segment_uri(BASE, "main", "alice", DOWNLOAD, 5)))
    assert not SIGNER.verify("main", "alice", segment.path, segment.signature)


def page(data) -> bytes:
    return json.dumps(
        {
            "id": "q1",
            "nextUri": "https://trino:8443/v1/statement/executing/q1/s/2",
            "columns": [{"name": "data", "type": "varchar"}],
            "data": data,
            "stats": {"state": "RUNNING"},
        },
        separators=(",", ":"),
    ).encode()


SPOOLED = {
    "encoding": "json+zstd",
    "segments": [
        {"type": "inline", "data": "KLUv", "metadata": {"rowOffset": 100, "rowsCount": 1}},
        {
            "type": "spooled",
            "uri": DOWNLOAD,
            "ackUri": ACK,
            "metadata": {"rowOffset": 101, "rowsCount": 9},
        },
        {
            "type": "spooled",
            "uri": "https://bucket.s3.example/seg?X-Amz-Signature=abc",
            "ackUri": ACK,
            "metadata": {"rowOffset": 110, "rowsCount": 9},
        },
    ],
}


def test_a_spooled_page_is_told_from_a_direct_one_by_its_data():
    assert spooled.segments_of(json.loads(page(SPOOLED))) == SPOOLED["segments"]
    assert spooled.segments_of(json.loads(page([["x"]]))) is None
    # A map value shaped like spooled data inside direct rows is no spooled page.
    assert spooled.segments_of(json.loads(page([[{"data": {"segments": []}}]]))) is None
    assert spooled.segments_of({"id": "q1", "columns": [{"name": "data"}]}) is None


def test_segment_uris_on_the_cluster_are_rewritten_and_storage_uris_kept():
    out = json.loads(page(SPOOLED))
    rows = spooled.segment_rows(out)
    spooled.rewrite_segment_uris(out, lambda uri: "GW:" + uri)
    inline, on_cluster, on_storage = out["data"]["segments"]
    assert inline == SPOOLED["segments"][0]
    assert (on_cluster["uri"], on_cluster["ackUri"]) == ("GW:" + DOWNLOAD, "GW:" + ACK)
    assert on_storage["uri"] == "https://bucket.s3.example/seg?X-Amz-Signature=abc"
    assert on_storage["ackUri"] == "GW:" + ACK
    assert out["nextUri"] == "https://trino:8443/v1/statement/executing/q1/s/2"
    # The result's rows up to the end of the page's last segment: Trino's own count of
    # output rows is the number of segments.
    assert rows == 119


def test_direct_pages_pass_unchanged():
    doc = json.loads(page([["segments"], ["v1/spooled"]]))
    spooled.rewrite_segment_uris(doc, lambda uri: "GW:" + uri)
    assert doc == json.loads(page([["segments"], ["v1/spooled"]]))
    assert spooled.segment_rows(doc) is None


def test_a_spooled_querys_output_rows_are_the_gateways_count_not_trinos():
    page_stats = stats_from_page({"state": "FINISHED"}, output_rows=119)
    info = stats_from_query_info({"state": "FINISHED", "queryStats": {"outputPositions": 3}})
    assert merge_final(page_stats, info).output_rows == 119
    direct = stats_from_page({"state": "FINISHED"})
    assert merge_final(direct, info).output_rows == 3
