"""Pages the gateway parses and writes back (``pagejson``): what the cluster said reaches the
client unchanged, whichever parser read it."""

from __future__ import annotations

import json

import orjson
import pytest

from datahub.gateway import pagejson

BEYOND_64_BITS = 2**70 + 1


def test_an_integer_beyond_64_bits_is_written_back_as_it_came():
    body = b'{"id":"q1","data":[[%d,1]],"stats":{}}' % BEYOND_64_BITS
    # The attack on a fast-path-only parser: orjson reads it as a float, losing digits.
    assert orjson.loads(body)["data"][0][0] != BEYOND_64_BITS
    page, dumps = pagejson.loads(body)
    assert page["data"][0][0] == BEYOND_64_BITS
    assert dumps(page) == body


def test_nan_is_read_and_written_back():
    body = b'{"id":"q1","data":[[NaN]]}'
    with pytest.raises(ValueError):
        orjson.loads(body)
    page, dumps = pagejson.loads(body)
    assert dumps(page) == body


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"20261203_202157_00012_abcde","stats":{"cpuTimeMillis":1234567}}',
        # 19 digits in a string: a false alarm, the page still reads the same.
        b'{"id":"q1","data":[["1234567890123456789012"]],"n":9223372036854775807}',
        '{"id":"q1","data":[["Zürich ✓"]]}'.encode(),
    ],
)
def test_any_other_page_reads_and_writes_back_the_same(body):
    page, dumps = pagejson.loads(body)
    assert page == json.loads(body)
    assert json.loads(dumps(page)) == json.loads(body)


def test_a_page_not_json_is_refused():
    with pytest.raises(ValueError):
        pagejson.loads(b"<html>Bad Gateway</html>")
    # Read as a result page: only a JSON object is one.
    assert pagejson.loads_page(b"<html>Bad Gateway</html>") is None
    assert pagejson.loads_page(b"[1, 2]") is None
    page, dumps = pagejson.loads_page(b'{"id":"q1"}')
    assert page == {"id": "q1"} and dumps(page) == b'{"id":"q1"}'


def test_the_fast_writer_writes_a_long_integer_put_in_later():
    page, dumps = pagejson.loads(b'{"data":[]}')
    page["data"] = [[BEYOND_64_BITS]]
    assert json.loads(dumps(page))["data"] == [[BEYOND_64_BITS]]


def test_a_page_made_of_two_pages_is_written_by_the_writer_both_allow():
    fast = pagejson.loads(b"{}")[1]
    slow = pagejson.loads(b"[NaN]")[1]
    assert pagejson.common(fast, fast) is fast
    assert pagejson.common(fast, slow) is pagejson.stdlib_dumps
    assert pagejson.common(slow, fast) is pagejson.stdlib_dumps
