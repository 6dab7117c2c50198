"""Build step of the jupyter-datahub package (everything else is in pyproject.toml).

The package carries DataHub's JupyterLab extension prebuilt, so users need no Node: when
its build output (datahub/labextension) is missing, as in a fresh checkout, or older than
any of its sources, as after an edit, it is built here from extensions/labextension with
npm (pinned by its package-lock.json), and
installed where JupyterLab finds prebuilt extensions
(share/jupyter/labextensions/jupyter-datahub). A wheel or sdist made from a built tree
carries the output, so installing from them needs no npm. The extension's setting defaults
for JupyterLab's own plugins (the completer's documentation panel, where SQL completion
documents Trino functions) go to share/jupyter/lab/settings/overrides.d, which JupyterLab
reads before a site's overrides.json.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "extensions" / "labextension"
OUTPUT = HERE / "datahub" / "labextension"
TARGET = "share/jupyter/labextensions/jupyter-datahub"
SETTINGS = SOURCE / "settings" / "jupyter-datahub.json"


#: What the build makes or installs under SOURCE: not its sources.
NOT_SOURCES = {"node_modules", "lib", "test", "tsconfig.tsbuildinfo"}


def newest_source(source: Path) -> float:
    """The newest modification time of the extension's sources under *source*."""
    newest = 0.0
    for folder, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCES]
        for name in files:
            if name not in NOT_SOURCES:
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
    return newest


def needs_build(source: Path, output: Path) -> bool:
    """Whether the extension in *source* has no build in *output*, or an older one than
    its sources (an edit since)."""
    if not (source / "package.json").exists():
        return False  # an sdist or wheel's tree: the build came with it
    built = output / "package.json"
    return not built.exists() or built.stat().st_mtime < newest_source(source)


def needs_packages(source: Path) -> bool:
    """Whether the extension in *source* lacks its npm packages as its package-lock.json
    pins them (``make install`` may have installed them already)."""
    installed = source / "node_modules" / ".package-lock.json"
    lock = source / "package-lock.json"
    return not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime


def build_labextension() -> None:
    """Run ``npm ci && npm run build`` in extensions/labextension if not built, or built
    before its sources last changed."""
    if not needs_build(SOURCE, OUTPUT):
        return
    npm = shutil.which("npm")
    if npm is None and (OUTPUT / "package.json").exists():
        print(
            "warning: jupyter-datahub's JupyterLab extension is older than its sources, "
            "and there is no npm to build it again: installing the older build"
        )
        return
    if npm is None:
        raise SystemExit(
            "Building jupyter-datahub's JupyterLab extension needs npm (Node 18 or newer): "
            "install nodejs and npm, or install from a wheel, which carries it prebuilt."
        )
    if needs_packages(SOURCE):
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SOURCE, check=True)
    subprocess.run([npm, "run", "build"], cwd=SOURCE, check=True)


def labextension_files() -> list[tuple[str, list[str]]]:
    """The built extension's files, by the directory they are installed into."""
    if not OUTPUT.is_dir():
        return []
    by_dir: dict[str, list[str]] = {TARGET: [str((SOURCE / "install.json").relative_to(HERE))]}
    by_dir["share/jupyter/lab/settings/overrides.d"] = [str(SETTINGS.relative_to(HERE))]
    for path in sorted(OUTPUT.rglob("*")):
        if path.is_file():
            where = Path(TARGET) / path.parent.relative_to(OUTPUT)
            by_dir.setdefault(str(where), []).append(str(path.relative_to(HERE)))
    return list(by_dir.items())


if __name__ == "__main__":  # as setuptools runs it (the tests import it)
    build_labextension()
    setup(data_files=labextension_files())
