"""Attack: a user names a column with 900,000 characters, so a spooled page's ``data`` (its
segments) starts beyond the first bytes the gateway looks at; the cluster's segment URIs
must still reach them as the gateway's signed URIs, never as the cluster's own."""

from __future__ import annotations

import pytest
import requests

from datahub.gateway import rewrite
from datahub.testing import ZSTD_SMALL_SEGMENTS, BackgroundGateway, bearer, user_token

SECRET = b"review-late-segments-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}
LONG_NAME = "c" * 900_000  # within Trino's query.max-length (1,000,000)
HEADERS = {**bearer("alice-token"), **ZSTD_SMALL_SEGMENTS}


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=tmp_path_factory.mktemp("review-late-segments"),
        secret=SECRET,
    )
    yield running
    running.close()


def test_segments_after_a_long_column_name_are_the_gateways(stack, gateway):
    sql = f'SELECT orderkey AS "{LONG_NAME}", comment FROM tpch.tiny.lineitem'
    response = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=HEADERS, timeout=60)
    pages = [response]
    while response.json().get("nextUri"):
        response = requests.get(response.json()["nextUri"], headers=HEADERS, timeout=60)
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
