"""A segment's JSON rows straight into typed columns (datahub.json_rows and
ResultBuilder.decode): the same DataFrame as parsing the rows into Python objects first,
for every Trino type, nulls, nested values, escapes and awkward strings, at any block size."""

import json
from decimal import Decimal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

from datahub import json_rows
from datahub.json_rows import NotText, split_rows
from datahub.results import ResultBuilder

#: One column per Trino type the DataFrame conversion handles, with values as Trino's
#: JSON encoding sends them (and a NULL in every column).
TYPES = {
    "tinyint": [1, -128, None],
    "smallint": [300, -2, None],
    "integer": [2**31 - 1, 0, None],
    "bigint": [2**63 - 1, -(2**63), None],
    "real": [1.5, "NaN", None],
    "double": [1.0e-4, "-Infinity", None],
    "decimal(38,2)": ["12345678901234567890123456789012345.67", "-0.01", None],
    "boolean": [True, False, None],
    "varchar": ['a "quoted" ],[ value', "\u00e9\u4e2d\U0001f600 \\ \n\t/", None],
    "char(3)": ["ab ", "   ", None],
    "json": ['{"a":[1,2]}', "[]", None],
    "uuid": ["12151fd2-7586-11e9-8f9e-2a86e4085a59", "00000000-0000-0000-0000-000000000000", None],
    "ipaddress": ["10.0.0.1", "2001:db8::1", None],
    "interval year to month": ["1-2", "-0-3", None],
    "date": ["2024-02-29", "1970-01-01", None],
    "timestamp(3)": ["2024-02-29 10:11:12.345", "1970-01-01 00:00:00.000", None],
    "timestamp(9)": ["2024-02-29 10:11:12.123456789", "1900-01-01 00:00:00.000000001", None],
    "timestamp(3) with time zone": [
        "2024-02-29 10:11:12.345 Europe/Berlin",
        "2024-07-01 00:00:00.000 Europe/Berlin",
        None,
    ],
    "time(3)": ["10:11:12.345", "00:00:00.000", None],
    "time(3) with time zone": ["10:11:12.345+05:30", "23:59:59.999-08:00", None],
    "interval day to second": ["2 03:04:05.678", "-0 00:00:01.000", None],
    "varbinary": ["AAEC", "", None],
    "array(varchar)": [["a,b", "],[", None], [], None],
    "map(varchar, bigint)": [{"k": 1, "]": None}, {}, None],
    "row(a integer, b varchar)": [[1, "x"], [None, None], None],
    "row(integer, double)": [[1, 2.5], [2, "NaN"], None],
    "array(row(d date, t timestamp(3)))": [[["2024-01-01", "2024-01-01 00:00:00.000"]], [], None],
    "unknown": [None, None, None],
}


def frames(columns, rows, block=json_rows.BLOCK_BYTES):
    """The frame from Python rows (the reference) and from the JSON bytes, decoded."""
    reference = ResultBuilder(columns)
    reference.add(rows)
    decoded = ResultBuilder(columns)
    plain = orjson.dumps(rows)
    original = json_rows.BLOCK_BYTES
    json_rows.BLOCK_BYTES = block
    try:
        decoded.append(decoded.decode(plain))
    finally:
        json_rows.BLOCK_BYTES = original
    return reference.frame(), decoded.frame()


def assert_same(reference: pd.DataFrame, decoded: pd.DataFrame) -> None:
    assert list(decoded.columns) == list(reference.columns)
    assert list(decoded.dtypes.astype(str)) == list(reference.dtypes.astype(str))
    pd.testing.assert_frame_equal(decoded, reference)


def test_every_type_decodes_to_the_same_frame_as_python_rows():
    columns = [{"name": t, "type": t} for t in TYPES]
    rows = [list(values) for values in zip(*TYPES.values(), strict=True)]
    reference, decoded = frames(columns, rows)
    assert_same(reference, decoded)
    # The decoder did not fall back for the scalar columns: a real split happened.
    assert split_rows(orjson.dumps(rows), len(columns)) is not None
    assert decoded["bigint"].tolist()[:2] == [2**63 - 1, -(2**63)]
    assert decoded["decimal(38,2)"][0] == Decimal("12345678901234567890123456789012345.67")
    assert decoded["varchar"].tolist()[:2] == TYPES["varchar"][:2]
    assert decoded["array(varchar)"][0] == ["a,b", "],[", None]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_blocks_cut_anywhere_give_the_same_values(block):
    # Tiny blocks cut inside strings, escapes and numbers.
    columns = [{"name": t, "type": t} for t in ("varchar", "bigint", "array(varchar)")]
    rows = [['x\\"],["\\\\', 12345, ['"', "\\"]], ["\\u00e9 ]", -1, None], [None, None, []]]
    reference, decoded = frames(columns, rows, block=block)
    assert_same(reference, decoded)
    assert decoded["varchar"].tolist()[:2] == ['x\\"],["\\\\', "\\u00e9 ]"]


def test_unicode_escapes_and_escaped_quotes_are_decoded():
    plain = b'[["\\u00e9\\"],[\\\\",1],["\\ud83d\\ude00",2]]'
    rows = split_rows(plain, 2)
    assert rows is not None
    assert rows.column(0).strings().to_pylist() == ['é"],[\\', "\U0001f600"]
    assert rows.column(1).parse(pa.int64()).to_pylist() == [1, 2]


def test_whitespace_around_values_is_allowed():
    plain = json.dumps([[1, "a b", None, True], [2, " ", 3.5, False]], indent=1).encode()
    rows = split_rows(plain, 4)
    assert rows is not None
    assert rows.column(0).parse(pa.int64()).to_pylist() == [1, 2]
    assert rows.column(1).strings().to_pylist() == ["a b", " "]
    assert rows.column(2).parse(pa.float64()).to_pylist() == [None, 3.5]
    assert rows.column(3).booleans().to_pylist() == [True, False]


def test_an_empty_segment_has_no_rows_and_keeps_the_dtypes():
    columns = [{"name": "n", "type": "bigint"}, {"name": "s", "type": "varchar"}]
    rows = split_rows(b"[]", 2)
    assert rows is not None and len(rows) == 0
    builder = ResultBuilder(columns)
    builder.append(builder.decode(b"[]"))
    frame = builder.frame()
    assert len(frame) == 0 and list(frame.dtypes.astype(str)) == ["Int64", "string"]


@pytest.mark.parametrize(
    "plain",
    [
        b"[1,2]",  # not rows
        b"[[1,2],[3]]",  # rows of another width
        b"[[1,2],{}]",  # an object among the rows
        b"[[1,2]] [[3,4]]",  # something after the array
        b"[[1,2]",  # unbalanced
        b"[[1,,2]]",  # an empty value
        b"",
    ],
)
def test_what_is_not_an_array_of_rows_is_left_to_the_json_parser(plain):
    assert split_rows(plain, 2) is None


def test_a_value_of_another_kind_is_refused_not_guessed():
    rows = split_rows(b'[[1,"a"],["2",null]]', 2)
    assert rows is not None
    with pytest.raises(NotText):
        rows.column(0).strings()
    with pytest.raises(NotText):
        rows.column(1).parse(pa.int64())
    with pytest.raises(NotText):
        rows.column(1).booleans()
    assert rows.column(0).python() == [1, "2"]


def test_a_text_column_with_a_number_in_it_keeps_python_values():
    columns = [{"name": "v", "type": "varchar"}]
    reference, decoded = frames(columns, [["a"], [1], [None]])
    assert decoded["v"].tolist() == ["a", 1, None] == reference["v"].tolist()


def test_the_fallback_parses_a_segment_the_splitter_refuses():
    builder = ResultBuilder([{"name": "n", "type": "bigint"}])
    builder.append(builder.decode(b"[[1],\n[2], [3]]"))  # whitespace between rows is fine too
    builder.append(builder.decode(b"[[4]]"))
    assert builder.frame()["n"].tolist() == [1, 2, 3, 4]


def test_many_rows_and_segments_join_in_order():
    columns = [
        {"name": "k", "type": "bigint"},
        {"name": "d", "type": "date"},
        {"name": "s", "type": "varchar(10)"},
        {"name": "x", "type": "double"},
    ]
    builder = ResultBuilder(columns)
    expected = []
    for segment in range(3):
        rows = [
            [i, f"2024-01-{1 + i % 28:02d}", f"s{i}" if i % 5 else None, i / 4]
            for i in range(segment * 5000, (segment + 1) * 5000)
        ]
        expected.extend(rows)
        builder.append(builder.decode(orjson.dumps(rows)))
    frame = builder.frame()
    assert len(frame) == 15000
    assert frame["k"].tolist() == list(range(15000))
    assert frame["s"].isna().sum() == 3000
    assert np.allclose(frame["x"].to_numpy(), np.arange(15000) / 4)
    assert frame["d"].iloc[27] == pd.Timestamp("2024-01-28")
