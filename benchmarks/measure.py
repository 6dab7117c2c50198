"""What the benchmarks share: the processes on a path and what they spend, frames compared
after type normalisation, percentiles, the local stack with a signed-in user, and the
facts of a run (code version, load, versions).

Not a benchmark itself; ``fetch.py``, ``gateway.py`` and ``charts.py`` import it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
MiB = 2**20


# --------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], p: float) -> float:
    """The *p*-th percentile with linear interpolation (numpy's default)."""
    return float(np.percentile(np.asarray(list(values), dtype=float), p))


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


def added_percentile_interval(
    values: Iterable[float],
    base: Iterable[float],
    p: float,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 18,
) -> tuple[float, float]:
    """How sure the difference of the *p*-th percentiles of *values* and *base* is: the
    central *confidence* interval of that difference over *resamples* bootstrap
    resamples. The two lists are paired by index (run *i* of each was taken in the same
    round, side by side), so rounds are resampled whole and a slow moment of the machine
    stays on both sides."""
    a = np.asarray(list(values), dtype=float)
    b = np.asarray(list(base), dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired samples of the same non-zero length are needed")
    rounds = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    diffs = np.percentile(a[rounds], p, axis=1) - np.percentile(b[rounds], p, axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


def verdict(interval: tuple[float, float], target: float) -> str:
    """Whether a figure whose *interval* is known meets an upper *target*: "met" (all of
    the interval within it), "missed" (all of it above) or "not decided" (it straddles
    the target: the run cannot tell)."""
    low, high = interval
    if high <= target:
        return "met"
    if low > target:
        return "missed"
    return "not decided"


# --------------------------------------------------------------------------- processes


def pid_listening(port: int) -> int | None:
    """The process listening on TCP *port* on this machine (``None`` if none we can see)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


class ProcessWatch:
    """CPU seconds and peak resident memory of named processes over a window.

    ``start()`` takes each process's CPU time and resident size; a thread samples the
    resident size every *interval* seconds; ``stop()`` returns, per name, ``cpu_s`` (user +
    system, all threads), ``rss_before``, ``peak_rss`` and ``peak_over`` (peak minus the size
    at start), in bytes. Sampling can miss a spike shorter than the interval; a client that
    can read its own ``ru_maxrss`` reports that instead.
    """

    def __init__(self, pids: Mapping[str, int | None], interval: float = 0.02):
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: dict[str, float] = {}
        self._rss: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def _sample(self) -> None:
        for name, proc in self.procs.items():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            if rss > self._peak.get(name, 0):
                self._peak[name] = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> ProcessWatch:
        for name, proc in self.procs.items():
            self._cpu[name] = _cpu_seconds(proc)
            self._rss[name] = self._peak[name] = proc.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        out = {}
        for name, proc in self.procs.items():
            try:
                cpu = _cpu_seconds(proc) - self._cpu[name]
            except psutil.Error:
                cpu = float("nan")
            out[name] = {
                "cpu_s": cpu,
                "rss_before": self._rss[name],
                "peak_rss": self._peak[name],
                "peak_over": self._peak[name] - self._rss[name],
            }
        return out


# --------------------------------------------------------------------------- frames


def _kind(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    first = series.dropna()
    first = first.iloc[0] if len(first) else None
    if isinstance(first, dt.datetime | dt.date):
        return "datetime"
    if isinstance(first, bool):
        return "bool"
    if isinstance(first, int):
        return "int"
    if isinstance(first, float):
        return "float"
    return "str"


def normalise(series: pd.Series) -> tuple[str, np.ndarray]:
    """One canonical array for a column, whatever type a client gave it: integers as
    int64 (nullable ones too, NULL as the minimum), floats as float64, dates and
    timestamps as int64 nanoseconds (``NaT`` as the minimum), text as Python strings."""
    kind = _kind(series)
    if kind in ("int", "bool"):
        values = pd.array(series, dtype="Int64").to_numpy(dtype="int64", na_value=-(2**63))
    elif kind == "float":
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    elif kind == "datetime":
        stamps = pd.to_datetime(series).astype("datetime64[ns]")
        values = stamps.to_numpy().view("int64")
    else:
        values = np.asarray(series.astype(object).where(series.notna(), None), dtype=object)
        values = np.array([None if v is None else str(v) for v in values], dtype=object)
    return kind, values


def _column_hashes(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return pd.util.hash_array(values, categorize=False)
    return pd.util.hash_array(np.ascontiguousarray(values).view("uint64"), categorize=False)


def frame_digest(frame: pd.DataFrame, ordered: bool = True) -> dict[str, Any]:
    """A digest of *frame* after type normalisation: equal digests mean the same column
    names, the same kind of each column and the same values in the same order (with
    ``ordered=False``, the same rows in any order). Per-column digests say which column
    differs. Column by column, so it needs little memory beyond the frame."""
    columns = {}
    rows = np.zeros(len(frame), dtype="uint64")
    whole = hashlib.sha256()
    for name in frame.columns:
        kind, values = normalise(frame[name])
        hashes = _column_hashes(values)
        h = hashlib.sha256(f"{name}\0{kind}\0".encode())
        h.update((hashes if ordered else np.sort(hashes)).tobytes())
        columns[str(name)] = f"{kind}:{h.hexdigest()[:16]}"
        whole.update(h.digest())
        rows = rows * np.uint64(1_000_003) ^ hashes
    if not ordered:
        whole = hashlib.sha256("\0".join(columns.values()).encode() + np.sort(rows).tobytes())
    return {"rows": len(frame), "digest": whole.hexdigest()[:16], "columns": columns}


def check_equal(digests: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``SystemExit`` naming the competitors and columns that differ, if any do."""
    items = list(digests.items())
    if not items:
        return
    ref_name, ref = items[0]
    problems = []
    for name, other in items[1:]:
        if other["digest"] == ref["digest"]:
            continue
        if other["rows"] != ref["rows"]:
            problems.append(f"{name} has {other['rows']} rows, {ref_name} {ref['rows']}")
        cols = [
            c
            for c in set(ref["columns"]) | set(other["columns"])
            if ref["columns"].get(c) != other["columns"].get(c)
        ]
        problems.append(f"{name} differs from {ref_name} in columns {sorted(cols)}")
    if problems:
        raise SystemExit("RESULTS DIFFER: " + "; ".join(problems))


# --------------------------------------------------------------------------- the stack


def hub_token(hub_url: str, ops_token: str, user: str, password: str) -> str:
    """Sign *user* in through the hub's login form (creating the hub user and their
    groups), then make them a token as the stack's operator service."""
    import requests

    session = requests.Session()
    page = session.get(f"{hub_url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = session.post(
        f"{hub_url}/hub/login",
        data={"username": user, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=60,
    )
    if r.status_code != 302:
        raise SystemExit(f"{user} could not sign in to the hub (HTTP {r.status_code})")
    r = requests.post(
        f"{hub_url}/hub/api/users/{user}/tokens",
        headers={"Authorization": f"token {ops_token}"},
        json={"note": "benchmark", "expires_in": 4 * 3600},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["token"]


def grant_parallel_queries(hub_url: str, admin_token: str, user: str, n: int) -> None:
    """Give *user* a quota policy allowing *n* queries at once (and plenty per day)."""
    import requests

    limits = {"concurrent_queries": n, "queued_queries": n, "queries_per_day": 10_000_000}
    r = requests.put(
        f"{hub_url}/services/datahub/api/quota/policies/user/{user}",
        headers={"Authorization": f"token {admin_token}"},
        json={"limits": limits},
        timeout=30,
    )
    r.raise_for_status()


# --------------------------------------------------------------------------- the run


def code_version() -> str:
    """The commit the benchmark ran, with ``+dirty`` when the tree had changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "datahub", "extensions"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def environment(*packages: str) -> dict[str, Any]:
    """Facts to print with the results: code version, machine, load, package versions."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "code": code_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "python": platform.python_version(),
        **versions,
    }


def describe_environment(env: Mapping[str, Any]) -> str:
    versions = ", ".join(
        f"{k} {v}"
        for k, v in env.items()
        if k not in ("code", "date", "cpus", "memory_gib", "load_average", "python") and v
    )
    return (
        f"code {env['code']}, {env['date']}, {env['cpus']} CPUs, {env['memory_gib']} GiB, "
        f"Python {env['python']}, {versions}"
    )
