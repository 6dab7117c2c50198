"""What every DataHub spawner adds to JupyterHub's: the gateway, the SQL kernel, a welcome.

The mixin goes in front of a JupyterHub spawner class (`LocalProcessSpawner` on one
machine, `KubeSpawner` at scale). It gives the user's server:

- `DATAHUB_GATEWAY_URL`, where `%%sql` sends queries; the server's own
  `JUPYTERHUB_API_TOKEN` (scoped to use the gateway) is the only credential it holds;
- a default Python kernel with the DataHub SQL extension loaded (through `JUPYTER_PATH`);
- a welcome notebook with working examples in a new user's workspace;
- the CPU and memory limits of the user's quota (`mem_limit`, `cpu_limit`), looked up in
  the DataHub store when the server starts. The spawner underneath enforces them
  (`DataHubLocalSpawner` with cgroups or rlimits, `DataHubKubeSpawner` as pod limits).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from traitlets import Bool, Unicode, default
from traitlets.config import LoggingConfigurable

import datahub
from datahub import scopes
from datahub.quotas.manager import QuotaManager
from datahub.quotas.policy import EffectivePolicy, effective_policy
from datahub.store import Store

SHARE_DIR = Path(datahub.__file__).parent / "share" / "jupyter"
#: DataHub's kernelspec (it shadows ipykernel's python3, so every new notebook has %%sql).
KERNEL_SPEC = SHARE_DIR / "kernels" / "python3" / "kernel.json"
SHARE_CONFIG_DIR = Path(datahub.__file__).parent / "share" / "jupyter_config"
WELCOME_NOTEBOOK = Path(__file__).parent / "welcome.ipynb"

# The only variables a user's server gets from the hub's environment; everything else
# (above all the gateway's service-account password) stays out.
SAFE_ENV_KEEP = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH"]


class DataHubSpawnerMixin(LoggingConfigurable):
    """Gateway address, SQL kernel and welcome notebook for a user's server.

    A traitlets class itself, so its options are configurable on any spawner it is mixed
    into (``c.DataHubLocalSpawner.gateway_url``).
    """

    gateway_url = Unicode(
        "",
        help="""URL of the DataHub gateway as seen from users' servers, e.g.
        ``http://127.0.0.1:8765`` on one machine or ``http://datahub-gateway:8765`` in
        Kubernetes. Put into the server's environment as `DATAHUB_GATEWAY_URL`, which the
        `%%sql` extension reads.""",
    ).tag(config=True)

    gateway_service_name = Unicode(
        "datahub",
        help="""Name of the JupyterHub service that runs the gateway. The server's API
        token gets the scope `access:services!service=<name>` so the kernel can query
        through the gateway and nothing else.""",
    ).tag(config=True)

    server_token_act_as = Bool(
        False,
        help="""Put DataHub's act-as scope (custom:datahub:act-as) in servers' API tokens,
        so that admins can run ``%%sql --as USER`` from their own notebooks.

        JupyterHub gives a server token only the scopes its owner holds, so this reaches
        the servers of people granted act-as (the DataHub admin role) and changes nothing
        for anyone else. No other DataHub admin scope is ever put in a server token:
        quotas, everyone's queries and the admin pages need the browser session or a
        token created for it. Off by default because, on, any code running in an admin's
        server (a notebook from someone else, an extension) can act as any user; every
        such query is still audited with both names. The local demo turns it on.
        Example: c.DataHubLocalSpawner.server_token_act_as = True
        """,
    ).tag(config=True)

    welcome_notebook = Unicode(
        str(WELCOME_NOTEBOOK),
        help="""Notebook copied into a new user's workspace as `Welcome to DataHub.ipynb`
        (never over an existing file). Empty to copy none.""",
    ).tag(config=True)

    welcome_notebook_name = Unicode(
        "Welcome to DataHub.ipynb",
        help="File name of the welcome notebook in the user's workspace.",
    ).tag(config=True)

    store_url = Unicode(
        help="""The DataHub store, where the quota policies that set servers' CPU and
        memory limits live (SQLAlchemy URL).

        Defaults to c.DataHubService.store_url from the same configuration file, so the
        hub and the service read the same store. Example:
        c.DataHubLocalSpawner.store_url = "postgresql+psycopg://datahub:…@db/datahub"
        """,
    ).tag(config=True)

    @default("store_url")
    def _store_url_default(self) -> str:
        return self.config.get("DataHubService", {}).get("store_url") or "sqlite:///datahub.sqlite"

    @default("env_keep")
    def _env_keep_default(self):
        return list(SAFE_ENV_KEEP)

    @default("default_url")
    def _default_url_default(self):
        return f"/lab/tree/{self.welcome_notebook_name}" if self.welcome_notebook else "/lab"

    @default("server_token_scopes")
    def _server_token_scopes_default(self):
        return [
            "users:activity!user",
            "access:servers!server",
            # The gateway reads the user's hub groups from the token (routing, quotas).
            "read:users:groups!user",
            f"access:services!service={self.gateway_service_name}",
            *([scopes.ACT_AS] if self.server_token_act_as else []),
        ]

    def get_env(self):
        env = super().get_env()
        if self.gateway_url:
            env["DATAHUB_GATEWAY_URL"] = self.gateway_url
        # Our kernels/python3 shadows ipykernel's, so every new notebook has %%sql.
        jupyter_path = [str(SHARE_DIR)]
        if env.get("JUPYTER_PATH"):
            jupyter_path.append(env["JUPYTER_PATH"])
        env["JUPYTER_PATH"] = ":".join(jupyter_path)
        # Our jupyter_server_config.d enables the server extension that serves the schema
        # browser (datahub.extensions.server_proxy); our jupyter_server_config.json names
        # the contents manager (datahub.extensions.contents).
        config_path = [str(SHARE_CONFIG_DIR)]
        if env.get("JUPYTER_CONFIG_PATH"):
            config_path.append(env["JUPYTER_CONFIG_PATH"])
        env["JUPYTER_CONFIG_PATH"] = ":".join(config_path)
        return env

    def quota_manager(self) -> QuotaManager:
        """The quota manager on the store (one engine per store URL in the hub)."""
        store = _STORES.get(self.store_url)
        if store is None:
            store = _STORES[self.store_url] = Store(self.store_url)
        return QuotaManager(config=self.config, store=store, log=self.log)

    async def quota_policy(self) -> EffectivePolicy:
        """The user's effective quota policy, read from the store.

        If the store cannot be read, the configured defaults apply (logged), so a store
        outage neither blocks spawning nor lifts the limits.
        """
        manager = self.quota_manager()
        name = self.user.name
        groups = [group.name for group in self.user.groups]
        try:
            return await asyncio.to_thread(manager.effective, name, groups)
        except Exception:
            self.log.exception(
                "Could not read the quota of %s from the store; using the configured defaults",
                name,
            )
            return effective_policy(name, groups, [], manager.configured_limits)

    async def apply_quota_limits(self) -> None:
        """Set mem_limit and cpu_limit from the user's quota (limits the quota leaves
        unlimited keep the spawner's own configuration)."""
        policy = await self.quota_policy()
        # The spawner object outlives a server: start from its own configuration each
        # time, so a limit removed from the quota is really gone at the next start.
        if not hasattr(self, "_configured_limits"):
            self._configured_limits = (self.mem_limit, self.cpu_limit)
        own_memory, own_cpu = self._configured_limits
        memory, cpu = policy["server_memory"], policy["server_cpu"]
        #: What the quota says (None: it leaves the limit to the spawner's configuration).
        self._quota_server_limits = (memory, cpu)
        self.mem_limit = own_memory if memory is None else int(memory)
        self.cpu_limit = own_cpu if cpu is None else float(cpu)
        self.log.info(
            "Quota of %s: server memory %s (%s), CPU %s (%s)",
            self.user.name,
            self.mem_limit or "unlimited",
            policy.sources["server_memory"],
            self.cpu_limit or "unlimited",
            policy.sources["server_cpu"],
        )

    async def prepare_server(self) -> None:
        """What the spawner underneath does before starting a server, with the quota's
        limits applied (refusing by raising an exception whose message the user sees)."""

    async def start(self):
        await self.apply_quota_limits()
        await self.prepare_server()
        return await super().start()

    def welcome_notebook_bytes(self) -> bytes | None:
        """The welcome notebook's content, or None when none is configured."""
        if not self.welcome_notebook:
            return None
        return Path(self.welcome_notebook).read_bytes()


#: Store engines by URL, shared by every spawner of the hub process.
_STORES: dict[str, Store] = {}
