"""setup.py's build step: when the JupyterLab extension is built again."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup_py():
    spec = importlib.util.spec_from_file_location("datahub_setup_py", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines its functions; setup() runs only as __main__
    return module


def touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, (mtime, mtime))


@pytest.fixture
def tree(tmp_path):
    """An extension's sources at time 1000 (with the build's by-products under them) and
    its build output's folder, empty."""
    source, output = tmp_path / "labextension", tmp_path / "out"
    for name in ("package.json", "package-lock.json", "src/index.ts", "style/base.css"):
        touch(source / name, 1000)
    output.mkdir()
    return source, output


def test_a_checkout_without_a_build_builds(setup_py, tree):
    source, output = tree
    assert setup_py.needs_build(source, output)


def test_a_build_newer_than_every_source_is_kept(setup_py, tree):
    source, output = tree
    touch(output / "package.json", 2000)
    assert not setup_py.needs_build(source, output)


@pytest.mark.parametrize("edited", ["src/index.ts", "style/base.css", "package-lock.json"])
def test_a_source_edited_after_the_build_builds_again(setup_py, tree, edited):
    # The attack on the suite: an edited extension whose old build is installed and
    # tested, so the tests pass against code that is no longer there.
    source, output = tree
    touch(output / "package.json", 2000)
    touch(source / edited, 3000)
    assert setup_py.needs_build(source, output)


@pytest.mark.parametrize(
    "by_product", ["node_modules/x/index.js", "lib/index.js", "tsconfig.tsbuildinfo", "test/a.ts"]
)
def test_what_the_build_makes_and_the_tests_do_not_count_as_sources(setup_py, tree, by_product):
    source, output = tree
    touch(output / "package.json", 2000)
    touch(source / by_product, 3000)
    assert not setup_py.needs_build(source, output)


def test_a_tree_without_the_extensions_sources_keeps_the_build_it_came_with(setup_py, tmp_path):
    output = tmp_path / "out"
    touch(output / "package.json", 2000)
    assert not setup_py.needs_build(tmp_path / "labextension", output)


def test_the_build_installs_the_npm_packages_only_when_the_lock_is_newer(setup_py, tree):
    source, _ = tree
    assert setup_py.needs_packages(source)  # none yet
    touch(source / "node_modules" / ".package-lock.json", 2000)
    assert not setup_py.needs_packages(source)  # `make install` put them there
    touch(source / "package-lock.json", 3000)
    assert setup_py.needs_packages(source)  # the lock changed since
