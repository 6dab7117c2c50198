"""The code checks `make test` (and so CI) runs with the tests: ruff on the Python, and
the JupyterLab extension's own lint and unit tests (eslint, jest)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extensions" / "labextension"


def passes(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"`{' '.join(command)}` failed in {cwd}:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    )


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_the_python_is_ruff_clean(check):
    ruff = Path(sys.executable).parent / "ruff"
    passes([str(ruff), *check, "--no-cache", "."], ROOT)


@pytest.mark.parametrize("script", ["lint", "test"], ids=["eslint", "jest"])
def test_the_labextension_passes_its_own_checks(script):
    npm = shutil.which("npm")
    assert npm, "npm is missing: `make install` installs it"
    assert (EXTENSION / "node_modules").is_dir(), (
        "the extension's npm packages are missing: `make install` installs them"
    )
    passes([npm, "run", "--silent", script], EXTENSION)
