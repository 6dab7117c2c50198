"""A shared notebook cannot make its viewers' browsers send requests, in a real browser
(Debian's Chromium driven by Playwright) against the real stack.

bob publishes a notebook whose markdown, HTML output and chart point at the hub's logout
and at the admin page about bob, in every form that would make a browser fetch them
(images, srcset, video posters, CSS, frames, objects, forms, meta refresh, base, SVG,
Plotly layout images). dave, and carol (an admin), open it: their browsers request
neither, they are still signed in afterwards, and no "carol opened bob's page" is
recorded; nor does dave's JupyterLab when he opens a copy of it. Separately, an
``<img>`` or frame of the admin page, made in carol's browser by markup on a page of
the hub's origin, is refused and not recorded, while her opening the page herself is.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
import requests
from playwright.sync_api import expect

from datahub.audit import records
from datahub.stack import demo
from datahub.store import Store

pytestmark = pytest.mark.e2e

SERVICE = "/services/datahub/"
#: A valid 1×1 PNG: a data: image the page still shows.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
#: What the attack must never make a viewer's browser request.
TARGETS = re.compile(r"/hub/logout|/admin/users/bob")


def fetchers(hub: str) -> str:
    """Markup that fetches the hub's logout and the admin page about bob, every way."""
    logout, admin = f"{hub}/hub/logout", f"{hub}{SERVICE}admin/users/bob"
    return "\n\n".join(
        [
            f"![logout]({logout})",
            f"![bob's page]({admin})",
            f"![relative](/hub/logout) ![api]({hub}{SERVICE}api/admin/users/bob)",
            f'<img src="{admin}" alt="raw"> <img src="{logout}?raw">',
            f'<img src="data:image/png;base64,{PIXEL}" srcset="{logout}?srcset 1x, {admin} 2x">',
            f'<picture><source srcset="{admin}?picture"><img alt="p"></picture>',
            f'<video poster="{logout}?poster" src="{admin}?video" autoplay></video>',
            f'<audio src="{logout}?audio" autoplay></audio>',
            f'<div style="background-image: url({logout}?css)">styled</div>',
            f'<table background="{admin}?table"><tr><td>t</td></tr></table>',
            f'<link rel="stylesheet" href="{logout}?link"><link rel="prefetch" href="{admin}">',
            f'<object data="{admin}?object"></object><embed src="{logout}?embed">',
            f'<iframe src="{admin}?iframe"></iframe>',
            f'<form action="{logout}"><input type="image" src="{admin}?input"></form>',
            f'<meta http-equiv="refresh" content="0;url={logout}?refresh">',
            f'<base href="{hub}/hub/"><img src="logout?base">',
            f'<svg><image href="{logout}?svg"/></svg>',
            f'<img src="data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22%3E'
            f'%3Cimage href=%22{logout}?svgdata%22/%3E%3C/svg%3E">',
        ]
    )


def attack_notebook(hub: str) -> dict:
    nb = nbformat.v4.new_notebook()
    markdown = nbformat.v4.new_markdown_cell(
        "## Quarterly numbers\n\n![attached](attachment:pixel.png)\n\n" + fetchers(hub)
    )
    markdown["attachments"] = {"pixel.png": {"image/png": PIXEL}}
    code = nbformat.v4.new_code_cell("%%sql\nSELECT 1 AS x", execution_count=1)
    figure = {
        "data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}],
        "layout": {
            "title": {"text": "Numbers"},
            "images": [
                {"source": f"{hub}/hub/logout?plotly", "xref": "paper", "yref": "paper"},
                {"source": f"{hub}{SERVICE}admin/users/bob?plotly", "x": 0, "y": 1},
            ],
        },
    }
    code.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": fetchers(hub)}),
        nbformat.v4.new_output(
            "display_data",
            data={"application/vnd.plotly.v1+json": figure, "text/plain": "<chart>"},
        ),
    ]
    nb.cells = [markdown, code]
    return json.loads(nbformat.writes(nb))


@pytest.fixture(scope="module")
def store(stack) -> Store:
    """The service's store, to read the admin views it recorded."""
    return Store(stack.store_url or f"sqlite:///{stack.state_dir / 'datahub.sqlite'}")


def carol_views_of_bob(store: Store) -> list[int]:
    with store.session() as session:
        rows = records.admin_accesses(session, user="bob", limit=10_000)
    return [row["id"] for row in rows if row["admin"] == "carol"]


@pytest.fixture(scope="module")
def attack(stack, tokens) -> str:
    """The address of bob's public notebook full of fetchers."""
    r = requests.post(
        f"{stack.hub_url}{SERVICE}api/notebooks",
        headers={"Authorization": f"token {tokens['bob']}"},
        json={"content": attack_notebook(stack.hub_url), "title": "Numbers", "public": True},
        timeout=180,
    )
    assert r.status_code == 201, r.text
    return f"{stack.hub_url}{SERVICE}gallery/{r.json()['id']}"


def signed_in(page, stack, user: str, sign_in_form) -> None:
    sign_in_form(page, user, demo.demo_password(user), f"{SERVICE}gallery")
    expect(page.get_by_role("heading", name="Shared notebooks")).to_be_visible()


@pytest.mark.parametrize("viewer", ["dave", "carol"])
def test_a_shared_notebook_cannot_log_its_viewer_out_or_open_admin_pages_in_their_browser(
    viewer, stack, attack, store, new_page, sign_in_form
):
    before = carol_views_of_bob(store)
    page = new_page()
    signed_in(page, stack, viewer, sign_in_form)
    requested: list[str] = []
    refused: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    response = page.goto(attack, wait_until="networkidle")
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Numbers")
    expect(page.locator(".dh-chart .main-svg").first).to_be_visible()  # drawn by our script
    attached = page.locator('img[alt="attached"]').evaluate("img => img.naturalWidth")
    # The viewer is still signed in, no admin's view of bob's page was recorded, and
    # the browser requested nothing the author pointed at.
    page.goto(f"{stack.hub_url}{SERVICE}gallery")
    expect(page.get_by_role("heading", name="Shared notebooks")).to_be_visible()
    assert page.url.startswith(f"{stack.hub_url}{SERVICE}gallery")
    assert carol_views_of_bob(store) == before
    assert [url for url in requested if TARGETS.search(url)] == []
    assert all(url.startswith((stack.hub_url, "data:")) for url in requested), requested
    # The page's policy refuses any other fetch, and nothing the page itself needs (the
    # hub's stylesheet and scripts, plotly.js) was refused by it.
    csp = {
        part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2]
        for part in response.headers["content-security-policy"].split(";")
    }
    assert csp["default-src"] == "'none'" and csp["img-src"] == "data:"
    assert csp["script-src"] == "'self'" and csp["connect-src"] == "'none'"
    assert (csp["base-uri"], csp["frame-ancestors"], csp["form-action"]) == (
        "'none'",
        "'none'",
        "'self'",
    )
    assert refused == []
    assert attached == 1  # the cell's attached image shows, from a data: URL


def test_opening_a_copy_cannot_log_the_viewer_out_or_open_admin_pages_in_their_jupyterlab(
    stack, attack, new_page, sign_in_form
):
    # JupyterLab renders the copy's markdown and HTML outputs itself, loading their image
    # URLs with the viewer's cookies: the copy must hold none it would fetch.
    page = new_page()
    signed_in(page, stack, "dave", sign_in_form)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(attack)
    page.get_by_role("button", name="Open a copy in JupyterLab").click()
    page.wait_for_url(re.compile(r"/user/dave/lab/tree/.+\.ipynb$"), timeout=180_000)
    markdown = page.locator(".jp-MarkdownCell .jp-RenderedMarkdown").first
    expect(markdown.get_by_role("heading", name="Quarterly numbers")).to_be_visible(timeout=120_000)
    # The attached image shows (inline), and so does the chart, without its layout images.
    expect(markdown.locator('img[alt="attached"]')).to_have_js_property("naturalWidth", 1)
    expect(page.locator(".jp-OutputArea .js-plotly-plot .main-svg").first).to_be_visible(
        timeout=120_000
    )
    # What shows instead of the author's fetching markup: links, and tags as text.
    links = markdown.get_by_role("link", name="image: logout").count()
    text = markdown.inner_text()
    # dave's browser requested nothing the author pointed at, and he is still signed in.
    page.goto(f"{stack.hub_url}{SERVICE}gallery")
    assert [url for url in requested if TARGETS.search(url)] == []
    expect(page.get_by_role("heading", name="Shared notebooks")).to_be_visible()
    assert page.url.startswith(f"{stack.hub_url}{SERVICE}gallery")
    assert links == 1 and '<img src="' in text


def test_markup_loading_the_admin_page_records_nothing_but_opening_it_does(
    stack, store, new_page, sign_in_form, pages, tokens
):
    page = new_page()
    signed_in(page, stack, "carol", sign_in_form)
    before = carol_views_of_bob(store)
    # Markup on a page of the hub's origin (the gallery's policy allows same-origin
    # images and frames) loads the admin page and its API with carol's cookie.
    admin = f"{SERVICE}admin/users/bob"
    loads = {
        "image": f'<img src="{admin}?img">',
        "frame": f'<iframe src="{admin}?frame"></iframe>',
        "API image": f'<img src="{SERVICE}api/admin/users/bob?img">',
    }
    for markup in loads.values():
        url = re.search(r'src="([^"]+)"', markup).group(1)
        with page.expect_response(lambda r, url=url: r.url.endswith(url)) as loaded:
            page.evaluate("html => document.body.insertAdjacentHTML('beforeend', html)", markup)
        assert loaded.value.status == 403, url
    assert carol_views_of_bob(store) == before
    # A client without Fetch Metadata that does not ask for HTML (or JSON, for the API).
    carol = pages("carol")
    assert carol.get(f"{stack.hub_url}{admin}", timeout=60).status_code == 403
    assert carol.get(f"{stack.hub_url}{SERVICE}api/admin/users/bob", timeout=60).status_code == 403
    assert carol_views_of_bob(store) == before
    # carol opening the page herself is served and recorded, once.
    response = page.goto(f"{stack.hub_url}{admin}")
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("User bob")
    after = carol_views_of_bob(store)
    assert len(after) == len(before) + 1
    # So is the API called with her token.
    r = requests.get(
        f"{stack.hub_url}{SERVICE}api/admin/users/bob",
        headers={"Authorization": f"token {tokens['carol']}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["user"] == "bob"
    assert len(carol_views_of_bob(store)) == len(after) + 1
