"""The schema browser's way to the service from a user's server: the request it makes
(the service's metadata API on the gateway's listener, the server's hub token, the
pinned CA) and how it reads an answer that is not JSON."""

from __future__ import annotations

from datahub import wire
from datahub.extensions.server_proxy import MetadataProxy, _json_or_message


def test_the_request_goes_to_the_services_metadata_api_with_the_servers_token(monkeypatch):
    monkeypatch.setenv(wire.GATEWAY_URL_ENV, "http://gw.example:8765/")
    monkeypatch.setenv(wire.HUB_TOKEN_ENV, "server-token")
    proxy = MetadataProxy()
    request = proxy.request("tables", "catalog=tpch&schema=tiny&offset=0&limit=200")
    assert request.url == (
        "http://gw.example:8765/services/datahub/api/metadata/tables"
        "?catalog=tpch&schema=tiny&offset=0&limit=200"
    )
    assert request.headers["Authorization"] == "token server-token"
    assert request.method == "GET" and request.follow_redirects is False
    assert request.ca_certs is None


def test_the_panels_refresh_is_a_post_to_the_services_refresh(monkeypatch):
    monkeypatch.setenv(wire.GATEWAY_URL_ENV, "http://gw.example:8765")
    monkeypatch.setenv(wire.HUB_TOKEN_ENV, "server-token")
    request = MetadataProxy().request("refresh", "", "POST")
    assert request.url == "http://gw.example:8765/services/datahub/api/metadata/refresh"
    assert request.method == "POST" and request.body == b""
    assert request.headers["Authorization"] == "token server-token"


def test_an_https_gateway_is_checked_against_the_configured_ca(monkeypatch):
    monkeypatch.setenv(wire.GATEWAY_URL_ENV, "https://gw.example:8443")
    proxy = MetadataProxy(ca_file="/etc/datahub/ca.pem", timeout=5)
    request = proxy.request("routing-groups", "")
    assert request.url == "https://gw.example:8443/services/datahub/api/metadata/routing-groups"
    assert request.ca_certs == "/etc/datahub/ca.pem"
    assert request.request_timeout == 5


def test_an_answer_that_is_not_json_becomes_one_sentence():
    assert _json_or_message(b'{"tables": []}', 200) == {"tables": []}
    assert _json_or_message(b"<html>Bad gateway</html>", 502) == {
        "message": "The DataHub service answered HTTP 502 without JSON."
    }
