"""Downloads from Maven Central for the local stack (Trino, PrestoDB, Kafka, S3Proxy),
cached per user.

Everything goes through ``mvn`` with one pinned version of the dependency plugin, into a
cache directory guarded by :func:`cache_lock`; an install counts only once it is complete
(a ``.complete`` marker, or a file renamed into place), so a download killed midway is
redone by the next caller. The ``mvn`` runs of a user take turns (:func:`maven_lock_file`),
since they share one local repository.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from xml.sax.saxutils import escape

from .process import ProcessError

#: Maven 3.8's bare "dependency:" prefix resolves to an old plugin; name a 3.x one.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

#: Marks a finished install directory.
COMPLETE = ".complete"


@contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """Hold ``cache_dir``'s download lock; remove downloads a killed process left behind.

    Parallel test workers may ask for the same download at once. A download killed midway
    (SIGKILL, power) left its temporary ``.download-*`` folder; nobody else downloads while
    we hold the lock, so those folders are garbage.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for leftover in cache_dir.glob(".download-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def maven_lock_file() -> Path:
    """The lock every ``mvn`` run of this user holds (:func:`_run_maven`), beside the
    local repository all of them write into."""
    return Path.home() / ".m2" / ".datahub-mvn.lock"


def _run_maven(goal: str, arguments: Sequence[str], cwd: Path, what: str) -> None:
    """Run one ``mvn`` goal, one at a time per user: the local stack starts its servers
    side by side (`process.start_together`) and test workers start theirs at once, and
    Debian's Maven 3.8 gives no guarantee for runs that write the same artifacts into one
    local repository (~/.m2) at the same time; on a new machine Trino, PrestoDB, Kafka and
    S3Proxy would all download at once. Only a first run downloads."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise FileNotFoundError("Maven (mvn) is not installed; install the Debian package maven.")
    lock_file = maven_lock_file()
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        # A lock of the open file: threads of one process wait for each other too.
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            [mvn, "-B", "-q", f"{DEPENDENCY_PLUGIN}:{goal}", *arguments],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise ProcessError(
            f"Maven could not download {what}: {(result.stdout + result.stderr)[-2000:]}"
        )


def copy_artifact(artifact: str, output_dir: Path) -> Path:
    """Download ``artifact`` (``group:name:version:type[:classifier]``) into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    _run_maven(
        "copy",
        [f"-Dartifact={artifact}", f"-DoutputDirectory={output_dir}"],
        cwd=output_dir,  # away from any pom.xml
        what=artifact,
    )
    group, name, version, kind, *classifier = artifact.split(":")
    suffix = f"-{classifier[0]}" if classifier else ""
    path = output_dir / f"{name}-{version}{suffix}.{kind}"
    if not path.exists():
        raise ProcessError(f"Maven reported success but {path.name} is missing.")
    return path


def cached_artifact(artifact: str, path: Path, step: Callable[[str], object], message: str) -> Path:
    """``path``, a cache directory's copy of ``artifact`` (one file, made executable),
    downloaded with :func:`copy_artifact` the first time, after ``step(message)``."""
    if path.exists():
        return path
    with cache_lock(path.parent):
        if not path.exists():
            step(message)
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
                downloaded = copy_artifact(artifact, Path(tmp))
                downloaded.chmod(0o755)
                downloaded.rename(path)
    return path


def runtime_pom(artifacts: Sequence[str]) -> str:
    """A pom that depends on ``artifacts`` (``group:name:version`` each), and nothing else."""
    dependencies = []
    for artifact in artifacts:
        group, name, version = artifact.split(":")
        dependencies.append(
            "    <dependency>"
            f"<groupId>{escape(group)}</groupId>"
            f"<artifactId>{escape(name)}</artifactId>"
            f"<version>{escape(version)}</version>"
            "</dependency>\n"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.datahub</groupId>\n"
        "  <artifactId>runtime</artifactId>\n"
        "  <version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n" + "".join(dependencies) + "  </dependencies>\n</project>\n"
    )


def copy_dependencies(artifacts: Sequence[str], output_dir: Path) -> list[Path]:
    """Download ``artifacts`` (``group:name:version``) and their runtime dependencies,
    as jars, into ``output_dir``; return the jars."""
    output_dir.mkdir(parents=True, exist_ok=True)
    project = output_dir.parent / f".pom-{output_dir.name}"
    project.mkdir(parents=True, exist_ok=True)
    (project / "pom.xml").write_text(runtime_pom(artifacts))
    _run_maven(
        "copy-dependencies",
        ["-DincludeScope=runtime", f"-DoutputDirectory={output_dir}"],
        cwd=project,
        what=", ".join(artifacts),
    )
    jars = sorted(output_dir.glob("*.jar"))
    if not jars:
        raise ProcessError(f"Maven reported success but {output_dir} holds no jars.")
    return jars
