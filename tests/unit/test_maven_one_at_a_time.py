"""Maven runs of the local stack take turns (`datahub.stack.maven._run_maven`): its servers
start side by side, and on a new machine each would otherwise download into the one local
repository at the same time."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from datahub.stack import maven

#: A stand-in ``mvn`` that fails when another run is inside it: the marker file exists
#: only while a run is.
FAKE_MVN = """#!/bin/sh
if [ -e "{marker}" ]; then echo "another mvn is running" >&2; exit 3; fi
touch "{marker}"
sleep 0.3
rm -f "{marker}"
echo "$@" >> "{calls}"
"""


@pytest.fixture
def fake_mvn(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    calls = tmp_path / "calls"
    mvn.write_text(FAKE_MVN.format(marker=tmp_path / "inside", calls=calls))
    mvn.chmod(mvn.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return calls


def test_maven_runs_started_at_once_from_threads_take_turns(fake_mvn, tmp_path):
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            maven._run_maven("copy", [f"-Dn={n}"], tmp_path, f"artifact {n}")
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(fake_mvn.read_text().splitlines()) == 4


def test_the_lock_lives_beside_the_users_local_repository(fake_mvn, tmp_path):
    maven._run_maven("copy", [], tmp_path, "an artifact")
    assert maven.maven_lock_file() == tmp_path / "home" / ".m2" / ".datahub-mvn.lock"
    assert maven.maven_lock_file().exists()
