"""Trino's spooling protocol in its ``STORAGE`` retrieval mode behind the gateway: the
session's second Trino (`trino_b`) spools into the stack's S3 storage (S3Proxy, under
``b/``) and hands clients pre-signed URIs of the objects.

A gateway runs in-process (`BackgroundGateway`) with tokens from a static map. Proves: a
segment's URI reaches the client untouched, a pre-signed URI of the storage that needs no
credentials, and its ack URI as the gateway's signed URI; the ``trino`` client's rows are
the direct protocol's; ``%%sql`` gets the same typed DataFrame, downloading several
segments from the storage at once and sending the hub token to the gateway only, never to
the storage; an ack goes through the gateway to the cluster (which deletes the object)
and is refused to another user; the heartbeat is relayed; the audit counts a spooled
query's rows from its segments, as for a direct one.

Trino's ``COORDINATOR_STORAGE_REDIRECT`` mode, on a Trino of this module's own (spooling
under ``redirect/``; about 20 s to start): its segment URIs reach clients as the
gateway's signed URIs, checked as in proxy mode (refused to another user), and the
cluster's redirect to the storage's pre-signed URI is passed on, so the kernel's fetch
reads the segments from the storage, without the hub token.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
import requests
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from datahub.extensions.query import run_query
from datahub.stack import demo
from datahub.stack.trino import TrinoServer
from datahub.testing import (
    SMALL_SEGMENTS,
    ZSTD_SMALL_SEGMENTS,
    BackgroundGateway,
    bearer,
    closed_record,
    gateway_connection,
    user_token,
)

SECRET = b"spooling-storage-test-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts"), "bob-token": user_token("bob")}
#: 60,175 rows.
SQL = "SELECT * FROM tpch.tiny.lineitem"
ORDERED = SQL + " ORDER BY orderkey, linenumber"
ROWS = 60_175
#: How long a download from the storage waits for another to be under way (see Recorder).
GIVE_UP_AFTER = 20


@pytest.fixture(scope="module")
def gateway(trino_b, tmp_path_factory):
    assert trino_b.spooling_retrieval_mode == "STORAGE"
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[trino_b.cluster_entry("default", name="b")],
        state_dir=tmp_path_factory.mktemp("spooling-storage-gateway"),
        secret=SECRET,
    )
    yield running
    running.close()


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def spooled_segments(gateway, sql: str = SQL) -> list[dict[str, Any]]:
    """The spooled segments of *sql* asked for with json+zstd (1 MB segments) as alice,
    its pages followed by hand (nothing downloaded or acknowledged)."""
    headers = {**bearer("alice-token"), **ZSTD_SMALL_SEGMENTS}
    response = requests.post(f"{gateway.url}/v1/statement", data=sql, headers=headers, timeout=60)
    pages = [response.json()]
    while pages[-1].get("nextUri"):
        response = requests.get(pages[-1]["nextUri"], headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    assert pages[-1]["stats"]["state"] == "FINISHED", pages[-1].get("error")
    return [
        segment
        for page in pages
        if isinstance(page.get("data"), dict)
        for segment in page["data"]["segments"]
        if segment["type"] == "spooled"
    ]


class Recorder:
    """Every request `requests` sends from this process (the kernel's fetch runs here),
    with the headers it went out with. The first download from the storage waits (up to
    GIVE_UP_AFTER seconds) until another one is under way too, so that a reader that
    downloads one segment at a time shows as one (`most_at_once`), however fast the
    storage answers."""

    def __init__(self, storage_url: str) -> None:
        self.storage = origin(storage_url)
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.most_at_once = 0
        self._under_way = 0
        self._waited = False
        self._changed = threading.Condition()

    def to_storage(self) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.sent if origin(r[1]) == self.storage]

    def elsewhere(self) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.sent if origin(r[1]) != self.storage]

    def wrap(self, send):
        def recording_send(adapter, request, *args, **kwargs):
            with self._changed:
                self.sent.append((request.method, request.url, dict(request.headers)))
            if origin(request.url) != self.storage:
                return send(adapter, request, *args, **kwargs)
            with self._changed:
                self._under_way += 1
                self.most_at_once = max(self.most_at_once, self._under_way)
                self._changed.notify_all()
                if not self._waited:  # once: a reader one at a time then goes at its pace
                    self._waited = True
                    self._changed.wait_for(lambda: self.most_at_once > 1, GIVE_UP_AFTER)
            try:
                return send(adapter, request, *args, **kwargs)
            finally:
                with self._changed:
                    self._under_way -= 1

        return recording_send


@pytest.fixture
def recorder(stack, monkeypatch) -> Recorder:
    recording = Recorder(stack.storage.url)
    send = requests.adapters.HTTPAdapter.send
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording.wrap(send))
    return recording


@pytest.fixture
def shell(gateway):
    """The process's IPython shell with %%sql as alice through *gateway* (its own
    connection: SET SESSION stays on it)."""
    globalipapp.start_ipython()  # once per process; later calls return None
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "datahub.extensions.sql")
    for name, value in (("gateway_url", gateway.url), ("token", "alice-token"), ("user", "alice")):
        ip.run_line_magic("config", f"SqlMagic.{name} = {value!r}")
    return ip


def test_segment_uris_lead_to_the_storage_untouched_and_ack_uris_to_the_gateway(gateway, stack):
    segments = spooled_segments(gateway)
    assert len(segments) >= 3
    for segment in segments:
        assert segment["uri"].startswith(f"{stack.storage.url}/spooling/b/"), segment
        assert "X-Amz-Signature=" in segment["uri"]
        assert not segment.get("headers")  # unencrypted: the URI alone reads the object
        assert segment["ackUri"].startswith(f"{gateway.url}/v1/dh-segment/b/alice/"), segment
    # Untouched: the storage's signature still holds, for anyone holding the URI.
    first = segments[0]
    response = requests.get(first["uri"], timeout=60)
    assert response.status_code == 200
    assert len(response.content) == first["metadata"]["segmentSize"]
    altered = first["uri"].replace("X-Amz-Expires=", "X-Amz-Expires=9")
    assert requests.get(altered, timeout=60).status_code == 403


def test_the_trino_client_asking_for_json_zstd_gets_the_direct_protocols_rows(gateway, trino_b):
    connection = gateway_connection(
        gateway, encoding="json+zstd", session_properties=SMALL_SEGMENTS
    )
    cursor = connection.cursor()
    cursor.execute(ORDERED)
    spooled = cursor.fetchall()
    assert len(spooled) == ROWS
    assert spooled == trino_b.query(ORDERED, user="alice")  # the cluster itself, direct


def test_an_ack_goes_through_the_gateway_to_the_cluster_and_is_refused_to_another_user(
    gateway,
):
    segment = spooled_segments(gateway)[0]
    assert requests.get(segment["uri"], timeout=60).status_code == 200
    refused = requests.get(segment["ackUri"], headers=bearer("bob-token"), timeout=30)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "This result segment URI was not issued to you; run the query yourself."
    )
    forged = segment["ackUri"].replace("/b/alice/", "/b/bob/")
    assert requests.get(forged, headers=bearer("bob-token"), timeout=30).status_code == 403
    assert requests.get(segment["uri"], timeout=60).status_code == 200  # still there

    acked = requests.get(segment["ackUri"], headers=bearer("alice-token"), timeout=30)
    assert acked.status_code == 200
    # The cluster deleted the object: the storage no longer has it.
    assert requests.get(segment["uri"], timeout=60).status_code == 404


def test_the_heartbeat_is_relayed_to_the_cluster(gateway):
    headers = {**bearer("alice-token"), **ZSTD_SMALL_SEGMENTS}
    page = requests.post(f"{gateway.url}/v1/statement", data=SQL, headers=headers, timeout=60)
    # Sent on a nextUri of Trino's executing resource while the client reads segments.
    page = requests.get(page.json()["nextUri"], headers=headers, timeout=60).json()
    try:
        assert requests.head(page["nextUri"], headers=headers, timeout=30).status_code == 200
        refused = requests.head(page["nextUri"], headers=bearer("bob-token"), timeout=30)
        assert refused.status_code == 403
    finally:
        requests.delete(page["nextUri"], headers=headers, timeout=30)


def test_sql_magic_reads_segments_from_the_storage_at_once_without_the_hub_token(
    gateway, shell, recorder
):
    with capture_output():
        for name, value in SMALL_SEGMENTS.items():
            assert shell.run_cell(f"%sql SET SESSION {name} = '{value}'").error_in_exec is None
        result = shell.run_cell(f"%sql {ORDERED}")
    assert result.error_in_exec is None
    frame = result.result
    direct = run_query(gateway_connection(gateway), ORDERED, spooling=False).frame
    pd.testing.assert_frame_equal(frame, direct)
    assert len(frame) == ROWS
    assert str(frame["orderkey"].dtype) == "Int64"
    assert str(frame["shipdate"].dtype).startswith("datetime64")

    downloads = recorder.to_storage()
    assert len(downloads) >= 3
    assert recorder.most_at_once > 1
    for method, url, headers in downloads:
        assert method == "GET"
        assert "X-Amz-Signature=" in url
        assert not any(name.lower() in ("authorization", "cookie") for name in headers)
        assert not any("alice-token" in value for value in headers.values())
    # The token went where it belongs, acks included (the gateway's segment URIs).
    to_gateway = [r for r in recorder.elsewhere() if r[1].startswith(gateway.url)]
    acks = [r for r in to_gateway if "/v1/dh-segment/b/alice/" in r[1]]
    assert len(acks) == len(downloads)
    for _, _, headers in to_gateway:
        assert headers["Authorization"] == "Bearer alice-token"


def test_the_audit_counts_a_spooled_querys_rows_from_its_segments_as_a_direct_ones(gateway):
    connection = gateway_connection(gateway, session_properties=SMALL_SEGMENTS)
    spooled = run_query(connection, SQL)
    direct = run_query(connection, SQL, spooling=False)

    a, b = closed_record(gateway, spooled.query_id), closed_record(gateway, direct.query_id)
    fields = ("user", "cluster", "state", "error", "output_rows", "processed_rows")
    assert {k: a[k] for k in fields} == {k: b[k] for k in fields}
    assert (a["cluster"], a["state"], a["output_rows"]) == ("b", "FINISHED", ROWS)
    assert len(spooled.frame) == ROWS
    assert a["processed_bytes"] == b["processed_bytes"]


# ------------------------------------------------- COORDINATOR_STORAGE_REDIRECT mode


@pytest.fixture(scope="module")
def redirecting_trino(stack, tmp_path_factory):
    server = TrinoServer(
        tmp_path_factory.mktemp("trino-redirect"),
        name="r",
        ldap_url=stack.slapd.url,
        secrets=stack.secrets["services"],
        groups=demo.group_members(),
        spooling=stack.storage.spooling_properties("redirect/"),
        spooling_retrieval_mode="COORDINATOR_STORAGE_REDIRECT",
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def redirect_gateway(redirecting_trino, tmp_path_factory):
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[redirecting_trino.cluster_entry("default", name="r")],
        state_dir=tmp_path_factory.mktemp("spooling-redirect-gateway"),
        secret=SECRET,
    )
    yield running
    running.close()


def test_a_segment_download_is_redirected_to_the_storage_for_its_user_only(redirect_gateway, stack):
    segments = spooled_segments(redirect_gateway)
    assert len(segments) >= 3
    segment = segments[0]
    assert segment["uri"].startswith(f"{redirect_gateway.url}/v1/dh-segment/r/alice/")
    refused = requests.get(segment["uri"], headers=bearer("bob-token"), timeout=30)
    assert refused.status_code == 403

    for method in (requests.head, requests.get):
        answer = method(segment["uri"], allow_redirects=False, timeout=30)
        assert answer.status_code == 303
        assert answer.headers["Location"].startswith(f"{stack.storage.url}/spooling/redirect/")
        assert "X-Amz-Signature=" in answer.headers["Location"]
    read = requests.get(segment["uri"], timeout=60)
    assert read.status_code == 200
    assert len(read.content) == segment["metadata"]["segmentSize"]


def test_the_kernels_fetch_follows_the_redirects_without_the_hub_token(redirect_gateway, recorder):
    connection = gateway_connection(redirect_gateway, session_properties=SMALL_SEGMENTS)
    spooled = run_query(connection, ORDERED)
    direct = run_query(gateway_connection(redirect_gateway), ORDERED, spooling=False)
    pd.testing.assert_frame_equal(spooled.frame, direct.frame)
    assert len(spooled.frame) == ROWS
    assert closed_record(redirect_gateway, spooled.query_id)["output_rows"] == ROWS

    downloads = recorder.to_storage()
    assert len(downloads) >= 3
    assert recorder.most_at_once > 1
    for _, url, headers in downloads:
        assert "X-Amz-Signature=" in url
        assert "Authorization" not in headers
        assert not any("alice-token" in value for value in headers.values())
