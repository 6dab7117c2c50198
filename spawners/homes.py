"""Root-side file operations in users' home directories that never follow a user's links.

The hub runs as root, and a user owns everything inside their home: any name there may
be a symlink, dangling or not, pointing anywhere on the machine. A root process that
checks ``exists()``, then writes, chowns or chmods by path would follow it (a dangling
link to ``/etc/ld.so.preload`` becomes a root-created file the user owns, i.e. root).
So the hub opens the home itself without following a link, checks it belongs to the
account, and works only through that directory descriptor: ``fchmod`` for the home,
``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to it for new files, ``fchown``/``fchmod`` on
the new file's own descriptor.
"""

from __future__ import annotations

import os
import stat

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeHome(RuntimeError):
    """A home directory the hub will not touch (a symlink, not a directory, or not the
    account's own)."""


def open_home(path: str, uid: int) -> int:
    """A descriptor of the home directory *path* of the account *uid*.

    Refuses (`UnsafeHome`) a home that is a symlink or not a directory owned by *uid*,
    so the hub never changes a directory it was pointed at, such as ``/`` or another
    account's home. The caller closes the descriptor.
    """
    try:
        fd = os.open(path, _DIRECTORY)
    except OSError as e:
        raise UnsafeHome(f"The home directory {path} is not a directory ({e.strerror}).") from None
    info = os.fstat(fd)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        os.close(fd)
        raise UnsafeHome(f"The home directory {path} does not belong to its account.")
    return fd


def make_private(home_fd: int) -> None:
    """Make the home behind *home_fd* private to its owner (mode 0700)."""
    os.fchmod(home_fd, 0o700)


def create_file(
    home_fd: int, name: str, content: bytes, uid: int, gid: int, mode: int = 0o600
) -> bool:
    """Create the new file *name* in the directory *home_fd* with *content*, owned by
    *uid*:*gid* with *mode*. False, changing nothing, when anything by that name exists
    (a file, a directory, a symlink, dangling or not)."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a file name")
    try:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=home_fd)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        f.write(content)
    return True
