"""The single-machine spawner: one system account per employee.

Like The Littlest JupyterHub, each hub user `alice` gets a system account `jupyter-alice`,
created on first spawn with a private home directory (mode 0700). Her server runs under
that account, so nobody else's kernel can read her files, her processes' environment or
her hub token. The hub must run as root to create accounts and switch to them.

Her quota's server memory and CPU limits are enforced by the kernel: with cgroups v2 where
available, else with rlimits and CPU affinity (see `limits`); the hub's log says which.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Enum, Unicode, default

from . import limits
from .mixin import DataHubSpawnerMixin

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def system_username(template: str, hub_username: str) -> str:
    """The system account name for a hub user (`jupyter-{username}` by default).

    Hub names are already normalised (lower case, no spaces) by the authenticator; this
    refuses anything that could not be a safe Unix account name rather than mangling it.
    """
    if not _SAFE_NAME.match(hub_username):
        raise ValueError(f"{hub_username!r} cannot be mapped to a system account name")
    name = template.format(username=hub_username)
    if len(name) > 32:
        raise ValueError(f"System account name {name!r} is longer than 32 characters")
    return name


class DataHubLocalSpawner(DataHubSpawnerMixin, LocalProcessSpawner):
    """Runs each user's JupyterLab under their own system account on this machine."""

    system_username_template = Unicode(
        "jupyter-{username}",
        help="""System account for a hub user; `{username}` is the hub name. The prefix
        keeps DataHub accounts apart from the machine's own.""",
    ).tag(config=True)

    home_root = Unicode(
        "/home",
        help="Directory under which the system accounts' home directories are created.",
    ).tag(config=True)

    limit_enforcement = Enum(
        ["auto", "cgroup2", "rlimit", "none"],
        "auto",
        help="""How servers' memory and CPU limits (from the user's quota) are enforced.

        "auto": cgroups v2 when the unified hierarchy at cgroup_root offers the memory
        and cpu controllers and cgroup_parent is writable, else rlimits. "cgroup2":
        cgroups v2 or refuse to start. "rlimit": RLIMIT_DATA per process and CPU
        affinity. "none": do not enforce (the limits are only recorded).
        Example: c.DataHubLocalSpawner.limit_enforcement = "cgroup2"
        """,
    ).tag(config=True)

    cgroup_root = Unicode(
        "/sys/fs/cgroup",
        help="""Mount point of the cgroup v2 (unified) hierarchy.

        Example: c.DataHubLocalSpawner.cgroup_root = "/sys/fs/cgroup"
        """,
    ).tag(config=True)

    cgroup_parent = Unicode(
        "/sys/fs/cgroup/datahub",
        help="""The cgroup under which each server gets its own group (named after the
        system account). Under systemd, use a delegated slice of the hub's unit
        (Delegate=yes). Example: c.DataHubLocalSpawner.cgroup_parent =
        "/sys/fs/cgroup/system.slice/jupyterhub.service/servers"
        """,
    ).tag(config=True)

    @default("cmd")
    def _cmd_default(self):
        # The hub's own environment has jupyterhub-singleuser next to its Python.
        import sys

        return [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]

    @property
    def system_username(self) -> str:
        return system_username(self.system_username_template, self.user.name)

    def ensure_system_account(self) -> pwd.struct_passwd:
        """Create the user's system account and private home on first use."""
        name = self.system_username
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            home = os.path.join(self.home_root, name)
            self.log.info("Creating system account %s for hub user %s", name, self.user.name)
            subprocess.run(
                [
                    "useradd",
                    "--create-home",
                    "--home-dir",
                    home,
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                    name,
                ],
                check=True,
                capture_output=True,
            )
            account = pwd.getpwnam(name)
        # useradd here makes 0755 homes; workspaces must be private.
        os.chmod(account.pw_dir, 0o700)
        return account

    def install_welcome_notebook(self, account: pwd.struct_passwd) -> None:
        content = self.welcome_notebook_bytes()
        if content is None:
            return
        target = Path(account.pw_dir) / self.welcome_notebook_name
        if target.exists():
            return
        target.write_bytes(content)
        os.chown(target, account.pw_uid, account.pw_gid)
        os.chmod(target, 0o600)

    def _cgroup(self) -> limits.Cgroup:
        return limits.Cgroup(Path(self.cgroup_parent), self.system_username)

    def make_preexec_fn(self, name):
        """Drop to the user's account, after entering the server's limits."""
        drop = set_user_setuid(self.system_username)
        server_limits = limits.ServerLimits(
            memory=int(self.mem_limit) if self.mem_limit else None,
            cpu=float(self.cpu_limit) if self.cpu_limit else None,
        )
        if not server_limits.any:
            self.log.info(
                "Server of %s: %s", self.user.name, limits.describe(server_limits, "none", None)
            )
            return drop
        enforcement = limits.choose_enforcement(
            self.limit_enforcement, Path(self.cgroup_root), Path(self.cgroup_parent)
        )
        procs, cpus = None, None
        if enforcement == "cgroup2":
            cgroup = self._cgroup()
            cgroup.create(server_limits)
            procs = cgroup.path / "cgroup.procs"
        elif enforcement == "rlimit" and server_limits.cpu is not None:
            cpus = limits.affinity(
                server_limits.cpu, sorted(os.sched_getaffinity(0)), self.user.name
            )
        self.log.info(
            "Server of %s limited with %s",
            self.user.name,
            limits.describe(server_limits, enforcement, cpus),
        )
        return limits.preexec(server_limits, enforcement, cgroup_procs=procs, cpus=cpus, then=drop)

    def user_env(self, env):
        account = pwd.getpwnam(self.system_username)
        env["USER"] = account.pw_name
        env["HOME"] = account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/bash"
        return env

    async def stop(self, now=False):
        await super().stop(now=now)
        self._cgroup().remove()

    async def start(self):
        account = self.ensure_system_account()
        self.install_welcome_notebook(account)
        if not self.notebook_dir:
            self.notebook_dir = account.pw_dir
        return await super().start()
