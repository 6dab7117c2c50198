"""Where Trino's CPU goes during benchmark runs: a Java Flight Recorder recording of the
Trino JVM (``jcmd``, from the same Java runtime), its execution samples read with ``jfr``
and split by the part of the work each was in and by the run it fell in.

A sample belongs to the part named by its nearest frame (leaf first) that names one:
the scan (the tpch connector generating rows, what the floor's aggregate does too), the
floor's aggregation, the sort, JSON encoding of the result, its compression, Trino's
HTTP server (the protocol's responses and the segments it proxies), exchanges between
its stages, and the spooling storage client. ``fetch.py --profile-trino FILE`` records
its measured rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

#: The parts of Trino's work, each with what names it in a frame (``package.Class.method``).
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scan (tpch generating rows)", ("io.trino.tpch.", "io.trino.plugin.tpch.")),
    ("aggregation (the floor's checksums)", ("io.trino.operator.aggregation.", "Aggregat")),
    ("sort and merge", ("PagesIndex", "OrderByOperator", "MergeOperator", "MergeSortedPages")),
    ("JSON encoding", ("JsonEncodingUtils", "spooling.encoding.Json", "fasterxml.jackson.core.")),
    ("compression (zstd, lz4)", ("io.airlift.compress.",)),
    ("spooling storage client", ("software.amazon.", "filesystem.s3", "io.trino.spooling.")),
    ("exchange between stages", ("io.trino.execution.buffer.", "Exchange")),
    ("HTTP server (responses, proxied segments)", ("org.eclipse.jetty.", "airlift.http.server.")),
)
OTHER = "other"


def part_of(frames: Sequence[str]) -> str:
    """The part of the work a sample with *frames* (leaf first) was in."""
    for frame in frames:
        for part, names in PARTS:
            if any(name in frame for name in names):
                return part
    return OTHER


def split(
    samples: Iterable[tuple[float, Sequence[str]]], windows: dict[str, list[tuple[float, float]]]
) -> dict[str, Counter[str]]:
    """Samples (time, frames) counted by part for each name whose time *windows* (start,
    end) hold them; samples in no window are left out."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in windows}
    for at, frames in samples:
        for name, spans in windows.items():
            if any(start <= at <= end for start, end in spans):
                counts[name][part_of(frames)] += 1
                break
    return counts


def tool(pid: int, name: str) -> Path:
    """The JDK tool *name* (``jcmd``, ``jfr``) of the Java runtime process *pid* runs."""
    path = Path(os.readlink(f"/proc/{pid}/exe")).parent / name
    if not path.exists():
        raise SystemExit(f"--profile-trino needs {path}: Trino's Java runtime has no {name}")
    return path


class Recording:
    """A JFR recording of the JVM *pid* (``default`` settings: a sample every 20 ms)."""

    NAME = "datahub-benchmark"

    def __init__(self, pid: int, path: Path) -> None:
        self.pid, self.path = pid, path.resolve()
        self.jcmd, self.jfr = tool(pid, "jcmd"), tool(pid, "jfr")

    def _jcmd(self, *command: str) -> None:
        subprocess.run(
            [str(self.jcmd), str(self.pid), *command], check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        self._jcmd("JFR.start", f"name={self.NAME}", "settings=default")

    def stop(self) -> None:
        """Stop recording and write it to the path."""
        self._jcmd("JFR.stop", f"name={self.NAME}", f"filename={self.path}")

    def samples(self) -> list[tuple[float, list[str]]]:
        """The recording's execution samples: (time, frames leaf first)."""
        out = subprocess.run(
            [str(self.jfr), "print", "--json", "--stack-depth", "64"]
            + ["--events", "jdk.ExecutionSample", str(self.path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [_sample(event["values"]) for event in json.loads(out)["recording"]["events"]]


def _sample(values: dict) -> tuple[float, list[str]]:
    at = datetime.fromisoformat(values["startTime"]).timestamp()
    frames = [
        f"{f['method']['type']['name']}.{f['method']['name']}".replace("/", ".")
        for f in values["stackTrace"]["frames"]
    ]
    return at, frames


def report(counts: dict[str, Counter[str]], labels: dict[str, str]) -> str:
    """A Markdown table: for each run name, the share of Trino's samples in each part."""
    names = [n for n in counts if sum(counts[n].values())]
    parts = [p for p, _ in PARTS] + [OTHER]
    lines = [
        "Trino's CPU by part of the work (JFR execution samples during each competitor's runs):",
        "",
        "| part | " + " | ".join(labels.get(n, n) for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for part in parts:
        cells = [f"{counts[n][part] / sum(counts[n].values()):.0%}" for n in names]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    lines.append("| samples | " + " | ".join(f"{sum(counts[n].values()):,}" for n in names) + " |")
    return "\n".join(lines)
