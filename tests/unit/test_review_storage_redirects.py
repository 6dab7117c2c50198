"""Attacks on %%sql's segment downloads in Trino's ``COORDINATOR_STORAGE_REDIRECT`` mode:
the segment URI is the gateway's (downloaded with the hub token), and the gateway passes
on the cluster's redirect to the object store's pre-signed URI. The token must not follow
the redirect, and a refusal or an unreachable storage behind it is the storage's sentence,
naming no part of the pre-signed URI, not the gateway's HTTP error."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from datahub.extensions import segments
from datahub.testing import free_port, serving

CLOSED = free_port()  # nothing listens there
SEEN: list[tuple[str, bool]] = []


class _GatewayAndStorage(BaseHTTPRequestHandler):
    """``127.0.0.1``: the gateway, redirecting segment downloads; ``localhost``, same
    port: the object store."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        SEEN.append((self.path, "Authorization" in self.headers))
        port = self.server.server_address[1]
        storage = {
            "/v1/dh-segment/ok": f"http://localhost:{port}/bucket/ok?X-Amz-Signature=secret",
            "/v1/dh-segment/refused": f"http://localhost:{port}/bucket/gone?X-Amz-Signature=secret",
            "/v1/dh-segment/missing": f"http://localhost:{CLOSED}/bucket/x?X-Amz-Signature=secret",
        }.get(self.path)
        if storage is not None:
            self.send_response(303)
            self.send_header("Location", storage)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, body = (200, b"[[1],[2]]") if self.path.startswith("/bucket/ok") else (403, b"")
        if status == 403:
            body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def port():
    with serving(_GatewayAndStorage) as port:
        yield port


def read(port: int, name: str):
    session = requests.Session()
    session.auth = ("alice", "hub-token")
    reader = segments.SegmentReader(
        session, threading.Event(), server=f"http://127.0.0.1:{port}/v1/statement"
    )
    segment = {"type": "spooled", "uri": f"http://127.0.0.1:{port}/v1/dh-segment/{name}"}
    (pending,) = reader.submit({"encoding": "json", "segments": [segment]}, bytes)
    try:
        return reader.result(pending)
    finally:
        reader.close()


def test_the_hub_token_does_not_follow_the_redirect_to_the_storage(port):
    SEEN.clear()
    assert read(port, "ok") == b"[[1],[2]]"
    assert SEEN == [("/v1/dh-segment/ok", True), ("/bucket/ok?X-Amz-Signature=secret", False)]


def test_the_storage_refusing_behind_a_redirect_is_named_as_the_storages(port):
    with pytest.raises(segments.StorageError) as error:
        read(port, "refused")
    assert str(error.value) == segments.storage_refused(403)


def test_an_unreachable_storage_behind_a_redirect_is_named_without_its_signed_uri(port):
    with pytest.raises(segments.StorageError) as error:
        read(port, "missing")
    assert f"result storage at http://localhost:{CLOSED} " in str(error.value)
    assert "secret" not in str(error.value) and "bucket" not in str(error.value)
