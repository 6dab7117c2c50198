"""Which LDAP servers to use, and in which order (pure).

A server is an URL (:func:`parse_server_url`) or ldapauthenticator's `server_address` and
`server_port` (:func:`server_list`); :class:`ServerHealth` puts the servers that failed
recently last, so that the next logins go to the ones that answer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LDAPServer:
    """One LDAP server: where it is and how the connection is protected.

    ``security`` is ``"ldaps"`` (TLS from the first byte), ``"starttls"`` (plain connect,
    then StartTLS before any bind) or ``"plain"`` (no TLS at all).
    """

    host: str
    port: int
    security: str

    @property
    def url(self) -> str:
        scheme = "ldaps" if self.security == "ldaps" else "ldap"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_server_url(url: str, tls_strategy: str = "before_bind") -> LDAPServer:
    """An :class:`LDAPServer` from ``ldap://host[:port]`` or ``ldaps://host[:port]``.

    ``ldaps://`` always means LDAPS (default port 636). For ``ldap://`` (default port 389)
    ``tls_strategy`` decides: ``before_bind`` → StartTLS, ``insecure`` → plain,
    ``on_connect`` → LDAPS on that port (ldapauthenticator's meaning). Raises ValueError
    for anything else.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ldap", "ldaps"):
        raise ValueError(f"{url!r} is not an LDAP URL; write ldap://host:port or ldaps://host.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r} has more than a host and port; write ldap://host:port.")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host; write ldap://host:port.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port.") from None
    if parts.scheme == "ldaps" or tls_strategy == "on_connect":
        security = "ldaps"
    elif tls_strategy == "insecure":
        security = "plain"
    else:
        security = "starttls"
    return LDAPServer(parts.hostname, port or (636 if parts.scheme == "ldaps" else 389), security)


def server_list(
    urls: Sequence[str], tls_strategy: str, address: str | None, port: int
) -> list[LDAPServer]:
    """The configured servers: ``urls`` (`servers`) if any, else ``address`` and ``port``
    (`server_address`, `server_port`) protected as ``tls_strategy`` says; none without
    either."""
    if urls:
        return [parse_server_url(url, tls_strategy) for url in urls]
    if not address:
        return []
    security = {"on_connect": "ldaps", "insecure": "plain"}.get(tls_strategy, "starttls")
    return [LDAPServer(address, port, security)]


class ServerHealth:
    """Remembers servers that failed recently so that the next logins try others first.

    Thread-safe: logins run in threads. Time is passed in, so the logic is testable.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def order(self, servers: Sequence[LDAPServer], now: float) -> list[LDAPServer]:
        """``servers`` in the order to try: healthy ones as configured, then failed ones,
        the one that failed longest ago first (all are tried when none is healthy)."""
        with self._lock:
            down = dict(self._down_until)
        healthy = [s for s in servers if down.get(s.url, 0) <= now]
        failed = sorted((s for s in servers if down.get(s.url, 0) > now), key=lambda s: down[s.url])
        return healthy + failed

    def failed(self, server: LDAPServer, now: float) -> None:
        with self._lock:
            self._down_until[server.url] = now + self.retry_after

    def succeeded(self, server: LDAPServer) -> None:
        with self._lock:
            self._down_until.pop(server.url, None)
