"""The direct protocol's large pages, decoded without a Python object per value
(`datahub.direct_pages`), against the real gateway and Trino: every type the protocol
carries gives the same frame as the spooled protocol's segments and as a small page
parsed with orjson.

A gateway runs in-process (`BackgroundGateway`) in front of the test stack's Trino, which
has spooling configured, so one query can be asked for either protocol."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from datahub.extensions import query
from datahub.extensions.query import run_query
from datahub.json_rows import JsonRows
from datahub.testing import BackgroundGateway, gateway_connection

SECRET = b"direct-pages-test-secret-0123456789abcdef"
SCOPE = "access:services!service=datahub"
TOKENS = {"alice-token": {"kind": "user", "name": "alice", "scopes": [SCOPE], "groups": []}}


def _all_types() -> list[tuple]:
    """The (column, type, literal, ...) table of test_sql_types.py, one place for it."""
    path = Path(__file__).with_name("test_sql_types.py")
    spec = importlib.util.spec_from_file_location("_sql_types", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TYPES


TYPES = _all_types()
#: Text that looks like a page's structure, with escapes.
TRICKY = """'"data":[["x"]]},\\ ' || chr(10) || '"' || chr(9) || 'ünï'"""


def all_types_sql(copies: int) -> str:
    """A row of every type and a row of their NULLs, *copies* times over, in order."""
    values = ", ".join([literal for _, _, literal, *_ in TYPES] + [TRICKY])
    nulls = ", ".join([f"CAST(NULL AS {type_})" for _, type_, *_ in TYPES] + ["NULL"])
    names = ", ".join([name for name, *_ in TYPES] + ["c_tricky"])
    return (
        f"SELECT k, t.* FROM (VALUES ({values}), ({nulls})) AS t({names}) "
        f"CROSS JOIN UNNEST(sequence(1, {copies})) AS s(k) ORDER BY k, c_tinyint NULLS LAST"
    )


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=tmp_path_factory.mktemp("direct-pages-gateway"),
        secret=SECRET,
    )
    yield running
    running.close()


@pytest.fixture
def split_pages(monkeypatch):
    """How many pages the kernel left as JSON rows (split, not parsed whole)."""
    split = []

    def recorded(body: bytes):
        page = query_split_page(body)
        split.append(isinstance(page.get("data"), JsonRows))
        return page

    query_split_page = query.split_page
    monkeypatch.setattr(query, "split_page", recorded)
    return split


def test_every_type_in_large_direct_pages_is_the_spooled_protocols_frame(gateway, split_pages):
    sql = all_types_sql(400)
    direct = run_query(gateway_connection(gateway), sql, spooling=False)
    assert any(split_pages), "no direct page was large enough to be split"
    split_pages.clear()
    spooled = run_query(gateway_connection(gateway), sql)
    assert not any(split_pages)  # its pages hold segments
    assert len(direct.frame) == 800
    assert list(direct.frame.dtypes.astype(str)) == list(spooled.frame.dtypes.astype(str))
    pd.testing.assert_frame_equal(direct.frame, spooled.frame)
    tricky = direct.frame["c_tricky"]
    assert tricky[0] == '"data":[["x"]]},\\ \n"\tünï' and tricky.isna().sum() == 400


def test_large_direct_pages_give_the_frame_of_a_small_page(gateway, split_pages):
    small = run_query(gateway_connection(gateway), all_types_sql(1), spooling=False)
    assert not any(split_pages)  # two rows: parsed whole, as before
    large = run_query(gateway_connection(gateway), all_types_sql(400), spooling=False)
    assert any(split_pages)
    last = large.frame.drop(columns="k").iloc[-2:].reset_index(drop=True)
    pd.testing.assert_frame_equal(last, small.frame.drop(columns="k"))
