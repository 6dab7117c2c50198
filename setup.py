"""Build step of the jupyter-datahub package (everything else is in pyproject.toml).

The package carries DataHub's JupyterLab extension prebuilt, so users need no Node: when
its build output (datahub/labextension) is missing, as in a fresh checkout, it is built
here from extensions/labextension with npm (pinned by its package-lock.json), and
installed where JupyterLab finds prebuilt extensions
(share/jupyter/labextensions/jupyter-datahub). A wheel or sdist made from a built tree
carries the output, so installing from them needs no npm. The extension's setting defaults
for JupyterLab's own plugins (the completer's documentation panel, where SQL completion
documents Trino functions) go to share/jupyter/lab/settings/overrides.d, which JupyterLab
reads before a site's overrides.json.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "extensions" / "labextension"
OUTPUT = HERE / "datahub" / "labextension"
TARGET = "share/jupyter/labextensions/jupyter-datahub"
SETTINGS = SOURCE / "settings" / "jupyter-datahub.json"


def build_labextension() -> None:
    """Run ``npm ci && npm run build`` in extensions/labextension if not built yet."""
    if (OUTPUT / "package.json").exists() or not (SOURCE / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "Building jupyter-datahub's JupyterLab extension needs npm (Node 18 or newer): "
            "install nodejs and npm, or install from a wheel, which carries it prebuilt."
        )
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


build_labextension()
setup(data_files=labextension_files())
