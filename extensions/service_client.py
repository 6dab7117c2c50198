"""The kernel's one client for the DataHub service's REST API.

Every kernel-side caller (``%sql history``, ``%sql clusters``, ``%sql quota``,
``%sql refresh-completions``, SQL completion's metadata, ``%datahub publish``) asks the
service through :class:`ServiceClient`, with the server's hub token, and gets either the
decoded answer or a :class:`ServiceError` whose message is one sentence for the user.

Trust: with a ``ca_file``, an https service is verified against that CA only
(:func:`datahub.tls.pinned_session`: ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` play
no part); without one, against the usual system CAs, like the ``%%sql`` connection.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import requests

from datahub import wire
from datahub.tls import pinned_session

__all__ = ["NO_GATEWAY", "TOKEN_REFUSED", "ServiceClient", "ServiceError"]

#: What a user sees when DataHub refuses the server's hub token (the gateway or the API).
TOKEN_REFUSED = (
    "DataHub refused your token; restart your server from the hub home page "
    "(File → Hub Control Panel → Stop My Server, then Start)."
)
#: What a user sees when the kernel does not know where DataHub is.
NO_GATEWAY = (
    f"No DataHub gateway is configured ({wire.GATEWAY_URL_ENV} is empty); ask your DataHub admin."
)
#: Characters of an error body quoted in a sentence.
BODY_PREVIEW = 200


class ServiceError(Exception):
    """The service could not do what was asked; ``message`` is one sentence for the user.

    ``status`` is the HTTP status when the service answered, ``None`` when it did not.
    IPython shows ``_render_traceback_`` instead of a traceback.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def _render_traceback_(self) -> list[str]:
        return [self.message]


class ServiceClient:
    """The DataHub service's REST API at ``api_url`` (``…/services/datahub/api``).

    ``token`` is the hub token sent as ``Authorization: token …`` (none when empty);
    ``ca_file`` pins the CA of an https ``api_url``; ``timeout`` is in seconds, per request.
    """

    def __init__(
        self, api_url: str, token: str = "", *, ca_file: str = "", timeout: float = 30.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.ca_file = ca_file
        self.timeout = timeout
        self._session: requests.Session | None = None

    @classmethod
    def for_gateway(cls, gateway_url: str, token: str, **kwargs: Any) -> ServiceClient:
        """The client of the service on the gateway's listener at *gateway_url*."""
        if not gateway_url:
            raise ServiceError(NO_GATEWAY)
        return cls(wire.service_api_url(gateway_url), token, **kwargs)

    @classmethod
    def from_environment(cls, **kwargs: Any) -> ServiceClient:
        """The client a user's server is set up for: ``$DATAHUB_GATEWAY_URL`` and the
        server's hub token ``$JUPYTERHUB_API_TOKEN``."""
        return cls.for_gateway(
            os.environ.get(wire.GATEWAY_URL_ENV, ""),
            os.environ.get(wire.HUB_TOKEN_ENV, ""),
            **kwargs,
        )

    # -- the API ------------------------------------------------------------------------

    def queries(self, limit: int) -> list[dict[str, Any]]:
        """My most recent *limit* queries, newest first (``GET queries?user=me``)."""
        action = "show your query history"
        body = self.call(
            "GET", wire.API_QUERIES, action=action, params={"user": "me", "limit": int(limit)}
        )
        return self._items(body, "queries", action)

    def clusters(self) -> list[dict[str, Any]]:
        """The clusters, their routing group, health and load (``GET clusters``)."""
        action = "list the clusters"
        return self._items(self.call("GET", wire.API_CLUSTERS, action=action), "clusters", action)

    def quota(self) -> dict[str, Any]:
        """My quota and today's usage (``GET quota/me``)."""
        action = "show your quota"
        return self._object(self.call("GET", wire.API_QUOTA_ME, action=action), action)

    def publish(self, body: dict[str, Any]) -> dict[str, Any]:
        """Publish a notebook, or a new version of one (``POST notebooks``)."""
        action = "publish the notebook"
        answer = self.call("POST", wire.API_NOTEBOOKS, action=action, json=body, ok=(201,))
        return self._object(answer, action)

    def metadata(self, kind: str, params: dict[str, str]) -> list[Any]:
        """One list of the caller's Trino metadata (``GET metadata/{kind}``): catalogs,
        schemas, tables, columns or functions."""
        action = f"list {kind} for completion"
        body = self.call("GET", wire.API_METADATA + kind, action=action, params=params)
        return self._items(body, kind, action)

    def refresh_metadata(self) -> int:
        """Drop the caller's cached metadata in the service; how many answers it had."""
        action = "refresh completions"
        body = self._object(self.call("POST", wire.API_METADATA_REFRESH, action=action), action)
        forgotten = body.get("forgotten", 0)
        return forgotten if isinstance(forgotten, int) else 0

    # -- plumbing -----------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        action: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """``method`` on ``{api_url}/{path}``; the decoded JSON answer, or
        :class:`ServiceError`. *action* completes the error sentences ("Cannot reach …
        to {action}"): a verb phrase, such as ``"show your quota"``."""
        url = f"{self.api_url}/{path.lstrip('/')}"
        if urlsplit(url).scheme not in ("http", "https"):
            raise ServiceError(f"The DataHub service URL {self.api_url!r} is not http(s).")
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        try:
            response = self.session.request(
                method, url, params=params, json=json, headers=headers, timeout=self.timeout
            )
        except requests.exceptions.SSLError:
            raise ServiceError(
                f"Cannot verify the certificate of the DataHub service at {self.origin} "
                f"to {action}; the kernel needs the CA your DataHub admin gives out "
                "(SqlMagic.ca_file)."
            ) from None
        except requests.exceptions.Timeout:
            raise ServiceError(
                f"The DataHub service at {self.origin} did not answer within "
                f"{self.timeout:g} s when asked to {action}; try again shortly."
            ) from None
        except requests.RequestException as e:
            raise ServiceError(
                f"Cannot reach the DataHub service at {self.origin} to {action} "
                f"({type(e).__name__}); try again shortly, or ask your DataHub admin "
                "whether it is up."
            ) from None
        if response.status_code not in ok:
            raise ServiceError(self._refusal(response, action, path), status=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ServiceError(
                f"The DataHub service answered something not JSON when asked to {action}.",
                status=response.status_code,
            ) from None

    @property
    def session(self) -> requests.Session:
        """The HTTP session: pinned to ``ca_file`` when one is set (made on first use)."""
        if self._session is None:
            self._session = pinned_session(self.ca_file) if self.ca_file else requests.Session()
        return self._session

    @property
    def origin(self) -> str:
        """``scheme://host:port`` of the service, as the error sentences name it."""
        parts = urlsplit(self.api_url)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else self.api_url

    def _refusal(self, response: requests.Response, action: str, path: str) -> str:
        status = response.status_code
        if status == 401:
            return TOKEN_REFUSED
        message = _service_message(response)
        if message:
            if status < 500:
                return f"The DataHub service refused to {action}: {message}"
            return f"The DataHub service failed to {action} (HTTP {status}): {message}"
        if status == 404:
            return (
                f"The DataHub service at {self.origin} has no API to {action} (HTTP 404 "
                f"for {path}); ask your DataHub admin to upgrade it."
            )
        body = " ".join(response.text.split())[:BODY_PREVIEW]
        return f"The DataHub service answered HTTP {status} when asked to {action}" + (
            f": {body}" if body else "."
        )

    @staticmethod
    def _items(body: Any, key: str, action: str) -> list[Any]:
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ServiceError(
                f"The DataHub service's answer has no {key!r} list (asked to {action})."
            )
        return items

    @staticmethod
    def _object(body: Any, action: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ServiceError(
                f"The DataHub service answered something other than an object when asked "
                f"to {action}."
            )
        return body


def _service_message(response: requests.Response) -> str:
    """The ``message`` of the service's JSON error (``{"status", "message"}``), if any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(message.split()) if isinstance(message, str) else ""
