"""Trino types → pandas dtypes, with the raw JSON values Trino sends (datahub.results)."""

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from datahub.results import (
    ColumnBuilder,
    ResultBuilder,
    TrinoType,
    convert_column,
    pandas_dtype,
    parse_type,
    to_dataframe,
)


def col(values, type_):
    return pd.Series(convert_column(values, type_))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bigint", TrinoType("bigint")),
        ("decimal(12,2)", TrinoType("decimal", (12, 2))),
        ("varchar(25)", TrinoType("varchar", (25,))),
        ("timestamp(3) with time zone", TrinoType("timestamp with time zone", (3,))),
        ("INTERVAL DAY TO SECOND", TrinoType("interval day to second")),
        ("array(varchar)", TrinoType("array", (), (TrinoType("varchar"),))),
        (
            "map(varchar, bigint)",
            TrinoType("map", (), (TrinoType("varchar"), TrinoType("bigint"))),
        ),
    ],
)
def test_parse_type_reads_raw_type_strings(text, expected):
    assert parse_type(text) == expected


def test_parse_type_keeps_row_field_names_and_multiword_types():
    t = parse_type('row(a integer, "b c" varchar, d timestamp(6) with time zone, double)')
    assert [c.field_name for c in t.children] == ["a", "b c", "d", None]
    assert [c.name for c in t.children] == [
        "integer",
        "varchar",
        "timestamp with time zone",
        "double",
    ]


@pytest.mark.parametrize(
    ("type_", "dtype"),
    [("tinyint", "Int8"), ("smallint", "Int16"), ("integer", "Int32"), ("bigint", "Int64")],
)
def test_integers_become_nullable_ints_with_na(type_, dtype):
    s = col([1, None, -3], type_)
    assert str(s.dtype) == dtype
    assert s.iloc[0] == 1 and s.iloc[2] == -3
    assert s.iloc[1] is pd.NA


def test_bigint_keeps_full_64_bit_range():
    s = col([2**63 - 1, -(2**63)], "bigint")
    assert s.tolist() == [2**63 - 1, -(2**63)]


def test_double_handles_special_strings_and_null():
    s = col([1.5, "NaN", "Infinity", "-Infinity", None], "double")
    assert s.dtype == np.float64
    assert s.iloc[0] == 1.5 and np.isnan(s.iloc[1]) and s.iloc[2] == np.inf
    assert s.iloc[3] == -np.inf and np.isnan(s.iloc[4])


def test_real_is_float32():
    assert col([1.25, None], "real").dtype == np.float32


def test_decimal_keeps_every_digit_and_null():
    s = col(["12345678901234567890.123456789", None], "decimal(29,9)")
    assert s.dtype == object
    assert s.iloc[0] == Decimal("12345678901234567890.123456789")
    assert s.iloc[1] is None


def test_text_types_are_string_dtype_with_na():
    for type_ in ("varchar", "varchar(3)", "char(3)", "json", "uuid", "ipaddress"):
        s = col(["ab", None], type_)
        assert s.dtype == pd.StringDtype("pyarrow"), type_
        assert s.iloc[0] == "ab" and s.iloc[1] is pd.NA


def test_boolean_is_nullable_boolean():
    s = col([True, False, None], "boolean")
    assert str(s.dtype) == "boolean"
    assert s.iloc[1] is np.False_ or s.iloc[1] is False or not s.iloc[1]
    assert s.iloc[2] is pd.NA


def test_date_is_datetime64_seconds_with_nat():
    s = col(["2020-02-03", "1969-12-31", None], "date")
    assert s.dtype == np.dtype("datetime64[s]")
    assert s.iloc[0] == pd.Timestamp("2020-02-03") and s.iloc[1] == pd.Timestamp("1969-12-31")
    assert s.iloc[2] is pd.NaT


def test_timestamp_precision_picks_the_unit():
    s = col(["2020-01-01 00:00:00.123", None], "timestamp(3)")
    assert s.dtype == np.dtype("datetime64[us]")
    assert s.iloc[0] == pd.Timestamp("2020-01-01 00:00:00.123") and s.iloc[1] is pd.NaT
    s = col(["2020-01-01 00:00:00.123456789012"], "timestamp(12)")
    assert s.dtype == np.dtype("datetime64[ns]")
    assert s.iloc[0] == pd.Timestamp("2020-01-01 00:00:00.123456789")


def test_timestamp_with_time_zone_is_tz_aware():
    s = col(["2020-01-01 00:00:00.000 UTC", None], "timestamp(3) with time zone")
    assert str(s.dt.tz) == "UTC"
    assert s.iloc[0] == pd.Timestamp("2020-01-01", tz="UTC") and s.iloc[1] is pd.NaT
    s = col(["2020-06-01 12:00:00 Europe/Berlin"], "timestamp(0) with time zone")
    assert str(s.dt.tz) == "Europe/Berlin"
    assert s.iloc[0] == pd.Timestamp("2020-06-01 10:00", tz="UTC")
    s = col(["2020-01-01 00:00:00 +05:30"], "timestamp(0) with time zone")
    assert s.iloc[0] == pd.Timestamp("2019-12-31 18:30", tz="UTC")


def test_mixed_zones_are_normalised_to_utc():
    s = col(
        ["2020-01-01 00:00:00 UTC", "2020-01-01 00:00:00 Europe/Berlin", None],
        "timestamp(0) with time zone",
    )
    assert str(s.dt.tz) == "UTC"
    assert s.iloc[1] == pd.Timestamp("2019-12-31 23:00", tz="UTC")
    assert s.iloc[2] is pd.NaT


def test_all_null_timestamp_with_time_zone_is_still_datetime():
    s = col([None, None], "timestamp(3) with time zone")
    assert pd.api.types.is_datetime64_any_dtype(s.dtype)
    assert s.isna().all()


def test_time_values_are_python_times():
    s = col(["01:02:03.456", None], "time(3)")
    assert s.iloc[0] == dt.time(1, 2, 3, 456000) and s.iloc[1] is None
    t = col(["01:02:03+05:30"], "time(0) with time zone").iloc[0]
    assert t.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_varbinary_is_bytes():
    s = col(["AQI=", None], "varbinary")
    assert s.iloc[0] == b"\x01\x02" and s.iloc[1] is None


def test_interval_day_to_second_is_timedelta():
    s = col(["2 03:04:05.678", "-1 00:00:00.000", None], "interval day to second")
    assert s.dtype == np.dtype("timedelta64[ns]")
    assert s.iloc[0] == pd.Timedelta(days=2, hours=3, minutes=4, seconds=5.678)
    assert s.iloc[1] == pd.Timedelta(days=-1) and s.iloc[2] is pd.NaT


def test_structural_types_become_python_objects_with_converted_elements():
    arr = col([[1, None], None], "array(integer)")
    assert arr.iloc[0] == [1, None] and arr.iloc[1] is None
    m = col([{"a": "1.50"}], "map(varchar, decimal(3,2))")
    assert m.iloc[0] == {"a": Decimal("1.50")}
    r = col([[1, "2020-01-01", "NaN"]], "row(a integer, b date, c double)")
    value = r.iloc[0]
    assert value["a"] == 1 and value["b"] == dt.date(2020, 1, 1) and np.isnan(value["c"])
    unnamed = col([[1, "x"]], "row(integer, varchar)")
    assert unnamed.iloc[0] == (1, "x")
    nested = col(
        [[[1, "2020-01-01 00:00:00.000 UTC"]]],
        "array(row(a integer, t timestamp(3) with time zone))",
    )
    assert nested.iloc[0][0]["t"] == pd.Timestamp("2020-01-01", tz="UTC")


def test_unknown_type_null_literal():
    s = col([None], "unknown")
    assert s.dtype == object and s.iloc[0] is None


def test_to_dataframe_builds_typed_columns_in_order():
    columns = [
        {"name": "k", "type": "bigint"},
        {"name": "v", "type": "varchar"},
        {"name": "d", "type": "date"},
    ]
    df = to_dataframe(columns, [[1, "a", "2020-01-01"], [None, None, None]])
    assert list(df.columns) == ["k", "v", "d"]
    assert [str(t) for t in df.dtypes] == ["Int64", "string", "datetime64[s]"]
    assert df.isna().iloc[1].all()


def test_to_dataframe_empty_result_keeps_columns_and_dtypes():
    df = to_dataframe([{"name": "k", "type": "integer"}, {"name": "s", "type": "varchar"}], [])
    assert len(df) == 0 and list(df.columns) == ["k", "s"]
    assert str(df.dtypes["k"]) == "Int32"


def test_to_dataframe_allows_duplicate_column_names():
    df = to_dataframe([{"name": "_col0", "type": "integer"}] * 2, [[1, 2]])
    assert df.shape == (1, 2) and df.iloc[0].tolist() == [1, 2]


def test_pandas_dtype_matches_convert_column():
    for type_, values in [
        ("bigint", [1]),
        ("double", [1.0]),
        ("boolean", [True]),
        ("date", ["2020-01-01"]),
        ("timestamp(6)", ["2020-01-01 00:00:00.000000"]),
        ("varchar", ["x"]),
        ("decimal(3,1)", ["1.0"]),
    ]:
        assert pd.Series(convert_column(values, type_)).dtype == pandas_dtype(type_), type_


def test_result_builder_joins_pages_into_one_typed_frame():
    columns = [
        {"name": "k", "type": "bigint"},
        {"name": "x", "type": "double"},
        {"name": "s", "type": "varchar"},
        {"name": "d", "type": "date"},
        {"name": "t", "type": "timestamp(3) with time zone"},
        {"name": "m", "type": "decimal(5,2)"},
    ]
    builder = ResultBuilder(columns)
    builder.add([[1, 1.5, "a", "2020-01-01", "2020-01-01 00:00:00.000 UTC", "1.00"]])
    builder.add([])  # pages without rows (stats only) change nothing
    builder.add([[None, "NaN", None, None, "2020-06-01 12:00:00.000 Europe/Berlin", None]])
    assert builder.rows == 2
    df = builder.frame()
    assert [str(t) for t in df.dtypes] == [
        "Int64",
        "float64",
        "string",
        "datetime64[s]",
        "datetime64[us, UTC]",  # zones differ between pages: normalised to UTC
        "object",
    ]
    assert df["k"].tolist()[0] == 1 and df["k"].isna().tolist() == [False, True]
    assert np.isnan(df["x"].iloc[1]) and df["s"].iloc[1] is pd.NA
    assert df["t"].iloc[1] == pd.Timestamp("2020-06-01 10:00", tz="UTC")
    assert df["m"].tolist() == [Decimal("1.00"), None]


def test_text_column_with_values_that_are_not_strings_keeps_them_as_objects():
    builder = ColumnBuilder("varchar")
    builder.add(["a", "b"])
    builder.add([{"not": "a string"}])  # an unexpected shape for a text type
    values = pd.Series(builder.finish())
    assert values.tolist() == ["a", "b", {"not": "a string"}]


def test_empty_result_of_every_kind_keeps_its_dtype():
    for type_, dtype in [
        ("bigint", "Int64"),
        ("double", "float64"),
        ("boolean", "boolean"),
        ("date", "datetime64[s]"),
        ("timestamp(6)", "datetime64[us]"),
        ("timestamp(3) with time zone", "datetime64[us, UTC]"),
        ("interval day to second", "timedelta64[ns]"),
        ("varchar", "string"),
        ("array(integer)", "object"),
    ]:
        assert str(pd.Series(ColumnBuilder(type_).finish()).dtype) == dtype, type_


def test_a_kernel_with_the_sql_extension_converts_results_on_the_c_heap():
    # A fresh interpreter, as a kernel is: pyarrow's own allocator until %load_ext, then
    # the C heap, where a converted segment's Arrow arrays are allocated.
    code = """
import orjson, pyarrow as pa
from IPython.testing import globalipapp
from datahub.results import ResultBuilder
print(pa.default_memory_pool().backend_name)
globalipapp.start_ipython()
globalipapp.get_ipython().run_line_magic("load_ext", "datahub.extensions.sql")
print(pa.default_memory_pool().backend_name)
before = pa.system_memory_pool().bytes_allocated()
builder = ResultBuilder([{"name": "s", "type": "varchar"}])
pieces = builder.decode(orjson.dumps([["x" * 50] for _ in range(10_000)]))
print(pa.system_memory_pool().bytes_allocated() - before > 500_000)
"""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after, allocated = done.stdout.split()
    assert before != "system"
    assert (after, allocated) == ("system", "True")
