"""The cluster monitor: a request that breaks off has its cluster checked at once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from datahub.gateway.clusters import Cluster
from datahub.gateway.health import ClusterMonitor
from datahub.gateway.upstream import Upstream

RESET = "ClientOSError: [Errno 104] Connection reset by peer"


class Answering:
    """An upstream whose cluster is up and idle; counts the checks it answers."""

    def __init__(self) -> None:
        self.infos = 0

    async def call(self, cluster: Cluster, method: str, path: str, **_: Any) -> tuple[int, Any]:
        if path == "/v1/info":
            self.infos += 1
            return 200, {"starting": False}
        return 200, []


def monitor(upstream: Any, cluster: Cluster) -> ClusterMonitor:
    m = ClusterMonitor(
        {cluster.name: cluster},
        upstream,
        interval=3600,
        timeout=1,
        failures=2,
        log=logging.getLogger("tests"),
    )
    m.statuses[cluster.name].record_success(0, 0, time.monotonic())
    return m


def test_a_cluster_that_broke_off_a_request_and_refuses_the_check_leaves_routing_at_once():
    # Nothing listens on port 1: the cluster crashed.
    cluster = Cluster("a", "http://127.0.0.1:1", user="svc")

    async def scenario() -> tuple[bool | None, bool | None]:
        upstream = Upstream({"a": cluster}, connect_timeout=1, read_timeout=1, max_connections=1)
        m = monitor(upstream, cluster)
        try:
            m.mark_unreachable("a", RESET)
            # One reset is short of the count: until the check answers, still in routing.
            before = m.statuses["a"].healthy
            await asyncio.gather(*m._probes.values())
            return before, m.statuses["a"].healthy
        finally:
            await m.stop()
            await upstream.aclose()

    assert asyncio.run(scenario()) == (True, False)


def test_a_cluster_that_broke_off_a_request_but_passes_the_check_stays_with_a_clean_count():
    cluster = Cluster("a", "http://127.0.0.1:1", user="svc")
    upstream = Answering()

    async def scenario() -> ClusterMonitor:
        m = monitor(upstream, cluster)
        m.mark_unreachable("a", RESET)
        m.mark_unreachable("a", RESET)  # while the first check runs: no second check
        await asyncio.gather(*m._probes.values())
        return m

    m = asyncio.run(scenario())
    assert (m.statuses["a"].healthy, m.statuses["a"].failures, upstream.infos) == (True, 0, 1)
    assert m._probes == {}


def test_a_refused_request_needs_no_check_to_take_the_cluster_out():
    cluster = Cluster("a", "http://127.0.0.1:1", user="svc")
    upstream = Answering()

    async def scenario() -> ClusterMonitor:
        m = monitor(upstream, cluster)
        m.mark_unreachable("a", "ClientConnectorError: refused", down=True)
        await asyncio.sleep(0)
        return m

    m = asyncio.run(scenario())
    assert (m.statuses["a"].healthy, upstream.infos) == (False, 0)
