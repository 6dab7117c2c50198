"""Servers' CPU and memory limits from the quota: the spawner mixin, the single-machine
enforcement (cgroups v2 or rlimits) and the Kubernetes spawner's pod resources."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from datahub.quotas import storage
from datahub.spawners import limits
from datahub.spawners.limits import Cgroup, ServerLimits
from datahub.spawners.local import DataHubLocalSpawner, limits_notice
from datahub.store import Store

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


# ------------------------------------------------------------------ enforcement


CONTROLLERS = "cpuset cpu io memory pids"
#: Interface files a new cgroup v2 group has (the kernel creates them with the directory).
GROUP_FILES = ("cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "memory.max",
               "memory.swap.max", "cpu.max")  # fmt: skip


def _fake_group(path, controllers=CONTROLLERS, subtree=""):
    """A directory that looks like a cgroup v2 group to the spawner."""
    path.mkdir(parents=True, exist_ok=True)
    for name in GROUP_FILES:
        (path / name).write_text("max\n" if name.endswith(".max") else "")
    (path / "cgroup.controllers").write_text(controllers + "\n")
    (path / "cgroup.subtree_control").write_text(subtree + "\n")
    return path


def _fake_cgroup_root(tmp_path, controllers=CONTROLLERS, subtree=CONTROLLERS):
    """A unified hierarchy's root, by default delegating memory and cpu to new groups."""
    return _fake_group(tmp_path / "cgroup", controllers, subtree)


def _fake_hybrid_root(tmp_path):
    """Like this machine: a tmpfs of cgroup v1 hierarchies, with a cgroup v2 mount at
    ``unified`` that offers only hugetlb (memory and cpu are bound to v1)."""
    root = tmp_path / "sys-fs-cgroup"
    for v1 in ("cpu", "cpuacct", "cpuset", "memory", "pids", "systemd"):
        (root / v1).mkdir(parents=True)
        (root / v1 / "tasks").write_text("")
    _fake_group(root / "unified", "hugetlb", "")
    return root


def test_cgroups_v2_are_used_where_memory_and_cpu_controllers_are_delegated(tmp_path):
    root = _fake_cgroup_root(tmp_path)
    assert limits.cgroup2_problem(root, root / "datahub") is None
    assert limits.choose_enforcement("auto", root, root / "datahub") == "cgroup2"
    assert limits.choose_enforcement("cgroup2", root, root / "datahub") == "cgroup2"
    assert limits.weakness("auto", root, root / "datahub") is None
    # An existing, delegated parent (e.g. a systemd unit's slice with Delegate=yes).
    parent = _fake_group(root / "system.slice" / "jupyterhub.service")
    assert limits.choose_enforcement("auto", root, parent) == "cgroup2"


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        ("hybrid", "is not a cgroup v2 (unified) hierarchy"),
        ("hybrid-unified", "has no cpu and memory controller"),
        ("missing", "is not a cgroup v2 (unified) hierarchy"),
        ("no-memory", "has no memory controller"),
        ("not-delegated-to-new", "does not delegate the memory and cpu controllers"),
        ("not-delegated-existing", "does not delegate the memory and cpu controllers"),
        ("no-grandparent", "is not writable by the hub"),
    ],
)
def test_rlimits_are_used_where_cgroups_v2_cannot_confine_a_server(tmp_path, layout, problem):
    if layout.startswith("hybrid"):
        hybrid = _fake_hybrid_root(tmp_path)
        root = hybrid / "unified" if layout == "hybrid-unified" else hybrid
    elif layout == "missing":
        root = tmp_path / "nothing-mounted"
    elif layout == "no-memory":
        root = _fake_cgroup_root(tmp_path, "cpuset cpu io pids")
    else:
        root = _fake_cgroup_root(tmp_path, subtree="pids")
    parent = root / "datahub"
    if layout == "not-delegated-existing":
        parent = _fake_group(root / "datahub", "pids")
    elif layout == "no-grandparent":
        root = _fake_cgroup_root(tmp_path)
        parent = root / "absent" / "datahub"
    assert problem in limits.cgroup2_problem(root, parent)
    assert limits.choose_enforcement("auto", root, parent) == "rlimit"
    weak = limits.weakness("auto", root, parent)
    assert weak.startswith("Server limits are weak on this host (cgroups v2 unusable: ")
    assert "sched_setaffinity" in weak and "many processes" in weak and problem in weak
    with pytest.raises(limits.CannotConfine) as refused:
        limits.choose_enforcement("cgroup2", root, parent)
    assert problem in refused.value.reason
    assert problem in limits.weakness("cgroup2", root, parent)


def test_when_cgroup2_is_required_but_unavailable_the_user_reads_one_sentence(tmp_path):
    with pytest.raises(limits.CannotConfine) as refused:
        limits.choose_enforcement("cgroup2", tmp_path, tmp_path / "datahub")
    message = str(refused.value)
    # JupyterHub shows str() in the spawn progress and jupyterhub_message on its pages.
    assert refused.value.jupyterhub_message == message
    assert message.count(".") == 1 and message.endswith("administrator.")
    assert str(tmp_path) not in message  # the host's details go to the hub's log


def test_rlimit_and_none_are_weak_whatever_the_host():
    nowhere = Path("/nonexistent")
    assert limits.choose_enforcement("rlimit", nowhere, nowhere) == "rlimit"
    assert "limit_enforcement = 'rlimit'" in limits.weakness("rlimit", nowhere, nowhere)
    assert "not enforced" in limits.weakness("none", nowhere, nowhere)
    with pytest.raises(ValueError, match="Unknown limit enforcement"):
        limits.weakness("cgroups", nowhere, nowhere)


def test_a_cgroup_gets_the_memory_and_cpu_limits(tmp_path):
    parent = _fake_group(tmp_path / "datahub")
    group = Cgroup(parent, "jupyter-alice")
    _fake_group(parent / "jupyter-alice")  # what the kernel makes on mkdir
    group.create(ServerLimits(memory=512 * 2**20, cpu=1.5))
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (group.path / "memory.max").read_text() == str(512 * 2**20)
    assert (group.path / "memory.swap.max").read_text() == "0"
    assert (group.path / "cpu.max").read_text() == "150000 100000"
    for name in GROUP_FILES:
        (group.path / name).unlink()
    group.remove()
    assert not group.path.exists()


def test_a_cgroup_never_follows_a_link_or_creates_a_file(tmp_path):
    parent = _fake_group(tmp_path / "datahub")
    outside = tmp_path / "outside"
    outside.mkdir()
    # A link in place of the group directory: refused, nothing written through it.
    (parent / "jupyter-alice").symlink_to(outside)
    with pytest.raises(OSError):
        Cgroup(parent, "jupyter-alice").create(ServerLimits(memory=10**9))
    assert list(outside.iterdir()) == []
    # A link in place of an interface file: not followed.
    (parent / "jupyter-alice").unlink()
    group = _fake_group(parent / "jupyter-alice")
    (group / "memory.max").unlink()
    (group / "memory.max").symlink_to(outside / "memory.max")
    with pytest.raises(OSError):
        Cgroup(parent, "jupyter-alice").create(ServerLimits(memory=10**9))
    assert list(outside.iterdir()) == []
    # A missing interface file is not created (this is not a cgroup).
    (group / "memory.max").unlink()
    with pytest.raises(FileNotFoundError):
        Cgroup(parent, "jupyter-alice").create(ServerLimits(memory=10**9))
    assert not (group / "memory.max").exists()
    with pytest.raises(ValueError):
        Cgroup(parent, "../escape")


def test_the_warning_names_what_is_escapable_when_the_spawner_falls_back(tmp_path, caplog):
    config = Config()
    config.DataHubLocalSpawner.cgroup_root = str(_fake_hybrid_root(tmp_path))
    spawner = DataHubLocalSpawner(config=config, user=_user("alice", []))
    spawner.mem_limit, spawner.cpu_limit = 10**9, 1.0
    with caplog.at_level("WARNING"):
        assert spawner.decide_enforcement() == "rlimit"
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "Server of alice: Server limits are weak on this host" in record.getMessage()
    assert "sched_setaffinity" in record.getMessage()
    spawner.limit_enforcement = "cgroup2"
    with pytest.raises(limits.CannotConfine):
        spawner.decide_enforcement()
    spawner.mem_limit, spawner.cpu_limit = None, None
    assert spawner.decide_enforcement() is None  # nothing to confine


def test_the_admin_pages_notice_follows_the_hubs_configuration_and_the_host(tmp_path):
    config = Config()
    config.JupyterHub.spawner_class = "datahub-local"
    config.DataHubLocalSpawner.cgroup_root = str(_fake_hybrid_root(tmp_path))
    assert "Server limits are weak on this host" in limits_notice(config)
    config.DataHubLocalSpawner.limit_enforcement = "cgroup2"
    assert "Servers with limits cannot start" in limits_notice(config)
    root = _fake_cgroup_root(tmp_path)
    config.DataHubLocalSpawner.cgroup_root = str(root)
    config.DataHubLocalSpawner.cgroup_parent = str(root / "datahub")
    assert limits_notice(config) is None
    config.JupyterHub.spawner_class = "datahub.spawners.kube.DataHubKubeSpawner"
    config.DataHubLocalSpawner.limit_enforcement = "none"
    assert limits_notice(config) is None


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
