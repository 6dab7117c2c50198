"""Rendering a shared notebook for the viewer's browser, so that nothing its author wrote
runs there as script. Pure, no I/O.

- Markdown (cells and outputs) becomes HTML with mistune, then goes through an
  allow-list sanitiser (nh3, the Rust ``ammonia`` library), as does every HTML output:
  no ``<script>``, ``<style>``, ``<iframe>``, forms or SVG; no event-handler or ``style``
  attributes; links only to ``http:``, ``https:``, ``mailto:`` and ``#anchors``.
- Nothing on the page makes the viewer's browser send a request: an ``<img>`` keeps its
  ``src`` only as a base64 ``data:`` URL of a raster image (PNG, JPEG, GIF, WebP), or as
  ``attachment:NAME`` of its markdown cell, inlined as such a URL. Any other URL, above
  all one of the hub (``/hub/logout``, an admin page), would be a GET sent with the
  viewer's cookies. SVG is refused as an image (it can refer to other resources);
  ``<img>`` is the only allowed tag that fetches (no ``srcset``, ``<picture>``,
  ``<video>``, ``<link>``, ``<object>``, ``<iframe>``, ``<form>``, ``<meta>``, ``<base>``
  or ``style``), and Plotly figures lose the URLs plotly.js would load (layout images,
  map styles and layers, GeoJSON by URL).
- Code is highlighted on the server (Pygments: spans with classes, all text escaped).
- Plotly outputs are not HTML: their figure JSON (``data`` and ``layout`` only, with any
  markup inside strings sanitised) goes into a ``data-figure`` attribute, escaped by the
  template, and the page's own static script draws it with plotly.js.
- JavaScript outputs, widgets and anything else executable are not shown.

The page around it sends a Content-Security-Policy without ``'unsafe-inline'`` scripts
and with ``img-src data:`` (``NOTEBOOK_PAGE_CSP`` in the handlers), so even markup that
slipped through could neither run nor fetch.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import mistune
import nh3
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.lexers.sql import SqlLexer

from .notebooks import cell_source, is_sql_cell

try:  # IPython's lexer knows magics (%%sql, %timeit); plain Python otherwise
    from ipython_pygments_lexers import IPython3Lexer as _CodeLexer
except ImportError:  # pragma: no cover - older IPython
    _CodeLexer = PythonLexer

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
RASTER_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$", re.I)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")

# URLs are nh3's to judge (one place): mistune would turn attachment: ones into "#harmful-link".
_markdown = mistune.create_markdown(
    renderer=mistune.HTMLRenderer(escape=False, allow_harmful_protocols=True),
    plugins=["strikethrough", "table", "url"],
)

# What author HTML may keep: ammonia's default tags (text, lists, tables, images, links)
# and attributes; content of these is dropped whole, not just the tags.
_DROP_WITH_CONTENT = {"script", "style", "template", "noscript", "textarea", "title"}
# Plotly draws a small markup language of its own in labels (SVG text, never innerHTML).
_PLOTLY_TAGS = {"a", "b", "i", "em", "strong", "br", "sub", "sup", "span", "s", "u"}


def _url_relative(url: str) -> str | None:
    # In-page anchors only: a relative URL points into the hub, and even an image there
    # would make the viewer's browser send a request (e.g. /hub/logout).
    return url if url.startswith("#") else None


Attachments = dict[str, Any]


def _attachment_image(name: str, attachments: Attachments) -> str | None:
    bundle = attachments.get(name, attachments.get(unquote(name)))
    if not isinstance(bundle, dict):
        return None
    for mimetype in RASTER_IMAGES:
        if mimetype in bundle:
            image = _image(mimetype, bundle[mimetype])
            return image.src if image else None
    return None


def is_inline_image(url: str) -> bool:
    """Whether an image URL shows without the browser sending any request: a base64
    ``data:`` URL of a raster image, or ``attachment:NAME`` of the cell (JupyterLab and
    our page both inline it as such a URL). The one rule for the page and the copies."""
    url = url.strip()
    return url[:11].lower() == "attachment:" or bool(_DATA_IMAGE.match(url))


def image_source(url: str, attachments: Attachments | None = None) -> str | None:
    """What an ``<img src>`` may be on a shared notebook's page: a base64 ``data:`` URL of
    a raster image, given or made from the cell's ``attachment:NAME``; None for anything
    else (the viewer's browser would fetch it)."""
    url = url.strip()
    if url[:11].lower() == "attachment:":
        return _attachment_image(url[11:], attachments or {})
    return url if _DATA_IMAGE.match(url) else None


def _attribute_filter(attachments: Attachments | None) -> Any:
    def check(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            # The one allowed attribute that fetches: nothing but inline images.
            return image_source(value, attachments)
        if value.strip().lower().startswith(("data:", "attachment:")):
            return None  # e.g. a link to data:text/html
        return value

    return check


def sanitize_html(html: str, attachments: Attachments | None = None) -> str:
    """Author HTML reduced to the allow-list (see the module docstring); ``attachments``
    are the markdown cell's, for ``<img src="attachment:NAME">``."""
    return nh3.clean(
        html,
        clean_content_tags=_DROP_WITH_CONTENT,
        url_schemes={"http", "https", "mailto", "data", "attachment"},
        attribute_filter=_attribute_filter(attachments),
        url_relative=_url_relative,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _sanitize_plotly_text(text: str) -> str:
    return nh3.clean(
        text,
        tags=_PLOTLY_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes={"a": {"href"}},
        url_schemes={"http", "https"},
        url_relative="deny",
        link_rel=None,
    )


def markdown_to_html(text: str, attachments: Attachments | None = None) -> Markup:
    """Markdown (with the HTML Jupyter allows in it) as sanitised HTML; ``attachments``
    are the cell's (``![](attachment:NAME)``)."""
    return Markup(sanitize_html(_markdown(text), attachments))  # noqa: S704 - sanitised


def strip_ansi(text: str) -> str:
    """Terminal colour codes removed (tracebacks carry them)."""
    return _ANSI.sub("", text)


def highlight_code(source: str, sql: bool) -> Markup:
    """Code as highlighted HTML (escaped text in ``<span class=…>``). For a ``%%sql`` cell
    the magic line is kept as it is and the rest highlighted as SQL."""
    formatter = HtmlFormatter(nowrap=True)
    if sql:
        magic, _, body = source.lstrip("\n").partition("\n")
        head = Markup('<span class="dh-magic">{}</span>\n').format(magic)
        # Pygments escapes every character of the source it puts in its spans.
        return head + Markup(highlight(body, SqlLexer(), formatter))  # noqa: S704
    return Markup(highlight(source, _CodeLexer(), formatter))  # noqa: S704


# Figure attributes plotly.js loads as URLs: layout images' and map layers' ``source``,
# map ``style``s, a choropleth's ``geojson``. Inline values (an image's data: URL, a
# GeoJSON object, a style's name) stay.
_FIGURE_URL_KEYS = {"source", "style", "geojson"}


def _fetched_by_plotly(key: str, value: Any) -> bool:
    if key not in _FIGURE_URL_KEYS:
        return False
    if isinstance(value, list):
        return any(_fetched_by_plotly(key, v) for v in value)
    if not isinstance(value, str):
        return False
    if key == "source":
        return image_source(value) is None
    return any(c in value for c in ":/")  # a URL, not a name like "carto-positron"


def _clean_figure_value(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        return None
    if isinstance(value, str):
        return _sanitize_plotly_text(value) if "<" in value else value
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN is not JSON; plotly treats null as a gap
    if isinstance(value, dict):
        return {
            str(k): _clean_figure_value(v, depth + 1)
            for k, v in value.items()
            if not _fetched_by_plotly(str(k), v)
        }
    if isinstance(value, list | tuple):
        return [_clean_figure_value(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def safe_figure(figure: Any) -> str | None:
    """A Plotly figure's ``data`` and ``layout`` as JSON for our page script, with any
    markup in strings sanitised; None when it is not a figure."""
    if not isinstance(figure, dict):
        return None
    data, layout = figure.get("data", []), figure.get("layout", {})
    if not isinstance(data, list) or not isinstance(layout, dict):
        return None
    clean = {"data": _clean_figure_value(data), "layout": _clean_figure_value(layout)}
    return json.dumps(clean, separators=(",", ":"), allow_nan=False)


@dataclass
class RenderedOutput:
    """One output as the template shows it. ``kind``: html, text, error, image, chart,
    omitted."""

    kind: str
    html: Markup | None = None
    text: str = ""
    src: str = ""
    figure: str = ""


@dataclass
class RenderedCell:
    """One cell as the template shows it. ``kind``: markdown, code, raw."""

    kind: str
    html: Markup | None = None
    source: str = ""
    execution_count: int | None = None
    sql: bool = False
    outputs: list[RenderedOutput] = field(default_factory=list)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _image(mimetype: str, value: Any) -> RenderedOutput | None:
    # Raster images only: an SVG can refer to other resources (and no sanitiser of ours
    # vouches for it), so an SVG output shows as its other representations.
    encoded = re.sub(r"\s+", "", _text(value))
    if mimetype not in RASTER_IMAGES or not _BASE64.match(encoded):
        return None
    try:
        base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return RenderedOutput("image", src=f"data:{mimetype};base64,{encoded}")


def render_output(output: dict[str, Any]) -> RenderedOutput | None:
    """The safest faithful form of one output, or None when there is nothing to show."""
    kind = output.get("output_type")
    if kind == "stream":
        return RenderedOutput("text", text=strip_ansi(_text(output.get("text", ""))))
    if kind == "error":
        trace = output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]
        return RenderedOutput("error", text=strip_ansi("\n".join(map(str, trace))))
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data") or {}
    if PLOTLY_MIMETYPE in data:
        figure = safe_figure(data[PLOTLY_MIMETYPE])
        if figure is not None:
            return RenderedOutput("chart", figure=figure, text=_text(data.get("text/plain", "")))
    for mimetype in RASTER_IMAGES:
        if mimetype in data:
            image = _image(mimetype, data[mimetype])
            if image is not None:
                return image
    if "text/html" in data:
        clean = sanitize_html(_text(data["text/html"]))
        return RenderedOutput("html", html=Markup(clean))  # noqa: S704 - sanitised
    if "text/markdown" in data:
        return RenderedOutput("html", html=markdown_to_html(_text(data["text/markdown"])))
    if "text/latex" in data:
        return RenderedOutput("text", text=_text(data["text/latex"]))
    if "application/json" in data:
        return RenderedOutput("text", text=json.dumps(data["application/json"], indent=2))
    if "text/plain" in data:
        return RenderedOutput("text", text=strip_ansi(_text(data["text/plain"])))
    if data:
        return RenderedOutput("omitted", text="Interactive output (not shown in the gallery)")
    return None


def render_notebook(notebook: dict[str, Any]) -> list[RenderedCell]:
    """Every cell of a (validated) notebook, ready for the template."""
    cells: list[RenderedCell] = []
    for cell in notebook.get("cells", []):
        source = cell_source(cell)
        kind = cell.get("cell_type")
        if kind == "markdown":
            attachments = cell.get("attachments")
            attachments = attachments if isinstance(attachments, dict) else None
            cells.append(RenderedCell("markdown", html=markdown_to_html(source, attachments)))
        elif kind == "code":
            sql = is_sql_cell(cell)
            outputs = [r for r in map(render_output, cell.get("outputs") or []) if r]
            cells.append(
                RenderedCell(
                    "code",
                    html=highlight_code(source, sql),
                    source=source,
                    execution_count=cell.get("execution_count"),
                    sql=sql,
                    outputs=outputs,
                )
            )
        else:
            cells.append(RenderedCell("raw", source=source))
    return cells


def pygments_css(selector: str = ".dh-code") -> str:
    """The stylesheet for highlighted code (written to static/notebook.css)."""
    return HtmlFormatter(style="default").get_style_defs(selector)
