"""``%sql quota``: your DataHub quota and today's usage, in a notebook.

``show_quota(gateway_url, token)`` asks the DataHub service (``api/quota/me``, on the
gateway's own listener) with the kernel's hub token and returns a display bundle::

    from IPython.display import display
    display(show_quota(os.environ["DATAHUB_GATEWAY_URL"],
                       os.environ["JUPYTERHUB_API_TOKEN"]), raw=True)
"""

from __future__ import annotations

import html
import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["QuotaLookupError", "fetch_quota", "format_quota", "show_quota"]

SERVICE_PREFIX = "/services/datahub/"


class QuotaLookupError(Exception):
    """The quota could not be fetched; shown as its one-line message, no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [self.message]


def fetch_quota(
    gateway_url: str, token: str, *, prefix: str = SERVICE_PREFIX, timeout: float = 30
) -> dict[str, Any]:
    """The JSON of ``GET {prefix}api/quota/me`` from the service behind *gateway_url*."""
    if not gateway_url:
        raise QuotaLookupError(
            "No DataHub gateway is configured (DATAHUB_GATEWAY_URL is empty); ask an admin."
        )
    url = gateway_url.rstrip("/") + "/" + prefix.strip("/") + "/api/quota/me"
    # http(s) only: gateway_url comes from the spawner (DATAHUB_GATEWAY_URL).
    if not url.startswith(("http://", "https://")):
        raise QuotaLookupError(f"The DataHub gateway URL {gateway_url!r} is not http(s).")
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as e:
        try:
            message = json.load(e).get("message") or e.reason
        except ValueError:
            message = e.reason
        raise QuotaLookupError(f"DataHub refused to show your quota: {message}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise QuotaLookupError(
            f"Could not reach DataHub at {gateway_url} ({reason}); try again shortly."
        ) from None


def format_quota(report: dict[str, Any]) -> dict[str, str]:
    """A display bundle (text/plain and text/html) of an ``api/quota/me`` answer."""
    lines = report.get("lines") or []
    head = f"Quota of {report.get('user')} — daily counters reset {report.get('resets')}"
    rows = []
    width = max((len(line["label"]) for line in lines), default=10)
    text = [head]
    for line in lines:
        used = line.get("used_text")
        share = f" ({line['percent']:g}%)" if line.get("percent") is not None else ""
        shown = f"{used} of {line['allowed_text']}{share}" if used else line["allowed_text"]
        text.append(f"  {line['label']:<{width}}  {shown}")
        rows.append(
            "<tr><th scope='row'>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(line["label"]),
                html.escape(used or "—"),
                html.escape(line["allowed_text"]),
                (
                    f"<progress max='100' value='{line['percent']}'>{line['percent']}%</progress>"
                    if line.get("percent") is not None
                    else ""
                ),
            )
        )
    contact = report.get("contact")
    if contact:
        text.append(f"For more, ask {contact}.")
    table = (
        f"<p><strong>{html.escape(head)}</strong></p>"
        "<table><thead><tr><th>Limit</th><th>Used today</th><th>Allowed</th><th></th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<p>For more, ask {html.escape(contact)}.</p>" if contact else "")
    )
    return {"text/plain": "\n".join(text), "text/html": table}


def show_quota(gateway_url: str, token: str, **kwargs: Any) -> dict[str, str]:
    """Your quota and today's usage as a display bundle (see the module docstring)."""
    return format_quota(fetch_quota(gateway_url, token, **kwargs))
