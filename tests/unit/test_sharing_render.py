"""Rendering shared notebooks: no author script survives, charts become JSON data."""

import base64
import json
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


def test_images_become_data_urls_and_svg_is_only_an_image():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    out = render_output({"output_type": "display_data", "metadata": {}, "data": {"image/png": png}})
    assert out.kind == "image" and out.src == f"data:image/png;base64,{png}"
    svg = render_output(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/svg+xml": "<svg onload='alert(1)'></svg>"},
        }
    )
    assert svg.kind == "image" and svg.src.startswith("data:image/svg+xml;base64,")
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
