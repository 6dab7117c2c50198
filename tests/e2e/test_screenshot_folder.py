"""The browser tests' screenshots stay out of the checkout: `make test` leaves
`git status` clean, and only `make screenshots` refreshes docs/screenshots."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_a_test_runs_screenshots_go_to_a_scratch_folder_not_the_checkout(
    request, page, shot, screenshots
):
    docs = REPO / "docs" / "screenshots"
    before = {p.name: p.stat().st_mtime_ns for p in docs.glob("*.png")}
    page.set_content("<h1>DataHub</h1>")
    shot(page, "sql-completion")  # a name the README's pictures use
    assert (screenshots / "sql-completion.png").stat().st_size > 0
    chosen = request.config.getoption("screenshots")
    if chosen is None:  # make test: a scratch folder outside the checkout
        assert not screenshots.is_relative_to(REPO), screenshots
    else:  # make screenshots: the folder it names, which it copies from
        assert screenshots == Path(chosen).resolve()
    assert {p.name: p.stat().st_mtime_ns for p in docs.glob("*.png")} == before
