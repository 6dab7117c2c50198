"""Fetch benchmark: a million-row result into a pandas DataFrame, three ways, one Trino.

    SELECT * FROM tpch.sf1.lineitem LIMIT 1000000

(a) DataHub's ``%sql`` through the DataHub gateway (hub token, as alice);
(b) the plain ``trino`` client straight to Trino + ``pandas.DataFrame(cursor.fetchall())``;
(c) JupySQL's ``%sql`` with the trino SQLAlchemy URL straight to Trino (``autopandas``).

(b) and (c) authenticate as the gateway's service account impersonating alice, so all three
read the same data as the same Trino user. Each measurement runs in a fresh subprocess so
peak memory is that run's alone: the peak resident set size (``ru_maxrss``) minus the
resident size just before the query (after imports and connecting). Runs are interleaved
(a, b, c, a, b, c, …) so load from other processes on the machine hits all three alike;
the report gives medians and the ratios a/b and a/c.

Run it (it starts its own local stack — slapd, Trino, hub, gateway — unless told where
one is)::

    /opt/datahub/venv/bin/python benchmarks/fetch.py --runs 5
    /opt/datahub/venv/bin/python benchmarks/fetch.py --gateway-url http://127.0.0.1:8765 \\
        --token HUB_TOKEN --trino-url https://127.0.0.1:8443 --trino-user datahub-trino \\
        --trino-password PASSWORD --trino-ca ca.pem
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT = "RESULT "
SQL = "SELECT * FROM tpch.sf1.lineitem LIMIT {rows}"
VARIANTS = {
    "a": "DataHub %sql via the gateway",
    "b": "trino client + DataFrame(fetchall())",
    "c": "JupySQL %sql (SQLAlchemy)",
}


# --------------------------------------------------------------------------- the stack


@contextmanager
def local_stack(user: str) -> Iterator[dict[str, Any]]:
    """Start a local stack in a temporary directory; yield the settings the workers need."""
    import requests

    from datahub.stack import demo
    from datahub.stack.local import LocalStack

    with tempfile.TemporaryDirectory(prefix="datahub-bench-") as state:
        stack = LocalStack(Path(state), REPO / "jupyterhub_config.py", hub_port=0)
        stack.start()
        try:
            session = requests.Session()
            page = session.get(f"{stack.hub_url}/hub/login", timeout=30)
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
            response = session.post(
                f"{stack.hub_url}/hub/login",
                data={"username": user, "password": demo.demo_password(user), "_xsrf": xsrf},
                allow_redirects=False,
                timeout=60,
            )
            response.raise_for_status()
            ops = {"Authorization": f"token {stack.settings['ops_token']}"}
            response = requests.post(
                f"{stack.hub_url}/hub/api/users/{user}/tokens",
                json={"note": "benchmark", "expires_in": 7200},
                headers=ops,
                timeout=30,
            )
            response.raise_for_status()
            yield {
                "gateway_url": stack.settings["gateway_url"],
                "token": response.json()["token"],
                "trino_url": stack.trino.url,
                "trino_user": stack.trino.service_user,
                "trino_password": stack.trino.service_password,
                "trino_ca": str(stack.trino.ca_file),
                "user": user,
            }
        finally:
            stack.stop()


# --------------------------------------------------------------------------- workers


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _trino_host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname, parsed.port or 443


def worker(variant: str, cfg: dict[str, Any], sql: str) -> dict[str, Any]:
    """Set the variant up, measure one query into a DataFrame, return the numbers."""
    if variant == "a":
        from IPython.core.interactiveshell import InteractiveShell

        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "datahub.extensions.sql")
        ip.run_line_magic("config", f"SqlMagic.gateway_url = {cfg['gateway_url']!r}")
        ip.run_line_magic("config", f"SqlMagic.token = {cfg['token']!r}")
        ip.run_line_magic("sql", "SELECT 1")  # connect (like b and c do before measuring)

        def run():
            return ip.run_line_magic("sql", sql)

    elif variant == "b":
        import pandas as pd
        import trino

        host, port = _trino_host_port(cfg["trino_url"])
        conn = trino.dbapi.connect(
            host=host,
            port=port,
            http_scheme="https",
            auth=trino.auth.BasicAuthentication(cfg["trino_user"], cfg["trino_password"]),
            user=cfg["user"],
        )
        conn.cursor().execute("SELECT 1").fetchall()

        def run():
            cursor = conn.cursor()
            cursor.execute(sql)
            rows = cursor.fetchall()
            return pd.DataFrame(rows, columns=[d[0] for d in cursor.description])

    elif variant == "c":
        import sqlalchemy
        import trino
        from IPython.core.interactiveshell import InteractiveShell

        host, port = _trino_host_port(cfg["trino_url"])
        engine = sqlalchemy.create_engine(
            f"trino://{cfg['trino_user']}@{host}:{port}/tpch",
            connect_args={
                "auth": trino.auth.BasicAuthentication(cfg["trino_user"], cfg["trino_password"]),
                "http_scheme": "https",
                "user": cfg["user"],
            },
        )
        ip = InteractiveShell.instance()
        ip.user_ns["engine"] = engine
        ip.run_line_magic("load_ext", "sql")
        ip.run_line_magic("config", "SqlMagic.autopandas = True")
        ip.run_line_magic("sql", "engine")
        ip.run_line_magic("sql", "SELECT 1")

        def run():
            return ip.run_line_magic("sql", sql)

    else:
        raise SystemExit(f"unknown variant {variant!r}")

    before = _rss()
    cpu_before = _cpu()
    start = time.perf_counter()
    frame = run()
    wall = time.perf_counter() - start
    cpu = _cpu() - cpu_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "variant": variant,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_bytes": peak,
        "peak_over_baseline_bytes": peak - before,
        "rows": len(frame),
        "frame_bytes": int(frame.memory_usage(deep=True).sum()),
        "dtypes": sorted({str(t) for t in frame.dtypes}),
    }


def run_worker(variant: str, cfg_file: Path, sql: str, ca_file: str) -> dict[str, Any]:
    # The self-signed Trino certificate: requests reads REQUESTS_CA_BUNDLE for (b) and (c).
    env = {**os.environ, "REQUESTS_CA_BUNDLE": ca_file}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--config", str(cfg_file), "--sql", sql],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
    # Libraries print too (JupySQL says "Closing …" at exit): find our line.
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    return json.loads(line.removeprefix(RESULT))


# --------------------------------------------------------------------------- report


def report(results: dict[str, list[dict[str, Any]]], rows: int, runs: int) -> str:
    """A Markdown table of medians with ratios to (a)."""

    def med(v: str, key: str) -> float:
        return statistics.median(r[key] for r in results[v])

    lines = [
        f"`SELECT * FROM tpch.sf1.lineitem LIMIT {rows}` into a DataFrame, "
        f"median of {runs} interleaved runs (each in a fresh process):",
        "",
        "| variant | wall time | client CPU | peak memory over baseline | DataFrame size "
        "| runs (wall s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for v, label in VARIANTS.items():
        if v not in results:
            continue
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in results[v])
        lines.append(
            f"| ({v}) {label} | {med(v, 'wall_s'):.1f} s | {med(v, 'cpu_s'):.1f} s "
            f"| {med(v, 'peak_over_baseline_bytes') / 2**20:,.0f} MiB "
            f"| {med(v, 'frame_bytes') / 2**20:,.0f} MiB | {walls} |"
        )
    lines.append("")
    for other in ("b", "c"):
        if "a" in results and other in results:
            wall = med("a", "wall_s") / med(other, "wall_s")
            mem = med("a", "peak_over_baseline_bytes") / med(other, "peak_over_baseline_bytes")
            lines.append(f"- a/{other}: wall time {wall:.2f}×, peak memory {mem:.2f}×")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variants", default="abc", help="which variants to run (default abc)")
    parser.add_argument("--user", default="alice", help="hub user the queries run as")
    parser.add_argument("--gateway-url", help="an existing stack's gateway (else start one)")
    parser.add_argument("--token", help="hub token of --user for the gateway")
    parser.add_argument("--trino-url", help="the same stack's Trino, e.g. https://host:8443")
    parser.add_argument("--trino-user", help="service account allowed to impersonate --user")
    parser.add_argument("--trino-password")
    parser.add_argument("--trino-ca", help="PEM of Trino's certificate")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sql", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        cfg = json.loads(args.config.read_text())
        print(RESULT + json.dumps(worker(args.worker, cfg, args.sql)), flush=True)
        return

    sql = SQL.format(rows=args.rows)
    if args.gateway_url:
        given = {
            "gateway_url": args.gateway_url,
            "token": args.token,
            "trino_url": args.trino_url,
            "trino_user": args.trino_user,
            "trino_password": args.trino_password,
            "trino_ca": args.trino_ca,
            "user": args.user,
        }
        missing = [k for k, v in given.items() if not v]
        if missing:
            parser.error(f"with --gateway-url also give: {', '.join(missing)}")
        stack = _given(given)
    else:
        print("Starting a local stack…", file=sys.stderr)
        stack = local_stack(args.user)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    with stack as cfg, tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "config.json"
        cfg_file.write_text(json.dumps(cfg))
        os.chmod(cfg_file, 0o600)
        # Warm Trino up (JIT, tpch generators) so the first measured run is not penalised.
        run_worker("b", cfg_file, SQL.format(rows=min(args.rows, 200_000)), cfg["trino_ca"])
        for round_ in range(args.runs):
            for v in args.variants:
                result = run_worker(v, cfg_file, sql, cfg["trino_ca"])
                results[v].append(result)
                print(
                    f"round {round_ + 1}: ({v}) {result['wall_s']:.2f} s, "
                    f"peak +{result['peak_over_baseline_bytes'] / 2**20:,.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    print(report(results, args.rows, args.runs))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


@contextmanager
def _given(cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield cfg


if __name__ == "__main__":
    main()
