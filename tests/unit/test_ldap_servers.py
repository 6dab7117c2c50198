"""Which LDAP servers the authenticator uses and in which order (datahub.ldap.servers)."""

import pytest

from datahub.ldap.servers import LDAPServer, ServerHealth, parse_server_url, server_list


@pytest.mark.parametrize(
    ("url", "strategy", "expected"),
    [
        ("ldap://ldap1.example.com", "before_bind", ("ldap1.example.com", 389, "starttls")),
        ("ldap://ldap1.example.com:1389", "insecure", ("ldap1.example.com", 1389, "plain")),
        ("ldaps://ldap1.example.com", "before_bind", ("ldap1.example.com", 636, "ldaps")),
        ("ldaps://ldap1.example.com:1636/", "insecure", ("ldap1.example.com", 1636, "ldaps")),
        ("ldap://10.0.0.5:3389", "on_connect", ("10.0.0.5", 3389, "ldaps")),
        ("ldap://[::1]:389", "before_bind", ("::1", 389, "starttls")),
    ],
)
def test_server_urls_say_where_and_how_to_connect(url, strategy, expected):
    server = parse_server_url(url, strategy)
    assert (server.host, server.port, server.security) == expected


@pytest.mark.parametrize(
    "url",
    ["http://ldap.example.com", "ldap.example.com", "ldap://", "ldap://h:99999", "ldap://h/dc=x"],
)
def test_malformed_server_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_server_url(url)


def test_server_url_round_trips():
    assert LDAPServer("::1", 636, "ldaps").url == "ldaps://[::1]:636"
    assert parse_server_url("ldap://h:1389").url == "ldap://h:1389"


def test_server_urls_come_before_server_address():
    urls = ["ldaps://a.example.com", "ldap://b.example.com"]
    assert server_list(urls, "insecure", "c.example.com", 389) == [
        LDAPServer("a.example.com", 636, "ldaps"),
        LDAPServer("b.example.com", 389, "plain"),
    ]


@pytest.mark.parametrize(
    ("strategy", "security"),
    [("before_bind", "starttls"), ("on_connect", "ldaps"), ("insecure", "plain")],
)
def test_server_address_is_protected_as_tls_strategy_says(strategy, security):
    assert server_list([], strategy, "ldap.example.com", 1389) == [
        LDAPServer("ldap.example.com", 1389, security)
    ]


def test_no_servers_without_urls_or_an_address():
    assert server_list([], "before_bind", None, 389) == []
    assert server_list([], "before_bind", "", 389) == []


def test_failed_servers_go_last_until_they_may_be_retried():
    a, b, c = (LDAPServer(h, 389, "starttls") for h in ("a", "b", "c"))
    health = ServerHealth(retry_after=60)
    assert health.order([a, b, c], now=0) == [a, b, c]
    health.failed(a, now=10)
    assert health.order([a, b, c], now=11) == [b, c, a]
    health.failed(b, now=20)
    # Both failed: still tried (oldest failure first), after the healthy one.
    assert health.order([a, b, c], now=21) == [c, a, b]
    assert health.order([a, b, c], now=71) == [a, c, b]  # a may be retried
    health.succeeded(b)
    assert health.order([a, b, c], now=71) == [a, b, c]
