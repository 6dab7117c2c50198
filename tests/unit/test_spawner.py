"""Pure parts of the DataHub spawners."""

import json
import os
import pwd
import subprocess
import sys
from types import SimpleNamespace

import pytest

from datahub.spawners import homes
from datahub.spawners.local import DataHubLocalSpawner, system_username
from datahub.spawners.mixin import KERNEL_SPEC, WELCOME_NOTEBOOK
from datahub.testing import MALLOC_ARENAS_PROBE


@pytest.mark.parametrize(
    ("hub_name", "expected"),
    [("alice", "jupyter-alice"), ("a.b-c_d", "jupyter-a.b-c_d"), ("x1", "jupyter-x1")],
)
def test_each_hub_user_gets_a_prefixed_system_account(hub_name, expected):
    assert system_username("jupyter-{username}", hub_name) == expected


@pytest.mark.parametrize("hub_name", ["", "../root", "Alice", "a b", "-rf", "a/b", "x" * 40])
def test_names_that_are_not_safe_account_names_are_refused(hub_name):
    with pytest.raises(ValueError):
        system_username("jupyter-{username}", hub_name)


def test_the_default_kernel_loads_the_sql_extension():
    spec = json.loads(KERNEL_SPEC.read_text())
    assert "--ext=datahub.extensions.sql" in spec["argv"]
    # jupyter_client swaps a bare "python" for the server's own interpreter.
    assert spec["argv"][0] == "python"


def test_the_default_kernels_threads_share_two_malloc_arenas():
    # %%sql converts segments on several threads; with an arena each, every thread kept
    # its conversions' freed memory until the frame was joined (a 1M-row fetch peaked
    # at +335-396 MiB against +274-313 MiB with two arenas, side by side).
    spec = json.loads(KERNEL_SPEC.read_text())
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def arenas(env):
        out = subprocess.run(
            [sys.executable, "-c", MALLOC_ARENAS_PROBE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout)

    assert arenas({**clean, **spec.get("env", {})}) <= 2
    assert arenas(clean) > 2  # glibc's own default: an arena per thread, up to 8 per core


def test_the_welcome_notebook_is_valid_and_runs_sql():
    import nbformat

    nb = nbformat.read(WELCOME_NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert any(c.source.startswith("%%sql") for c in nb.cells if c.cell_type == "code")


# ------------------------------------------------------------------ root-side file safety
# The hub runs as root; everything inside a user's home is theirs, links included.

USER_UID, USER_GID = 54321, 54321


@pytest.fixture
def home(tmp_path):
    """A home directory owned by an unprivileged account, and a root-owned place outside
    it that the user must never get a file in."""
    path = tmp_path / "home" / "jupyter-mallory"
    path.mkdir(parents=True)
    os.chown(path, USER_UID, USER_GID)
    os.chmod(path, 0o755)
    outside = tmp_path / "root-only"
    outside.mkdir(mode=0o700)
    return path, outside


def _account(path):
    return pwd.struct_passwd(("jupyter-mallory", "x", USER_UID, USER_GID, "", str(path), "/bin/sh"))


def test_a_dangling_symlink_planted_as_the_welcome_notebook_gets_no_file_created(home):
    path, outside = home
    target = outside / "ld.so.preload"
    (path / "Welcome.ipynb").symlink_to(target)
    fd = homes.open_home(str(path), USER_UID)
    try:
        assert homes.create_file(fd, "Welcome.ipynb", b"{}", USER_UID, USER_GID) is False
    finally:
        os.close(fd)
    assert not target.exists() and not target.is_symlink()
    assert os.readlink(path / "Welcome.ipynb") == str(target)


def test_a_symlink_to_a_root_file_planted_as_the_welcome_notebook_is_neither_written_nor_chowned(
    home,
):
    path, outside = home
    target = outside / "shadow"
    target.write_text("root's")
    (path / "Welcome.ipynb").symlink_to(target)
    fd = homes.open_home(str(path), USER_UID)
    try:
        assert homes.create_file(fd, "Welcome.ipynb", b"{}", USER_UID, USER_GID) is False
    finally:
        os.close(fd)
    assert target.read_text() == "root's"
    assert (target.stat().st_uid, oct(target.stat().st_mode & 0o777)) == (0, oct(0o644))


def test_a_new_file_in_a_home_is_the_users_own_and_private(home):
    path, _ = home
    fd = homes.open_home(str(path), USER_UID)
    try:
        assert homes.create_file(fd, "Welcome.ipynb", b"{}", USER_UID, USER_GID) is True
        assert homes.create_file(fd, "Welcome.ipynb", b"other", USER_UID, USER_GID) is False
    finally:
        os.close(fd)
    info = (path / "Welcome.ipynb").stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (USER_UID, USER_GID, 0o600)
    assert (path / "Welcome.ipynb").read_bytes() == b"{}"


@pytest.mark.parametrize("name", ["", ".", "..", "../escape", "a/b"])
def test_only_plain_file_names_are_created_in_a_home(home, name):
    path, _ = home
    fd = homes.open_home(str(path), USER_UID)
    try:
        with pytest.raises(ValueError):
            homes.create_file(fd, name, b"{}", USER_UID, USER_GID)
    finally:
        os.close(fd)


def test_a_home_that_is_a_symlink_is_refused_and_its_target_not_chmodded(home, tmp_path):
    path, outside = home
    linked = tmp_path / "home" / "jupyter-linked"
    linked.symlink_to(outside)
    os.chown(outside, USER_UID, USER_GID, follow_symlinks=False)
    with pytest.raises(homes.UnsafeHome):
        homes.open_home(str(linked), USER_UID)
    assert outside.stat().st_mode & 0o777 == 0o700


def test_a_home_owned_by_another_account_is_refused(tmp_path):
    with pytest.raises(homes.UnsafeHome, match="does not belong"):
        homes.open_home(str(tmp_path), USER_UID)  # root's
    with pytest.raises(homes.UnsafeHome, match="not a directory"):
        homes.open_home(str(tmp_path / "missing"), USER_UID)


def _spawner(path, monkeypatch):
    spawner = DataHubLocalSpawner(
        user=SimpleNamespace(name="mallory", groups=[], url="/user/mallory/", id=1),
        welcome_notebook_name="Welcome.ipynb",
    )
    monkeypatch.setattr(spawner, "ensure_system_account", lambda: _account(path))
    return spawner


def test_at_spawn_the_home_is_made_private_and_a_missing_welcome_notebook_written(
    home, monkeypatch
):
    path, _ = home
    _spawner(path, monkeypatch).prepare_home()
    assert path.stat().st_mode & 0o777 == 0o700
    notebook = path / "Welcome.ipynb"
    assert notebook.read_bytes() == WELCOME_NOTEBOOK.read_bytes()
    assert (notebook.stat().st_uid, notebook.stat().st_mode & 0o777) == (USER_UID, 0o600)


def test_at_spawn_a_symlink_planted_as_the_welcome_notebook_is_not_followed(home, monkeypatch):
    path, outside = home
    (path / "Welcome.ipynb").symlink_to(outside / "planted")
    _spawner(path, monkeypatch).prepare_home()
    assert list(outside.iterdir()) == []
    assert (path / "Welcome.ipynb").is_symlink()


def test_a_system_account_that_is_root_never_gets_a_server(monkeypatch):
    spawner = DataHubLocalSpawner(user=SimpleNamespace(name="toor", groups=[], id=1))
    monkeypatch.setattr(pwd, "getpwnam", lambda name: pwd.getpwuid(0))
    with pytest.raises(RuntimeError, match="never run as root"):
        spawner.ensure_system_account()


def test_internal_ssl_is_refused_rather_than_copying_certificates_into_a_home_by_path():
    spawner = DataHubLocalSpawner(user=SimpleNamespace(name="mallory", groups=[], id=1))
    with pytest.raises(RuntimeError, match="internal_ssl"):
        spawner.move_certs({"keyfile": "k", "certfile": "c", "cafile": "ca"})
