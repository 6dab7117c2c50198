"""Quota admission: overhead per query and admissions per second, SQLite against PostgreSQL.

What a query costs the gateway in quota work is one admission transaction (lock the
user, read the policies, count slots and today's usage, take a slot), progress checks
(in memory; a lease renewal only every quarter lease, in the background), and one release
(free the slot, add CPU and bytes). This runs exactly that (`AdmissionController.admit`,
`progress`, `finish`) against a migrated store:

- **overhead**: one query at a time, 300 times; per-query latency of admit (what a
  client waits for) and of admit + progress + finish;
- **throughput**: concurrent workers admitting and finishing as fast as they can for a
  few seconds, with every worker a different user (row locks per user on PostgreSQL) or
  all the same user (one lock), in one process and in two processes (as two gateway
  processes would).

Both stores are measured in the same run, on the same machine, one after the other.

    /opt/datahub/venv/bin/python benchmarks/admission.py [--seconds 5] [--workers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from datahub.quotas import storage
from datahub.quotas.admission import AdmissionController
from datahub.quotas.counters import Rules
from datahub.quotas.days import UsageDays
from datahub.stack.postgres import PostgresServer
from datahub.store import Store

RULES = Rules(days=UsageDays(), configured={}, contact="your DataHub admin")
STATS = {"cpu_ms": 120, "bytes_scanned": 4096}


def _controller(store: Store) -> AdmissionController:
    return AdmissionController(store, RULES, poll_interval=0.01)


async def _one_query(controller: AdmissionController, user: str) -> float:
    """Run one query's quota work; returns the seconds its admission took."""
    started = time.perf_counter()
    ticket = await controller.admit(user, ["analysts"])
    admitted = time.perf_counter() - started
    await controller.progress(ticket, query_id="q")
    await controller.finish(ticket, **STATS)
    return admitted


def overhead(url: str, n: int) -> tuple[list[float], list[float]]:
    """Seconds per query: (admit, admit + progress + finish), one query at a time."""
    store = Store(url, threads=16)  # as many store threads as the controller had of its own
    controller = _controller(store)

    async def main() -> tuple[list[float], list[float]]:
        for _ in range(20):  # warm the pool and the caches
            await _one_query(controller, "warmup")
        admits, times = [], []
        for _ in range(n):
            started = time.perf_counter()
            admits.append(await _one_query(controller, "solo"))
            times.append(time.perf_counter() - started)
        return admits, times

    try:
        return asyncio.run(main())
    finally:
        controller.close()
        store.dispose()


def _throughput_worker(url: str, workers: int, seconds: float, same_user: bool, tag: str, out):
    store = Store(url, threads=16)  # as many store threads as the controller had of its own
    controller = _controller(store)
    done = 0

    async def worker(i: int, deadline: float) -> None:
        nonlocal done
        user = "shared" if same_user else f"{tag}-user{i}"
        while time.monotonic() < deadline:
            await _one_query(controller, user)
            done += 1

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(worker(i, deadline) for i in range(workers)))

    try:
        asyncio.run(main())
    finally:
        controller.close()
        store.dispose()
    out.put(done)


def throughput(url: str, processes: int, workers: int, seconds: float, same_user: bool) -> float:
    """Queries admitted and finished per second by *processes* × *workers*."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_throughput_worker,
            args=(url, workers, seconds, same_user, f"p{i}", out),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def _prepare(url: str) -> None:
    store = Store(url, threads=16)  # as many store threads as the controller had of its own
    store.migrate()
    # A realistic policy set: a default, a group, and the users' own.
    now = dt.datetime.now(dt.UTC)
    storage.set_policy(store, "default", None, {"queries_per_day": 10**9}, "bench", now)
    storage.set_policy(store, "group", "analysts", {"concurrent_queries": 1000}, "bench", now)
    storage.set_policy(store, "user", "shared", {"concurrent_queries": 1000}, "bench", now)
    store.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of a throughput run")
    parser.add_argument("--workers", type=int, default=16, help="concurrent queries per process")
    parser.add_argument("--queries", type=int, default=300, help="queries in the overhead run")
    args = parser.parse_args(argv)

    postgres = PostgresServer().start()
    tmp = tempfile.mkdtemp(prefix="datahub-bench-")
    stores = {
        "SQLite": f"sqlite:///{Path(tmp) / 'bench.sqlite'}",
        "PostgreSQL": postgres.url,
    }
    try:
        for url in stores.values():
            _prepare(url)
        print(
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}; {args.queries} sequential queries; throughput runs "
            f"of {args.seconds:g} s with {args.workers} workers per process\n"
        )
        print("| store | admit p50 (ms) | overhead p50 (ms) | p95 (ms) | mean (ms) |")
        print("|---|---|---|---|---|")
        for name, url in stores.items():
            admits, times = overhead(url, args.queries)
            times.sort()
            admit = statistics.median(admits) * 1000
            p50 = statistics.median(times) * 1000
            p95 = times[int(0.95 * len(times))] * 1000
            mean = statistics.mean(times) * 1000
            print(f"| {name} | {admit:.2f} | {p50:.2f} | {p95:.2f} | {mean:.2f} |")
        print()
        print("| store | processes | users | admissions/s |")
        print("|---|---|---|---|")
        for name, url in stores.items():
            for processes in (1, 2):
                for same_user in (False, True):
                    rate = throughput(url, processes, args.workers, args.seconds, same_user)
                    users = "one user" if same_user else "one per worker"
                    print(f"| {name} | {processes} | {users} | {rate:.0f} |", flush=True)
    finally:
        postgres.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
