""" "Open a copy": the notebook written into the viewer's workspace loads nothing in
their JupyterLab (images that are not inline become links, fetching HTML is text or
dropped), and keeps everything else the author wrote."""

import json

import nbformat
import pytest

from datahub.sharing.copies import html_fetches, inert_copy, inert_markdown

PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
HUB = "https://hub.example.org"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (f"![out]({HUB}/hub/logout)", f"[image: out]({HUB}/hub/logout)"),
        ("![](/hub/logout)", "[image](/hub/logout)"),
        (
            "![a](/services/datahub/admin/users/bob)",
            "[image: a](/services/datahub/admin/users/bob)",
        ),
        ("![a](logout.png)", "[image: a](logout.png)"),
        ('![a](/hub/logout "title")', '[image: a](/hub/logout "title")'),
        ("![a](<https://x.org/a b.png>)", "[image: a](<https://x.org/a b.png>)"),
        ("![a][ref]\n\n[ref]: /hub/logout", "[image: a][ref]\n\n[ref]: /hub/logout"),
        ("![ref]\n\n[ref]: /hub/logout", "[image: ref]\n\n[ref]: /hub/logout"),
        (
            "[![badge](https://img.io/b.svg)](https://x.org)",
            "[[image: badge](https://img.io/b.svg)](https://x.org)",
        ),
        # An attachment given odd syntax could fall back to a reference image: defused.
        (
            "![r](attachment:a b)\n\n[r]: /hub/logout",
            "[image: r](attachment:a b)\n\n[r]: /hub/logout",
        ),
    ],
)
def test_markdown_image_urls_that_a_browser_would_fetch_become_links(markdown, expected):
    assert inert_markdown(markdown) == expected


@pytest.mark.parametrize(
    "markdown",
    [
        "![chart](attachment:chart.png)",
        f"![pixel](data:image/png;base64,{PIXEL})",
        "# Title\n\nSome *text* with a [link](https://x.org) and <b>bold</b> and <https://x.org>.",
        "<div align='center'><span style='color: red'>red</span></div>",
    ],
)
def test_markdown_that_loads_nothing_is_kept_as_written(markdown):
    assert inert_markdown(markdown) == markdown


@pytest.mark.parametrize(
    "markup",
    [
        '<img src="/hub/logout">',
        "<IMG SRC=/hub/logout>",
        '<p title=">" style="background: url(/hub/logout)">x</p>',
        '<p style="background: &#117;rl(/hub/logout)">x</p>',
        '<p style="background: \\75 rl(/hub/logout)">x</p>',
        '<video poster="/hub/logout"></video>',
        '<audio src="/hub/logout"></audio>',
        '<input type="image" src="/hub/logout">',
        '<picture><source srcset="/hub/logout"></picture>',
        '<table background="/hub/logout"><tr><td>t</td></tr></table>',
        '<svg><image href="/hub/logout"/></svg>',
        '<iframe src="/services/datahub/admin/users/bob"></iframe>',
        '<link rel="stylesheet" href="/hub/logout">',
        "<style>@import '/hub/logout';</style>",
    ],
)
def test_fetching_html_in_markdown_is_shown_as_text(markup):
    assert html_fetches(markup)
    inert = inert_markdown(f"Intro <b>bold</b>\n\n{markup}\n\n![k](attachment:k.png)")
    assert "<" not in inert.replace("&lt;", "")
    assert inert.startswith("Intro &lt;b>bold&lt;/b>")
    assert inert.endswith("![k](attachment:k.png)")


def test_a_dataframe_table_is_html_that_loads_nothing():
    table = (
        "<style scoped>\n.dataframe tbody tr th { vertical-align: top; }\n</style>\n"
        '<table border="1" class="dataframe"><tr><th>x</th></tr><tr><td>1</td></tr></table>'
    )
    assert not html_fetches(table)


def copied(notebook) -> dict:
    """The copy of a notebook as stored (JSON text, sources and texts as lines)."""
    return inert_copy(json.loads(nbformat.writes(notebook)))


def test_the_copy_is_untrusted_and_its_markdown_cells_load_nothing():
    nb = nbformat.v4.new_notebook()
    nb.metadata["signature"] = "sha256:abc"
    cell = nbformat.v4.new_markdown_cell(["# Numbers\n", "![out](/hub/logout)\n"])
    cell.metadata["trusted"] = True
    cell["attachments"] = {"k.png": {"image/png": PIXEL}}
    code = nbformat.v4.new_code_cell("%%sql\nSELECT 1", execution_count=1)
    code.metadata["trusted"] = True
    nb.cells = [cell, code]
    copy = copied(nb)
    assert "signature" not in copy["metadata"]
    assert all("trusted" not in c["metadata"] for c in copy["cells"])
    assert copy["cells"][0]["source"] == "# Numbers\n[image: out](/hub/logout)\n"
    assert copy["cells"][0]["attachments"] == {"k.png": {"image/png": PIXEL}}
    assert "".join(copy["cells"][1]["source"]) == "%%sql\nSELECT 1"
    nbformat.validate(nbformat.from_dict(copy))


def test_outputs_that_would_load_urls_lose_those_forms_and_keep_the_others():
    figure = {
        "data": [{"type": "bar", "x": ["a"], "y": [1]}],
        "layout": {"images": [{"source": "/hub/logout", "x": 0}], "title": {"text": "T"}},
    }
    table = '<table class="dataframe"><tr><td>1</td></tr></table>'
    outputs = [
        {"text/html": '<img src="/hub/logout">', "text/plain": "<IPython.Image>"},
        {"text/html": '<img src="/hub/logout">'},
        {"text/markdown": "![x](/hub/logout)"},
        {"application/vnd.plotly.v1+json": figure, "text/plain": "Figure"},
        {"application/vnd.vegalite.v5+json": {"data": {"url": "/hub/logout"}, "mark": "bar"}},
        {"application/vnd.vegalite.v5+json": {"data": {"values": [{"a": 1}]}, "mark": "bar"}},
        {"text/html": table, "text/plain": "   x\n0  1"},
        {"image/png": PIXEL},
    ]
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x", execution_count=1)
    code.outputs = [nbformat.v4.new_output("display_data", data=d) for d in outputs]
    code.outputs.append(nbformat.v4.new_output("stream", text="done\n"))
    nb.cells = [code]
    kept = [
        o.get("data", o.get("text"))
        for o in nbformat.reads(json.dumps(copied(nb)), 4)["cells"][0]["outputs"]
    ]
    assert kept == [
        {"text/plain": "<IPython.Image>"},
        {"text/markdown": "[image: x](/hub/logout)"},
        {
            "application/vnd.plotly.v1+json": {
                "data": figure["data"],
                "layout": {"images": [{"x": 0}], "title": {"text": "T"}},
            },
            "text/plain": "Figure",
        },
        {"application/vnd.vegalite.v5+json": {"data": {"values": [{"a": 1}]}, "mark": "bar"}},
        {"text/html": table, "text/plain": "   x\n0  1"},
        {"image/png": PIXEL},
        "done\n",
    ]
