"""A segment's or a direct-protocol page's JSON rows straight into typed columns
(datahub.json_rows, datahub.direct_pages, ResultBuilder.decode/convert): the same DataFrame
(and the same rest of the page) as parsing the rows into Python objects first, for every
Trino type, nulls, nested values, escapes and awkward strings, at any block size and in
any key order."""

import json
import random
from decimal import Decimal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

from datahub import direct_pages, json_rows
from datahub.direct_pages import split_page
from datahub.json_rows import JsonRows, NotText, split_array, split_rows
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


def test_whitespace_after_values_only_is_allowed_too():
    rows = split_rows(b'[[1 ,"a b" ],[2\t,null\r\n]]', 2)
    assert rows is not None
    assert rows.column(0).parse(pa.int64()).to_pylist() == [1, 2]
    assert rows.column(1).strings().to_pylist() == ["a b", None]


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


# --------------------------------------------------------------------------- direct pages
# A direct-protocol page's ``data`` found in the page's bytes (datahub.direct_pages) and
# converted like a segment: the same page dict and the same frame as orjson + add().

#: Strings that look like the page's structure: a key, brackets, escapes, quotes.
TRICKY = [
    '"data":[[1]]',
    '{"data":',
    "],[",
    '\\"data\\":',
    "\\",
    '"',
    "}]}",
    "\u00e9\U0001f600",
    "\n\t\u0000",
    "data",
]


def page_bytes(page: dict, *, order=None, indent=False) -> bytes:
    """The page as JSON, its keys in *order* (e.g. as a proxy re-encoding it might)."""
    if order is not None:
        page = {key: page[key] for key in order if key in page}
    return json.dumps(page, indent=1).encode() if indent else orjson.dumps(page)


def split_frames(columns, body: bytes):
    """The frame as today (orjson, then ``add``) and from the split page (``convert``)."""
    reference = ResultBuilder(columns)
    reference.add(orjson.loads(body).get("data") or [])
    page = split_page(body)
    split = ResultBuilder(columns)
    data = page.get("data") or []
    if isinstance(data, JsonRows):
        split.append(split.convert(data))
    else:
        split.add(data)
    return page, reference.frame(), split.frame()


def big_page(columns, rows, **extra) -> dict:
    """A Trino page whose rows fill more than `SMALL_PAGE` (rows repeated)."""
    single = len(orjson.dumps(rows))
    rows = rows * (direct_pages.SMALL_PAGE // max(single, 1) + 2)
    return {
        "id": "q1",
        "infoUri": "http://trino/ui/q1",
        "nextUri": "http://trino/v1/statement/executing/q1/x/2",
        "columns": columns,
        "data": rows,
        "stats": {"state": "RUNNING", "processedRows": len(rows), "rootStage": {"data": []}},
        "warnings": [{"message": '"data":[[1]]'}],
        **extra,
    }


def test_every_type_in_a_direct_page_gives_the_same_frame_as_orjson():
    columns = [{"name": t, "type": t} for t in TYPES]
    rows = [list(values) for values in zip(*TYPES.values(), strict=True)]
    page = big_page(columns, rows)
    split, reference, converted = split_frames(columns, page_bytes(page))
    assert isinstance(split["data"], JsonRows) and len(split["data"]) == len(page["data"])
    assert_same(reference, converted)
    assert {k: v for k, v in split.items() if k != "data"} == {
        k: v for k, v in page.items() if k != "data"
    }


@pytest.mark.parametrize(
    "order",
    [
        ["data", "id", "infoUri", "nextUri", "columns", "stats", "warnings"],
        ["id", "stats", "warnings", "columns", "nextUri", "infoUri", "data"],
        ["warnings", "columns", "data", "stats", "nextUri", "id"],
    ],
)
def test_a_page_in_another_key_order_is_split_the_same(order):
    columns = [{"name": "s", "type": "varchar"}, {"name": "n", "type": "bigint"}]
    rows = [[s, i] for i, s in enumerate(TRICKY)]
    page = big_page(columns, rows)
    for indent in (False, True):
        body = page_bytes(page, order=order, indent=indent)
        split, reference, converted = split_frames(columns, body)
        assert isinstance(split["data"], JsonRows)
        assert_same(reference, converted)
        assert converted["s"].tolist()[: len(TRICKY)] == TRICKY
        assert split["nextUri"] == page["nextUri"] and split["stats"] == page["stats"]


def test_fuzzed_pages_give_the_same_frames_and_pages_as_orjson():
    rng = random.Random(18)
    text = [*TRICKY, "a", " ", "x,y", "\\\\"]
    kinds = {
        "bigint": lambda: rng.randint(-(2**63), 2**63 - 1),
        "integer": lambda: rng.randint(-(2**31), 2**31 - 1),
        "double": lambda: rng.choice([rng.gauss(0, 1e6), "NaN", "Infinity", 0.0, 1e-300]),
        "varchar": lambda: "".join(rng.choices(text, k=rng.randint(0, 4))),
        "boolean": lambda: rng.random() < 0.5,
        "date": lambda: f"{rng.randint(1, 9999):04d}-0{rng.randint(1, 9)}-1{rng.randint(0, 8)}",
        "timestamp(6)": lambda: (
            f"20{rng.randint(10, 40)}-01-02 03:04:05.{rng.randint(0, 999999):06d}"
        ),
        "decimal(10,2)": lambda: f"{rng.randint(-(10**7), 10**7)}.{rng.randint(0, 99):02d}",
        "array(varchar)": lambda: [rng.choice(text) for _ in range(rng.randint(0, 3))],
        "map(varchar, integer)": lambda: {rng.choice(text): rng.randint(0, 9)},
        "row(a varchar, b double)": lambda: [rng.choice(text), rng.gauss(0, 1)],
    }
    keys = ["id", "infoUri", "nextUri", "columns", "data", "stats", "warnings"]
    for _ in range(30):
        names = rng.choices(list(kinds), k=rng.randint(1, 6))
        columns = [{"name": f"c{i}", "type": t} for i, t in enumerate(names)]
        rows = [
            [None if rng.random() < 0.1 else kinds[t]() for t in names]
            for _ in range(rng.randint(1, 40))
        ]
        page = big_page(columns, rows)
        order = rng.sample(keys, len(keys))
        body = page_bytes(page, order=order, indent=rng.random() < 0.2)
        split, reference, converted = split_frames(columns, body)
        assert isinstance(split["data"], JsonRows)
        assert_same(reference, converted)
        assert list(split) == order


def test_pages_without_rows_are_parsed_whole():
    columns = [{"name": "n", "type": "bigint"}]
    padding = {"stats": {"state": "RUNNING", "pad": "x" * direct_pages.SMALL_PAGE}}
    for extra in ({"data": []}, {}, {"data": None}, {"data": {"encoding": "json", "segments": []}}):
        page = {"id": "q", "columns": columns, **padding, **extra}
        assert split_page(orjson.dumps(page)) == page


def test_only_the_top_level_data_key_is_taken_for_the_rows():
    rows = [[1]] * 10_000
    columns = [{"name": "n", "type": "bigint"}]
    decoy = {"x": "data", "y": {"data": [[2]]}, "z": ['"data":[[3]]', {"data": [[4]]}]}
    for body in (
        orjson.dumps({**decoy, "columns": columns, "data": rows}),
        b'{"d\\u0061ta":' + orjson.dumps(rows) + b',"columns":' + orjson.dumps(columns) + b"}",
    ):
        page = split_page(body)
        assert isinstance(page["data"], JsonRows) and page["data"].python() == rows
        assert {k: v for k, v in page.items() if k != "data"} == {
            k: v for k, v in orjson.loads(body).items() if k != "data"
        }


def test_a_page_with_data_twice_or_broken_json_is_left_to_orjson():
    rows = orjson.dumps([[1]] * 10_000)
    twice = b'{"data":' + rows + b',"data":[[2]]}'
    assert split_page(twice) == {"data": [[2]]}  # orjson keeps the last, as before
    with pytest.raises(orjson.JSONDecodeError):
        split_page(b'{"id":x,"data":' + rows + b"}")
    with pytest.raises(orjson.JSONDecodeError):
        split_page(b'{"data":' + rows + b",}")
    assert split_page(b'{"data":' + rows + b"}")["data"].python() == [[1]] * 10_000


def test_rows_of_uneven_width_are_refused():
    assert split_rows(b"[[1,2,3],[4]]", 2) is None
    assert split_array(b"[[1,2],[3]]") is None
    found = split_array(b'{"data":[[1,"]"],[2,"x"]],"n":1}', 8)
    assert found is not None
    rows, end = found
    assert rows.width == 2 and end == 25 and rows.python() == [[1, "]"], [2, "x"]]
