"""Telling what a browser request is for, from its Fetch Metadata headers
(``Sec-Fetch-Dest``, ``Sec-Fetch-Mode``) and, where a browser sends none, its ``Accept``.

A request made by markup on some page (an ``<img>``, a stylesheet, a frame, a prefetch)
carries the viewer's cookies like any other; only these headers, which no page can set,
tell it from a person opening a page or a program calling an API. Handlers whose GET has
a side effect (an admin's view of a user's account is recorded for the user) serve only
deliberate requests. Pure, no I/O.

Browsers send Fetch Metadata to secure origins (HTTPS, and ``localhost``): Chromium since
76, Firefox since 90, Safari since 16.4. Where none is sent (a hub on plain HTTP, an old
browser, a non-browser client), the ``Accept`` header decides: an image, a video, a
stylesheet or a script never asks for ``text/html`` or ``application/json``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Speculative loads (``<link rel=prefetch|prerender>``, speculation rules) say so here;
#: they are the browser's guess, not the person's request.
_PURPOSE_HEADERS = ("Sec-Purpose", "Purpose")


def _speculative(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in _PURPOSE_HEADERS)


def is_page_navigation(headers: Mapping[str, str]) -> bool:
    """Whether a request opens a page in the browser's window or tab: a top-level
    navigation (``Sec-Fetch-Dest: document``, ``Sec-Fetch-Mode: navigate``: a typed
    address, a bookmark, a followed link), never a subresource, a frame or a prefetch.
    Without Fetch Metadata, a request that asks for HTML."""
    if _speculative(headers):
        return False
    dest = headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest == "document" and headers.get("Sec-Fetch-Mode") == "navigate"
    return "text/html" in headers.get("Accept", "")


def is_program_call(headers: Mapping[str, str]) -> bool:
    """Whether an API request was sent by a program: a client with a token in its
    ``Authorization`` header (which markup cannot add), or a script's ``fetch()``/XHR
    (``Sec-Fetch-Dest: empty``: only DataHub's own scripts run on its pages). Without
    Fetch Metadata or a token, a request that asks for JSON."""
    if headers.get("Authorization"):
        return True
    if _speculative(headers):
        return False
    dest = headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest == "empty"
    return "application/json" in headers.get("Accept", "")
