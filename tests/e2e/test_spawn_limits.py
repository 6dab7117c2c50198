"""A user's server runs under the memory and CPU limits of their quota, enforced by the
kernel on this machine: alice's kernel cannot allocate past her limit (while the hub and
bob carry on), and the hub's log says how the limits are enforced.
"""

from __future__ import annotations

import time

import pytest
import requests

from datahub.stack import demo

pytestmark = pytest.mark.e2e

ALLOCATE = (
    "try:\n"
    "    block = bytearray(1_500_000_000)\n"
    "    print('allocated', len(block))\n"
    "    del block\n"
    "except MemoryError:\n"
    "    print('MemoryError')\n"
)


def restart_server(hub, users, name: str) -> None:
    """Stop *name*'s server and start it again (the spawner reads the quota at start)."""
    kernel = users.kernels.pop(name, None)
    if kernel is not None:
        kernel.close()
    users.token(name)  # signed in, with a token, once
    r = hub.api("DELETE", f"/users/{name}/server")
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 120
    while hub.user(name)["servers"]:
        assert time.monotonic() < deadline, f"{name}'s server did not stop"
        time.sleep(0.5)
    hub.start_server(name)


@pytest.fixture
def admin_token(hub, sign_in) -> str:
    _, response = sign_in("carol", demo.demo_password("carol"))
    assert response.status_code == 302
    return hub.token_for("carol")


def set_policy(stack, token: str, user: str, limits: dict | None) -> None:
    url = f"{stack.hub_url}/services/datahub/api/quota/policies/user/{user}"
    headers = {"Authorization": f"token {token}"}
    if limits is None:
        requests.delete(url, headers=headers, timeout=60)
    else:
        r = requests.put(url, json={"limits": limits}, headers=headers, timeout=60)
        assert r.status_code == 200, r.text


def test_a_kernel_allocating_past_its_memory_limit_fails_and_the_hub_stays_up(
    stack, hub, users, admin_token
):
    set_policy(stack, admin_token, "alice", {"server_memory": "1G", "server_cpu": 1})
    try:
        restart_server(hub, users, "alice")
        alice = users.kernel("alice")
        limits = alice.value(
            "[__import__('resource').getrlimit(__import__('resource').RLIMIT_DATA)[0],"
            " sorted(__import__('os').sched_getaffinity(0))]"
        )
        assert limits[0] == 1_000_000_000
        assert len(limits[1]) == 1  # one CPU for server_cpu=1
        out = alice.execute(ALLOCATE)
        assert out["status"] == "ok", out
        assert out["stdout"].strip() == "MemoryError"
        # Her kernel is still usable, the hub still answers, bob is unaffected.
        assert alice.value("6 * 7") == 42
        assert hub.api("GET", "/").status_code == 200
        bob = users.kernel("bob")
        assert bob.execute(ALLOCATE)["stdout"].strip() == "allocated 1500000000"
        log = (stack.state_dir / "logs" / "jupyterhub.log").read_text()
        assert (
            "Server of alice limited with rlimits (cgroups v2 unavailable): "
            "RLIMIT_DATA 1000000000 bytes per process, CPU affinity" in log
        )
    finally:
        set_policy(stack, admin_token, "alice", None)
        restart_server(hub, users, "alice")
    assert users.kernel("alice").execute(ALLOCATE)["stdout"].strip() == "allocated 1500000000"
