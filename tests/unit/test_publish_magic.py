"""``%datahub publish`` against a tiny local service on a real socket: the request it
sends through the service client, and a refusal as the service's one sentence."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from datahub.extensions.publish import DataHubMagics, parse_publish_args
from datahub.extensions.service_client import ServiceError
from datahub.testing import serving

TOKEN = "server-token"
NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


class _Gallery(BaseHTTPRequestHandler):
    posted: list[tuple[str, str | None, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Gallery.posted.append((self.path, self.headers.get("Authorization"), body))
        if body.get("id") == 99:
            return self._send(403, {"status": 403, "message": "You may not edit notebook 99."})
        answer = {"id": 1, "version": 1, "title": "Sales", "created": True, "version_url": "/v/1"}
        return self._send(201, answer)

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def gallery():
    with serving(_Gallery) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def magic(gallery, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.ipynb").write_text(json.dumps(NOTEBOOK))
    m = DataHubMagics(shell=None)
    m.service_url = gallery + "/services/datahub/"
    m.token = TOKEN
    m.workspace_root = str(tmp_path)
    return m


def test_publish_posts_the_notebook_with_the_servers_token(magic):
    _Gallery.posted.clear()
    answer = magic.publish(parse_publish_args("sales.ipynb --title Sales --tag q3"))
    assert answer["id"] == 1 and magic.last_published == answer
    path, auth, body = _Gallery.posted[-1]
    assert path == "/services/datahub/api/notebooks" and auth == f"token {TOKEN}"
    assert body == {"content": NOTEBOOK, "path": "sales.ipynb", "title": "Sales", "tags": ["q3"]}


def test_a_refused_publish_is_the_services_sentence(magic):
    with pytest.raises(ServiceError) as err:
        magic.publish(parse_publish_args("sales.ipynb --to 99"))
    assert err.value._render_traceback_() == [
        "The DataHub service refused to publish the notebook: You may not edit notebook 99."
    ]
    assert magic.last_published is None
