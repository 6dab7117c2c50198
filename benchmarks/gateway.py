"""The gateway's cost: ``SELECT 1`` through the DataHub gateway against straight to Trino,
in the same run, against the same Trino.

    /opt/datahub/venv/bin/python benchmarks/gateway.py [--queries 300] [--clients 50] [--each 10]

It starts the local stack (slapd, Trino, JupyterHub with the DataHub service as a managed
service, exactly as ``make demo`` does, SQLite store, audit and event log on), signs alice
in through the hub's login form and gives her a hub token, and (as carol, an admin) a quota
policy that lets alice run ``--clients`` queries at once. It also starts a second gateway
process from the same configuration without query hooks (``bare``: routing, health,
audit, metrics, no quota admission), so the quota hooks' share shows. Then, with the
official ``trino`` Python client:

1. **Added latency.** ``--queries`` times ``SELECT 1`` (execute and fetch) on each path,
   taking turns, one connection each, after a warm-up: ``service`` (the hub-managed
   service: hub token, plain HTTP to the gateway, which impersonates alice on Trino over
   HTTPS), ``bare`` (the same without hooks), and ``direct`` (the service account
   impersonating alice on Trino over HTTPS). Added latency = path minus direct, at p50 and
   p95.
2. **Concurrency.** ``--clients`` threads each run ``--each`` queries, on each path in
   turn: throughput and errors (none expected).

The gateway's own ``/metrics`` give the protocol requests per query and the time the
gateway took to answer them (the cluster's time included).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.metadata
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import trino
from trino.auth import JWTAuthentication

from datahub.stack import demo
from datahub.stack.local import LocalStack
from datahub.stack.process import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[1]
SQL = "SELECT 1"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def hub_token(stack: LocalStack, user: str) -> str:
    """Sign *user* in through the login form (creating the hub user), then make a token."""
    session = requests.Session()
    page = session.get(f"{stack.hub_url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = session.post(
        f"{stack.hub_url}/hub/login",
        data={"username": user, "password": demo.demo_password(user), "_xsrf": xsrf},
        allow_redirects=False,
        timeout=60,
    )
    assert r.status_code == 302, r.text[:300]
    r = requests.post(
        f"{stack.hub_url}/hub/api/users/{user}/tokens",
        headers={"Authorization": f"token {stack.settings['ops_token']}"},
        json={"note": "gateway benchmark", "expires_in": 7200},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["token"]


def grant_parallel_queries(stack: LocalStack, admin_token: str, user: str, n: int) -> None:
    """Give *user* a quota policy allowing *n* queries at once (and plenty per day)."""
    limits = {"concurrent_queries": n, "queued_queries": n, "queries_per_day": 1_000_000}
    r = requests.put(
        f"{stack.hub_url}/services/datahub/api/quota/policies/user/{user}",
        headers={"Authorization": f"token {admin_token}"},
        json={"limits": limits},
        timeout=30,
    )
    r.raise_for_status()


BARE_CONFIG = """import json
from datahub.testing import user_token
c = get_config()  # noqa: F821
settings = json.load(open({settings!r}))
c.DataHubService.clusters = settings["clusters"]
c.DataHubService.port = {port}
c.DataHubService.secret = settings["gateway_hmac"]
c.DataHubService.store_url = "sqlite:///{state}/bare.sqlite"
c.DataHubService.event_log_file = "{state}/bare-events.jsonl"
c.DataHubService.identity_resolver_class = "datahub.testing.StaticIdentityResolver"
c.StaticIdentityResolver.tokens = {{{token!r}: user_token("alice", "analysts")}}
"""


def serve_bare(config: str) -> None:
    """Run a gateway from *config* with no quota admission and no listeners (the ``bare``
    path): every query is admitted, nothing but the audit hears of it."""
    from datahub.gateway.admission import QueryAdmission
    from datahub.service.app import DataHubService

    service = DataHubService()
    service.initialize(["-f", config])
    service.tracker.admission = QueryAdmission()
    service.query_listeners.clear()
    service.start()


def start_bare(stack: LocalStack, state: Path, token: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    config = state / "bare_config.py"
    config.write_text(
        BARE_CONFIG.format(settings=str(stack.stack_file), port=port, state=state, token=token)
    )
    process = ManagedProcess(
        "bare-gateway",
        [sys.executable, __file__, "--serve-bare", str(config)],
        log_file=state / "bare-gateway.log",
        cwd=state,
    )
    process.start()
    process.wait_ready(
        lambda: requests.get(f"http://127.0.0.1:{port}/v1/info", timeout=2).ok, 120, "bare"
    )
    return process, port


def via_gateway(port: int, token: str):
    return lambda: trino.dbapi.connect(
        host="127.0.0.1",
        port=port,
        http_scheme="http",
        user="alice",
        auth=JWTAuthentication(token),
        allow_insecure_auth=True,
    )


def direct(stack: LocalStack):
    return lambda: stack.trino.connect("alice")


def one_query(connection) -> float:
    started = time.perf_counter()
    cursor = connection.cursor()
    cursor.execute(SQL)
    assert cursor.fetchall() == [[1]]
    return time.perf_counter() - started


def latency(paths: dict, n: int, warmup: int = 20) -> dict[str, list[float]]:
    connections = {name: make() for name, make in paths.items()}
    for _ in range(warmup):
        for connection in connections.values():
            one_query(connection)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(n):
        for name, connection in connections.items():
            times[name].append(one_query(connection))
    return times


def concurrency(make, clients: int, each: int) -> dict[str, float]:
    def client() -> tuple[list[float], int]:
        connection = make()
        times, errors = [], 0
        for _ in range(each):
            try:
                times.append(one_query(connection))
            except Exception as e:  # counted, not hidden
                errors += 1
                print(f"  error: {type(e).__name__}: {e}"[:200], file=sys.stderr)
        return times, errors

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: client(), range(clients)))
    wall = time.perf_counter() - started
    times = [t for ts, _ in results for t in ts]
    errors = sum(e for _, e in results)
    return {
        "queries": clients * each,
        "errors": errors,
        "wall_s": wall,
        "throughput_qps": len(times) / wall,
        "p50_ms": 1000 * percentile(times, 50),
        "p95_ms": 1000 * percentile(times, 95),
    }


def gateway_requests(port: int) -> dict[str, tuple[float, float]]:
    """(count, sum of seconds) of a gateway's protocol requests, by kind."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    out = {}
    for kind in ("submit", "followup"):
        count = re.search(
            rf'datahub_gateway_request_duration_seconds_count{{kind="{kind}"}} (\S+)', text
        )
        total = re.search(
            rf'datahub_gateway_request_duration_seconds_sum{{kind="{kind}"}} (\S+)', text
        )
        out[kind] = (
            float(count.group(1)) if count else 0.0,
            float(total.group(1)) if total else 0.0,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=300, help="sequential queries per path")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--each", type=int, default=10, help="queries per concurrent client")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve-bare", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    state = Path(tempfile.mkdtemp(prefix="datahub-bench-gateway-"))
    stack = LocalStack(state / "stack", REPO / "jupyterhub_config.py", hub_port=0)
    print(f"Starting the local stack in {state} ...", flush=True)
    stack.start()
    bare = None
    try:
        token = hub_token(stack, "alice")
        grant_parallel_queries(stack, hub_token(stack, "carol"), "alice", args.clients)
        bare, bare_port = start_bare(stack, state, token)
        service_port = stack.settings["gateway_port"]
        paths = {
            "service": via_gateway(service_port, token),
            "bare": via_gateway(bare_port, token),
            "direct": direct(stack),
        }

        load_before = os.getloadavg()
        ports = {"service": service_port, "bare": bare_port}
        before = {name: gateway_requests(port) for name, port in ports.items()}
        print(f"Latency: {args.queries} x {SQL!r} per path, taking turns ...", flush=True)
        times = latency(paths, args.queries)
        after = {name: gateway_requests(port) for name, port in ports.items()}
        results: dict = {"latency": {}, "concurrency": {}}
        for name, values in times.items():
            results["latency"][name] = {
                "n": len(values),
                "p50_ms": 1000 * percentile(values, 50),
                "p95_ms": 1000 * percentile(values, 95),
                "mean_ms": 1000 * statistics.fmean(values),
            }
        lat = results["latency"]
        measured = args.queries + 20  # with the warm-up
        for name in ports:
            made = sum(after[name][k][0] - before[name][k][0] for k in after[name])
            spent = sum(after[name][k][1] - before[name][k][1] for k in after[name])
            lat[name]["added_p50_ms"] = lat[name]["p50_ms"] - lat["direct"]["p50_ms"]
            lat[name]["added_p95_ms"] = lat[name]["p95_ms"] - lat["direct"]["p95_ms"]
            lat[name]["requests_per_query"] = made / measured
            lat[name]["gateway_ms_per_request"] = 1000 * spent / max(made, 1)

        for name, make in paths.items():
            print(
                f"Concurrency: {args.clients} clients x {args.each} queries, {name} ...", flush=True
            )
            results["concurrency"][name] = concurrency(make, args.clients, args.each)

        results["environment"] = {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "trino_client": importlib.metadata.version("trino"),
            "tornado": importlib.metadata.version("tornado"),
            "httpx": importlib.metadata.version("httpx"),
        }
    finally:
        if bare is not None:
            bare.stop()
        stack.stop()

    lat = results["latency"]
    print(
        "\n| path | p50 (ms) | p95 (ms) | added p50 (ms) | added p95 (ms) "
        "| client requests / query | gateway ms / request |\n|---|---|---|---|---|---|---|"
    )
    for name in ("service", "bare", "direct"):
        r = lat[name]
        extra = (
            f"{r['added_p50_ms']:.1f} | {r['added_p95_ms']:.1f} | {r['requests_per_query']:.2f} "
            f"| {r['gateway_ms_per_request']:.2f}"
            if name != "direct"
            else " | | | "
        )
        print(f"| {name} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {extra} |")
    print("\n| path | queries | errors | wall (s) | throughput (q/s) | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results["concurrency"].items():
        print(
            f"| {name} | {r['queries']} | {r['errors']} | {r['wall_s']:.1f} | "
            f"{r['throughput_qps']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} |"
        )
    print(f"\n{json.dumps(results['environment'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    errors = sum(r["errors"] for r in results["concurrency"].values())
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
