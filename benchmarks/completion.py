"""SQL completion and the schema browser on a catalog with thousands of tables, as a user
gets them.

    /opt/datahub-dev/venv/bin/python benchmarks/completion.py [--tables 5000] [--samples 40]

It starts the local stack (slapd, Trino, JupyterHub with the DataHub service, exactly as
``make demo`` does), signs alice in for a hub token, gives her (as carol, an admin) a
quota that does not run out, and creates ``--tables`` tables in ``memory.default`` as
alice (the demo's rules let employees create tables there and nowhere else; the tables are
made through Trino directly, as the gateway's service account impersonating her, so the
setup does not count as completions). Every table has six columns, one a nested ``ROW``,
and a comment.

Then, in an IPython shell of this process with the ``%%sql`` extension (the kernel side,
exactly what Tab runs in a notebook), ``--samples`` times for each completion context:

- **after FROM**: ``%%sql --catalog memory --schema default`` / ``SELECT * FROM bench_01``
  (catalogs, the catalog's schemas and the schema's 5,000 tables);
- **after schema.**: ``SELECT * FROM memory.default.bench_01``;
- **column after alias.**: ``SELECT t.| FROM memory.default.bench_01234 t``;
- **ROW field**: ``SELECT t.address.geo.| FROM memory.default.bench_01234 t``;
- **join keys after ON**: ``… bench_A x JOIN … bench_B y ON |`` (both tables' columns,
  Trino's functions);

each at three temperatures, taking turns so a busy moment hits all of them:

- **cold**: ``%sql refresh-completions`` first (no cached metadata in the kernel nor the
  service): the service runs the metadata statements on Trino as alice, through the
  gateway (her identity, quota, routing and audit);
- **service cache**: the kernel keeps nothing (``SqlCompleter.cache_seconds = 0``, a new
  kernel), the service answers from its per-user cache;
- **warm**: the kernel's own cache (what most key presses get).

The schema browser's requests (the JupyterLab panel's, to the service's metadata API
with alice's token) are timed the same way, cold and warm: a page of 200 tables at a
random offset, a search (first page of 50), a table's columns (``describe``).

Every answer is checked (the right tables, columns, fields, join key); a wrong one ends
the run with exit status 1. CPU seconds and peak resident memory of the processes on the
path (this process as the kernel, the DataHub service, JupyterHub and its proxy, Trino)
are reported per phase (``measure.ProcessWatch``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import measure  # benchmarks/measure.py, the benchmarks' shared helpers
import requests

from datahub.extensions.completer import SqlCompleter
from datahub.stack import demo
from datahub.stack.local import LocalStack

REPO = Path(__file__).resolve().parents[1]
PREFIX = "bench_"
COLUMNS = (
    "id bigint COMMENT 'the row''s id', customer_id bigint, name varchar, amount double, "
    "created date, address ROW(city varchar, geo ROW(lat double, lon double))"
)
COLUMN_NAMES = ["id", "customer_id", "name", "amount", "created", "address"]
TEMPERATURES = ("cold", "service cache", "warm")
#: What one completion offers at most (SqlCompleter.max_candidates's default).
MAX_CANDIDATES = SqlCompleter.max_candidates.default_value


def table_names(n: int) -> list[str]:
    return [f"{PREFIX}{i:05d}" for i in range(n)]


def create_tables(stack: LocalStack, names: list[str], threads: int) -> float:
    """The tables in memory.default as alice; seconds it took."""

    def run(chunk: list[str]) -> None:
        cursor = stack.trino.connect("alice").cursor()
        for name in chunk:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS memory.default.{name} ({COLUMNS}) "
                f"COMMENT 'benchmark table {name}'"
            )
            cursor.fetchall()

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, [names[i::threads] for i in range(threads)]))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- completion


def kernel_shell(stack: LocalStack, token: str):
    """An IPython shell with the %%sql extension, as alice's kernel would have it."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    shell.run_line_magic("config", f"SqlMagic.gateway_url = {stack.settings['gateway_url']!r}")
    shell.run_line_magic("config", f"SqlMagic.token = {token!r}")
    shell.run_line_magic("config", "SqlMagic.user = 'alice'")
    # A cold statement on a busy machine may take longer than the interactive default.
    shell.run_line_magic("config", "SqlCompleter.timeout = 120.0")
    return shell


def completions(shell, text: str, cursor: int) -> list[tuple[str, str]]:
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [(c.text, c.type) for c in shell.Completer.completions(text, cursor)]


def contexts(rng: random.Random, names: list[str]) -> dict[str, tuple[str, int, Callable]]:
    """One sample of each context: (cell text, cursor, check of the answer)."""
    a, b = rng.sample(names, 2)
    prefix = a[: rng.randint(len(PREFIX) + 1, len(PREFIX) + 3)]
    expected = {n for n in names if n.startswith(prefix)}

    def tables(found):
        # The best ranked: the first SqlCompleter.max_candidates names, in order.
        return [t for t, _ in found] == sorted(expected)[:MAX_CANDIDATES]

    def columns(found):
        return sorted(t for t, _ in found) == sorted(COLUMN_NAMES)

    def fields(found):
        return found == [("lat", "field"), ("lon", "field")]

    def join(found):
        return ("x.customer_id = y.customer_id", "join") in found[:3]

    def at_end(text: str, check: Callable) -> tuple[str, int, Callable]:
        return text, len(text), check

    def after(text: str, mark: str, check: Callable) -> tuple[str, int, Callable]:
        return text, text.index(mark) + len(mark), check

    table = f"memory.default.{a}"
    return {
        "after FROM": at_end(
            f"%%sql --catalog memory --schema default\nSELECT * FROM {prefix}", tables
        ),
        "after schema.": at_end(f"%%sql\nSELECT * FROM memory.default.{prefix}", tables),
        "column after alias.": after(f"%%sql\nSELECT t. FROM {table} t", "t.", columns),
        "ROW field": after(f"%%sql\nSELECT t.address.geo. FROM {table} t", "address.geo.", fields),
        "join keys after ON": at_end(
            f"%%sql\nSELECT * FROM {table} x JOIN memory.default.{b} y ON ", join
        ),
    }


def time_completion(shell, text: str, cursor: int, check: Callable) -> tuple[float, int]:
    started = time.perf_counter()
    found = completions(shell, text, cursor)
    elapsed = time.perf_counter() - started
    if not check(found):
        raise SystemExit(f"Wrong completion for {text!r}: {found[:10]}")
    return elapsed, len(found)


def measure_completion(shell, names: list[str], samples: int, seed: int) -> dict:
    rng = random.Random(seed)
    times: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, list[int]] = {}
    for i in range(samples):
        for name, (text, cursor, check) in contexts(rng, names).items():
            per = times.setdefault(name, {t: [] for t in TEMPERATURES})
            shell.run_line_magic("config", "SqlCompleter.cache_seconds = 60.0")
            with contextlib.redirect_stdout(io.StringIO()):  # its one-line report
                shell.run_line_magic("sql", "refresh-completions")
            elapsed, size = time_completion(shell, text, cursor, check)
            per["cold"].append(elapsed)
            sizes.setdefault(name, []).append(size)
            per["warm"].append(time_completion(shell, text, cursor, check)[0])
            shell.run_line_magic("config", "SqlCompleter.cache_seconds = 0.0")
            per["service cache"].append(time_completion(shell, text, cursor, check)[0])
        print(f"  completion sample {i + 1}/{samples}", flush=True)
    shell.run_line_magic("config", "SqlCompleter.cache_seconds = 60.0")
    results = {}
    for name, per in times.items():
        median_size = sorted(sizes[name])[len(sizes[name]) // 2]
        results[name] = {
            temp: summary(values) | {"candidates_median": median_size}
            for temp, values in per.items()
        }
    return results


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": 1000 * measure.percentile(values, 50),
        "p95_ms": 1000 * measure.percentile(values, 95),
        "max_ms": 1000 * max(values),
    }


# --------------------------------------------------------------------------- browser


def measure_browser(stack: LocalStack, token: str, names: list[str], samples: int, seed: int):
    """The schema browser's requests to the service's metadata API, cold and warm."""
    rng = random.Random(seed)
    api = f"{stack.hub_url}/services/datahub/api/metadata"
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"token {token}"

    def get(kind: str, **params) -> tuple[float, dict]:
        started = time.perf_counter()
        r = session.get(f"{api}/{kind}", params=params, timeout=300)
        elapsed = time.perf_counter() - started
        if r.status_code != 200:
            raise SystemExit(f"{kind} {params}: HTTP {r.status_code} {r.text[:300]}")
        return elapsed, r.json()

    def refresh() -> None:
        session.post(f"{api}/refresh", timeout=60).raise_for_status()

    def requests_of_a_sample():
        offset = rng.randrange(0, len(names), 200)
        table = rng.choice(names)
        text = table[: rng.randint(len(PREFIX) + 2, len(PREFIX) + 4)]
        page = {"catalog": "memory", "schema": "default", "offset": offset, "limit": 200}
        search = {"catalog": "memory", "text": text, "limit": 50}
        describe = {"catalog": "memory", "schema": "default", "table": table}

        def page_ok(answer):
            listed = [t["name"] for t in answer["tables"]]
            return listed == names[offset : offset + 200] and all(
                t.get("comment") == f"benchmark table {t['name']}" for t in answer["tables"]
            )

        def search_ok(answer):
            hits = [h["table"] for h in answer["search"] if "column" not in h]
            return hits == [n for n in names if n.startswith(text)][:50]

        def describe_ok(answer):
            return [c["name"] for c in answer["describe"]] == COLUMN_NAMES

        return {
            "tables page (200)": ("tables", page, page_ok),
            "search (first 50 hits)": ("search", search, search_ok),
            "describe (columns)": ("describe", describe, describe_ok),
        }

    times: dict[str, dict[str, list[float]]] = {}
    for i in range(samples):
        for name, (kind, params, check) in requests_of_a_sample().items():
            per = times.setdefault(name, {"cold": [], "warm": []})
            refresh()
            for temp in ("cold", "warm"):
                elapsed, answer = get(kind, **params)
                if not check(answer):
                    raise SystemExit(f"Wrong answer for {kind} {params}: {str(answer)[:300]}")
                per[temp].append(elapsed)
        print(f"  browser sample {i + 1}/{samples}", flush=True)
    return {
        name: {temp: summary(values) for temp, values in per.items()} for name, per in times.items()
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=5000, help="tables in memory.default")
    parser.add_argument("--samples", type=int, default=40, help="samples per context")
    parser.add_argument("--threads", type=int, default=8, help="threads creating tables")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="datahub-bench-completion-"))
    stack = LocalStack(state / "stack", REPO / "jupyterhub_config.py", hub_port=0)
    print(f"Starting the local stack in {state} ...", flush=True)
    stack.start()
    results: dict = {"tables": args.tables, "samples": args.samples, "processes": {}}
    try:
        ops = stack.settings["ops_token"]
        token = measure.hub_token(stack.hub_url, ops, "alice", demo.demo_password("alice"))
        carol = measure.hub_token(stack.hub_url, ops, "carol", demo.demo_password("carol"))
        measure.grant_parallel_queries(stack.hub_url, carol, "alice", 8)
        pids = {
            "kernel (this process)": os.getpid(),
            "DataHub service": measure.pid_listening(stack.settings["gateway_port"]),
            "JupyterHub": stack.hub.pid,
            "proxy": measure.pid_listening(stack.hub_port),
            "Trino": measure.pid_listening(stack.trino.https_port),
        }
        names = table_names(args.tables)
        print(f"Creating {args.tables} tables in memory.default as alice ...", flush=True)
        watch = measure.ProcessWatch(pids, interval=0.1).start()
        results["create_tables_s"] = create_tables(stack, names, args.threads)
        results["processes"]["create tables"] = watch.stop()
        print(f"  {results['create_tables_s']:.0f} s", flush=True)

        shell = kernel_shell(stack, token)
        results["environment"] = measure.environment("ipython", "trino")
        print(f"Completion: {args.samples} samples per context ...", flush=True)
        watch = measure.ProcessWatch(pids, interval=0.1).start()
        results["completion"] = measure_completion(shell, names, args.samples, args.seed)
        results["processes"]["completion"] = watch.stop()

        print(f"Schema browser: {args.samples} samples per request ...", flush=True)
        watch = measure.ProcessWatch(pids, interval=0.1).start()
        results["browser"] = measure_browser(stack, token, names, args.samples, args.seed)
        results["processes"]["browser"] = watch.stop()
        results["kernel_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results["load_average_after"] = list(os.getloadavg())
    finally:
        stack.stop()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict) -> None:
    print(f"\nTables: {results['tables']} (created in {results['create_tables_s']:.0f} s)")
    print("\n| context | temperature | p50 (ms) | p95 (ms) | max (ms) | candidates |")
    print("|---|---|---:|---:|---:|---:|")
    for name, per in results["completion"].items():
        for temp in TEMPERATURES:
            r = per[temp]
            print(
                f"| {name} | {temp} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                f"{r['max_ms']:.1f} | {r['candidates_median']} |"
            )
    print("\n| schema browser request | temperature | p50 (ms) | p95 (ms) | max (ms) |")
    print("|---|---|---:|---:|---:|")
    for name, per in results["browser"].items():
        for temp, r in per.items():
            ms = f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f}"
            print(f"| {name} | {temp} | {ms} |")
    phases = list(results["processes"])
    print(
        "\n| process | "
        + " | ".join(f"CPU s, {p}" for p in phases)
        + " | peak RSS (MiB) |\n|---|"
        + "---:|" * (len(phases) + 1)
    )
    for proc in results["processes"][phases[0]]:
        cells = " | ".join(f"{results['processes'][p][proc]['cpu_s']:.1f}" for p in phases)
        peak = max(results["processes"][p][proc]["peak_rss"] for p in phases) / measure.MiB
        print(f"| {proc} | {cells} | {peak:.0f} |")
    print(f"\nkernel peak RSS {results['kernel_peak_rss_mib']:.0f} MiB")
    env = results["environment"]
    print(f"{measure.describe_environment(env)}; load {env['load_average']} before the")
    print(f"completion phase, {[round(x, 1) for x in results['load_average_after']]} at the end")


if __name__ == "__main__":
    main()
