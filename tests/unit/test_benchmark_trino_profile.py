"""The fetch benchmark's profile of Trino: which part of the work each JFR sample was in,
and which run it fell in (benchmarks/trino_profile.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import trino_profile  # noqa: E402

#: Stacks (leaf first) as Trino 476's JFR samples show them while it ships sorted rows.
ZSTD = [
    "java.lang.invoke.LambdaForm$MH.0x0000000020a40c00.invoke",
    "io.airlift.compress.v3.zstd.ZstdNative.compress",
    "io.trino.server.protocol.spooling.encoding.CompressedQueryDataEncoder.encode",
    "io.trino.operator.OutputSpoolingOperator.spool",
    "io.trino.operator.Driver.processInternal",
]
JSON = [
    "com.fasterxml.jackson.core.io.schubfach.DoubleToDecimal.toChars1",
    "io.trino.server.protocol.JsonEncodingUtils$TypeObjectValueEncoder.encode",
    "io.trino.server.protocol.spooling.encoding.JsonQueryDataEncoder.encodeTo",
    "io.trino.server.protocol.spooling.encoding.CompressedQueryDataEncoder.encode",
    "io.trino.operator.Driver.processInternal",
]
SCAN = [
    "java.lang.String.<init>",
    "io.trino.tpch.TextPool.getText",
    "io.trino.plugin.tpch.TpchPageSource.getNextSourcePage",
    "io.trino.operator.TableScanOperator.getOutput",
]
CHECKSUM = [
    "io.airlift.slice.XxHash64.updateTail",
    "io.airlift.slice.XxHash64.hash",
    "io.trino.spi.type.AbstractVariableWidthType$DefaultComparableOperators.xxHash64Operator",
    "io.trino.$gen.checksumAccumulator_20261204_161727_52.addInput",
    "io.trino.operator.aggregation.Aggregator.processPage",
]
MERGE = [
    "io.trino.spi.block.VariableWidthBlockBuilder.ensureCapacity",
    "io.trino.util.MergeSortedPages$PageWithPosition.appendTo",
    "io.trino.operator.Driver.processInternal",
]


def test_a_sample_belongs_to_the_part_its_nearest_frame_names():
    # The JSON encoder's samples sit inside the compressing encoder's call: the leaf's
    # part wins, so compression and encoding are told apart.
    assert trino_profile.part_of(ZSTD) == "compression (zstd, lz4)"
    assert trino_profile.part_of(JSON) == "JSON encoding"
    assert trino_profile.part_of(SCAN) == "scan (tpch generating rows)"
    assert trino_profile.part_of(MERGE) == "sort and merge"
    assert trino_profile.part_of(CHECKSUM) == "aggregation (the floor's checksums)"
    assert trino_profile.part_of(["java.lang.Thread.run"]) == trino_profile.OTHER
    assert trino_profile.part_of([]) == trino_profile.OTHER


def test_samples_count_for_the_run_whose_window_holds_them():
    samples = [(1.0, SCAN), (2.0, JSON), (2.5, ZSTD), (5.0, SCAN), (9.0, JSON)]
    windows = {"drain": [(1.5, 3.0), (8.0, 10.0)], "floor": [(0.5, 1.2), (4.0, 6.0)]}
    counts = trino_profile.split(samples, windows)
    assert counts["drain"] == {"JSON encoding": 2, "compression (zstd, lz4)": 1}
    assert counts["floor"] == {"scan (tpch generating rows)": 2}


def test_samples_between_runs_are_left_out():
    counts = trino_profile.split([(3.5, SCAN)], {"drain": [(1.0, 3.0)], "floor": [(4.0, 5.0)]})
    assert sum(counts["drain"].values()) == sum(counts["floor"].values()) == 0


def test_the_report_gives_each_parts_share_of_each_runs_samples():
    counts = trino_profile.split(
        [(1.0, SCAN), (1.1, JSON), (1.2, JSON), (1.3, ZSTD), (5.0, SCAN)],
        {"drain": [(0.0, 2.0)], "floor": [(4.0, 6.0)], "idle": [(7.0, 8.0)]},
    )
    table = trino_profile.report(counts, {"drain": "Trino shipping the rows"})
    assert "| part | Trino shipping the rows | floor |" in table
    assert "| JSON encoding | 50% | 0% |" in table
    assert "| scan (tpch generating rows) | 25% | 100% |" in table
    assert "| samples | 4 | 1 |" in table
    assert "idle" not in table  # no samples: no column
