"""Rendering shared notebooks: no author script survives, charts become JSON data."""

import base64
import json
import re
from html.parser import HTMLParser

import nbformat
import pytest

from datahub.sharing.render import (
    highlight_code,
    markdown_to_html,
    render_notebook,
    render_output,
    safe_figure,
    sanitize_html,
)

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '<a href="javascript:alert(3)">click</a>',
    '<a href="JaVaScRiPt&#58;alert(4)">click</a>',
    '<a href="data:text/html,<script>alert(5)</script>">data</a>',
    '<iframe src="javascript:alert(6)"></iframe>',
    '<svg onload="alert(7)"><circle r="1"/></svg>',
    '<div style="position:fixed;top:0">overlay</div>',
    '<form action="/hub/logout"><button formaction="javascript:alert(8)">x</button></form>',
    '<img src="/hub/logout" alt="logout">',
    "<style>body { display: none }</style>",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(9)">',
    '<object data="javascript:alert(10)"></object><embed src="x.swf">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(11)">',
    '<base href="javascript:alert(12)//">',
    '<details open ontoggle="alert(13)">x</details>',
]


class Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str) -> list[tuple[str, dict]]:
    parser = Elements()
    parser.feed(html)
    return parser.tags


def assert_inert(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in (
            "script",
            "iframe",
            "object",
            "embed",
            "svg",
            "form",
            "style",
            "base",
            "meta",
        )
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in ("style", "formaction", "srcdoc")
            if name in ("href", "src", "action", "data"):
                assert not value.strip().lower().startswith(("javascript:", "data:text")), value
                assert not value.startswith("/"), value


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sanitised_html_keeps_no_script(payload):
    assert_inert(sanitize_html(payload))
    assert_inert(markdown_to_html(f"# Title\n\n{payload}\n\n[x](javascript:alert(1))"))


def test_harmless_markup_survives():
    html = sanitize_html(
        '<table><tr><th colspan="2">a</th></tr><tr><td>1</td></tr></table>'
        '<a href="https://example.com/x">ok</a><a href="#section">anchor</a><b>bold</b>'
    )
    assert '<th colspan="2">a</th>' in html
    assert 'href="https://example.com/x"' in html and 'href="#section"' in html
    assert "<b>bold</b>" in html


def test_data_images_are_kept_and_other_data_urls_dropped():
    png = "data:image/png;base64,iVBORw0KGgo="
    html = sanitize_html(f'<img src="{png}"><a href="data:image/png;base64,AAAA">x</a>')
    assert f'src="{png}"' in html
    assert "href" not in html


def test_markdown_renders_tables_and_code():
    html = markdown_to_html("| a | b |\n|---|---|\n| 1 | 2 |\n\n`SELECT 1`")
    assert "<table>" in html and "<code>SELECT 1</code>" in html


def test_sql_cells_are_highlighted_as_sql_with_their_magic_line():
    html = highlight_code("%%sql -o x\nSELECT * FROM t WHERE a < 5", sql=True)
    assert '<span class="dh-magic">%%sql -o x</span>' in html
    assert '<span class="k">SELECT</span>' in html
    assert "&lt;" in html and "< 5" not in html


def test_highlighting_escapes_author_code():
    html = highlight_code("print('<script>alert(1)</script>')", sql=False)
    assert "<script>" not in html


def test_plotly_outputs_become_sanitised_figure_json():
    figure = {
        "data": [
            {
                "type": "bar",
                "x": ["a", "b"],
                "y": [1, float("nan")],
                "text": ['<a href="javascript:alert(1)">x</a>', "<b>ok</b>"],
            }
        ],
        "layout": {"title": {"text": "<img src=x onerror=alert(2)>Sales"}},
        "config": {"editable": True},
        "frames": [{"data": []}],
    }
    out = render_output(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"application/vnd.plotly.v1+json": figure, "text/plain": "<bar chart>"},
        }
    )
    assert out.kind == "chart"
    parsed = json.loads(out.figure)
    assert set(parsed) == {"data", "layout"}
    assert parsed["data"][0]["y"] == [1, None]
    assert "javascript" not in out.figure and "onerror" not in out.figure
    assert parsed["data"][0]["text"][1] == "<b>ok</b>"
    assert parsed["layout"]["title"]["text"] == "Sales"


def test_non_figures_are_not_charts():
    assert safe_figure(["no"]) is None
    assert safe_figure({"data": "x"}) is None


def test_javascript_outputs_are_never_shown():
    out = render_output(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"application/javascript": "alert(1)"},
        }
    )
    assert out.kind == "omitted"
    widget = render_output(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"application/javascript": "alert(1)", "text/plain": "fallback"},
        }
    )
    assert widget.kind == "text" and widget.text == "fallback"


def test_raster_images_become_data_urls_and_svg_shows_as_its_text():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    out = render_output({"output_type": "display_data", "metadata": {}, "data": {"image/png": png}})
    assert out.kind == "image" and out.src == f"data:image/png;base64,{png}"
    svg = render_output(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                "image/svg+xml": '<svg><image href="/hub/logout"/></svg>',
                "text/plain": "<Figure>",
            },
        }
    )
    assert (svg.kind, svg.text, svg.src) == ("text", "<Figure>", "")
    bad = render_output(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/png": '"><script>', "text/plain": "img"},
        }
    )
    assert bad.kind == "text"


def test_errors_and_streams_are_text_without_terminal_codes():
    err = render_output(
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad",
            "traceback": ["\x1b[0;31mValueError\x1b[0m: bad"],
        }
    )
    assert err.kind == "error" and err.text == "ValueError: bad"
    stream = render_output({"output_type": "stream", "name": "stdout", "text": ["a\n", "b"]})
    assert stream.text == "a\nb"


def test_a_whole_notebook_renders_cell_by_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Hello <script>alert(1)</script>"),
        nbformat.v4.new_code_cell("%%sql\nSELECT 1", execution_count=3),
        nbformat.v4.new_raw_cell("<script>raw</script>"),
    ]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": "<b onclick='x()'>t</b>"})
    ]
    cells = render_notebook(json.loads(nbformat.writes(nb)))
    assert [c.kind for c in cells] == ["markdown", "code", "raw"]
    assert "<script>" not in cells[0].html
    assert cells[1].sql and cells[1].execution_count == 3
    assert str(cells[1].outputs[0].html) == "<b>t</b>"
    assert cells[2].source == "<script>raw</script>"  # escaped by the template


# ------------------------------------------- nothing on the page makes the browser fetch

HUB = "https://hub.example.com"
#: Markup that would make a viewer's browser send a request with their cookies: a GET of
#: the hub's logout, of an admin's page about bob (recorded as the admin's view).
FETCHERS = [
    f"![logout]({HUB}/hub/logout)",
    "![logout](/hub/logout)",
    "![bob](//hub.example.com/services/datahub/admin/users/bob)",
    f'<img src="{HUB}/services/datahub/admin/users/bob">',
    '<img src="/services/datahub/api/admin/users/bob">',
    '<img src="admin/users/bob">',
    f'<img src=" {HUB}/hub/logout ">',
    f'<IMG SRC="{HUB}/hub/logout">',
    f'<img src="data:image/png;base64,AAAA" srcset="{HUB}/hub/logout 2x">',
    f'<picture><source srcset="{HUB}/hub/logout"><img alt="p"></picture>',
    f'<video poster="{HUB}/hub/logout" src="{HUB}/hub/logout"></video>',
    f'<audio src="{HUB}/hub/logout"></audio>',
    f'<div style="background: url({HUB}/hub/logout)">css</div>',
    f'<table background="{HUB}/hub/logout"><tr><td>t</td></tr></table>',
    f'<link rel="stylesheet" href="{HUB}/hub/logout"><link rel="prefetch" href="/hub/logout">',
    f'<object data="{HUB}/hub/logout"></object><embed src="{HUB}/hub/logout">',
    f'<iframe src="{HUB}/hub/logout"></iframe><frame src="/hub/logout">',
    f'<form action="{HUB}/hub/logout"><input type="image" src="{HUB}/hub/logout"></form>',
    f'<meta http-equiv="refresh" content="0;url={HUB}/hub/logout">',
    f'<base href="{HUB}/hub/"><img src="logout">',
    f'<svg><image href="{HUB}/hub/logout"/><use href="{HUB}/hub/logout#x"/></svg>',
    f'<input type="image" src="{HUB}/hub/logout"><track src="{HUB}/hub/logout">',
    f'<a href="{HUB}/docs" ping="{HUB}/hub/logout">ping</a>',
    '<img src="data:image/svg+xml;base64,PHN2Zz48aW1hZ2UgaHJlZj0iL2h1Yi9sb2dvdXQiLz48L3N2Zz4=">',
    '<img src="data:image/svg+xml,%3Csvg%3E%3Cimage href=%22/hub/logout%22/%3E%3C/svg%3E">',
    '<img src="data:text/html;base64,PHNjcmlwdD4=">',
    '<img src="data:image/png,not-base64 /hub/logout">',
    f'<img src="attachment:{HUB}/hub/logout">',
]
#: Attributes that make a browser fetch, whatever the tag.
FETCHING_ATTRIBUTES = {"src", "srcset", "poster", "data", "background", "action", "ping"}
RASTER = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")


def assert_fetches_nothing(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in ("link", "video", "audio", "picture", "source", "track", "input")
        assert tag not in ("object", "embed", "iframe", "frame", "form", "meta", "base", "svg")
        for name, value in attrs.items():
            assert name != "style", (tag, name)
            if name in FETCHING_ATTRIBUTES:
                assert tag == "img" and name == "src" and RASTER.match(value), (tag, name, value)


@pytest.mark.parametrize("markup", FETCHERS)
def test_markup_that_would_make_the_viewers_browser_fetch_is_dropped(markup):
    assert_fetches_nothing(sanitize_html(markup))
    assert_fetches_nothing(markdown_to_html(f"Intro\n\n{markup}\n\nEnd"))
    out = render_output(
        {"output_type": "display_data", "metadata": {}, "data": {"text/html": markup}}
    )
    assert_fetches_nothing(str(out.html))
    markdown = render_output(
        {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": markup}}
    )
    assert_fetches_nothing(str(markdown.html))


def test_only_base64_raster_data_urls_stay_as_images():
    for kind in ("png", "jpeg", "gif", "webp"):
        url = f"data:image/{kind};base64,iVBORw0KGgo="
        assert f'src="{url}"' in markdown_to_html(f"![x]({url})")
    assert "src" not in markdown_to_html("![x](data:image/svg+xml;base64,PHN2Zz4=)")


def test_attachment_images_are_inlined_from_the_cells_attachments():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell(
        '![chart](attachment:chart.png) <img src="attachment:my chart.png"> '
        "![svg](attachment:drawing.svg) ![gone](attachment:missing.png) "
        "[link](attachment:chart.png)"
    )
    cell["attachments"] = {
        "chart.png": {"image/png": png},
        "my chart.png": {"image/png": png},
        "drawing.svg": {"image/svg+xml": '<svg><image href="/hub/logout"/></svg>'},
    }
    nb.cells = [cell]
    html = str(render_notebook(json.loads(nbformat.writes(nb)))[0].html)
    sources = [attrs.get("src") for tag, attrs in elements(html) if tag == "img"]
    assert sources == [f"data:image/png;base64,{png}"] * 2 + [None, None]
    assert "attachment:" not in html and "href" not in html
    # Another cell's attachments are not this cell's.
    assert "src" not in markdown_to_html("![chart](attachment:chart.png)")


def test_plotly_figures_lose_the_urls_plotly_js_would_load():
    png = "data:image/png;base64,iVBORw0KGgo="
    figure = {
        "data": [
            {"type": "choropleth", "geojson": f"{HUB}/hub/logout", "locations": ["a"]},
            {"type": "choroplethmap", "geojson": {"type": "FeatureCollection", "features": []}},
        ],
        "layout": {
            "images": [{"source": f"{HUB}/hub/logout"}, {"source": "/hub/logout"}, {"source": png}],
            "mapbox": {
                "style": f"{HUB}/hub/logout",
                "layers": [{"sourcetype": "raster", "source": [f"{HUB}/hub/logout?{{z}}"]}],
            },
            "map": {"style": "carto-positron"},
            "template": {"layout": {"images": [{"source": f"{HUB}/hub/logout"}]}},
            "font": {"style": "italic"},
        },
    }
    clean = safe_figure(figure)
    assert "logout" not in clean
    parsed = json.loads(clean)
    assert parsed["layout"]["images"] == [{}, {}, {"source": png}]
    assert parsed["layout"]["map"]["style"] == "carto-positron"
    assert parsed["layout"]["font"]["style"] == "italic"
    assert parsed["data"][1]["geojson"] == {"type": "FeatureCollection", "features": []}
