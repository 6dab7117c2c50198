"""Query events benchmark: the gateway's added latency with Kafka on vs off, side by side
in one run, and the events per second the publisher sustains.

    /opt/datahub-dev/venv/bin/python benchmarks/kafka_events.py
    /opt/datahub-dev/venv/bin/python benchmarks/kafka_events.py --queries 50 --events 5000

It starts the local stack's Trino (as the tests do: slapd, Trino, JupyterHub) and a local
Kafka 4 broker (one KRaft node), then two gateway processes from the same code and
configuration in front of that Trino, each with its own SQLite store (audit on), both
admitting every query with no query listeners, tokens checked from a static map (no hub
round trip, so the difference is the events' alone):

* ``off``: ``c.KafkaEvents`` unset (no outbox, no publisher);
* ``on``: ``c.KafkaEvents.bootstrap_servers`` set: each query's events go into the outbox
  in its audit transactions and the publisher sends them to the broker.

1. **Latency.** ``--queries`` rounds; in each, one ``SELECT 1`` per path (``direct`` to
   Trino as the service account impersonating alice, ``off``, ``on``), the order rotating
   every round, one connection each, after ``--warmup`` rounds. p50 and p95 per path, and
   ``on`` minus ``off``. CPU per query of the client thread, of each gateway process, and of
   the broker (it serves only ``on``); peak resident memory of each over the phase.
2. **Throughput.** ``--clients`` threads × ``--each`` queries on ``off`` then ``on`` (order
   alternating, ``--rounds`` times): queries per second, CPU per query of the client, the
   gateway, Trino and the broker.
3. **Publisher.** ``--events`` realistic events (a finished query's, about 700 bytes of
   JSON) put in a fresh outbox beforehand; the publisher as shipped (batch 500, idempotent,
   acks=all) sends them all to a 3-partition topic: events per second from its start to
   an empty outbox, CPU per 1000 events of the publishing process and of the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import measure
import requests
from gateway import one_query, via

from datahub.stack.kafka import KafkaServer
from datahub.stack.local import LocalStack
from datahub.stack.process import free_port

PATHS = ("direct", "off", "on")
TOKEN = "bench-alice-token"
SECRET = "kafka-events-benchmark-secret-0123456789"


# --------------------------------------------------------------------------- gateways


def serve_gateway(spec: dict[str, Any]) -> None:
    """A gateway process (``--serve`` SPEC): the DataHub service on ``spec["port"]``, its
    own store, Kafka events to ``spec["kafka"]`` if set; until SIGTERM."""
    from traitlets.config import Config

    from datahub.gateway.admission import QueryAdmission
    from datahub.service.app import DataHubService
    from datahub.testing import resolver_for, user_token

    config = Config()
    if spec.get("kafka"):
        config.KafkaEvents.bootstrap_servers = spec["kafka"]
        config.KafkaEvents.topic = spec["topic"]
    service = DataHubService(
        ip="127.0.0.1",
        port=spec["port"],
        clusters=[spec["cluster"]],
        store_url=spec["store_url"],
        secret=SECRET.encode(),
        identity_resolver_class=resolver_for({TOKEN: user_token("alice", "analysts")}),
        config=config,
    )
    service.init()
    service.tracker.admission = QueryAdmission()
    service.query_listeners.clear()
    loop = asyncio.new_event_loop()
    servers = loop.run_until_complete(service.serve())
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    loop.run_until_complete(service.stop(servers))


def start_gateway(state: Path, name: str, cluster: dict, kafka: str | None, topic: str):
    port = free_port()
    spec = {
        "port": port,
        "cluster": cluster,
        "store_url": f"sqlite:///{state / f'{name}.sqlite'}",
        "kafka": kafka,
        "topic": topic,
    }
    log = (state / f"{name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(spec)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=state,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/info", timeout=2).ok:
                return process, port
        except requests.RequestException:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"The {name} gateway did not start; see {state / f'{name}.log'}")


def stop_gateway(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(create())


# --------------------------------------------------------------------------- phases


def latency(makers: dict, pids: dict[str, int | None], n: int, warmup: int) -> dict:
    connections = {name: make() for name, make in makers.items()}
    for _ in range(warmup):
        for connection in connections.values():
            one_query(connection)
    walls: dict[str, list[float]] = {name: [] for name in makers}
    cpus: dict[str, list[float]] = {name: [] for name in makers}
    watch = measure.ProcessWatch(pids).start()
    for round_ in range(n):
        order = PATHS[round_ % 3 :] + PATHS[: round_ % 3]
        for name in order:
            cpu = time.thread_time()
            walls[name].append(one_query(connections[name]))
            cpus[name].append(time.thread_time() - cpu)
    processes = watch.stop()
    out: dict[str, Any] = {"processes": processes}
    for name in makers:
        out[name] = {
            "p50_ms": 1000 * measure.percentile(walls[name], 50),
            "p95_ms": 1000 * measure.percentile(walls[name], 95),
            "client_cpu_ms": 1000 * sum(cpus[name]) / n,
        }
    return out


def throughput(make, clients: int, each: int, on_path: dict[str, int | None]) -> dict:
    connections = [make() for _ in range(clients)]
    for connection in connections:
        one_query(connection)
    errors: list[str] = []
    lock = threading.Lock()

    def client(connection) -> list[float]:
        times = []
        for _ in range(each):
            try:
                times.append(one_query(connection))
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])
        return times

    watch = measure.ProcessWatch(on_path).start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, connections))
    wall = time.perf_counter() - started
    processes = watch.stop()
    times = [t for ts in results for t in ts]
    for e in errors[:5]:
        print(f"  error: {e}", file=sys.stderr)
    return {
        "queries": clients * each,
        "errors": len(errors),
        "qps": len(times) / wall,
        "p50_ms": 1000 * measure.percentile(times, 50) if times else float("nan"),
        "processes": processes,
    }


def sample_event_fields(i: int) -> dict[str, Any]:
    """A finished query's fields, as the gateway records them."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    return {
        "query_id": f"20261202_093000_{i:05d}_bench",
        "user": "alice",
        "principal": "svc-datahub",
        "groups": ["employees", "analysts"],
        "cluster": "trino",
        "routing_group": "default",
        "routing_reason": "default",
        "source": "datahub-sql",
        "client_tags": [],
        "sql": "SELECT nationkey, count(*) FROM tpch.tiny.customer GROUP BY 1",
        "submitted_at": now,
        "finished_at": now,
        "state": "FINISHED",
        "elapsed_ms": 412,
        "queued_ms": 3,
        "cpu_ms": 120,
        "wall_ms": 300,
        "processed_rows": 1500,
        "processed_bytes": 65000,
        "physical_bytes": 0,
        "peak_memory_bytes": 1048576,
        "output_rows": 25,
    }


def publisher_rate(state: Path, bootstrap: str, kafka_pid: int | None, events: int) -> dict:
    """Fill a fresh outbox with *events*, then time the publisher emptying it."""
    from datahub.events import outbox
    from datahub.events.event import FINISHED, encode, query_event
    from datahub.events.publisher import EventPublisher
    from datahub.store import Store

    store = Store(f"sqlite:///{state / 'publisher.sqlite'}")
    store.migrate()
    made = [query_event(FINISHED, sample_event_fields(i)) for i in range(events)]
    for start in range(0, events, 1000):
        store.transaction(outbox.add, made[start : start + 1000])
    payload_bytes = sum(len(encode(e).encode()) for e in made) / events
    topic = f"bench-publisher-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)

    async def drain() -> float:
        publisher = EventPublisher(store, bootstrap_servers=bootstrap, topic=topic)
        started = time.perf_counter()
        publisher.start()
        try:
            while await store.run_in_transaction(outbox.backlog):
                await asyncio.sleep(0.05)
            return time.perf_counter() - started
        finally:
            await publisher.stop()

    watch = measure.ProcessWatch({"publisher": os.getpid(), "kafka": kafka_pid}).start()
    wall = asyncio.run(drain())
    processes = watch.stop()
    store.dispose()
    return {
        "events": events,
        "payload_bytes": payload_bytes,
        "wall_s": wall,
        "events_per_s": events / wall,
        "processes": processes,
    }


# --------------------------------------------------------------------------- report


def _cpu(processes: dict, name: str, per: float, scale: float = 1000) -> str:
    if name not in processes:
        return "–"
    return f"{scale * processes[name]['cpu_s'] / per:.2f} ms"


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    env, lat = results["environment"], results["latency"]
    procs = lat["processes"]
    lines = [
        f"{measure.describe_environment(env)}; load average {env['load_average']} before, "
        f"{results['load_average_after']} after.",
        "",
        f"Latency: {args.queries} rounds of `SELECT 1` per path, the order rotating, one "
        "connection each:",
        "",
        "| path | p50 | p95 | client CPU / query | gateway CPU / query | broker CPU / query "
        "| gateway peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    n = args.queries
    for name in PATHS:
        r = lat[name]
        gateway = _cpu(procs, name, n) if name != "direct" else "–"
        broker = _cpu(procs, "kafka", n) if name == "on" else "–"
        peak = f"{procs[name]['peak_rss'] / measure.MiB:.0f} MiB" if name in procs else "–"
        lines.append(
            f"| {name} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms "
            f"| {r['client_cpu_ms']:.2f} ms | {gateway} | {broker} | {peak} |"
        )
    lines += [
        "",
        f"Kafka on minus off: p50 **{lat['on']['p50_ms'] - lat['off']['p50_ms']:+.1f} ms**, "
        f"p95 **{lat['on']['p95_ms'] - lat['off']['p95_ms']:+.1f} ms**; gateway CPU per query "
        f"{1000 * (procs['on']['cpu_s'] - procs['off']['cpu_s']) / n:+.2f} ms.",
        "",
        f"Throughput: {args.clients} clients × {args.each} queries, off and on taking turns "
        f"{args.rounds} times (medians):",
        "",
        "| path | queries/s | p50 | errors | client CPU / query | gateway CPU / query "
        "| Trino CPU / query | broker CPU / query | queries/s per round |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("off", "on"):
        runs = results["throughput"][name]

        def per_query(proc: str, runs=runs) -> str:
            values = [
                1000 * r["processes"][proc]["cpu_s"] / r["queries"]
                for r in runs
                if proc in r["processes"]
            ]
            return f"{measure.median(values):.2f} ms" if values else "–"

        each_round = ", ".join(f"{r['qps']:.1f}" for r in runs)
        lines.append(
            f"| {name} | {measure.median(r['qps'] for r in runs):.1f} "
            f"| {measure.median(r['p50_ms'] for r in runs):.0f} ms "
            f"| {sum(r['errors'] for r in runs)} | {per_query('client')} "
            f"| {per_query('gateway')} | {per_query('trino')} | {per_query('kafka')} "
            f"| {each_round} |"
        )
    pub = results["publisher"]
    pp = pub["processes"]
    lines += [
        "",
        f"Publisher: {pub['events']} events of {pub['payload_bytes']:.0f} bytes each, from a "
        f"full outbox to an empty one in {pub['wall_s']:.2f} s: "
        f"**{pub['events_per_s']:.0f} events/s**; CPU per 1000 events: publishing process "
        f"{_cpu(pp, 'publisher', pub['events'], 1e6)}, "
        f"broker {_cpu(pp, 'kafka', pub['events'], 1e6)}; "
        f"peak memory: publishing process {pp['publisher']['peak_rss'] / measure.MiB:.0f} MiB "
        f"(+{pp['publisher']['peak_over'] / measure.MiB:.0f}), broker "
        f"{pp['kafka']['peak_rss'] / measure.MiB:.0f} MiB.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--queries", type=int, default=200, help="latency rounds")
    parser.add_argument("--warmup", type=int, default=10, help="latency rounds not counted")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--each", type=int, default=10, help="queries per concurrent client")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per path")
    parser.add_argument("--events", type=int, default=20000, help="events for the publisher")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_gateway(json.loads(args.serve))
        return

    state = Path(tempfile.mkdtemp(prefix="datahub-bench-kafka-"))
    bin_dir = measure.REPO / "node_modules" / ".bin"
    os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    stack = LocalStack(state / "stack", measure.REPO / "jupyterhub_config.py", hub_port=0)
    kafka = KafkaServer(state / "kafka")
    gateways: dict[str, subprocess.Popen] = {}
    print(f"Starting the local stack and Kafka in {state} ...", file=sys.stderr, flush=True)
    stack.start()
    try:
        kafka.start()
        topic = f"bench-gateway-{uuid.uuid4().hex[:8]}"
        create_topic(kafka.bootstrap_servers, topic)
        cluster = {**stack.settings["clusters"][0], "name": "main"}
        ports = {}
        for name, bootstrap in (("off", None), ("on", kafka.bootstrap_servers)):
            gateways[name], ports[name] = start_gateway(state, name, cluster, bootstrap, topic)
        pids = {
            "off": gateways["off"].pid,
            "on": gateways["on"].pid,
            "kafka": measure.pid_listening(kafka.port),
            "trino": measure.pid_listening(stack.trino.https_port),
        }
        print(f"Processes: {pids}", file=sys.stderr, flush=True)
        makers = {
            "direct": lambda: stack.trino.connect("alice"),
            "off": via(ports["off"], TOKEN),
            "on": via(ports["on"], TOKEN),
        }
        env = measure.environment("trino", "tornado", "aiokafka")
        print(f"Latency: {args.queries} rounds ...", file=sys.stderr, flush=True)
        lat = latency(
            makers,
            {"off": pids["off"], "on": pids["on"], "kafka": pids["kafka"]},
            args.queries,
            args.warmup,
        )
        tp: dict[str, list[dict]] = {"off": [], "on": []}
        for round_ in range(args.rounds):
            for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                print(f"Throughput round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                on_path = {
                    "client": os.getpid(),
                    "gateway": pids[name],
                    "trino": pids["trino"],
                    "kafka": pids["kafka"],
                }
                tp[name].append(throughput(makers[name], args.clients, args.each, on_path))
                print(f"  {tp[name][-1]['qps']:.1f} q/s", file=sys.stderr, flush=True)
        for process in gateways.values():
            stop_gateway(process)
        print(f"Publisher: {args.events} events ...", file=sys.stderr, flush=True)
        pub = publisher_rate(state, kafka.bootstrap_servers, pids["kafka"], args.events)
        results = {
            "environment": env,
            "latency": lat,
            "throughput": tp,
            "publisher": pub,
            "load_average_after": [round(x, 1) for x in os.getloadavg()],
        }
    finally:
        for process in gateways.values():
            if process.poll() is None:
                stop_gateway(process)
        kafka.stop()
        stack.stop()

    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    errors = sum(r["errors"] for runs in results["throughput"].values() for r in runs)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
