"""Whether the installed ``datahub`` package is a given checkout's code.

`make install` installs the checkout into the venv that the hub and the users' servers
(running as ``jupyter-<name>`` accounts) import from: editable when those accounts can
read the checkout, a copy otherwise. A copy goes stale as soon as the checkout changes,
and tests would then exercise old code; the test suite checks this at start.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Callable
from pathlib import Path


def installed_dir(package: str) -> Path | None:
    """The directory the importable ``package`` comes from, or None if it is not importable."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def package_dirs(checkout: Path) -> dict[str, str]:
    """``{package: directory in the checkout}`` from pyproject.toml's setuptools
    ``package-dir`` (``datahub.extensions`` lives in ``extensions/``, and so on)."""
    pyproject = tomllib.loads((checkout / "pyproject.toml").read_text())
    return dict(pyproject["tool"]["setuptools"]["package-dir"])


def stale_files(checkout: Path, locate: Callable[[str], Path | None] = installed_dir) -> list[str]:
    """The checkout's files (relative paths) whose installed copy is missing or differs;
    empty when the installed package is this checkout's code.

    An editable install of this checkout imports from the checkout itself: nothing to
    compare. Otherwise every file is compared byte for byte; a missing non-Python file
    is not counted (the checkout may hold files that are not package data).
    """
    stale: list[str] = []
    for package, directory in package_dirs(checkout).items():
        source = (checkout / directory).resolve()
        installed = locate(package)
        if installed is None:
            stale.append(directory)
            continue
        if installed.resolve() == source:
            continue
        for file in sorted(source.rglob("*")):
            if not file.is_file() or "__pycache__" in file.parts:
                continue
            copy = installed / file.relative_to(source)
            if copy.is_file():
                if copy.read_bytes() != file.read_bytes():
                    stale.append(str(file.relative_to(checkout.resolve())))
            elif file.suffix == ".py":
                stale.append(str(file.relative_to(checkout.resolve())))
    return stale


def unlisted_packages(checkout: Path) -> list[str]:
    """Python packages of the checkout (directories with ``__init__.py`` under each
    ``package-dir``) missing from pyproject.toml's explicit ``packages`` list: an editable
    install finds them anyway, a regular install leaves them out."""
    setuptools = tomllib.loads((checkout / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for package, directory in setuptools["package-dir"].items():
        source = checkout / directory
        for init in source.rglob("__init__.py"):
            relative = init.parent.relative_to(source).parts
            if "__pycache__" in relative or "node_modules" in relative:
                continue
            found.add(".".join((package, *relative)))
    return sorted(found - listed)
