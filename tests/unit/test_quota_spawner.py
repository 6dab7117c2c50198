"""Servers' CPU and memory limits from the quota: the spawner mixin, the single-machine
enforcement (cgroups v2 or rlimits) and the Kubernetes spawner's pod resources."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from datahub.quotas import storage
from datahub.spawners import limits
from datahub.spawners.limits import Cgroup, ServerLimits
from datahub.spawners.local import DataHubLocalSpawner
from datahub.store import Store

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


# ------------------------------------------------------------------ enforcement


def _fake_cgroup_root(tmp_path, controllers="cpuset cpu io memory pids"):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    return root


def test_cgroups_v2_are_used_where_memory_and_cpu_controllers_are_delegated(tmp_path):
    root = _fake_cgroup_root(tmp_path)
    assert limits.choose_enforcement("auto", root, root / "datahub") == "cgroup2"


def test_rlimits_are_used_without_a_memory_controller(tmp_path):
    # Like this machine: a unified hierarchy offering only hugetlb.
    root = _fake_cgroup_root(tmp_path, "hugetlb")
    assert limits.choose_enforcement("auto", root, root / "datahub") == "rlimit"
    assert limits.choose_enforcement("auto", tmp_path / "none", tmp_path / "x") == "rlimit"
    with pytest.raises(RuntimeError, match="set limit_enforcement"):
        limits.choose_enforcement("cgroup2", root, root / "datahub")


def test_a_cgroup_gets_the_memory_and_cpu_limits(tmp_path):
    parent = tmp_path / "datahub"
    group = Cgroup(parent, "jupyter-alice")
    parent.mkdir()
    (parent / "jupyter-alice").mkdir()
    (parent / "jupyter-alice" / "memory.swap.max").write_text("max")
    group.create(ServerLimits(memory=512 * 2**20, cpu=1.5))
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (group.path / "memory.max").read_text() == str(512 * 2**20)
    assert (group.path / "memory.swap.max").read_text() == "0"
    assert (group.path / "cpu.max").read_text() == "150000 100000"
    for name in ("memory.max", "memory.swap.max", "cpu.max"):
        (group.path / name).unlink()
    group.remove()
    assert not group.path.exists()


def test_cpu_affinity_takes_whole_cpus_and_spreads_users():
    assert len(limits.affinity(0.5, [0, 1, 2, 3], "alice")) == 1
    assert len(limits.affinity(1.5, [0, 1, 2, 3], "alice")) == 2
    assert limits.affinity(8, [0, 1], "alice") == {0, 1}
    firsts = {min(limits.affinity(1, list(range(8)), f"user{i}")) for i in range(20)}
    assert len(firsts) > 1


def test_the_hub_log_says_how_limits_are_enforced():
    text = limits.describe(ServerLimits(memory=10**9, cpu=1.0), "rlimit", {1})
    assert text == (
        "rlimits (cgroups v2 unavailable): RLIMIT_DATA 1000000000 bytes per process, "
        "CPU affinity [1] for 1 cores"
    )
    assert "memory.max" in limits.describe(ServerLimits(memory=1), "cgroup2", None)


def _run_limited(code: str, server_limits: ServerLimits, cpus=None):
    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=limits.preexec(server_limits, "rlimit", cpus=cpus),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_with_rlimits_an_allocation_beyond_the_memory_limit_raises_memory_error():
    code = (
        "import numpy, pandas\n"
        "x = bytearray(100 * 2**20)\n"
        "try:\n"
        "    y = bytearray(700 * 2**20)\n"
        "except MemoryError:\n"
        "    print('MemoryError')\n"
    )
    result = _run_limited(code, ServerLimits(memory=512 * 2**20))
    assert result.stdout.strip() == "MemoryError", result.stderr
    # Without the limit the same program allocates.
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert free.stdout.strip() == ""


def test_with_rlimits_the_cpu_limit_pins_the_server_to_cpus():
    available = sorted(os.sched_getaffinity(0))
    cpus = limits.affinity(1, available, "alice")
    result = _run_limited(
        "import os; print(sorted(os.sched_getaffinity(0)))", ServerLimits(cpu=1), cpus
    )
    assert result.stdout.strip() == str(sorted(cpus))


# ------------------------------------------------------------------ the mixin


@pytest.fixture
def quota_store(tmp_path):
    db = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    db.migrate()
    yield db
    db.dispose()


def _user(name: str, groups: list[str]):
    return SimpleNamespace(
        name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
        url=f"/user/{name}/",
        id=1,
        escaped_name=name,
        server=None,
    )


def _config(store: Store, **quota) -> Config:
    config = Config()
    config.DataHubService.store_url = store.url
    for key, value in quota.items():
        config.QuotaManager[key] = value
    return config


def test_the_spawner_takes_server_limits_from_the_users_quota(quota_store):
    storage.set_policy(
        quota_store, "group", "analysts", {"server_memory": "2G", "server_cpu": 2}, "t", NOW
    )
    storage.set_policy(quota_store, "user", "alice", {"server_memory": "1G"}, "t", NOW)
    spawner = DataHubLocalSpawner(config=_config(quota_store), user=_user("alice", ["analysts"]))
    asyncio.run(spawner.apply_quota_limits())
    assert (spawner.mem_limit, spawner.cpu_limit) == (1_000_000_000, 2.0)
    # The policy is read at every start: a removed limit is really gone.
    storage.reset_policy(quota_store, "user", "alice", "t", NOW)
    storage.reset_policy(quota_store, "group", "analysts", "t", NOW)
    asyncio.run(spawner.apply_quota_limits())
    assert (spawner.mem_limit, spawner.cpu_limit) == (None, None)


def test_the_configured_default_applies_when_no_policy_sets_server_limits(quota_store):
    config = _config(quota_store, default_limits={"server_memory": "3G"})
    spawner = DataHubLocalSpawner(config=config, user=_user("bob", ["analysts"]))
    asyncio.run(spawner.apply_quota_limits())
    assert spawner.mem_limit == 3_000_000_000


def test_an_unreadable_store_falls_back_to_the_configured_default(tmp_path):
    config = Config()
    config.DataHubService.store_url = f"sqlite:///{tmp_path / 'missing' / 'x.sqlite'}"
    config.QuotaManager.default_limits = {"server_memory": "1G"}
    spawner = DataHubLocalSpawner(config=config, user=_user("carol", []))
    asyncio.run(spawner.apply_quota_limits())
    assert spawner.mem_limit == 1_000_000_000


# ------------------------------------------------------------------ Kubernetes


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        "clusters: [{name: test, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: test, context: {cluster: test, user: test}}]\n"
        "users: [{name: test, user: {token: unused}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    # The client reads $KUBECONFIG once, when first imported (maybe by an earlier test).
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path


async def _pod_resources(config: Config, user) -> dict:
    """Build the spawner (in a running loop, as in the hub), apply the quota, and return
    the resources of the pod it would create."""
    from datahub.spawners.kube import DataHubKubeSpawner

    spawner = DataHubKubeSpawner(config=config, _mock=True)
    spawner.user = user
    await spawner.apply_quota_limits()
    pod = await spawner.get_pod_manifest()
    resources = pod.spec.containers[0].resources
    return {"limits": resources.limits, "requests": resources.requests}


def test_the_kubernetes_spawner_gets_the_quota_as_limits_and_guarantees(quota_store, kubeconfig):
    storage.set_policy(
        quota_store, "user", "alice", {"server_memory": "4G", "server_cpu": 2}, "t", NOW
    )
    config = _config(quota_store)
    config.DataHubKubeSpawner.guarantee_fraction = 0.25
    config.DataHubKubeSpawner.cmd = ["jupyterhub-singleuser"]
    resources = asyncio.run(_pod_resources(config, _user("alice", ["analysts"])))
    assert resources == {
        "limits": {"memory": 4_000_000_000, "cpu": 2.0},
        "requests": {"memory": 1_000_000_000, "cpu": 0.5},
    }


def test_without_quota_limits_the_kubernetes_spawner_keeps_its_own(quota_store, kubeconfig):
    config = _config(quota_store)
    config.DataHubKubeSpawner.mem_limit = "1G"
    config.DataHubKubeSpawner.mem_guarantee = "512M"
    config.DataHubKubeSpawner.cmd = ["jupyterhub-singleuser"]
    resources = asyncio.run(_pod_resources(config, _user("bob", [])))
    assert resources["limits"] == {"memory": 2**30}
    assert resources["requests"] == {"memory": 512 * 2**20}
