"""What "Open a copy" writes into the viewer's workspace, so that opening it in their
JupyterLab makes their browser fetch nothing the author pointed at. Pure, no I/O.

The copy is untrusted (`strip_trust`), so JupyterLab runs none of its scripts; but it
still renders markdown (cells and outputs) and sanitised HTML outputs, and loads every
image URL in them with the viewer's cookies: ``![](/hub/logout)`` would sign them out,
an image of an admin page would act as an admin who opens the copy. So, before it is
written:

- in markdown (cells and ``text/markdown`` outputs), an image whose source is not
  inline (`is_inline_image`: a raster ``data:`` URL or an ``attachment:``) becomes a
  link, ``![alt](url)`` → ``[image: alt](url)``; if the markdown's raw HTML could fetch
  anything (``<img>``, media, frames, ``src=``, CSS ``url(…)``…), its tags are escaped
  and show as text;
- an HTML output that could fetch anything is dropped (its other forms, such as
  ``text/plain``, stay); Plotly figures keep only what our own page draws (no layout
  image or map URLs); Vega charts that load data or images by URL are dropped.

Everything else stays as the author wrote it.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from .notebooks import cell_source, strip_trust
from .render import PLOTLY_MIMETYPE, is_inline_image, safe_figure

#: ``![alt](url)`` in its plainest form only (no title, brackets, escapes or spaces):
#: what every markdown parser reads the same way. Any other image syntax is defused.
_PLAIN_IMAGE = re.compile(r"!\[([^\[\]\\\n]*)\]\(([^\s()<>\\\"']+)\)")
_IMAGE_START = re.compile(r"!\[")
#: Tags that load something, and attributes that do, wherever they appear.
_FETCH_TAGS = (
    "img|image|input|audio|video|source|track|picture|iframe|frame|embed|object|applet"
    "|link|svg|math|body|meta|base|script|portal"
)
_FETCHING_HTML = re.compile(
    rf"<\s*/?\s*(?:{_FETCH_TAGS})\b"
    r"|\b(?:src|srcset|poster|background|lowsrc|dynsrc|data|xlink:href)\s*=",
    re.I,
)
_STYLED = re.compile(r"<\s*style\b|\bstyle\s*=", re.I)
_CSS_FETCH = re.compile(r"url|image|src|@import|\\", re.I)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_AUTOLINK = re.compile(r"<[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*>")
_VEGA = re.compile(r"^application/vnd\.vega(lite)?\.v\d+\+json$")


def html_fetches(text: str) -> bool:
    """Whether HTML (alone or inside markdown) could make a browser load something:
    a fetching tag or attribute, or styles with URLs. Errs on the side of yes."""
    decoded = html.unescape(text)
    if _FETCHING_HTML.search(decoded):
        return True
    return bool(_STYLED.search(decoded) and _CSS_FETCH.search(decoded))


def _escape_tags(text: str) -> str:
    out, last = [], 0
    for match in _TAG_START.finditer(text):
        start = match.start()
        if _AUTOLINK.match(text, start):
            continue  # <https://…> is a link, not HTML
        out.append(text[last:start] + "&lt;")
        last = start + 1
    return "".join(out) + text[last:]


def _defuse_images(text: str) -> str:
    out, last = [], 0
    for match in _IMAGE_START.finditer(text):
        start = match.start()
        if start < last:
            continue  # inside an inline image kept whole
        plain = _PLAIN_IMAGE.match(text, start)
        if plain and is_inline_image(plain.group(2)):
            out.append(text[last : plain.end()])
            last = plain.end()
            continue
        label = "[image" if text[start + 2 : start + 3] == "]" else "[image: "
        out.append(text[last:start] + label)
        last = start + 2
    return "".join(out) + text[last:]


def inert_markdown(text: str) -> str:
    """Markdown that shows the same in JupyterLab but loads nothing: images that are not
    inline become links, and fetching raw HTML becomes text."""
    if html_fetches(text):
        text = _escape_tags(text)
    return _defuse_images(text)


def _has_url(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k == "url" or _has_url(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_url(v) for v in value)
    return False


def _inert_data(data: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for mimetype, value in data.items():
        text = "".join(value) if isinstance(value, list) else value
        if mimetype == "text/html" and isinstance(text, str) and html_fetches(text):
            continue
        if mimetype == "text/markdown" and isinstance(text, str):
            value = inert_markdown(text)
        elif mimetype == PLOTLY_MIMETYPE:
            figure = safe_figure(value)
            if figure is None:
                continue
            value = json.loads(figure)
        elif _VEGA.match(mimetype) and _has_url(value):
            continue
        kept[mimetype] = value
    return kept


def inert_copy(notebook: dict[str, Any]) -> dict[str, Any]:
    """``notebook`` (in place, and returned) made safe to open in someone's JupyterLab:
    untrusted, and nothing in it loads anything when shown (see the module docstring)."""
    strip_trust(notebook)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            cell["source"] = inert_markdown(cell_source(cell))
        outputs = []
        for output in cell.get("outputs") or []:
            if isinstance(output.get("data"), dict):
                output["data"] = _inert_data(output["data"])
                if not output["data"]:
                    continue
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs
    return notebook
