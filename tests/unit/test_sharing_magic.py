"""The %datahub publish magic's arguments and request body (no service needed)."""

from pathlib import Path

import pytest
from IPython.core.error import UsageError

from datahub.extensions.publish import parse_publish_args, publish_body, workspace_path


def test_arguments_parse_with_quotes_and_repeats():
    args = parse_publish_args(
        '"reports/Sales by region.ipynb" --title "Sales by region" --tag sales --tag weekly '
        "--share group:analysts --share user:bob:editor --public -m 'first cut'"
    )
    assert args.path == "reports/Sales by region.ipynb"
    assert args.title == "Sales by region"
    assert args.tags == ["sales", "weekly"]
    assert args.shares == ["group:analysts", "user:bob:editor"]
    assert args.public is True and args.message == "first cut" and args.to is None


@pytest.mark.parametrize("line", ["", "--title x", "a.ipynb --to notanumber", 'a.ipynb --title "x'])
def test_bad_arguments_are_one_line_usage_errors(line):
    with pytest.raises(UsageError):
        parse_publish_args(line)


def test_body_sends_the_workspace_path_and_only_the_settings_given():
    # Without --title a republished file keeps its title (the service names new ones
    # after the file).
    args = parse_publish_args("reports/sales.ipynb --share group:analysts")
    body = publish_body(args, {"cells": []}, "reports/sales.ipynb")
    assert body == {
        "content": {"cells": []},
        "path": "reports/sales.ipynb",
        "shares": ["group:analysts"],
    }


def test_a_version_for_another_notebook_sends_its_id_and_no_settings():
    body = publish_body(parse_publish_args("x.ipynb --to 7 -m fix"), {}, "x.ipynb")
    assert body == {"content": {}, "id": 7, "message": "fix"}


def test_workspace_paths_are_relative_to_the_root(tmp_path):
    (tmp_path / "reports").mkdir()
    assert workspace_path(tmp_path / "reports" / "a.ipynb", tmp_path) == "reports/a.ipynb"
    assert workspace_path(Path("/etc/a.ipynb"), tmp_path) is None
