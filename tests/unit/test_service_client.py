"""The kernel's client of the DataHub service (datahub.extensions.service_client), against
a tiny local HTTP(S) server on real sockets: typed answers, the hub token, one sentence
per failure, and TLS trust pinned to the CA file whatever REQUESTS_CA_BUNDLE says."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from datahub.extensions.service_client import (
    NO_GATEWAY,
    TOKEN_REFUSED,
    ServiceClient,
    ServiceError,
)
from datahub.stack.tls import write_self_signed_certificate

TOKEN = "hub-token"
QUOTA = {"user": "alice", "resets": "00:00 UTC", "lines": []}


class _Service(BaseHTTPRequestHandler):
    """``/{mode}/api/{path}``: ``ok`` answers as the service does; the other modes fail
    in one way each."""

    seen: list[tuple[str, str, dict, str | None, object]] = []
    release = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self):  # noqa: N802
        self._answer()

    def _answer(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization")
        _Service.seen.append((self.command, url.path, parse_qs(url.query), auth, body))
        mode, _, path = url.path.strip("/").partition("/api/")
        if auth != f"token {TOKEN}":
            return self._send(401, {"status": 401, "message": "who are you"})
        if mode == "slow":
            _Service.release.wait(30)
            return self._send(200, QUOTA)
        if mode == "html500":
            return self._send(500, "<html><body><h1>500: Internal Server Error</h1></body></html>")
        if mode == "json500":
            return self._send(500, {"status": 500, "message": "Internal error; it was logged."})
        if mode == "refuse":
            return self._send(403, {"status": 403, "message": "Only admins may do this."})
        if mode == "notjson":
            return self._send(200, "hello")
        if mode == "shape":
            return self._send(200, {"something": 1})
        answers = {
            ("GET", "queries"): {"queries": [{"query_id": "q1"}, {"query_id": "q2"}]},
            ("GET", "clusters"): {"clusters": [{"name": "adhoc"}]},
            ("GET", "quota/me"): QUOTA,
            ("GET", "metadata/catalogs"): {"catalogs": ["memory", "tpch"]},
            ("POST", "metadata/refresh"): {"forgotten": 3},
            ("POST", "notebooks"): {"id": 7, "version": 1, "echo": body},
        }
        answer = answers.get((self.command, path))
        if mode != "ok" or answer is None:
            return self._send(404, "<html>404: Not Found</html>")
        return self._send(201 if path == "notebooks" else 200, answer)

    def _send(self, status, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        kind = "text/html" if isinstance(body, str) else "application/json"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _serve(context: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def service():
    server = _serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Service.release.set()
    server.shutdown()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """An https service with its own CA, and an unrelated CA that signed nothing of it."""
    d = tmp_path_factory.mktemp("tls")
    write_self_signed_certificate(d / "server.pem", d / "ca.pem", "datahub-test")
    write_self_signed_certificate(d / "bogus.pem", d / "bogus-ca.pem", "bogus")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "server.pem")
    server = _serve(context)
    yield (
        f"https://127.0.0.1:{server.server_address[1]}",
        str(d / "ca.pem"),
        str(d / "bogus-ca.pem"),
    )
    server.shutdown()


def client(base: str, mode: str = "ok", **kwargs) -> ServiceClient:
    return ServiceClient(f"{base}/{mode}/api", kwargs.pop("token", TOKEN), **kwargs)


# --------------------------------------------------------------------------- answers


def test_typed_methods_ask_their_paths_with_the_hub_token(service):
    _Service.seen.clear()
    api = client(service)
    assert [q["query_id"] for q in api.queries(2)] == ["q1", "q2"]
    method, path, query, auth, _ = _Service.seen[-1]
    assert (method, path, query, auth) == (
        "GET",
        "/ok/api/queries",
        {"user": ["me"], "limit": ["2"]},
        f"token {TOKEN}",
    )
    assert api.clusters() == [{"name": "adhoc"}]
    assert api.quota() == QUOTA
    assert api.metadata("catalogs", {"cluster": "etl"}) == ["memory", "tpch"]
    assert _Service.seen[-1][2] == {"cluster": ["etl"]}
    assert api.refresh_metadata() == 3
    assert _Service.seen[-1][:2] == ("POST", "/ok/api/metadata/refresh")


def test_publish_posts_the_body_and_expects_created(service):
    answer = client(service).publish({"path": "a.ipynb", "content": {"cells": []}})
    assert answer["id"] == 7 and answer["echo"] == {"path": "a.ipynb", "content": {"cells": []}}


def test_the_gateway_url_gives_the_api_below_the_service_prefix(service):
    api = ServiceClient.for_gateway(service + "/", TOKEN)
    assert api.api_url == service + "/services/datahub/api"


def test_the_environment_gives_the_gateway_and_the_token(monkeypatch):
    monkeypatch.setenv("DATAHUB_GATEWAY_URL", "http://gw:8765")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "from-env")
    api = ServiceClient.from_environment(timeout=3)
    assert (api.api_url, api.token, api.timeout) == (
        "http://gw:8765/services/datahub/api",
        "from-env",
        3,
    )


# --------------------------------------------------------------------------- one sentence


def _failure(api: ServiceClient, call=lambda api: api.quota()) -> ServiceError:
    with pytest.raises(ServiceError) as err:
        call(api)
    assert err.value._render_traceback_() == [err.value.message]
    assert "\n" not in err.value.message
    return err.value


def test_a_refused_token_says_to_restart_the_server(service):
    err = _failure(client(service, token="wrong"))
    assert err.message == TOKEN_REFUSED and err.status == 401


def test_a_refusal_quotes_the_services_message(service):
    err = _failure(client(service, "refuse"), lambda api: api.refresh_metadata())
    assert (
        err.message
        == "The DataHub service refused to refresh completions: Only admins may do this."
    )
    assert err.status == 403


def test_a_500_with_the_services_message_says_it_failed(service):
    err = _failure(client(service, "json500"))
    assert err.message == (
        "The DataHub service failed to show your quota (HTTP 500): Internal error; it was logged."
    )


def test_a_500_that_is_not_json_quotes_the_body_on_one_line(service):
    err = _failure(client(service, "html500"))
    assert err.message == (
        "The DataHub service answered HTTP 500 when asked to show your quota: "
        "<html><body><h1>500: Internal Server Error</h1></body></html>"
    )


def test_a_missing_api_asks_for_an_upgrade(service):
    err = _failure(client(service, "nowhere"), lambda api: api.clusters())
    assert err.message == (
        f"The DataHub service at {service} has no API to list the clusters (HTTP 404 for "
        "clusters); ask your DataHub admin to upgrade it."
    )


def test_an_answer_that_is_not_json_is_one_sentence(service):
    err = _failure(client(service, "notjson"))
    assert err.message == (
        "The DataHub service answered something not JSON when asked to show your quota."
    )


def test_an_answer_of_the_wrong_shape_is_one_sentence(service):
    err = _failure(client(service, "shape"), lambda api: api.queries(5))
    assert err.message == (
        "The DataHub service's answer has no 'queries' list (asked to show your query history)."
    )


def test_a_service_that_does_not_answer_in_time_is_one_sentence(service):
    err = _failure(client(service, "slow", timeout=0.5))
    assert err.message == (
        f"The DataHub service at {service} did not answer within 0.5 s when asked to show "
        "your quota; try again shortly."
    )
    assert err.status is None


def test_an_unreachable_service_is_one_sentence():
    err = _failure(ServiceClient("http://127.0.0.1:9/services/datahub/api", TOKEN, timeout=5))
    assert err.message.startswith(
        "Cannot reach the DataHub service at http://127.0.0.1:9 to show your quota ("
    )
    assert err.message.endswith("); try again shortly, or ask your DataHub admin whether it is up.")


def test_no_gateway_and_a_url_that_is_not_http_are_one_sentence():
    assert _failure(None, lambda _: ServiceClient.for_gateway("", TOKEN)).message == NO_GATEWAY
    err = _failure(ServiceClient("ftp://gw/services/datahub/api", TOKEN))
    assert err.message == "The DataHub service URL 'ftp://gw/services/datahub/api' is not http(s)."


# --------------------------------------------------------------------------- TLS trust


def test_a_pinned_ca_is_trusted_whatever_the_ca_bundle_variables_say(tls, monkeypatch):
    url, ca, bogus = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bogus)
    monkeypatch.setenv("CURL_CA_BUNDLE", bogus)
    assert client(url, ca_file=ca).quota() == QUOTA


def test_the_ca_bundle_variables_cannot_widen_a_pinned_ca(tls, monkeypatch):
    url, ca, bogus = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)  # would vouch for the server
    monkeypatch.setenv("CURL_CA_BUNDLE", ca)
    err = _failure(client(url, ca_file=bogus))
    assert err.message == (
        f"Cannot verify the certificate of the DataHub service at {url} to show your quota; "
        "the kernel needs the CA your DataHub admin gives out (SqlMagic.ca_file)."
    )


def test_without_a_pinned_ca_a_self_signed_service_is_refused(tls, monkeypatch):
    url, _ca, bogus = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bogus)
    assert _failure(client(url)).message.startswith("Cannot verify the certificate")
