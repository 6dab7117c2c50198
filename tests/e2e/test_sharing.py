"""Shared query notebooks through the real hub, service, users' servers and kernels.

alice publishes from her kernel (``%datahub publish``) to the group ``analysts``; bob
finds, views and copies it into his workspace (his server started for him), where it
runs; a notebook shared with bob alone is a 404 for dave; versions, diffs, search,
editors, admins, bad input, and a notebook full of script payloads that renders inert.
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import requests

from datahub.stack import demo

pytestmark = pytest.mark.e2e

MARK = "shipped_lines"  # a word only in the first notebook's SQL


def service_url(stack, path: str = "") -> str:
    return f"{stack.hub_url}/services/datahub/{path}"


class Api:
    """The sharing REST API as one user, with their hub API token."""

    def __init__(self, stack, token: str):
        self.base = service_url(stack, "api/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=180, **kwargs)


def notebook(*cells: str, outputs: dict[int, list] | None = None) -> dict:
    nb = nbformat.v4.new_notebook()
    for index, source in enumerate(cells):
        if source.startswith("#"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            cell.outputs = [nbformat.from_dict(o) for o in (outputs or {}).get(index, [])]
            nb.cells.append(cell)
    return json.loads(nbformat.writes(nb))


REVENUE_V1 = notebook(
    "# Lines by return flag",
    f"%%sql -o lines\nSELECT returnflag, count(*) AS {MARK}\nFROM tpch.tiny.lineitem\n"
    "GROUP BY returnflag\nORDER BY returnflag",
    "assert len(lines) == 3, lines\nprint('rows', len(lines))",
)
REVENUE_V2 = notebook(
    "# Lines by return flag",
    f"%%sql -o lines\nSELECT returnflag, count(*) AS {MARK}\nFROM tpch.tiny.lineitem\n"
    "WHERE linestatus = 'F'\nGROUP BY returnflag\nORDER BY returnflag",
    "print('rows', len(lines))",
)


def put_notebook(stack, user: str, token: str, path: str, content: dict) -> None:
    """Save a notebook into a user's workspace through their server's contents API."""
    base = f"{stack.hub_url}/user/{user}/api/contents/"
    headers = {"Authorization": f"token {token}"}
    folder = path.rpartition("/")[0]
    if folder:
        r = requests.put(base + folder, json={"type": "directory"}, headers=headers, timeout=60)
        assert r.status_code in (200, 201), r.text
    r = requests.put(
        base + path,
        json={"type": "notebook", "format": "json", "content": content},
        headers=headers,
        timeout=60,
    )
    assert r.status_code in (200, 201), r.text


def read_notebook(stack, user: str, token: str, path: str) -> dict:
    r = requests.get(
        f"{stack.hub_url}/user/{user}/api/contents/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["content"]


def page_session(sign_in, stack, name: str) -> requests.Session:
    """A browser-like session signed in to the hub and to the service's pages."""
    session, response = sign_in(name, demo.demo_password(name))
    assert response.status_code == 302
    overview = session.get(service_url(stack), timeout=60)  # completes the service's OAuth
    assert overview.status_code == 200, overview.text[:300]
    return session


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def publish_in_kernel(users, name: str, line: str) -> dict:
    kernel = users.kernel(name)
    # The DataHub kernel loads the publish magic itself (kernel.json --ext).
    out = kernel.execute(f"%datahub {line}")
    assert out["status"] == "ok", out
    assert any("open it in the gallery" in o["data"].get("text/html", "") for o in out["outputs"])
    return kernel.value("get_ipython().magics_manager.registry['DataHubMagics'].last_published")


@pytest.fixture(scope="module")
def api(stack, users):
    return lambda name: Api(stack, users.token(name))


@pytest.fixture(scope="module")
def revenue(stack, users, api):
    """alice's notebook, published from her kernel to the group analysts."""
    put_notebook(stack, "alice", users.token("alice"), "reports/revenue.ipynb", REVENUE_V1)
    users.token("bob")  # bob signs in once, so the hub knows him
    answer = publish_in_kernel(
        users,
        "alice",
        'publish reports/revenue.ipynb --title "Lines by flag" --tag finance '
        '--share group:analysts -m "first cut"',
    )
    assert answer["created"] is True and answer["version"] == 1
    return answer


@pytest.fixture(scope="module")
def for_bob_only(api, users):
    """A notebook alice shares with bob alone (dave, also an analyst, may not see it)."""
    users.token("dave")
    r = api("alice")(
        "POST",
        "notebooks",
        json={
            "content": notebook("# Private", "%%sql\nSELECT 1 AS only_for_bob"),
            "title": "For bob only",
            "shares": ["user:bob"],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_alice_publishes_from_her_kernel_and_bob_finds_it(revenue, api):
    assert revenue["owner"] == "alice" and revenue["tags"] == ["finance"]
    assert revenue["shares"] == ["group:analysts"]
    assert revenue["version_url"] == f"/services/datahub/gallery/{revenue['id']}?version=1"
    listed = api("bob")("GET", "notebooks", params={"filter": "shared"}).json()
    assert revenue["id"] in [n["id"] for n in listed["notebooks"]]
    mine = api("bob")("GET", "notebooks", params={"filter": "mine"}).json()
    assert revenue["id"] not in [n["id"] for n in mine["notebooks"]]
    shown = next(n for n in listed["notebooks"] if n["id"] == revenue["id"])
    assert shown["access"] == {
        "role": "viewer",
        "view": True,
        "publish": False,
        "edit": False,
        "unpublish": False,
    }
    assert "shares" not in shown  # who else it is shared with is the owner's business


def test_search_finds_it_by_a_word_in_its_sql(revenue, api, stack, sign_in):
    found = api("bob")("GET", "notebooks", params={"q": MARK}).json()
    assert [n["id"] for n in found["notebooks"]] == [revenue["id"]]
    assert api("bob")("GET", "notebooks", params={"q": "tag:finance owner:alice"}).json()["total"]
    page = page_session(sign_in, stack, "bob").get(
        service_url(stack, "gallery"), params={"q": MARK, "filter": "shared"}, timeout=60
    )
    assert page.status_code == 200
    assert "Lines by flag" in page.text and "1 notebook<" in page.text


def test_bob_views_it_rendered_with_sql_highlighted(revenue, stack, sign_in):
    session = page_session(sign_in, stack, "bob")
    page = session.get(service_url(stack, f"gallery/{revenue['id']}"), timeout=60)
    assert page.status_code == 200
    assert "<h1>Lines by flag</h1>" in page.text
    assert '<span class="dh-magic">%%sql -o lines</span>' in page.text
    assert '<span class="k">SELECT</span>' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "Settings and sharing" not in page.text  # bob is a viewer
    download = session.get(service_url(stack, f"gallery/{revenue['id']}/v1.ipynb"), timeout=60)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    nbformat.validate(nbformat.reads(download.text, as_version=4))


def test_bob_opens_a_copy_which_starts_his_server_and_runs(revenue, stack, hub, users, sign_in):
    users.token("bob")
    stale = users.kernels.pop("bob", None)  # its server is about to stop
    if stale is not None:
        stale.close()
    hub.api("DELETE", "/users/bob/server")
    deadline = time.monotonic() + 60
    while hub.user("bob")["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not hub.user("bob")["servers"], "bob's server did not stop"

    session = page_session(sign_in, stack, "bob")
    page = session.get(service_url(stack, f"gallery/{revenue['id']}"), timeout=60)
    copy = session.post(
        service_url(stack, f"gallery/{revenue['id']}/copy"),
        data={"_xsrf": xsrf_of(page.text), "version": "1"},
        allow_redirects=False,
        timeout=180,
    )
    assert copy.status_code == 302, copy.text[:500]
    location = copy.headers["Location"]
    assert location.startswith("/user/bob/lab/tree/gallery/Lines%20by%20flag")
    path = unquote(location.removeprefix("/user/bob/lab/tree/"))

    lab = session.get(stack.hub_url + location, timeout=120)  # opens in JupyterLab
    assert lab.status_code == 200 and unquote(urlsplit(lab.url).path) == unquote(location)
    copied = read_notebook(stack, "bob", users.token("bob"), path)
    assert copied["cells"][1]["source"] == "".join(REVENUE_V1["cells"][1]["source"])
    kernel = users.kernel("bob")
    for cell in copied["cells"]:
        if cell["cell_type"] == "code":
            out = kernel.execute(cell["source"])
            assert out["status"] == "ok", out
    assert "rows 3" in out["stdout"]
    again = api_copies(stack, users, revenue["id"])
    assert again == 1


def api_copies(stack, users, notebook_id: int) -> int:
    r = Api(stack, users.token("alice"))("GET", f"notebooks/{notebook_id}")
    return r.json()["copies"]


def test_a_notebook_shared_with_bob_alone_is_a_404_for_dave(for_bob_only, api, stack, sign_in):
    nid = for_bob_only["id"]
    assert api("bob")("GET", f"notebooks/{nid}").status_code == 200
    for path in (f"notebooks/{nid}", f"notebooks/{nid}/versions/1", f"notebooks/{nid}/diff"):
        r = api("dave")("GET", path)
        assert r.status_code == 404, path
        assert r.json()["message"] == f"There is no shared notebook {nid} that you can see."
    assert nid not in [n["id"] for n in api("dave")("GET", "notebooks").json()["notebooks"]]
    assert api("dave")("POST", f"notebooks/{nid}/copy", json={}).status_code == 404
    session = page_session(sign_in, stack, "dave")
    for path in (f"gallery/{nid}", f"gallery/{nid}/diff", f"gallery/{nid}/v1.ipynb"):
        page = session.get(service_url(stack, path), timeout=60)
        assert page.status_code == 404, path
        assert "For bob only" not in page.text
    # The same answer as for a notebook that does not exist.
    assert session.get(service_url(stack, "gallery/999999"), timeout=60).status_code == 404


def test_viewers_cannot_publish_versions_but_editors_can(for_bob_only, api):
    nid = for_bob_only["id"]
    content = notebook("# Private", "%%sql\nSELECT 2 AS only_for_bob")
    refused = api("bob")("POST", f"notebooks/{nid}/versions", json={"content": content})
    assert refused.status_code == 403
    assert "ask alice to make you an editor" in refused.json()["message"]
    assert api("bob")("PATCH", f"notebooks/{nid}", json={"title": "Mine now"}).status_code == 403
    r = api("alice")("PATCH", f"notebooks/{nid}", json={"shares": ["user:bob:editor"]})
    assert r.status_code == 200 and r.json()["shares"] == ["user:bob:editor"]
    published = api("bob")("POST", f"notebooks/{nid}/versions", json={"content": content})
    assert published.status_code == 201, published.text
    assert published.json()["number"] == 2 and published.json()["author"] == "bob"
    settings = api("bob")(
        "POST", f"notebooks/{nid}/versions", json={"content": content, "title": "Renamed"}
    )
    assert settings.status_code == 403 and "Only alice" in settings.json()["message"]


def test_a_second_version_shows_in_history_with_its_sql_diff(revenue, stack, users, api, sign_in):
    put_notebook(stack, "alice", users.token("alice"), "reports/revenue.ipynb", REVENUE_V2)
    answer = publish_in_kernel(users, "alice", 'publish reports/revenue.ipynb -m "only F"')
    assert answer["id"] == revenue["id"] and answer["created"] is False
    assert answer["version"] == 2 and answer["title"] == "Lines by flag"
    details = api("bob")("GET", f"notebooks/{revenue['id']}").json()
    assert [(v["number"], v["message"]) for v in details["versions"]] == [
        (2, "only F"),
        (1, "first cut"),
    ]
    diff = api("bob")("GET", f"notebooks/{revenue['id']}/diff", params={"from": 1, "to": 2}).json()
    assert {"kind": "add", "text": "WHERE linestatus = 'F'"} in diff["lines"]
    assert diff["changed"] and "+WHERE linestatus = 'F'" in diff["diff"]
    session = page_session(sign_in, stack, "bob")
    page = session.get(service_url(stack, f"gallery/{revenue['id']}/diff"), timeout=60)
    assert page.status_code == 200
    assert '<span class="dh-diff-add">+WHERE linestatus = &#39;F&#39;</span>' in page.text
    view = session.get(service_url(stack, f"gallery/{revenue['id']}"), timeout=60).text
    assert "only F" in view and "first cut" in view  # the history table
    old = session.get(service_url(stack, f"gallery/{revenue['id']}?version=1"), timeout=60).text
    assert "WHERE" not in old.split("dh-notebook")[1].split("History")[0]


SCRIPTY_FIGURE = {
    "data": [
        {
            "type": "bar",
            "x": ["A", "B"],
            "y": [1, 2],
            "text": ['<a href="javascript:alert(21)">x</a>', "<b>fine</b>"],
        }
    ],
    "layout": {"title": {"text": "<img src=x onerror=alert(22)>Flags"}},
}
SCRIPTY = notebook(
    '# Payloads\n\n<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n'
    '[click](javascript:alert(3)) <a href="javascript:alert(4)">a</a> '
    '<iframe src="javascript:alert(5)"></iframe><svg onload="alert(6)"></svg>',
    "print('<script>alert(7)</script>')",
    outputs={
        1: [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {
                    "text/html": '<script>alert(8)</script><b onmouseover="alert(9)">t</b>'
                    '<a href="javascript:alert(10)">j</a><form action="/hub/logout">'
                    '<button formaction="javascript:alert(11)">b</button></form>',
                    "text/plain": "html",
                },
            },
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"application/javascript": "alert(12)"},
            },
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"application/vnd.plotly.v1+json": SCRIPTY_FIGURE, "text/plain": "c"},
            },
        ]
    },
)
for _cell in SCRIPTY["cells"]:
    _cell["metadata"]["trusted"] = True  # a forged trust mark, dropped on publish


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k.lower(): v or "" for k, v in attrs}))


def test_script_payloads_render_inert_under_a_strict_csp(api, stack, sign_in, users):
    r = api("alice")(
        "POST",
        "notebooks",
        json={"content": SCRIPTY, "title": "../../.bashrc <script>", "public": True},
    )
    assert r.status_code == 201, r.text
    nid = r.json()["id"]
    page = page_session(sign_in, stack, "dave").get(
        service_url(stack, f"gallery/{nid}"), timeout=60
    )
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert script_src.strip() == "'self'"
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp

    parser = Tags()
    parser.feed(page.text)
    # Only our own files: the viewer's (the gallery's static files) and the nav bar's (the
    # hub's theme toggle and Bootstrap, from the hub's static files).
    static = "/services/datahub/gallery/static/"
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all(a.get("src", "").startswith((static, "/hub/static/")) for a in scripts)
    assert "<script>alert" not in page.text  # no inline script at all
    for tag, attrs in parser.tags:
        assert tag not in ("iframe", "frame", "svg", "object", "embed", "base"), tag
        assert "http-equiv" not in attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert "javascript:" not in value.lower().replace(" ", ""), (tag, name, value)
    assert [tag for tag, _ in parser.tags].count("form") == 1  # only our "Open a copy"
    assert "&lt;script&gt;alert(7)&lt;/script&gt;" in page.text.replace("&#39;", "'")
    assert "Interactive output (not shown in the gallery)" in page.text
    figure = next(a["data-figure"] for t, a in parser.tags if "data-figure" in a)
    parsed = json.loads(figure)
    assert parsed["layout"]["title"]["text"] == "Flags"
    assert "alert" not in figure
    assert f'src="{static}plotly.min.js?v=' in page.text
    js = requests.get(f"{stack.hub_url}{static}notebook.js", timeout=60)
    assert js.status_code == 200 and "Plotly.newPlot" in js.text
    plotly_js = requests.get(f"{stack.hub_url}{static}plotly.min.js", timeout=60)
    assert plotly_js.status_code == 200 and plotly_js.headers["X-Content-Type-Options"] == "nosniff"

    # The copy in dave's workspace is not trusted: JupyterLab will not run its outputs.
    copy = api("dave")("POST", f"notebooks/{nid}/copy", json={})
    assert copy.status_code == 201, copy.text
    path = copy.json()["path"]
    assert path.startswith("gallery/") and ".." not in path and "/." not in path
    assert copy.json()["url"].startswith("/user/dave/lab/tree/gallery/")
    copied = read_notebook(stack, "dave", users.token("dave"), path)
    code = [c for c in copied["cells"] if c["cell_type"] == "code"]
    assert code and all(c["metadata"].get("trusted") is False for c in code)


def test_bad_input_is_a_clear_error_and_nothing_is_stored(api):
    alice = api("alice")
    before = alice("GET", "notebooks", params={"filter": "mine"}).json()["total"]
    good = notebook("# ok", "%%sql\nSELECT 1")
    cases = [
        ({"content": {"cells": 3}, "title": "x"}, 400, "not a valid Jupyter notebook"),
        (
            {"content": good, "title": "x", "shares": ["group:analysts", "user:nosuchuser"]},
            400,
            "The hub has no user:nosuchuser",
        ),
        ({"content": good, "title": "x", "shares": ["group:nosuchgroup"]}, 400, "group:nosuch"),
        ({"content": good, "title": "x", "path": "../../etc/passwd.ipynb"}, 400, "'..'"),
        ({"content": good, "title": "x", "tags": ["<b>"]}, 400, "Tag '<b>' is not allowed"),
        ({"content": good, "title": "   "}, 400, "Give the notebook a title"),
        ({"content": good, "title": "x", "id": 999999}, 404, "no shared notebook 999999"),
    ]
    for body, status, message in cases:
        r = alice("POST", "notebooks", json=body)
        assert r.status_code == status, (body.get("title"), r.text)
        assert message in r.json()["message"], r.json()
    big = notebook("x = '" + "a" * (10 * 1024 * 1024) + "'")
    r = alice("POST", "notebooks", json={"content": big, "title": "big"})
    assert r.status_code == 413 and "limit" in r.json()["message"]
    assert alice("GET", "notebooks", params={"filter": "mine"}).json()["total"] == before


def test_publishing_from_the_gallery_page_reads_the_workspace(revenue, stack, sign_in, api):
    session = page_session(sign_in, stack, "alice")
    form = session.get(service_url(stack, "gallery/publish"), timeout=60)
    assert form.status_code == 200, form.text[:500]
    assert '<option value="reports/revenue.ipynb"' in form.text
    assert '<option value="Welcome to DataHub.ipynb"' in form.text
    r = session.post(
        service_url(stack, "gallery/publish"),
        data={
            "_xsrf": xsrf_of(form.text),
            "path": "Welcome to DataHub.ipynb",
            "target": "new",
            "title": "Welcome, annotated",
            "tags": "intro",
            "shares": "group:analysts\nuser:bob:editor",
        },
        allow_redirects=False,
        timeout=60,
    )
    assert r.status_code == 302, r.text[:800]
    nid = int(re.search(r"/gallery/(\d+)\?version=1$", r.headers["Location"]).group(1))
    details = api("alice")("GET", f"notebooks/{nid}").json()
    assert details["source_path"] == "Welcome to DataHub.ipynb"
    assert details["shares"] == ["group:analysts", "user:bob:editor"]
    bad = session.post(
        service_url(stack, "gallery/publish"),
        data={"_xsrf": xsrf_of(form.text), "path": "../x.ipynb", "target": "new"},
        timeout=60,
    )
    assert bad.status_code == 400 and "may not contain" in bad.text

    # Publishing the same file again adds a version and keeps the settings.
    again = session.post(
        service_url(stack, "gallery/publish"),
        data={"_xsrf": xsrf_of(form.text), "path": "Welcome to DataHub.ipynb", "target": "new"},
        allow_redirects=False,
        timeout=60,
    )
    assert again.headers["Location"].endswith(f"/gallery/{nid}?version=2")
    details = api("alice")("GET", f"notebooks/{nid}").json()
    assert details["title"] == "Welcome, annotated" and details["tags"] == ["intro"]
    assert details["shares"] == ["group:analysts", "user:bob:editor"]

    # The owner's settings form: a bad share changes nothing; a good one applies.
    view = session.get(service_url(stack, f"gallery/{nid}"), timeout=60)
    fields = {"_xsrf": xsrf_of(view.text), "title": "Welcome", "tags": "intro, welcome"}
    refused = session.post(
        service_url(stack, f"gallery/{nid}/settings"),
        data={**fields, "shares": "user:nosuchuser"},
        timeout=60,
    )
    assert refused.status_code == 400 and "The hub has no user:nosuchuser" in refused.text
    saved = session.post(
        service_url(stack, f"gallery/{nid}/settings"),
        data={**fields, "shares": "group:analysts", "public": "on"},
        allow_redirects=False,
        timeout=60,
    )
    assert saved.status_code == 302
    details = api("alice")("GET", f"notebooks/{nid}").json()
    assert (details["title"], details["tags"], details["shares"], details["public"]) == (
        "Welcome",
        ["intro", "welcome"],
        ["group:analysts"],
        True,
    )
    forged = session.post(
        service_url(stack, f"gallery/{nid}/unpublish"), data={}, allow_redirects=False, timeout=60
    )
    assert forged.status_code == 403  # no XSRF token: the cookie is not accepted
    assert api("alice")("GET", f"notebooks/{nid}").status_code == 200


def test_admins_see_and_unpublish_anything(for_bob_only, api, stack, sign_in):
    nid = for_bob_only["id"]
    carol = api("carol")
    assert carol("GET", f"notebooks/{nid}").json()["access"]["unpublish"] is True
    assert nid in [n["id"] for n in carol("GET", "notebooks").json()["notebooks"]]
    assert carol("PATCH", f"notebooks/{nid}", json={"public": True}).status_code == 403
    assert api("bob")("DELETE", f"notebooks/{nid}").status_code == 403  # an editor
    assert carol("DELETE", f"notebooks/{nid}").status_code == 204
    assert api("bob")("GET", f"notebooks/{nid}").status_code == 404
    assert api("alice")("GET", f"notebooks/{nid}").status_code == 404
