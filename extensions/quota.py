"""``%sql quota``: your DataHub quota and today's usage, in a notebook.

``show_quota(gateway_url, token)`` asks the DataHub service (``api/quota/me``, on the
gateway's own listener) with the kernel's hub token and returns a display bundle::

    from IPython.display import display
    display(show_quota(os.environ["DATAHUB_GATEWAY_URL"],
                       os.environ["JUPYTERHUB_API_TOKEN"]), raw=True)

Failures raise :class:`~datahub.extensions.service_client.ServiceError` (one sentence).
"""

from __future__ import annotations

import html
from typing import Any

from datahub.extensions.service_client import ServiceClient

__all__ = ["fetch_quota", "format_quota", "show_quota"]


def fetch_quota(
    gateway_url: str, token: str, *, ca_file: str = "", timeout: float = 30
) -> dict[str, Any]:
    """The JSON of ``GET api/quota/me`` from the service behind *gateway_url*."""
    return ServiceClient.for_gateway(gateway_url, token, ca_file=ca_file, timeout=timeout).quota()


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
