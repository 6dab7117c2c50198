"""Fetch benchmark: the same rows into a typed pandas DataFrame, every client side by side.

    SELECT * FROM tpch."sf0.166667".lineitem ORDER BY orderkey, linenumber

(the whole lineitem table of the scale factor N / 6,000,000, so about N rows and Trino
scans exactly what is fetched; 16 columns: bigint, integer, double, varchar, date;
``--rows N``, a million by default). The
competitors, each in a fresh process per run, interleaved round by round (the order
rotates each round), medians of ``--runs`` runs, all against one Trino in one run of one
code version:

* ``datahub-gateway``: DataHub's ``%sql`` magic in an IPython shell, as a kernel runs it,
  through the DataHub gateway with the user's hub token (whatever protocol the stack
  offers: direct pages now, spooled segments when Trino and the gateway have spooling);
* ``trino-gateway``: the plain ``trino`` client through the same gateway, same token,
  ``pandas.DataFrame(cursor.fetchall())`` (the same network path as ours);
* ``jupysql-gateway``: JupySQL's ``%sql`` (``autopandas``) with the trino SQLAlchemy
  URL through the same gateway;
* ``trino-direct`` and ``jupysql-direct``: the same two straight to Trino over HTTPS with
  gzip (their own best path), as the gateway's service account impersonating the user;
* ``floor``: Trino's own time for the same scan, an aggregate over the same rows
  (``count(*)`` and a ``checksum`` of every column), which ships almost nothing: the
  physical floor every fetch figure is set beside.

Every frame is checked equal to the others after type normalisation (names, kind of
each column, values in order; ``measure.frame_digest``); the benchmark stops at the first
difference. Per run it records wall time, the client's CPU (user + system, all threads)
and peak resident memory over its size just before the query (``ru_maxrss``), and, for
the other processes on the path, their CPU and peak resident memory over the run
(sampled every 20 ms): the gateway (the DataHub service), the hub (token checks),
Trino's JVM and the storage Trino spools result segments into (S3Proxy; their CPU shown
apart). ``--spooling proxy|storage|redirect|off`` picks how clients reach the segments.
``--profile-trino FILE.jfr`` also records Trino with Java Flight Recorder during the
measured rounds and reports where its CPU went for each competitor (``trino_profile.py``).

Run it::

    /opt/datahub-dev/venv/bin/python benchmarks/fetch.py --rows 100000 --runs 3  # a quick check
    /opt/datahub-dev/venv/bin/python benchmarks/fetch.py --runs 5                # 1,000,000 rows

It starts its own local stack (slapd, Trino, JupyterHub with the DataHub service) unless
given an existing one with ``--gateway-url`` and the rest.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import measure
import trino_profile

RESULT = "RESULT "
DIGEST = "DIGEST "
READY = "READY"

COLUMNS = [
    *("orderkey", "partkey", "suppkey", "linenumber", "quantity", "extendedprice"),
    *("discount", "tax", "returnflag", "linestatus", "shipdate", "commitdate"),
    *("receiptdate", "shipinstruct", "shipmode", "comment"),
]
#: tpch.sfS.lineitem has about 6,000,000 × S rows: a fractional scale factor gives a table
#: of about the rows asked for, so Trino scans exactly what is fetched.
LINEITEM_ROWS_PER_SF = 6_000_000
FETCH_SQL = 'SELECT * FROM tpch."{scale}".lineitem'
ORDER = " ORDER BY orderkey, linenumber"
FLOOR_SQL = (
    "SELECT count(*), "
    + ", ".join(f"checksum({c})" for c in COLUMNS)
    + ' FROM tpch."{scale}".lineitem'
)

COMPETITORS = {
    "datahub-gateway": "DataHub %sql, via the gateway",
    "datahub-gateway-direct": "DataHub %sql, via the gateway, spooling not asked for",
    "trino-gateway": "trino client + DataFrame(fetchall()), via the gateway",
    "jupysql-gateway": "JupySQL %sql (autopandas), via the gateway",
    "trino-direct": "trino client + DataFrame(fetchall()), direct (HTTPS, gzip)",
    "jupysql-direct": "JupySQL %sql (autopandas), direct (HTTPS, gzip)",
    "drain": "Trino shipping the rows: every page and segment downloaded, none decoded",
    "drain-lz4": "the same, segments asked for as json+lz4",
    "drain-json": "the same, segments asked for as plain json",
    "floor": "Trino's own scan: aggregate over the same rows, direct",
}
#: Not a DataFrame: their digest holds a row count only (or none).
NOT_FRAMES = {"floor", "drain", "drain-lz4", "drain-json"}
#: The segment encodings each drain asks for (``drain`` asks what the trino client asks).
DRAIN_ENCODINGS = {
    "drain": "json+zstd,json+lz4,json",
    "drain-lz4": "json+lz4",
    "drain-json": "json",
}
VIA_GATEWAY = {"datahub-gateway", "datahub-gateway-direct", "trino-gateway", "jupysql-gateway"}


# --------------------------------------------------------------------------- the stack


@contextmanager
def local_stack(user: str, spooling: str | None) -> Iterator[dict[str, Any]]:
    """Start a local stack in a temporary directory; yield what the workers need."""
    from datahub.cli import SPOOLING
    from datahub.stack import demo
    from datahub.stack.local import LocalStack

    options: dict[str, Any] = {}
    if spooling is not None:
        parameters = inspect.signature(LocalStack).parameters
        mode = SPOOLING[spooling]
        if "spooling" not in parameters or (
            mode not in (None, "COORDINATOR_PROXY") and "spooling_retrieval_mode" not in parameters
        ):
            raise SystemExit(
                f"--spooling {spooling}: this checkout's local stack cannot configure it; "
                "point --gateway-url and --trino-url at a stack that has it."
            )
        options["spooling"] = mode is not None
        if mode is not None and "spooling_retrieval_mode" in parameters:
            options["spooling_retrieval_mode"] = mode
    with tempfile.TemporaryDirectory(prefix="datahub-bench-fetch-") as state:
        stack = LocalStack(Path(state), measure.REPO / "jupyterhub_config.py", **options)
        stack.start()
        try:
            token = measure.hub_token(
                stack.hub_url, stack.settings["ops_token"], user, demo.demo_password(user)
            )
            yield {
                "gateway_url": stack.settings["gateway_url"],
                "token": token,
                "trino_url": stack.trino.url,
                "trino_user": stack.trino.service_user,
                "trino_password": stack.trino.service_password,
                "trino_ca": str(stack.trino.ca_file),
                "user": user,
                "hub_pid": stack.hub.pid,
                "storage_url": stack.storage.url if getattr(stack, "storage", None) else None,
            }
        finally:
            stack.stop()


@contextmanager
def given_stack(cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield cfg


def path_pids(cfg: dict[str, Any]) -> dict[str, int | None]:
    """The processes on the paths, found by the ports they listen on (this machine only)."""
    from urllib.parse import urlparse

    gateway, trino = urlparse(cfg["gateway_url"]), urlparse(cfg["trino_url"])
    storage = urlparse(cfg["storage_url"]) if cfg.get("storage_url") else None
    return {
        "gateway": measure.pid_listening(gateway.port or 80),
        "hub": cfg.get("hub_pid"),
        "trino": measure.pid_listening(trino.port or 443),
        "storage": measure.pid_listening(storage.port or 80) if storage else None,
    }


# --------------------------------------------------------------------------- workers


def scale_for(rows: int) -> str:
    """The tpch schema whose lineitem has about *rows* rows (``sf0.166667`` for a million)."""
    return f"sf{rows / LINEITEM_ROWS_PER_SF:.6g}"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Wire:
    """Counts what the client's HTTP session exchanged: requests, bytes received (after
    decompression), gzip-encoded answers, pages with spooled segments and segment
    downloads, and whether spooling was asked for."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = self.payload_bytes = self.gzip = self.segments = self.spooled_pages = 0
        self.asked_spooling = False

    def install(self) -> None:
        import requests

        original = requests.Session.send
        wire = self

        def send(session, request, **kwargs):
            if request.headers.get("X-Trino-Query-Data-Encoding"):
                wire.asked_spooling = True
            response = original(session, request, **kwargs)
            wire.requests += 1
            if "gzip" in response.headers.get("Content-Encoding", ""):
                wire.gzip += 1
            if kwargs.get("stream"):  # read by its caller (%sql's pages): counted then
                wire.count_when_read(response)
                return response
            # A spooled page's data is {"encoding", "segments"}; Trino writes the columns
            # and then the data near the start of a page.
            if b'"segments"' in response.content[:16384]:
                wire.spooled_pages += 1
            if "/spooled/" in request.url:
                wire.segments += 1
            wire.payload_bytes += len(response.content)
            return response

        requests.Session.send = send

    def count_when_read(self, response) -> None:
        read = response.raw.read

        def counted(*args, **kwargs):
            data = read(*args, **kwargs)
            if b'"segments"' in data[:16384]:
                self.spooled_pages += 1
            self.payload_bytes += len(data)
            return data

        response.raw.read = counted

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "payload_bytes": self.payload_bytes,
            "gzip_answers": self.gzip,
            "segments": self.segments,
            "spooled_pages": self.spooled_pages,
            "protocol": "spooled" if self.spooled_pages else "direct",
            "asked_spooling": self.asked_spooling,
        }


def _host_port(url: str) -> tuple[str, int, str]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80), parsed.scheme


def _plain_client(cfg: dict[str, Any], via_gateway: bool):
    import trino

    if via_gateway:
        host, port, scheme = _host_port(cfg["gateway_url"])
        return trino.dbapi.connect(
            host=host,
            port=port,
            http_scheme=scheme,
            user=cfg["user"],
            auth=trino.auth.JWTAuthentication(cfg["token"]),
            allow_insecure_auth=scheme == "http",
        )
    host, port, scheme = _host_port(cfg["trino_url"])
    return trino.dbapi.connect(
        host=host,
        port=port,
        http_scheme=scheme,
        user=cfg["user"],
        auth=trino.auth.BasicAuthentication(cfg["trino_user"], cfg["trino_password"]),
    )


def _jupysql(cfg: dict[str, Any], via_gateway: bool):
    import sqlalchemy
    import trino
    from IPython.core.interactiveshell import InteractiveShell

    if via_gateway:
        host, port, scheme = _host_port(cfg["gateway_url"])
        args = {
            "auth": trino.auth.JWTAuthentication(cfg["token"]),
            "http_scheme": scheme,
            "allow_insecure_auth": scheme == "http",
        }
    else:
        host, port, scheme = _host_port(cfg["trino_url"])
        args = {
            "auth": trino.auth.BasicAuthentication(cfg["trino_user"], cfg["trino_password"]),
            "http_scheme": scheme,
        }
    engine = sqlalchemy.create_engine(
        f"trino://{cfg['user']}@{host}:{port}/tpch", connect_args={**args, "user": cfg["user"]}
    )
    ip = InteractiveShell.instance()
    ip.user_ns["engine"] = engine
    ip.run_line_magic("load_ext", "sql")
    ip.run_line_magic("config", "SqlMagic.autopandas = True")
    ip.run_line_magic("config", "SqlMagic.displaylimit = 10")
    ip.run_line_magic("sql", "engine")
    ip.run_line_magic("sql", "SELECT 1")
    return ip


def _without_spooling() -> None:
    """Make the magic ask for the direct protocol (``run_query(spooling=False)``), to set
    the spooled protocol beside the direct one on the same stack."""
    import functools

    from datahub.extensions import query, sql

    if "spooling" not in inspect.signature(query.run_query).parameters:
        raise SystemExit("datahub-gateway-direct: this %sql has no spooling to turn off")
    sql.run_query = functools.partial(query.run_query, spooling=False)


def _drain(cfg: dict[str, Any], sql: str, encodings: str):
    """Trino's side of shipping the rows: the protocol loop straight to Trino asking for
    *encodings* (``drain``: what the trino client asks for, spooled ``json+zstd`` where
    offered), every page and segment downloaded and acknowledged, nothing decompressed or
    converted."""
    import orjson
    import pandas as pd
    import requests

    host, port, scheme = _host_port(cfg["trino_url"])
    session = requests.Session()
    session.auth = (cfg["trino_user"], cfg["trino_password"])
    storage = requests.Session()
    headers = {
        "X-Trino-User": cfg["user"],
        "X-Trino-Source": "datahub-benchmark-drain",
        "X-Trino-Query-Data-Encoding": encodings,
    }

    def run():
        received = 0
        response = session.post(
            f"{scheme}://{host}:{port}/v1/statement", data=sql.encode(), headers=headers
        )
        while True:
            response.raise_for_status()
            received += len(response.content)
            page = orjson.loads(response.content)
            if page.get("error"):
                raise SystemExit(f"drain: {page['error'].get('message')}")
            data = page.get("data")
            if isinstance(data, dict):
                for segment in data.get("segments") or ():
                    if segment.get("type") != "spooled":
                        continue
                    extra = {k: v[0] for k, v in (segment.get("headers") or {}).items()}
                    # Trino's credentials go to Trino only, not to the storage's
                    # pre-signed URIs (`--spooling storage`), which refuse them.
                    on_trino = segment["uri"].startswith(f"{scheme}://{host}:{port}/")
                    got = (session if on_trino else storage).get(segment["uri"], headers=extra)
                    got.raise_for_status()
                    received += len(got.content)
                    if segment.get("ackUri"):
                        session.get(segment["ackUri"])
            if not page.get("nextUri"):
                return pd.DataFrame({"received": [received]})
            response = session.get(page["nextUri"], headers={"X-Trino-User": cfg["user"]})

    return run


def setup(name: str, cfg: dict[str, Any], sql: str):
    """Everything before the clock starts (imports, connecting, a first query); returns the
    function that runs *sql* into a DataFrame (or, for the floor, its one row)."""
    if name in ("datahub-gateway", "datahub-gateway-direct"):
        from IPython.core.interactiveshell import InteractiveShell

        if name == "datahub-gateway-direct":
            _without_spooling()

        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "datahub.extensions.sql")
        ip.run_line_magic("config", f"SqlMagic.gateway_url = {cfg['gateway_url']!r}")
        ip.run_line_magic("config", f"SqlMagic.token = {cfg['token']!r}")
        ip.run_line_magic("sql", "SELECT 1")
        return lambda: ip.run_line_magic("sql", sql)

    if name in ("trino-gateway", "trino-direct", "floor"):
        import pandas as pd

        conn = _plain_client(cfg, via_gateway=name == "trino-gateway")
        conn.cursor().execute("SELECT 1").fetchall()

        def run():
            cursor = conn.cursor()
            cursor.execute(sql)
            rows = cursor.fetchall()
            return pd.DataFrame(rows, columns=[d[0] for d in cursor.description])

        return run

    if name in DRAIN_ENCODINGS:
        return _drain(cfg, sql, DRAIN_ENCODINGS[name])

    if name in ("jupysql-gateway", "jupysql-direct"):
        ip = _jupysql(cfg, via_gateway=name == "jupysql-gateway")
        return lambda: ip.run_line_magic("sql", sql)

    raise SystemExit(f"unknown competitor {name!r}")


def worker(name: str, cfg: dict[str, Any], sql: str, unordered: bool) -> None:
    """Set up, say READY, wait for the go, measure one query, print the numbers, then the
    digest of the normalised frame (after the peak memory was read)."""
    wire = Wire()
    wire.install()
    run = setup(name, cfg, sql)
    wire.reset()  # count the measured query only
    print(READY, flush=True)
    sys.stdin.readline()
    before = _rss()
    cpu_before = _cpu()
    start = time.perf_counter()
    frame = run()
    wall = time.perf_counter() - start
    cpu = _cpu() - cpu_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before": before,
        "peak_rss": peak,
        "peak_over": peak - before,
        "rows": len(frame),
        "frame_bytes": int(frame.memory_usage(deep=True).sum()),
        "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
        **wire.summary(),
    }
    print(RESULT + json.dumps(result), flush=True)
    if name in NOT_FRAMES:
        rows = int(frame.iloc[0, 0]) if name == "floor" else -1
        digest = {"rows": rows, "digest": "", "columns": {}}
    else:
        # Unordered: the same rows in any order (a sort of a 5M-row frame of Python
        # objects would need twice its memory).
        digest = measure.frame_digest(frame, ordered=not unordered)
    print(DIGEST + json.dumps(digest), flush=True)


@functools.cache
def kernel_env() -> dict[str, str]:
    """The environment DataHub's kernelspec gives a kernel (``MALLOC_ARENA_MAX``): every
    competitor runs as it would in a user's DataHub kernel."""
    from datahub.spawners.mixin import KERNEL_SPEC

    return json.loads(KERNEL_SPEC.read_text()).get("env", {})


def run_worker(
    name: str,
    cfg_file: Path,
    sql: str,
    pids: dict[str, int | None],
    unordered: bool,
    timeout: float = 900,
) -> dict[str, Any]:
    """One measured run in a fresh process; the other processes on the path are watched
    from here while it runs. A run that takes longer than *timeout* seconds is killed and
    fails the benchmark (a hung client must not hang the suite)."""
    cfg = json.loads(cfg_file.read_text())
    # Trino's self-signed certificate for the direct clients (requests reads this).
    env = {**os.environ, **kernel_env()}
    env.update({"REQUESTS_CA_BUNDLE": cfg["trino_ca"], "PYTHONUNBUFFERED": "1"})
    command = [sys.executable, __file__, "--worker", name, "--config", str(cfg_file)]
    command += ["--sql", sql] + (["--unordered-rows"] if unordered else [])
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )

        killer = threading.Timer(timeout, proc.kill)
        killer.start()

        def line_starting(prefix: str) -> str:
            for line in proc.stdout:
                if line.startswith(prefix):
                    return line.rstrip("\n")
            proc.wait()
            killer.cancel()
            stderr.seek(0)
            why = f"killed after {timeout:.0f} s" if proc.returncode == -9 else "failed"
            raise SystemExit(f"{name} {why} (exit {proc.returncode}):\n{stderr.read()[-3000:]}")

        line_starting(READY)
        on_path = {"gateway": pids["gateway"], "hub": pids["hub"]} if name in VIA_GATEWAY else {}
        # Trino and the storage it spools into work for every competitor.
        engine = {"trino": pids["trino"], "storage": pids["storage"]}
        watch = measure.ProcessWatch({**on_path, **engine}).start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(line_starting(RESULT).removeprefix(RESULT))
        result["others"] = watch.stop()
        result["digest"] = json.loads(line_starting(DIGEST).removeprefix(DIGEST))
        proc.stdin.close()
        proc.wait(timeout=120)
        killer.cancel()
    return result


# --------------------------------------------------------------------------- report


def _mib(n: float) -> str:
    return f"{n / measure.MiB:,.0f} MiB"


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Medians per competitor of every figure the report shows."""
    med = measure.median
    out = {}
    for name, runs in results.items():
        if not runs:
            continue

        def other(proc: str, key: str, runs=runs) -> float:
            values = [r["others"][proc][key] for r in runs if proc in r["others"]]
            return med(values) if values else float("nan")

        out[name] = {
            "wall_s": med(r["wall_s"] for r in runs),
            "client_cpu_s": med(r["cpu_s"] for r in runs),
            "client_peak_over": med(r["peak_over"] for r in runs),
            "client_peak_rss": med(r["peak_rss"] for r in runs),
            "frame_bytes": med(r["frame_bytes"] for r in runs),
            "gateway_cpu_s": other("gateway", "cpu_s"),
            "gateway_peak_over": other("gateway", "peak_over"),
            "hub_cpu_s": other("hub", "cpu_s"),
            "trino_cpu_s": other("trino", "cpu_s"),
            "storage_cpu_s": other("storage", "cpu_s"),
            "rows": runs[0]["digest"]["rows"],
            "requests": med(r["requests"] for r in runs),
            "payload_bytes": med(r["payload_bytes"] for r in runs),
            "gzip": runs[0]["gzip_answers"] > 0,
            "protocol": runs[0]["protocol"],
        }
    return out


def report(
    results: dict[str, list[dict[str, Any]]], sql: str, runs: int, env: dict[str, Any]
) -> str:
    s = summarise(results)
    nan = float("nan")
    floor = s.get("floor", {}).get("wall_s", nan)
    lines = [
        f"`{sql}` into a DataFrame: {max(r['rows'] for r in s.values()):,} rows, median of {runs} "
        "interleaved runs, each in a fresh process; every frame equal after type "
        f"normalisation. {measure.describe_environment(env)}; load average "
        f"{env['load_average']} before, {env.get('load_average_after')} after.",
        "",
        "| competitor | wall | × floor | client CPU | client peak memory "
        "| gateway CPU / peak memory | hub CPU | on-path CPU (no Trino) | Trino CPU "
        "| storage CPU | protocol, received | runs (wall s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, label in COMPETITORS.items():
        if name not in s:
            continue
        r = s[name]
        walls = ", ".join(f"{x['wall_s']:.1f}" for x in results[name])
        via = name in VIA_GATEWAY
        gateway = f"{r['gateway_cpu_s']:.1f} s / {_mib(r['gateway_peak_over'])}" if via else "–"
        hub = f"{r['hub_cpu_s']:.2f} s" if via else "–"
        path_cpu = r["client_cpu_s"] + (r["gateway_cpu_s"] + r["hub_cpu_s"] if via else 0)
        storage = "–" if math.isnan(r["storage_cpu_s"]) else f"{r['storage_cpu_s']:.1f} s"
        wire = (
            f"{r['protocol']}, {r['payload_bytes'] / 1e6:,.0f} MB"
            f"{', gzip' if r['gzip'] else ''}, {r['requests']:.0f} requests"
        )
        lines.append(
            f"| {label} | {r['wall_s']:.2f} s | {r['wall_s'] / floor:.2f}× "
            f"| {r['client_cpu_s']:.1f} s | +{_mib(r['client_peak_over'])} | {gateway} | {hub} "
            f"| {path_cpu:.1f} s | {r['trino_cpu_s']:.1f} s | {storage} | {wire} | {walls} |"
        )
    lines.append("")
    lines.append(f"Physical floor (Trino's own scan, aggregate over the same rows): {floor:.2f} s.")
    if "datahub-gateway" in s:
        ours = s["datahub-gateway"]

        def by_round(name: str) -> str:
            # DataHub's run over the competitor's in the same round: how far one run's
            # spread moves the ratio (too few runs for an interval).
            pairs = zip(results["datahub-gateway"], results[name], strict=True)
            return ", ".join(f"{a['wall_s'] / b['wall_s']:.2f}" for a, b in pairs)

        lines.append("")
        lines.append(
            "| DataHub %sql against | wall | wall, round by round | client peak memory "
            "| on-path CPU |"
        )
        lines.append("|---|---:|---|---:|---:|")
        for name in ("trino-gateway", "trino-direct", "jupysql-gateway", "jupysql-direct"):
            if name not in s:
                continue
            them = s[name]
            ours_cpu = ours["client_cpu_s"] + ours["gateway_cpu_s"] + ours["hub_cpu_s"]
            them_cpu = them["client_cpu_s"] + (
                them["gateway_cpu_s"] + them["hub_cpu_s"] if name in VIA_GATEWAY else 0
            )
            lines.append(
                f"| {COMPETITORS[name]} | {ours['wall_s'] / them['wall_s']:.2f}× "
                f"| {by_round(name)} "
                f"| {ours['client_peak_over'] / them['client_peak_over']:.2f}× "
                f"| {ours_cpu / them_cpu:.2f}× |"
            )
        if "drain" in s:
            drain = s["drain"]["wall_s"]
            lines.append(
                f"| Trino shipping the rows (drain) | {ours['wall_s'] / drain:.2f}× "
                f"| {by_round('drain')} | | |"
            )
        lines.append(f"| Trino's own scan (floor) | {ours['wall_s'] / floor:.2f}× | | | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    from datahub.cli import SPOOLING

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Without --gateway-url it starts (and stops) its own local stack.",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="rows to fetch, about: the whole lineitem table of the tpch scale factor "
        "ROWS / 6,000,000 (default 1,000,000)",
    )
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--competitors",
        default=",".join(COMPETITORS),
        help=f"comma list of competitors (default all: {','.join(COMPETITORS)})",
    )
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="no ORDER BY in the query (the frames are then compared as sets of rows): for "
        "sizes Trino cannot sort within the local stack's query memory (512 MB)",
    )
    parser.add_argument(
        "--spooling",
        choices=tuple(SPOOLING),
        help="start the local stack with Trino's spooling protocol in this retrieval mode, "
        "as `datahub up --spooling` does: proxy = segments through Trino's coordinator and "
        "the gateway; storage = straight from the storage (S3Proxy) with pre-signed URIs; "
        "redirect = the coordinator redirects to the storage; off = the direct protocol "
        "only (default: the stack's default, proxy); the report says which protocol each "
        "client actually used",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="unmeasured rounds of the full query first, with the clients that do least "
        "(the drain, then %%sql on each protocol): Trino's JIT keeps speeding it up for "
        "several runs (default 3)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=1800,
        help="seconds one run may take before it is killed and the benchmark fails (default 1800)",
    )
    parser.add_argument("--user", default="alice", help="hub user the queries run as")
    parser.add_argument("--gateway-url", help="an existing stack's gateway (else start one)")
    parser.add_argument("--token", help="hub token of --user for the gateway")
    parser.add_argument("--trino-url", help="the same stack's Trino, e.g. https://host:8443")
    parser.add_argument("--trino-user", help="service account allowed to impersonate --user")
    parser.add_argument("--trino-password", help="that service account's password")
    parser.add_argument("--trino-ca", help="PEM of Trino's certificate")
    parser.add_argument("--hub-pid", type=int, help="the hub's process id (existing stack)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--profile-trino",
        type=Path,
        metavar="FILE.jfr",
        help="record Trino's JVM with Java Flight Recorder during the measured rounds into "
        "FILE.jfr and report, for each competitor, the share of Trino's CPU samples in each "
        "part of the work (scan, sort, JSON encoding, compression, HTTP, ...); Trino must "
        "run on this machine",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sql", help=argparse.SUPPRESS)
    parser.add_argument("--unordered-rows", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker(args.worker, json.loads(args.config.read_text()), args.sql, args.unordered_rows)
        return

    names = [n.strip() for n in args.competitors.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPETITORS]
    if unknown:
        parser.error(f"unknown competitors {unknown}; choose from {list(COMPETITORS)}")
    scale = scale_for(args.rows)
    sql = FETCH_SQL.format(scale=scale) + ("" if args.unordered else ORDER)
    floor_sql = FLOOR_SQL.format(scale=scale)

    if args.gateway_url:
        cfg = {
            "gateway_url": args.gateway_url,
            "token": args.token,
            "trino_url": args.trino_url,
            "trino_user": args.trino_user,
            "trino_password": args.trino_password,
            "trino_ca": args.trino_ca,
            "user": args.user,
        }
        missing = [k for k, v in cfg.items() if not v]
        if missing:
            parser.error(f"with --gateway-url also give: {', '.join(missing)}")
        stack = given_stack({**cfg, "hub_pid": args.hub_pid})
    else:
        print("Starting a local stack ...", file=sys.stderr, flush=True)
        stack = local_stack(args.user, args.spooling)

    env = measure.environment("trino", "pandas", "pyarrow", "jupysql", "sqlalchemy", "ipython")
    if not args.gateway_url:
        env["spooling"] = args.spooling or "proxy (the stack's default)"
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with stack as cfg, tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "config.json"
        cfg_file.touch(mode=0o600)
        cfg_file.write_text(json.dumps(cfg))
        pids = path_pids(cfg)
        print(f"Processes on the path: {pids}", file=sys.stderr, flush=True)
        # Warm Trino up (JIT, tpch generators) and the gateway's pools before measuring,
        # then run the measured query itself, unmeasured, for --warmup rounds with the
        # clients that do least, on both protocols and through the gateway: Trino gets
        # faster at the full query over several runs (with one such round, the first two
        # competitors of round 1 took 1.16-1.29x their later runs, the others 0.97-1.08x),
        # and that would land on whoever comes first.
        warm = FETCH_SQL.format(scale=scale_for(min(args.rows, 100_000)))
        for name in ("trino-direct", "datahub-gateway"):
            run_worker(name, cfg_file, warm, pids, True, args.run_timeout)
        for _ in range(args.warmup):
            for name in ("drain", "datahub-gateway-direct", "datahub-gateway"):
                run_worker(name, cfg_file, sql, pids, args.unordered, args.run_timeout)
        run_worker("floor", cfg_file, floor_sql, pids, False, args.run_timeout)
        env["warmup_rounds"] = args.warmup
        env["load_average"] = [round(x, 1) for x in os.getloadavg()]
        reference: dict[str, Any] | None = None
        windows: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        recording = None
        if args.profile_trino:
            if not pids.get("trino"):
                parser.error("--profile-trino needs Trino running on this machine")
            recording = trino_profile.Recording(pids["trino"], args.profile_trino)
            recording.start()
        for round_ in range(args.runs):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                is_floor = name == "floor"
                started = time.time()
                result = run_worker(
                    name,
                    cfg_file,
                    floor_sql if is_floor else sql,
                    pids,
                    unordered=args.unordered,
                    timeout=args.run_timeout,
                )
                windows[name].append((started, time.time()))
                results[name].append(result)
                digest = result["digest"]
                if reference is None and name not in NOT_FRAMES:
                    reference = {"competitor": name, **digest}
                if reference is not None and name not in DRAIN_ENCODINGS:
                    if is_floor:
                        if digest["rows"] != reference["rows"]:
                            raise SystemExit(
                                f"RESULTS DIFFER: the floor counted {digest['rows']} rows, "
                                f"{reference['competitor']} fetched {reference['rows']}"
                            )
                    else:
                        run = f"{name} (run {round_ + 1})"
                        measure.check_equal({reference["competitor"]: reference, run: digest})
                rows = f"{digest['rows']:,} rows" if digest["rows"] >= 0 else "not decoded"
                print(
                    f"round {round_ + 1}: {name} {result['wall_s']:.2f} s, client CPU "
                    f"{result['cpu_s']:.1f} s, peak +{_mib(result['peak_over'])}, {rows}",
                    file=sys.stderr,
                    flush=True,
                )
        env["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
        if recording is not None:
            recording.stop()
    profile = {}
    print(report(results, sql, args.runs, env))
    if recording is not None:
        profile = trino_profile.split(recording.samples(), windows)
        print()
        print(trino_profile.report(profile, COMPETITORS))
    if args.json:
        measured = {"sql": sql, "environment": env, "runs": results}
        if profile:
            measured["trino_profile"] = {n: dict(c) for n, c in profile.items()}
        args.json.write_text(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
