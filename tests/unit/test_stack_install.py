"""The suite's start-up check that the installed datahub package is this checkout's code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from datahub.stack.install import stale_files, unlisted_packages

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[tool.setuptools]
packages = ["pkg", "pkg.ext"]

[tool.setuptools.package-dir]
"pkg" = "pkg"
"pkg.ext" = "ext"
"""


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "checkout"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "ext").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "page.html").write_text("<p>hi</p>\n")
    (root / "ext" / "__init__.py").write_text("Y = 2\n")
    return root


@pytest.fixture
def copy(tmp_path, checkout):
    """A regular (non-editable) install of the checkout."""
    site = tmp_path / "site-packages"
    shutil.copytree(checkout / "pkg", site / "pkg")
    shutil.copytree(checkout / "ext", site / "pkg" / "ext")
    return {"pkg": site / "pkg", "pkg.ext": site / "pkg" / "ext"}


def test_an_editable_install_of_the_checkout_is_its_code(checkout):
    editable = {"pkg": checkout / "pkg", "pkg.ext": checkout / "ext"}
    assert stale_files(checkout, editable.get) == []


def test_an_up_to_date_copy_is_the_checkouts_code(checkout, copy):
    assert stale_files(checkout, copy.get) == []


def test_a_copy_made_before_a_change_to_the_checkout_is_stale(checkout, copy):
    (checkout / "pkg" / "sub" / "mod.py").write_text("X = 2\n")
    (checkout / "ext" / "__init__.py").write_text("Y = 3\n")
    assert stale_files(checkout, copy.get) == ["pkg/sub/mod.py", "ext/__init__.py"]


def test_a_module_added_to_the_checkout_after_the_install_is_stale(checkout, copy):
    (checkout / "pkg" / "new.py").write_text("")
    assert stale_files(checkout, copy.get) == ["pkg/new.py"]


def test_a_non_python_file_that_is_not_installed_is_not_counted(checkout, copy):
    (checkout / "pkg" / "notes.txt").write_text("not package data\n")
    assert stale_files(checkout, copy.get) == []


def test_a_changed_template_in_the_copy_is_stale(checkout, copy):
    (copy["pkg"] / "page.html").write_text("<p>old</p>\n")
    assert stale_files(checkout, copy.get) == ["pkg/page.html"]


def test_an_editable_install_of_another_checkout_is_stale(tmp_path, checkout):
    other = tmp_path / "other"
    shutil.copytree(checkout, other)
    (other / "pkg" / "sub" / "mod.py").write_text("X = 'other'\n")
    editable_other = {"pkg": other / "pkg", "pkg.ext": other / "ext"}
    assert stale_files(checkout, editable_other.get) == ["pkg/sub/mod.py"]


def test_a_package_that_is_not_installed_is_stale(checkout):
    assert stale_files(checkout, {}.get) == ["pkg", "ext"]


def test_every_package_of_this_checkout_is_in_pyprojects_packages_list():
    # A package left out is missing from a regular install (a checkout under /root).
    assert unlisted_packages(REPO) == []


def test_a_new_subpackage_missing_from_the_packages_list_is_found(checkout):
    (checkout / "pkg" / "sub" / "__init__.py").write_text("")
    assert unlisted_packages(checkout) == ["pkg.sub"]
