"""Telling a person opening a page (or a program calling an API) from a request that
markup on some page made with their cookies: an admin's view of a user is recorded only
for the former."""

import pytest

from datahub.web.fetch_metadata import is_page_navigation, is_program_call

CHROMIUM_HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
CHROMIUM_IMAGE = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def metadata(dest: str, mode: str, accept: str = "*/*", **more: str) -> dict[str, str]:
    return {"Sec-Fetch-Dest": dest, "Sec-Fetch-Mode": mode, "Accept": accept, **more}


#: Requests that markup on a page (a shared notebook) could make with the admin's cookie.
MADE_BY_MARKUP = {
    "img": metadata("image", "no-cors", CHROMIUM_IMAGE),
    "img that asks for HTML": metadata("image", "no-cors", "text/html"),
    "stylesheet": metadata("style", "no-cors", "text/css,*/*;q=0.1"),
    "script": metadata("script", "no-cors"),
    "video": metadata("video", "no-cors"),
    "iframe": metadata("iframe", "navigate", CHROMIUM_HTML),
    "object": metadata("object", "navigate", CHROMIUM_HTML),
    "prefetch": metadata("empty", "no-cors", **{"Sec-Purpose": "prefetch"}),
    "prerender": metadata("document", "navigate", CHROMIUM_HTML, **{"Sec-Purpose": "prefetch"}),
    "no metadata, an image": {"Accept": CHROMIUM_IMAGE},
    "no metadata, anything": {"Accept": "*/*"},
    "no headers": {},
}


@pytest.mark.parametrize("name", MADE_BY_MARKUP)
def test_requests_made_by_markup_neither_open_a_page_nor_call_an_api(name):
    headers = MADE_BY_MARKUP[name]
    assert not is_page_navigation(headers)
    assert not is_program_call(headers)


def test_a_navigation_opens_a_page():
    assert is_page_navigation(metadata("document", "navigate", CHROMIUM_HTML))
    # A browser that sends no Fetch Metadata (plain HTTP) or a client asking for HTML.
    assert is_page_navigation({"Accept": CHROMIUM_HTML})
    assert not is_page_navigation(metadata("document", "no-cors", CHROMIUM_HTML))


def test_a_token_or_a_scripts_fetch_calls_the_api():
    assert is_program_call({"Authorization": "token abc"})
    assert is_program_call({"Authorization": "token abc", "Sec-Fetch-Dest": "image"})
    assert is_program_call(metadata("empty", "cors", "application/json"))
    assert is_program_call({"Accept": "application/json"})
    assert not is_program_call(metadata("document", "navigate", CHROMIUM_HTML))
