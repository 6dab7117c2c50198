"""The repository's documents stand on their own: every relative link in the README and
in docs/ names a file of this repository, and none leaves it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
if (REPO / "tests" / "README.md").exists():
    DOCUMENTS.append(REPO / "tests" / "README.md")
# Markdown links and images: [text](target) and ![alt](target).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_the_link_pattern_finds_relative_links_and_leaves_urls_alone():
    text = "[a](docs/x.md) ![b](p.png) [c](https://example.com/) [d](#part) [e](../up.md)"
    assert relative_links(text) == ["docs/x.md", "p.png", "../up.md"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_a_file_inside_the_repository(document):
    for target in relative_links(document.read_text()):
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{document.name} links outside the repository: {target}"
        assert path.exists(), f"{document.name} links to a missing file: {target}"
