"""The single-machine spawner: one system account per employee.

Like The Littlest JupyterHub, each hub user `alice` gets a system account `jupyter-alice`,
created on first spawn with a private home directory (mode 0700). Her server runs under
that account, so nobody else's kernel can read her files, her processes' environment or
her hub token. The hub must run as root to create accounts and switch to them.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode, default

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

    def make_preexec_fn(self, name):
        return set_user_setuid(self.system_username)

    def user_env(self, env):
        account = pwd.getpwnam(self.system_username)
        env["USER"] = account.pw_name
        env["HOME"] = account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/bash"
        return env

    async def start(self):
        account = self.ensure_system_account()
        self.install_welcome_notebook(account)
        if not self.notebook_dir:
            self.notebook_dir = account.pw_dir
        return await super().start()
