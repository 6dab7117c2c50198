"""Clients pinned to our own CA ignore ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``/
``SSL_CERT_FILE`` (set on these machines and on many company laptops, where they point
at the system bundle): ``requests`` lets the first two override a session's ``verify=``,
so a pinned CA file used to be silently replaced. Here they point at an unrelated CA, the
pinned clients still verify our servers, and unpinned clients refuse our self-signed
certificates instead of trusting anything."""

from __future__ import annotations

import httpx
import pytest
import requests
import trino

from datahub import cli
from datahub.extensions.sql import SqlMagic
from datahub.stack.tls import write_self_signed_certificate
from datahub.tls import pinned_context

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture
def bogus_ca_everywhere(tmp_path, monkeypatch):
    """Every CA variable names a CA that signed none of our servers' certificates."""
    write_self_signed_certificate(tmp_path / "bogus.pem", tmp_path / "bogus-ca.pem", "bogus")
    for name in CA_VARIABLES:
        monkeypatch.setenv(name, str(tmp_path / "bogus-ca.pem"))


def magic(stack, users, ca_file: str = "") -> SqlMagic:
    sql = SqlMagic()
    sql.gateway_url = stack.settings["gateway_https_url"]
    sql.ca_file = ca_file
    sql.token = users.token("alice")
    sql.user = "alice"
    return sql


def select_one(sql: SqlMagic) -> list:
    cursor = sql.connection().cursor()
    cursor.execute("SELECT 1")
    return cursor.fetchall()


def test_sql_magic_pinned_to_the_gateway_ca_ignores_a_bogus_ca_bundle(
    stack, users, bogus_ca_everywhere
):
    assert select_one(magic(stack, users, stack.settings["gateway_ca_file"])) == [[1]]


def test_sql_magic_without_a_pinned_ca_refuses_the_gateways_self_signed_certificate(
    stack, users, monkeypatch
):
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # the default: certifi's CAs
    with pytest.raises(trino.exceptions.TrinoConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        select_one(magic(stack, users))


def test_sql_magic_without_a_pinned_ca_does_not_trust_the_bundle_variables_ca(
    stack, users, bogus_ca_everywhere
):
    with pytest.raises(trino.exceptions.TrinoConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        select_one(magic(stack, users))


def test_the_stacks_trino_session_ignores_a_bogus_ca_bundle(stack, bogus_ca_everywhere):
    response = stack.trino.http_session().get(f"{stack.trino.url}/v1/info", timeout=30)
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{stack.trino.url}/v1/info", timeout=30)  # unpinned: refused


def test_a_pinned_httpx_context_ignores_a_bogus_ssl_cert_file(stack, bogus_ca_everywhere):
    url = f"{stack.trino.url}/v1/info"
    assert httpx.get(url, verify=pinned_context(stack.trino.ca_file)).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url)  # unpinned: SSL_CERT_FILE's bogus CA does not vouch for Trino


def test_datahub_quota_with_ca_file_reaches_an_https_server_despite_a_bogus_bundle(
    stack, bogus_ca_everywhere, capsys
):
    # Trino has no quota API: an HTTP answer (not "Could not reach") proves TLS verified.
    argv = ["quota", "--url", stack.trino.url, "--token", "t", "--ca-file"]
    assert cli.main([*argv, str(stack.trino.ca_file), "show"]) == 1
    assert "DataHub answered HTTP" in capsys.readouterr().err
