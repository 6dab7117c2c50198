"""Nothing the hub does as root follows a path a user controls.

The hub runs as root and prepares each user's home at every spawn (private mode, the
welcome notebook where none is). Everything inside the home belongs to the user, who
can plant symlinks there from a terminal or a kernel. These tests are the attack, made
as the real ``jupyter-<name>`` system account against the running stack: plant a link,
have the hub restart the server, and check that root wrote or chowned nothing through it.

They use dave, whose server no other test keeps a kernel on, and leave his workspace as
they found it.
"""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

USER = "dave"
ACCOUNT = f"jupyter-{USER}"
WELCOME = "Welcome to DataHub.ipynb"


def as_account(command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a shell *command* as the user's system account, as their terminal would."""
    return subprocess.run(
        ["su", "-s", "/bin/sh", ACCOUNT, "-c", command],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def account(users) -> pwd.struct_passwd:
    users.token(USER)  # signed in, server started: the account and home exist
    return pwd.getpwnam(ACCOUNT)


@pytest.fixture
def root_only(tmp_path) -> Path:
    """A directory only root may enter: where the attack wants a file of its own."""
    path = tmp_path / "root-only"
    path.mkdir(mode=0o700)
    assert path.stat().st_uid == 0
    return path


@pytest.fixture
def welcome(account, restart_server):
    """dave's welcome notebook; afterwards the workspace holds what it held before."""
    path = Path(account.pw_dir) / WELCOME
    before = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    yield path
    assert as_account(f"rm -f {shlex.quote(str(path))}").returncode == 0
    restart_server(USER)
    if before is not None and path.read_bytes() != before:
        write = as_account(f"cat > {shlex.quote(str(path))}", stdin=before)
        assert write.returncode == 0, write.stderr


def test_a_dangling_symlink_planted_as_the_welcome_notebook_gets_no_root_file_at_the_next_spawn(
    account, root_only, welcome, restart_server
):
    target = root_only / "ld.so.preload"
    planted = as_account(f"ln -sfn {shlex.quote(str(target))} {shlex.quote(str(welcome))}")
    assert planted.returncode == 0, planted.stderr
    assert welcome.is_symlink() and not target.exists()

    restart_server(USER)

    assert not target.exists() and not target.is_symlink()
    assert list(root_only.iterdir()) == []
    assert welcome.is_symlink() and os.readlink(welcome) == str(target)
    info = root_only.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (0, 0o700)


def test_a_symlink_planted_as_the_welcome_notebook_never_gets_a_root_file_chowned(
    account, root_only, welcome, restart_server
):
    target = root_only / "shadow"
    target.write_text("root's own\n")
    target.chmod(0o640)
    planted = as_account(f"ln -sfn {shlex.quote(str(target))} {shlex.quote(str(welcome))}")
    assert planted.returncode == 0, planted.stderr

    restart_server(USER)

    info = target.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, 0, 0o640)
    assert target.read_text() == "root's own\n"


def test_a_deleted_welcome_notebook_comes_back_as_the_users_own_private_file(
    account, welcome, restart_server
):
    assert as_account(f"rm -f {shlex.quote(str(welcome))}").returncode == 0

    restart_server(USER)

    info = welcome.lstat()
    assert not welcome.is_symlink()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (
        account.pw_uid,
        account.pw_gid,
        0o600,
    )
    home = Path(account.pw_dir).lstat()
    assert (home.st_uid, home.st_mode & 0o777) == (account.pw_uid, 0o700)


def test_a_user_cannot_swap_their_home_for_a_link(account):
    """The hub opens the home without following a link; the home's own name is not the
    user's to change, so they cannot point it elsewhere either."""
    home = shlex.quote(account.pw_dir)
    moved = as_account(f"mv {home} {home}.away && ln -s / {home}")
    assert moved.returncode != 0
    assert Path(account.pw_dir).is_dir() and not Path(account.pw_dir).is_symlink()
    assert not Path(f"{account.pw_dir}.away").exists()
