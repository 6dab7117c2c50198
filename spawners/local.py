"""The single-machine spawner: one system account per employee.

Like The Littlest JupyterHub, each hub user `alice` gets a system account `jupyter-alice`,
created on first spawn with a private home directory (mode 0700). Her server runs under
that account, so nobody else's kernel can read her files, her processes' environment or
her hub token. The hub must run as root to create accounts and switch to them.

Her quota's server memory and CPU limits are enforced by the kernel: with cgroups v2 where
available, else with rlimits and CPU affinity (see `limits`); the hub's log says which,
with a warning when the limits are escapable.

The hub touches files in her home as root only through a descriptor of the home opened
without following links (see `homes`): she owns everything in it and may plant symlinks.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pwd
import re
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Enum, Unicode, default
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from . import homes, limits
from .mixin import DataHubSpawnerMixin

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
#: Locked while an account is created (see ``ensure_system_account``): root's, never a
#: path a user controls, and the same for every hub on the machine.
ACCOUNTS_LOCK = "/etc/passwd"


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
        """Create the user's system account and private home on first use.

        Several hubs on one machine (two test sessions, two checkouts) may spawn the same
        new user at once, and concurrent ``useradd`` runs of one name each add an
        account; so creation is serialised machine-wide by an ``flock`` on
        :data:`ACCOUNTS_LOCK` (root's own file, which ``useradd`` does not flock).
        """
        name = self.system_username
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            with open(ACCOUNTS_LOCK, "rb") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                account = self._create_system_account(name)
        if account.pw_uid == 0:
            raise RuntimeError(f"The system account {name} is root; servers never run as root.")
        return account

    def _create_system_account(self, name: str) -> pwd.struct_passwd:
        """``useradd`` the account unless another hub did since we looked (call locked)."""
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        home = os.path.join(self.home_root, name)
        self.log.info("Creating system account %s for hub user %s", name, self.user.name)
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash"]
            + ["--user-group", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)

    def prepare_home(self) -> pwd.struct_passwd:
        """The user's account, with a private home holding the welcome notebook.

        Runs as root in a directory the user owns, so only through a descriptor of the
        home opened without following links (see `homes`): the home is made private
        (useradd here makes 0755 homes), and the welcome notebook is created only where
        nothing by its name exists, never through a link the user planted.
        """
        account = self.ensure_system_account()
        home_fd = homes.open_home(account.pw_dir, account.pw_uid)
        try:
            homes.make_private(home_fd)
            content = self.welcome_notebook_bytes()
            if content is not None:
                homes.create_file(
                    home_fd, self.welcome_notebook_name, content, account.pw_uid, account.pw_gid
                )
        finally:
            os.close(home_fd)
        return account

    def _server_limits(self) -> limits.ServerLimits:
        return limits.ServerLimits(
            memory=int(self.mem_limit) if self.mem_limit else None,
            cpu=float(self.cpu_limit) if self.cpu_limit else None,
        )

    def decide_enforcement(self) -> limits.Enforcement | None:
        """How this start's limits are enforced (None: the quota sets none).

        Logs a warning naming what is escapable when the limits are weak, and raises
        `limits.CannotConfine` (whose message the user sees) when "cgroup2" is required
        but unavailable.
        """
        if not self._server_limits().any:
            return None
        root, parent = Path(self.cgroup_root), Path(self.cgroup_parent)
        try:
            enforcement = limits.choose_enforcement(self.limit_enforcement, root, parent)
        except limits.CannotConfine as e:
            self.log.error(
                "Not starting the server of %s: limit_enforcement is 'cgroup2' but %s.",
                self.user.name,
                e.reason,
            )
            raise
        if enforcement != "cgroup2":
            weak = limits.weakness(self.limit_enforcement, root, parent)
            self.log.warning("Server of %s: %s", self.user.name, weak)
        return enforcement

    def _cgroup(self) -> limits.Cgroup:
        return limits.Cgroup(Path(self.cgroup_parent), self.system_username)

    def make_preexec_fn(self, name):
        """Drop to the user's account, after entering the server's limits."""
        drop = set_user_setuid(self.system_username)
        server_limits = self._server_limits()
        enforcement = getattr(self, "_enforcement", None)
        if enforcement is None:
            self.log.info(
                "Server of %s: %s", self.user.name, limits.describe(server_limits, "none", None)
            )
            return drop
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

    def move_certs(self, paths):
        raise RuntimeError(
            "DataHubLocalSpawner does not support c.JupyterHub.internal_ssl: "
            "LocalProcessSpawner copies certificates into the user's home as root by path, "
            "following links the user controls."
        )

    async def stop(self, now=False):
        await super().stop(now=now)
        self._cgroup().remove()

    async def prepare_server(self) -> None:
        self._enforcement = self.decide_enforcement()
        account = await asyncio.to_thread(self.prepare_home)
        if not self.notebook_dir:
            self.notebook_dir = account.pw_dir


def enforcement_settings(config: Config) -> tuple[str, Path, Path]:
    """``(limit_enforcement, cgroup_root, cgroup_parent)`` of `DataHubLocalSpawner` in the
    hub's configuration *config*, defaults included."""
    section = config.get("DataHubLocalSpawner", {})
    traits = DataHubLocalSpawner.class_traits()

    def setting(name: str) -> str:
        return section.get(name, traits[name].default_value)

    return (
        setting("limit_enforcement"),
        Path(setting("cgroup_root")),
        Path(setting("cgroup_parent")),
    )


def limits_notice(config: Config) -> str | None:
    """What the admin pages say about servers' limits on this host: `limits.weakness`
    of the enforcement the hub's configuration *config* (the file the service also reads)
    gives `DataHubLocalSpawner` here; None when the hub uses another spawner (Kubernetes
    pods have their own limits) or each server is confined."""
    if not _is_local_spawner(config.get("JupyterHub", {}).get("spawner_class")):
        return None
    return limits.weakness(*enforcement_settings(config))


def _is_local_spawner(spec: object) -> bool:
    if isinstance(spec, type):
        return issubclass(spec, DataHubLocalSpawner)
    if not isinstance(spec, str) or not spec:
        return False
    if "." in spec:
        return issubclass(import_item(spec), DataHubLocalSpawner)
    found = entry_points(group="jupyterhub.spawners", name=spec)
    return any(issubclass(ep.load(), DataHubLocalSpawner) for ep in found)
