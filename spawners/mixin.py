"""What every DataHub spawner adds to JupyterHub's: the gateway, the SQL kernel, a welcome.

The mixin goes in front of a JupyterHub spawner class (`LocalProcessSpawner` on one
machine, `KubeSpawner` at scale). It gives the user's server:

- `DATAHUB_GATEWAY_URL`, where `%%sql` sends queries; the server's own
  `JUPYTERHUB_API_TOKEN` (scoped to use the gateway) is the only credential it holds;
- a default Python kernel with the DataHub SQL extension loaded (through `JUPYTER_PATH`);
- a welcome notebook with working examples in a new user's workspace.
"""

from __future__ import annotations

from pathlib import Path

from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

import datahub

SHARE_DIR = Path(datahub.__file__).parent / "share" / "jupyter"
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

    welcome_notebook = Unicode(
        str(WELCOME_NOTEBOOK),
        help="""Notebook copied into a new user's workspace as `Welcome to DataHub.ipynb`
        (never over an existing file). Empty to copy none.""",
    ).tag(config=True)

    welcome_notebook_name = Unicode(
        "Welcome to DataHub.ipynb",
        help="File name of the welcome notebook in the user's workspace.",
    ).tag(config=True)

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
        return env

    def welcome_notebook_bytes(self) -> bytes | None:
        """The welcome notebook's content, or None when none is configured."""
        if not self.welcome_notebook:
            return None
        return Path(self.welcome_notebook).read_bytes()
