"""The Kubernetes spawner: KubeSpawner with DataHub's gateway, kernel and quota limits.

Needs the optional extra: ``pip install "jupyter-datahub[kubernetes]"``. Then::

    c.JupyterHub.spawner_class = "datahub.spawners.kube.DataHubKubeSpawner"
    c.DataHubKubeSpawner.image = "registry.example.com/datahub-singleuser:1.0"
    c.DataHubKubeSpawner.gateway_url = "http://datahub-gateway:10101"

Each pod gets the user's quota as resource *limits* (``server_memory``, ``server_cpu``)
and a share of them as *requests* (guarantees), so the scheduler places pods by what
they are promised and the kubelet stops a pod that goes beyond its limit.
"""

from __future__ import annotations

try:
    from kubespawner import KubeSpawner
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "DataHubKubeSpawner needs jupyterhub-kubespawner: "
        'pip install "jupyter-datahub[kubernetes]".'
    ) from e

from traitlets import Float

from .mixin import DataHubSpawnerMixin


def guarantee(limit: float | None, fraction: float, configured: float | None) -> float | None:
    """The request for a resource: *fraction* of a quota *limit*, never above it; the
    spawner's *configured* guarantee when the quota sets no limit."""
    if limit is None:
        return configured
    return min(limit, limit * fraction)


class DataHubKubeSpawner(DataHubSpawnerMixin, KubeSpawner):
    """Runs each user's JupyterLab in a pod with their quota's CPU and memory."""

    guarantee_fraction = Float(
        0.5,
        help="""Share of a quota limit requested as the pod's guarantee (Kubernetes
        requests): 1.0 reserves the whole limit (no overcommit), lower values pack more
        servers onto a node and rely on them not all peaking at once.

        Example: c.DataHubKubeSpawner.guarantee_fraction = 0.25
        """,
    ).tag(config=True)

    async def apply_quota_limits(self) -> None:
        if not hasattr(self, "_configured_guarantees"):
            self._configured_guarantees = (self.mem_guarantee, self.cpu_guarantee)
        own_memory, own_cpu = self._configured_guarantees
        await super().apply_quota_limits()
        policy_memory, policy_cpu = self._quota_server_limits
        memory = guarantee(policy_memory, self.guarantee_fraction, own_memory)
        self.mem_guarantee = None if memory is None else int(memory)
        self.cpu_guarantee = guarantee(policy_cpu, self.guarantee_fraction, own_cpu)
