"""Clients that verify a server against one pinned CA file, whatever the environment says.

``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` are set on many machines (to the system
bundle, or a company's). ``requests`` lets them override a session's ``verify=``
(psf/requests#3829), so a session pinned to our self-signed CA would silently verify
against them instead, and fail. Sessions here turn ``trust_env`` off; the local stack
and DataHub's clients reach their servers directly, never through a proxy from the
environment. Without a pinned CA, clients keep the default verification (system CAs).
"""

from __future__ import annotations

import os
import ssl

import requests


def pinned_session(ca_file: str | os.PathLike[str]) -> requests.Session:
    """A ``requests.Session`` that trusts exactly the certificates in ``ca_file``.

    One per client connection: the trino client adds its headers to the session it is given.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = os.fspath(ca_file)
    return session


def pinned_context(ca_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """An SSL context (for httpx, aiohttp, ...) that trusts exactly ``ca_file``;
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` play no part."""
    return ssl.create_default_context(cafile=os.fspath(ca_file))
