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


def cgroup2_usable(root: Path, parent: Path) -> bool:
    """Whether cgroups v2 can limit memory and CPU here: *root* is a unified hierarchy
    offering both controllers, and the hub may create *parent* (or already has it)."""
    try:
        controllers = set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return False
    if not {"memory", "cpu"} <= controllers:
        return False
    existing = parent if parent.exists() else parent.parent
    return os.access(existing, os.W_OK)


def choose_enforcement(mode: str, root: Path, parent: Path) -> Enforcement:
    """The enforcement to use for *mode* ("auto", "cgroup2", "rlimit" or "none").

    Raises RuntimeError when cgroup2 is asked for but unusable, rather than silently
    running servers without their limits.
    """
    if mode in ("rlimit", "none"):
        return mode  # type: ignore[return-value]
    usable = cgroup2_usable(root, parent)
    if mode == "cgroup2" and not usable:
        raise RuntimeError(
            f"cgroups v2 cannot limit servers here ({root} lacks the memory/cpu controllers "
            f"or {parent} is not writable); set limit_enforcement to 'rlimit' or 'auto'."
        )
    if mode not in ("auto", "cgroup2"):
        raise ValueError(f"Unknown limit enforcement {mode!r}; use auto, cgroup2 or rlimit.")
    return "cgroup2" if usable else "rlimit"


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


class Cgroup:
    """One server's cgroup v2 directory under *parent*."""

    def __init__(self, parent: Path, name: str) -> None:
        self.parent = parent
        self.path = parent / name

    def create(self, limits: ServerLimits) -> None:
        """Create the group (and the parent, with the controllers delegated) and write
        the limits."""
        if not self.parent.exists():
            self.parent.mkdir()
        # Children of parent may only use controllers the parent enables for them.
        (self.parent / "cgroup.subtree_control").write_text("+memory +cpu")
        self.path.mkdir(exist_ok=True)
        memory = "max" if limits.memory is None else str(limits.memory)
        (self.path / "memory.max").write_text(memory)
        swap = self.path / "memory.swap.max"
        if swap.exists() and limits.memory is not None:
            swap.write_text("0")  # otherwise the limit only moves memory to swap
        (self.path / "cpu.max").write_text("max" if limits.cpu is None else cpu_max(limits.cpu))

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
            with open(procs, "w") as f:
                f.write("0")  # "0" is the writing process itself
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
