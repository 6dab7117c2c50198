"""A user's server runs under the memory and CPU limits of their quota, enforced by the
kernel as well as this host allows: in a cgroup v2 of its own where the host offers one,
else with rlimits and CPU affinity, which the hub's log and the admin quota page call
weak. A hub required to use cgroups v2 where it cannot refuses the server with one
sentence the user reads on the spawn page.
"""

from __future__ import annotations

import json
import pwd
import re
from pathlib import Path

import pytest
import requests
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from datahub.spawners import limits
from datahub.spawners.local import enforcement_settings
from datahub.stack import demo
from datahub.stack.hub import HubProcess
from datahub.stack.local import STACK_FILE_ENV
from datahub.store import Store

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

ALLOCATE = (
    "try:\n"
    "    block = bytearray(1_500_000_000)\n"
    "    print('allocated', len(block))\n"
    "    del block\n"
    "except MemoryError:\n"
    "    print('MemoryError')\n"
)


@pytest.fixture
def admin_token(hub, sign_in) -> str:
    _, response = sign_in("carol", demo.demo_password("carol"))
    assert response.status_code == 302
    # All her scopes, DataHub's admin scopes included (a token has only those it is given).
    body = {"note": "tests", "expires_in": 7200, "scopes": ["inherit"]}
    r = hub.api("POST", "/users/carol/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def hub_config(stack) -> Config:
    """The stack hub's own configuration (jupyterhub_config.py with the stack's file)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(STACK_FILE_ENV, str(stack.state_dir / "stack.json"))
        return PyFileConfigLoader("jupyterhub_config.py", path=str(REPO)).load_config()


def set_policy(stack, token: str, user: str, limits: dict | None) -> None:
    url = f"{stack.hub_url}/services/datahub/api/quota/policies/user/{user}"
    headers = {"Authorization": f"token {token}"}
    if limits is None:
        requests.delete(url, headers=headers, timeout=60)
    else:
        r = requests.put(url, json={"limits": limits}, headers=headers, timeout=60)
        assert r.status_code == 200, r.text


def hub_log(stack) -> str:
    return (stack.state_dir / "logs" / "jupyterhub.log").read_text(errors="replace")


def test_a_server_gets_the_strongest_limits_the_host_offers(
    stack, hub, users, admin_token, hub_config, restart_server, pages
):
    """cgroup v2 (the server in a group of its own with memory.max and cpu.max) where the
    host has a usable one; else rlimits and affinity, with a warning in the hub's log and
    a notice on the admin quota page naming how they can be escaped."""
    mode, root, parent = enforcement_settings(hub_config)
    enforcement = limits.choose_enforcement(mode, root, parent)
    set_policy(stack, admin_token, "alice", {"server_memory": "1G", "server_cpu": 1})
    try:
        restart_server("alice")
        alice = users.kernel("alice")
        if enforcement == "cgroup2":
            group = parent / pwd.getpwnam("jupyter-alice").pw_name
            own = alice.value("open('/proc/self/cgroup').read()")
            assert f"0::/{group.relative_to(root)}\n" in own
            assert alice.value(f"open({str(group / 'memory.max')!r}).read()") == "1000000000\n"
            assert alice.value(f"open({str(group / 'cpu.max')!r}).read()") == "100000 100000\n"
            assert "Server of alice limited with cgroups v2: memory.max 1000000000" in hub_log(
                stack
            )
        else:
            assert enforcement == "rlimit"
            rlimit, cpus = alice.value(
                "[__import__('resource').getrlimit(__import__('resource').RLIMIT_DATA)[0],"
                " sorted(__import__('os').sched_getaffinity(0))]"
            )
            assert rlimit == 1_000_000_000
            assert len(cpus) == 1  # one CPU for server_cpu=1
            out = alice.execute(ALLOCATE)
            assert out["status"] == "ok", out
            assert out["stdout"].strip() == "MemoryError"
            log = hub_log(stack)
            assert (
                "Server of alice limited with rlimits (cgroups v2 unavailable): "
                "RLIMIT_DATA 1000000000 bytes per process, CPU affinity" in log
            )
            weak = limits.weakness(mode, root, parent)
            warning = re.search(r"^\[W [^\]]*\] Server of alice: (.*)$", log, re.M)
            assert warning and warning.group(1) == weak
            assert "sched_setaffinity" in weak
            page = pages("carol").get(f"{stack.hub_url}/services/datahub/admin/quotas", timeout=60)
            assert page.status_code == 200
            notice = re.search(r'id="server-limits-notice">([^<]*)<', page.text)
            assert notice and notice.group(1).replace("&#39;", "'") == weak
        # Her kernel is still usable, the hub still answers, bob is unaffected.
        assert alice.value("6 * 7") == 42
        assert hub.api("GET", "/").status_code == 200
        bob = users.kernel("bob")
        assert bob.execute(ALLOCATE)["stdout"].strip() == "allocated 1500000000"
    finally:
        set_policy(stack, admin_token, "alice", None)
        restart_server("alice")
    assert users.kernel("alice").execute(ALLOCATE)["stdout"].strip() == "allocated 1500000000"


# --- A hub that must confine servers with cgroups v2, on a host without them ----------------

CGROUP2_ONLY = """\
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "datahub-local"
c.DataHubLocalSpawner.limit_enforcement = "cgroup2"
c.DataHubLocalSpawner.cgroup_root = {root!r}
c.DataHubLocalSpawner.cgroup_parent = {parent!r}
c.DataHubService.store_url = {store!r}
c.QuotaManager.default_limits = {{"server_memory": "1G"}}
"""

#: A hub user whose system account must never be created by this test.
NOBODY = "unconfined"


@pytest.fixture(scope="module")
def cgroup2_only_hub(tmp_path_factory):
    """A hub configured with limit_enforcement = "cgroup2" whose cgroup_root has no cgroup
    v2 hierarchy (like this machine's /sys/fs/cgroup: cgroup v1 with a hugetlb-only v2)."""
    state = tmp_path_factory.mktemp("cgroup2-only-hub")
    store = Store(f"sqlite:///{state / 'datahub.sqlite'}")
    store.migrate()
    store.dispose()
    root = state / "no-cgroup2"
    root.mkdir()
    config = CGROUP2_ONLY.format(root=str(root), parent=str(root / "datahub"), store=store.url)
    hub = HubProcess(state / "hub", config, checkout=REPO)
    hub.start()
    yield hub
    hub.stop()


def test_a_hub_required_to_use_cgroup2_refuses_a_server_it_cannot_confine_in_one_sentence(
    cgroup2_only_hub,
):
    hub = cgroup2_only_hub
    session, response = hub.sign_in(NOBODY, "any")
    assert response.status_code == 302
    session.get(f"{hub.url}/hub/spawn/{NOBODY}", timeout=60)
    # What the spawn page shows while it waits: the progress events.
    progress = session.get(
        f"{hub.url}/hub/api/users/{NOBODY}/server/progress",
        headers={"Accept": "text/event-stream"},
        timeout=60,
    )
    events = [
        json.loads(line[5:]) for line in progress.text.splitlines() if line.startswith("data:")
    ]
    assert events[-1]["failed"] is True
    assert events[-1]["message"] == f"Spawn failed: {limits.CannotConfine.MESSAGE}"
    # The page after the failure.
    page = session.get(f"{hub.url}/hub/spawn-pending/{NOBODY}", timeout=60)
    assert limits.CannotConfine.MESSAGE in page.text
    assert "Traceback" not in page.text and "cgroup" not in page.text
    # The administrator reads why in the hub's log; no account or home was made.
    assert "limit_enforcement is 'cgroup2' but" in hub.log()
    with pytest.raises(KeyError):
        pwd.getpwnam(f"jupyter-{NOBODY}")
