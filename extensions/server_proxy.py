"""DataHub's Jupyter server extension: the schema browser's way to the service's metadata API.

The browser cannot ask the DataHub service for metadata itself: the service runs each
metadata statement through the gateway with the caller's hub token, and a JupyterLab
session has none (its cookie belongs to the user's server). The user's server has one,
the same ``$JUPYTERHUB_API_TOKEN`` its kernels use for ``%%sql``. So the server answers
``GET {base_url}datahub/api/metadata/<kind>?…`` (and ``POST …/refresh``, the panel's
Refresh) for its signed-in user by asking ``{service}/api/metadata/<kind>?…`` with that
token, and passes the answer (or the service's error sentence) through: the same
identity, quota, routing and audit as the user's queries, and nothing the user could not
ask for themselves.

Enabled by ``jupyter_server_config.d/jupyter-datahub.json`` in
``datahub/share/jupyter_config``, which the DataHub spawners put on users' servers'
``JUPYTER_CONFIG_PATH``.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode, default
from traitlets.config import Configurable

from datahub import wire

__all__ = ["MetadataProxy"]

#: What the browser may ask for: ``api/metadata/<kind>`` of the service (GET), and
#: ``POST api/metadata/refresh`` (drop the user's cached answers).
KIND_PATTERN = r"([a-z][a-z-]*)"
REFRESH = "refresh"


class MetadataProxy(Configurable):
    """Where the user's server asks the DataHub service for the schema browser."""

    gateway_url = Unicode(
        help="""The DataHub gateway's listener, whose service API answers metadata.
        Defaults to $DATAHUB_GATEWAY_URL, which the DataHub spawner sets in every server
        (the same address the kernels' %%sql uses).

        Example: c.MetadataProxy.gateway_url = "https://datahub-gateway:8765"
        """,
    ).tag(config=True)

    ca_file = Unicode(
        "",
        help="""PEM file of the CA that signed an https gateway's certificate (empty: the
        system CAs), like SqlMagic.ca_file for the kernels.

        Example: c.MetadataProxy.ca_file = "/etc/datahub/gateway-ca.pem"
        """,
    ).tag(config=True)

    timeout = Float(
        60.0,
        help="""Seconds the server waits for the service's answer (a cold listing runs a
        metadata statement on Trino).

        Example: c.MetadataProxy.timeout = 30
        """,
    ).tag(config=True)

    @default("gateway_url")
    def _gateway_url_default(self) -> str:
        return os.environ.get(wire.GATEWAY_URL_ENV, "")

    def request(self, kind: str, query: str, method: str = "GET") -> HTTPRequest:
        """The request to the service for ``api/metadata/<kind>?<query>``, with the
        server's hub token."""
        url = f"{wire.service_api_url(self.gateway_url)}/{wire.API_METADATA}{kind}"
        if query:
            url += "?" + query
        token = os.environ.get(wire.HUB_TOKEN_ENV, "")
        return HTTPRequest(
            url,
            method=method,
            body=b"" if method == "POST" else None,
            headers={"Authorization": f"token {token}", "Accept": "application/json"},
            request_timeout=self.timeout,
            connect_timeout=min(self.timeout, 10.0),
            ca_certs=self.ca_file or None,
            follow_redirects=False,
        )


class MetadataProxyHandler(APIHandler):
    """``GET {base_url}datahub/api/metadata/<kind>``: the service's answer for this
    server's user; ``POST …/refresh`` drops that user's cached answers (the panel's
    Refresh)."""

    def initialize(self, proxy: MetadataProxy) -> None:
        self.proxy = proxy

    @web.authenticated
    async def get(self, kind: str) -> None:
        await self._forward(kind, "GET")

    @web.authenticated
    async def post(self, kind: str) -> None:
        if kind != REFRESH:
            self._answer(405, {"message": "Only the refresh of metadata is a POST."})
            return
        await self._forward(kind, "POST")

    async def _forward(self, kind: str, method: str) -> None:
        if not self.proxy.gateway_url:
            self._answer(503, {"message": "No DataHub gateway is configured for this server."})
            return
        if urlsplit(self.proxy.gateway_url).scheme not in ("http", "https"):
            self._answer(503, {"message": "The DataHub gateway URL is not http(s)."})
            return
        request = self.proxy.request(kind, self.request.query, method)
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except HTTPClientError as e:  # raised even so for timeouts (code 599)
            if e.code == 599:
                self._answer(504, {"message": "The DataHub service did not answer in time."})
                return
            self.log.warning("The schema browser could not reach DataHub at %s: %r", request.url, e)
            self._answer(502, {"message": "The DataHub service could not be reached; try again."})
            return
        except OSError as e:
            self.log.warning("The schema browser could not reach DataHub at %s: %r", request.url, e)
            self._answer(502, {"message": "The DataHub service could not be reached; try again."})
            return
        self._answer(response.code, _json_or_message(response.body, response.code))

    def _answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))


def _json_or_message(body: bytes | None, status: int) -> Any:
    """The service's JSON answer; anything else as a ``message``."""
    try:
        return json.loads(body or b"")
    except ValueError:
        return {"message": f"The DataHub service answered HTTP {status} without JSON."}


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "datahub.extensions.server_proxy"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    proxy = MetadataProxy(parent=serverapp)
    route = url_path_join(
        serverapp.web_app.settings["base_url"], "datahub", "api", "metadata", KIND_PATTERN
    )
    serverapp.web_app.add_handlers(".*$", [(route, MetadataProxyHandler, {"proxy": proxy})])
    serverapp.log.info("DataHub schema browser API at %s", route)
