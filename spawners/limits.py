"""Enforcing a user's server CPU and memory limits on one machine.

Two ways, chosen once per spawn (`choose_enforcement`):

- **cgroup2**: where the unified hierarchy has the memory and cpu controllers and the hub
  may create groups under ``cgroup_parent``, each server runs in its own cgroup
  (``<parent>/<system user>``) with ``memory.max`` (the whole server, kernels included;
  the kernel's out-of-memory killer stops the process that allocates too much) and
  ``cpu.max`` (a share of CPU time).
- **rlimit**: otherwise. Each process of the server gets ``RLIMIT_DATA`` (its heap and
  private memory; an allocation beyond it fails, so Python raises MemoryError) and the
  CPU limit becomes CPU affinity: the server's processes may only run on
  ``ceil(cpu)`` of the machine's CPUs. ``RLIMIT_AS`` would be simpler but counts
  reserved address space, which Python's threads and libraries use by the gigabyte.

The functions that run in the child between fork and exec (`preexec`) only make system
calls.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Enforcement = Literal["cgroup2", "rlimit", "none"]

#: cpu.max period (microseconds): the kernel's default.
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class ServerLimits:
    """A server's limits: bytes of memory and CPU cores (None: unlimited)."""

    memory: int | None = None
    cpu: float | None = None

    @property
    def any(self) -> bool:
        return self.memory is not None or self.cpu is not None


#: How the rlimit fallback can be escaped, for the hub's log and the admin pages.
RLIMIT_ESCAPES = (
    "a server's processes can leave their CPUs with sched_setaffinity, and RLIMIT_DATA "
    "limits each process rather than the server, so many processes together can use "
    "more memory than the limit"
)


class CannotConfine(RuntimeError):
    """``limit_enforcement = "cgroup2"`` on a host where cgroups v2 cannot confine a server.

    Its message is the sentence the user sees on the spawn page (JupyterHub shows an
    exception's ``jupyterhub_message`` there, and ``str()`` in the progress events);
    ``reason`` says why, for the hub's log.
    """

    MESSAGE = (
        "Your server was not started because this machine cannot enforce its memory and "
        "CPU limits; please tell your DataHub administrator."
    )

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason
        self.jupyterhub_message = self.MESSAGE


def _controllers(path: Path) -> set[str] | None:
    try:
        return set(path.read_text().split())
    except OSError:
        return None


def cgroup2_problem(root: Path, parent: Path) -> str | None:
    """Why cgroups v2 cannot limit servers' memory and CPU here, or None when they can:
    *root* must be a unified hierarchy offering both controllers, and *parent* must exist
    with them (or its own parent must hand them down to a new child) and be writable.

    Reads only the host's cgroup files, so the hub and the DataHub service (for the admin
    pages) reach the same answer.
    """
    needed = {"memory", "cpu"}
    available = _controllers(root / "cgroup.controllers")
    if available is None:
        return f"{root} is not a cgroup v2 (unified) hierarchy"
    if not needed <= available:
        missing = " and ".join(sorted(needed - available))
        return f"the cgroup v2 hierarchy at {root} has no {missing} controller"
    if parent.exists():
        where, offered = parent, _controllers(parent / "cgroup.controllers")
    else:
        # A new group gets the controllers its parent enables for its children.
        where, offered = parent.parent, _controllers(parent.parent / "cgroup.subtree_control")
    if offered is not None and not needed <= offered:
        return f"{where} does not delegate the memory and cpu controllers"
    if not os.access(where, os.W_OK):
        return f"{where} is not writable by the hub"
    return None


def _check_mode(mode: str) -> None:
    if mode not in ("auto", "cgroup2", "rlimit", "none"):
        raise ValueError(f"Unknown limit enforcement {mode!r}; use auto, cgroup2, rlimit or none.")


def choose_enforcement(mode: str, root: Path, parent: Path) -> Enforcement:
    """The enforcement to use for *mode* ("auto", "cgroup2", "rlimit" or "none").

    Raises `CannotConfine` when cgroup2 is asked for but unusable, rather than running
    servers with weaker limits than the administrator chose.
    """
    _check_mode(mode)
    if mode in ("rlimit", "none"):
        return mode  # type: ignore[return-value]
    problem = cgroup2_problem(root, parent)
    if problem is None:
        return "cgroup2"
    if mode == "cgroup2":
        raise CannotConfine(problem)
    return "rlimit"


def weakness(mode: str, root: Path, parent: Path) -> str | None:
    """What is weak about servers' limits on this host under *mode*, as one sentence for
    the hub's log and the admin pages; None when the kernel confines each whole server."""
    _check_mode(mode)
    if mode == "none":
        return (
            "Server limits are not enforced on this host (limit_enforcement = 'none'): "
            "a server can use all of the machine's memory and CPU."
        )
    problem = None if mode == "rlimit" else cgroup2_problem(root, parent)
    if mode == "rlimit":
        cause = "limit_enforcement = 'rlimit'"
    elif problem is None:
        return None
    elif mode == "cgroup2":
        return (
            "Servers with limits cannot start on this host: limit_enforcement = 'cgroup2' "
            f"but {problem}."
        )
    else:
        cause = f"cgroups v2 unusable: {problem}"
    return (
        f"Server limits are weak on this host ({cause}): they fall back to rlimits, which "
        f"can be escaped: {RLIMIT_ESCAPES}."
    )


def cpu_max(cpu: float) -> str:
    """The ``cpu.max`` value for *cpu* cores: quota and period in microseconds."""
    return f"{max(1000, round(cpu * CPU_PERIOD_US))} {CPU_PERIOD_US}"


def affinity(cpu: float, available: Sequence[int], key: str) -> set[int]:
    """``ceil(cpu)`` of the *available* CPUs for a server, starting at a place derived
    from *key* (the user name), so that users' servers spread over the machine."""
    cpus = sorted(available)
    count = max(1, min(len(cpus), math.ceil(cpu)))
    start = zlib.crc32(key.encode()) % len(cpus)
    return {cpus[(start + i) % len(cpus)] for i in range(count)}


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_existing(dir_fd: int, name: str, text: str) -> None:
    """Write *text* to the existing file *name* in the directory *dir_fd*: never creates
    a file and never follows a symlink (a cgroup's interface files always exist)."""
    fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Cgroup:
    """One server's cgroup v2 directory under *parent*, named *name* (a plain name)."""

    def __init__(self, parent: Path, name: str) -> None:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"{name!r} cannot name a cgroup")
        self.parent = parent
        self.name = name
        self.path = parent / name

    def create(self, limits: ServerLimits) -> None:
        """Create the group (and the parent, with the controllers delegated) and write
        the limits. The group is reached through directory descriptors opened without
        following links, and only existing interface files are written."""
        self.parent.mkdir(exist_ok=True)
        parent_fd = os.open(self.parent, _DIR)
        try:
            # Children of parent may only use controllers the parent enables for them.
            write_existing(parent_fd, "cgroup.subtree_control", "+memory +cpu")
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.name, 0o755, dir_fd=parent_fd)
            group_fd = os.open(self.name, _DIR, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        try:
            memory = "max" if limits.memory is None else str(limits.memory)
            write_existing(group_fd, "memory.max", memory)
            if limits.memory is not None:
                # Otherwise the limit only moves memory to swap (absent without swap).
                with contextlib.suppress(FileNotFoundError):
                    write_existing(group_fd, "memory.swap.max", "0")
            cpu = "max" if limits.cpu is None else cpu_max(limits.cpu)
            write_existing(group_fd, "cpu.max", cpu)
        finally:
            os.close(group_fd)

    def remove(self) -> None:
        """Remove the group once its processes are gone (best effort)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


def preexec(
    limits: ServerLimits,
    enforcement: Enforcement,
    *,
    cgroup_procs: Path | None = None,
    cpus: set[int] | None = None,
    then: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """The function the server's child process runs before exec: join the cgroup or set
    the rlimit and affinity, then *then* (dropping to the user's account)."""
    procs = str(cgroup_procs) if cgroup_procs else None

    def apply() -> None:
        if enforcement == "cgroup2" and procs:
            fd = os.open(procs, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            os.write(fd, b"0")  # "0" is the writing process itself
            os.close(fd)
        elif enforcement == "rlimit":
            if limits.memory is not None:
                resource.setrlimit(resource.RLIMIT_DATA, (limits.memory, limits.memory))
            if cpus:
                os.sched_setaffinity(0, cpus)
        if then is not None:
            then()

    return apply


def describe(limits: ServerLimits, enforcement: Enforcement, cpus: set[int] | None) -> str:
    """What is enforced, for the hub's log."""
    if not limits.any:
        return "no server limits (unlimited quota)"
    parts = []
    if enforcement == "cgroup2":
        if limits.memory is not None:
            parts.append(f"memory.max {limits.memory} bytes for the whole server")
        if limits.cpu is not None:
            parts.append(f"cpu.max {cpu_max(limits.cpu)} ({limits.cpu:g} cores)")
        return "cgroups v2: " + ", ".join(parts)
    if enforcement == "rlimit":
        if limits.memory is not None:
            parts.append(f"RLIMIT_DATA {limits.memory} bytes per process")
        if limits.cpu is not None:
            parts.append(f"CPU affinity {sorted(cpus or ())} for {limits.cpu:g} cores")
        return "rlimits (cgroups v2 unavailable): " + ", ".join(parts)
    return "nothing (limit_enforcement = 'none')"
