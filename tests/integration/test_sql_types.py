"""Every Trino type through the real gateway: its pandas dtype, its value, and its NULL.

One query returns a row of values and a row of NULLs for each type, so the whole table
costs one round trip."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from datahub.testing import assert_value_and_null

NA, NAT = pd.NA, pd.NaT

#: (column, Trino type, literal, pandas dtype, value, NULL)
TYPES = [
    ("c_tinyint", "tinyint", "TINYINT '-128'", "Int8", -128, NA),
    ("c_smallint", "smallint", "SMALLINT '32767'", "Int16", 32767, NA),
    ("c_integer", "integer", "2147483647", "Int32", 2147483647, NA),
    ("c_bigint", "bigint", "BIGINT '-9223372036854775808'", "Int64", -(2**63), NA),
    ("c_real", "real", "REAL '1.5'", "float32", 1.5, np.nan),
    ("c_double", "double", "DOUBLE '2.5e300'", "float64", 2.5e300, np.nan),
    ("c_nan", "double", "nan()", "float64", np.nan, np.nan),
    ("c_inf", "double", "-infinity()", "float64", -np.inf, np.nan),
    (
        "c_decimal",
        "decimal(38,9)",
        "DECIMAL '12345678901234567890123456789.123456789'",
        "object",
        Decimal("12345678901234567890123456789.123456789"),
        None,
    ),
    ("c_decimal_short", "decimal(3,2)", "DECIMAL '1.10'", "object", Decimal("1.10"), None),
    ("c_varchar", "varchar", "'ünï ✓'", "string", "ünï ✓", NA),
    ("c_char", "char(4)", "CAST('ab' AS char(4))", "string", "ab  ", NA),
    ("c_boolean", "boolean", "true", "boolean", True, NA),
    ("c_date", "date", "DATE '2024-02-29'", "datetime64[s]", pd.Timestamp("2024-02-29"), NAT),
    ("c_old_date", "date", "DATE '0001-01-01'", "datetime64[s]", pd.Timestamp("0001-01-01"), NAT),
    ("c_time", "time(3)", "TIME '01:02:03.456'", "object", dt.time(1, 2, 3, 456000), None),
    (
        "c_time_tz",
        "time(3) with time zone",
        "TIME '01:02:03.456 +05:30'",
        "object",
        dt.time(1, 2, 3, 456000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        None,
    ),
    (
        "c_timestamp",
        "timestamp(3)",
        "TIMESTAMP '2024-01-02 03:04:05.123'",
        "datetime64[us]",
        pd.Timestamp("2024-01-02 03:04:05.123"),
        NAT,
    ),
    (
        "c_timestamp_9",
        "timestamp(9)",
        "TIMESTAMP '2024-01-02 03:04:05.123456789'",
        "datetime64[ns]",
        pd.Timestamp("2024-01-02 03:04:05.123456789"),
        NAT,
    ),
    (
        "c_timestamp_tz",
        "timestamp(3) with time zone",
        "TIMESTAMP '2024-06-01 12:00:00.000 Europe/Berlin'",
        "datetime64[us, Europe/Berlin]",
        pd.Timestamp("2024-06-01 12:00", tz="Europe/Berlin"),
        NAT,
    ),
    (
        "c_interval_ds",
        "interval day to second",
        "INTERVAL '2 03:04:05.678' DAY TO SECOND",
        "timedelta64[ns]",
        pd.Timedelta(days=2, hours=3, minutes=4, seconds=5.678),
        NAT,
    ),
    (
        "c_interval_ym",
        "interval year to month",
        "INTERVAL '1-2' YEAR TO MONTH",
        "string",
        "1-2",
        NA,
    ),
    ("c_json", "json", """JSON '{"a":[1,2]}'""", "string", '{"a":[1,2]}', NA),
    (
        "c_uuid",
        "uuid",
        "UUID '12151fd2-7586-11e9-8f9e-2a86e4085a59'",
        "string",
        "12151fd2-7586-11e9-8f9e-2a86e4085a59",
        NA,
    ),
    ("c_ipaddress", "ipaddress", "IPADDRESS '10.0.0.1'", "string", "10.0.0.1", NA),
    ("c_varbinary", "varbinary", "X'00ff'", "object", b"\x00\xff", None),
    ("c_array", "array(integer)", "ARRAY[1, NULL, 3]", "object", [1, None, 3], None),
    (
        "c_map",
        "map(varchar, decimal(2,1))",
        "MAP(ARRAY['a'], ARRAY[DECIMAL '1.5'])",
        "object",
        {"a": Decimal("1.5")},
        None,
    ),
    (
        "c_row",
        "row(a integer, b varchar)",
        "CAST(ROW(1, 'x') AS ROW(a integer, b varchar))",
        "object",
        {"a": 1, "b": "x"},
        None,
    ),
    (
        "c_nested",
        "array(row(k integer, ds array(date), m map(varchar, timestamp(3))))",
        "ARRAY[CAST(ROW(1, ARRAY[DATE '2024-01-01', NULL], MAP(ARRAY['t'], "
        "ARRAY[TIMESTAMP '2024-01-01 00:00:00.000'])) "
        "AS ROW(k integer, ds array(date), m map(varchar, timestamp(3))))]",
        "object",
        [
            {
                "k": 1,
                "ds": [dt.date(2024, 1, 1), None],
                "m": {"t": pd.Timestamp("2024-01-01")},
            }
        ],
        None,
    ),
]


@pytest.fixture(scope="module")
def frame(stack, users):
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    shell.run_line_magic("config", f"SqlMagic.gateway_url = {stack.settings['gateway_url']!r}")
    shell.run_line_magic("config", f"SqlMagic.token = {users.token('alice')!r}")
    values = ", ".join(literal for _, _, literal, *_ in TYPES)
    nulls = ", ".join(f"CAST(NULL AS {type_})" for _, type_, *_ in TYPES)
    names = ", ".join(name for name, *_ in TYPES)
    with capture_output() as out:
        result = shell.run_cell(
            f"%%sql --chart none\nSELECT * FROM (VALUES ({values}), ({nulls})) AS t({names})"
        )
    assert result.error_in_exec is None, out.stdout
    return result.result


@pytest.mark.parametrize(
    ("name", "dtype", "value", "null"),
    [(name, dtype, value, null) for name, _, _, dtype, value, null in TYPES],
    ids=[name.removeprefix("c_") for name, *_ in TYPES],
)
def test_type_has_its_dtype_value_and_null(frame, name, dtype, value, null):
    column = frame[name]
    assert_value_and_null(column, dtype, value, null)
    assert column.isna().tolist()[1]
