"""A Presto result page's rows pass through the translation as bytes when no column's
values read otherwise in Trino (`presto.translate_page`): the page is what translating it
whole gives, byte for byte, whatever its rows' strings hold; any other page is translated
whole, as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from datahub.gateway import presto

COLUMNS = [
    {"name": "k", "type": "bigint", "typeSignature": {"rawType": "bigint", "typeArguments": []}},
    {"name": "s", "type": "varchar", "typeSignature": {"rawType": "varchar"}},
]
#: Strings that look like the page's own keys, escapes and non-ASCII text.
TRICKY = ['"data":[1]', ',"stats":{"state":"X"}', "back\\slash", "ünï ✓", "]", '"}']


def presto_page(rows: list[list[Any]], columns: list[dict[str, Any]] = COLUMNS, **extra: Any):
    doc = {
        "id": "20261203_000000_00001_abcde",
        "infoUri": "https://presto:8443/ui/query.html?20261203_000000_00001_abcde",
        "nextUri": "https://presto:8443/v1/statement/executing/Q/1?slug=x",
        "columns": columns,
        "data": rows,
        "stats": {"state": "RUNNING", "processedRows": 7, "rootStage": {"stageId": "0"}},
        "warnings": [],
        **extra,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def whole(body: bytes) -> bytes:
    """The translation of the page parsed whole (what the gateway did before)."""
    doc = presto.translate_document(json.loads(body))
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def splits(monkeypatch):
    """The rows each translated page kept as bytes."""
    seen: list[bytes] = []
    with_rows = presto._with_rows

    def recorded(page, rows: bytes):
        seen.append(rows)
        return with_rows(page, rows)

    monkeypatch.setattr(presto, "_with_rows", recorded)
    return seen


def test_rows_pass_as_bytes_and_the_page_is_its_whole_translation(splits):
    rows = [[i, TRICKY[i % len(TRICKY)]] for i in range(3000)] + [[None, None]]
    body = presto_page(rows)
    out = presto.translate_page(body)
    assert out == whole(body)
    assert json.loads(splits[0]) == rows
    page = json.loads(out)
    assert list(page)[:3] == ["id", "infoUri", "nextUri"]
    assert page["columns"][0]["typeSignature"]["rawType"] == "bigint"
    assert page["stats"]["state"] == "RUNNING" and "rootStage" not in page["stats"]


def test_rows_keep_integers_beyond_64_bits_as_presto_wrote_them(splits):
    body = presto_page([[1, "a"]]).replace(b"[[1,", b"[[123456789012345678901234567890,")
    assert b"123456789012345678901234567890" in presto.translate_page(body)
    assert splits


def test_a_page_whose_values_read_otherwise_is_translated_whole(splits):
    columns = [{"name": "a", "type": "array(bigint)"}, {"name": "s", "type": "varchar"}]
    rows = [["[ 1, null, 3 ]", s] for s in TRICKY * 100]
    body = presto_page(rows, columns)
    out = presto.translate_page(body)
    assert out == whole(body) and not splits
    assert json.loads(out)["data"][0] == [[1, None, 3], TRICKY[0]]


def test_an_exact_translation_when_orjson_would_read_a_value_otherwise():
    columns = [{"name": "a", "type": "array(double)"}, {"name": "k", "type": "bigint"}]
    body = presto_page([["[ 1.5 ]", 18446744073709551616]], columns)
    assert json.loads(presto.translate_page(body))["data"] == [[[1.5], 18446744073709551616]]
    nan = presto_page([["[ 1.5 ]", 1]], columns, stats={"state": "RUNNING", "x": float("nan")})
    assert presto.translate_page(nan) == whole(nan)


@pytest.mark.parametrize(
    "body",
    [
        # Keys in another order: stats before data.
        json.dumps({"id": "Q", "stats": {"state": "X"}, "columns": COLUMNS, "data": [[1, "x"]]}),
        # No rows; an error; data twice.
        json.dumps({"id": "Q", "nextUri": "https://p/1", "stats": {"state": "QUEUED"}}),
        json.dumps({"id": "Q", "stats": {"state": "FAILED"}, "error": {"message": "m", "x": 1}}),
        '{"id":"Q","columns":[],"data":[[1]],"stats":{"state":"X"},"data":[[2]]}',
    ],
)
def test_other_pages_are_their_whole_translation(body, splits):
    assert presto.translate_page(body.encode()) == whole(body.encode())
    assert not splits


def test_what_is_not_a_page_is_left_as_it_is():
    assert presto.translate_page(b"<html>busy</html>") == b"<html>busy</html>"
    assert presto.translate_page(b"[1,2]") == b"[1,2]"
