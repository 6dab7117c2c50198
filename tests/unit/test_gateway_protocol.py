"""The gateway's pure protocol logic: headers, signed follow-ups, page rewriting, errors."""

from __future__ import annotations

import copy
import json

import pytest
from trino.client import TrinoRequest
from trino.exceptions import TrinoExternalError, TrinoUserError

from datahub import wire
from datahub.gateway import collapse, protocol, rewrite, signing
from datahub.gateway.rewrite import ResultRewriter
from datahub.gateway.signing import FollowupError, FollowupSigner

CLUSTER = "https://127.0.0.1:8443"
GATEWAY = "http://gw:10101"
SIGNER = FollowupSigner(b"0123456789abcdef0123456789abcdef")


def to_gateway(uri: str) -> str:
    return SIGNER.gateway_uri(GATEWAY, "main", "alice", uri)


def trino_page(**overrides) -> dict:
    """A QueryResults page in Trino's key order."""
    qid = "20260101_000000_00001_abcde"
    page = {
        "id": qid,
        "infoUri": f"{CLUSTER}/ui/query.html?{qid}",
        "partialCancelUri": f"{CLUSTER}/v1/statement/executing/partialCancel/{qid}/0/yslug/3",
        "nextUri": f"{CLUSTER}/v1/statement/executing/{qid}/yslug/3",
        "columns": [{"name": "m", "type": "map(varchar, varchar)"}],
        "data": [[{"nextUri": "https://evil", "stats": "x"}], [{"infoUri": "https://evil/ui"}]],
        "stats": {"state": "RUNNING", "processedRows": 42, "cpuTimeMillis": 7},
        "warnings": [],
    }
    page.update(overrides)
    return {k: v for k, v in page.items() if v is not None}


def compact(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# ------------------------------------------------------------------------- headers


def test_session_headers_pass_and_identity_headers_are_replaced():
    client = [
        ("X-Trino-Catalog", "tpch"),
        ("X-Trino-Schema", "tiny"),
        ("X-Trino-Session", "a=1"),
        ("X-Trino-Session", "b=2"),
        ("X-Trino-Role", "hive=ROLE{analyst}"),
        ("X-Trino-Client-Tags", "x,y"),
        ("X-Trino-Prepared-Statement", "p=SELECT+1"),
        ("X-Trino-Transaction-Id", "NONE"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("User-Agent", "Trino Python Client/0.340"),
        ("Authorization", "Bearer hub-token"),
        ("X-Trino-User", "bob"),
        ("x-trino-original-user", "bob"),
        ("X-Trino-Original-Roles", "system=ROLE{admin}"),
        ("X-Trino-Extra-Credential", "k=v"),
        ("X-Presto-User", "bob"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("Cookie", "jupyterhub-session=secret"),
        ("Connection", "keep-alive"),
        ("Accept-Encoding", "gzip"),
        ("X-Trino-Query-Data-Encoding", "json+zstd"),
        ("X-Trino-Something-New", "?"),
    ]
    headers = protocol.upstream_request_headers(client, "alice", "Basic c3ZjOnB3")
    session_headers = client[:10]  # the first ten pass through unchanged, in order
    assert headers == [
        *session_headers,
        ("X-Trino-User", "alice"),
        ("Accept-Encoding", "identity"),
        ("Authorization", "Basic c3ZjOnB3"),
    ]


def test_no_authorization_is_sent_to_a_cluster_without_a_service_password():
    headers = dict(protocol.upstream_request_headers([("Authorization", "x")], "alice", None))
    assert "Authorization" not in headers
    assert headers["X-Trino-User"] == "alice"


def test_the_spooling_encoding_is_forwarded_only_when_allowed():
    client = [("X-Trino-Query-Data-Encoding", "json")]
    assert ("X-Trino-Query-Data-Encoding", "json") not in protocol.upstream_request_headers(
        client, "a", None
    )
    assert ("X-Trino-Query-Data-Encoding", "json") in protocol.upstream_request_headers(
        client, "a", None, allow_spooling=True
    )


def test_response_headers_keep_session_updates_but_not_authorization_switches():
    upstream = [
        ("Content-Type", "application/json"),
        ("Content-Length", "123"),
        ("Transfer-Encoding", "chunked"),
        ("X-Trino-Set-Catalog", "tpch"),
        ("X-Trino-Set-Session", "a=1"),
        ("X-Trino-Set-Session", "b=2"),
        ("X-Trino-Set-Authorization-User", "bob"),
        ("X-Trino-Reset-Authorization-User", "true"),
        ("Set-Cookie", "x=y"),
    ]
    assert protocol.client_response_headers(upstream) == [
        ("Content-Type", "application/json"),
        ("X-Trino-Set-Catalog", "tpch"),
        ("X-Trino-Set-Session", "a=1"),
        ("X-Trino-Set-Session", "b=2"),
    ]


def test_basic_authorization():
    assert protocol.basic_authorization("svc", "pw") == "Basic c3ZjOnB3"


# ---------------------------------------------------------------- follow-up URIs


def test_a_rewritten_uri_carries_cluster_and_signature_and_parses_back():
    uri = to_gateway(f"{CLUSTER}/v1/statement/executing/QID/yslug/3")
    assert uri.startswith(f"{GATEWAY}/v1/dh/main/")
    path = uri[len(GATEWAY) :]
    followup = signing.parse_followup(path)
    assert followup.cluster == "main"
    assert followup.path == "/v1/statement/executing/QID/yslug/3"
    assert SIGNER.verify("main", "alice", followup.path, followup.signature)


def test_a_signature_binds_user_cluster_and_path():
    sig = SIGNER.sign("main", "alice", "/v1/statement/executing/Q/s/1")
    assert not SIGNER.verify("main", "bob", "/v1/statement/executing/Q/s/1", sig)
    assert not SIGNER.verify("other", "alice", "/v1/statement/executing/Q/s/1", sig)
    assert not SIGNER.verify("main", "alice", "/v1/statement/executing/Q/s/2", sig)
    assert not FollowupSigner(b"another secret of 32 bytes......").verify(
        "main", "alice", "/v1/statement/executing/Q/s/1", sig
    )


def test_the_uri_host_from_trino_is_dropped():
    uri = to_gateway("https://attacker.example/v1/statement/executing/Q/s/1")
    assert "attacker" not in uri


def test_a_query_string_is_signed_and_kept():
    uri = to_gateway(f"{CLUSTER}/ui/query.html?QID")
    path, _, query = uri[len(GATEWAY) :].partition("?")
    assert query == "QID"
    with pytest.raises(FollowupError, match="Only Trino statement URIs"):
        signing.parse_followup(path, query)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA/v1/query/QID",
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA/v1/node",
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA/v1/statement/../query/QID",
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA/v1/statement/%2e%2e/query",
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA/v1/statement%2f..%2fquery",
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA//v1/statement/x",
        "/v1/dh/main/AAAAAAAAAAAAAAAAAAAAAA",
        "/v1/dh/ma.in/AAAAAAAAAAAAAAAAAAAAAA/v1/statement/x",
        "/v1/dh/main/short/v1/statement/x",
        "/v1/statement",
    ],
)
def test_follow_ups_outside_statement_paths_or_malformed_are_refused(path):
    with pytest.raises(FollowupError):
        signing.parse_followup(path)


def test_stage_and_partial_cancel_paths_are_allowed():
    for path in ("/v1/stage/Q.1", "/v1/statement/executing/partialCancel/Q/0/s/1"):
        uri = to_gateway(CLUSTER + path)
        assert signing.parse_followup(uri[len(GATEWAY) :]).path == path


def test_query_id_from_path():
    assert signing.query_id_from_path("/v1/statement/executing/20260101_0_1_ab/y/1") == (
        "20260101_0_1_ab"
    )
    assert signing.query_id_from_path("/v1/statement/queued/Q1/y/1") == "Q1"
    assert signing.query_id_from_path("/v1/statement/executing/partialCancel/Q2/0/y/1") == "Q2"
    assert signing.query_id_from_path("/v1/stage/x") is None


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        FollowupSigner(b"short")


# ------------------------------------------------------------------- result pages


def test_uris_in_the_head_are_rewritten_and_the_rest_is_untouched():
    page = trino_page()
    body = compact(page)
    out = rewrite.rewrite_page(body, to_gateway)
    doc = json.loads(out)
    for key in ("infoUri", "partialCancelUri", "nextUri"):
        assert doc[key] == to_gateway(page[key])
    # data holding look-alike keys is passed through byte for byte
    tail = body[body.index(b',"columns"') :]
    assert out.endswith(tail)
    assert doc["data"] == page["data"]


def test_look_alike_uris_inside_data_of_a_last_page_are_not_rewritten():
    page = trino_page(partialCancelUri=None, nextUri=None)
    page["data"] = [['"nextUri":"https://evil"', {"nextUri": "https://evil"}]]
    body = compact(page)
    out = rewrite.rewrite_page(body, to_gateway)
    doc = json.loads(out)
    assert "nextUri" not in doc
    assert doc["data"] == page["data"]
    assert out[out.index(b',"columns"') :] == body[body.index(b',"columns"') :]


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, 333, 100_000])
def test_the_rewrite_is_the_same_however_the_body_is_chunked(chunk_size):
    body = compact(trino_page())
    expected = rewrite.rewrite_page(body, to_gateway)
    rewriter = ResultRewriter(to_gateway)
    out = b"".join(rewriter.feed(body[i : i + chunk_size]) for i in range(0, len(body), chunk_size))
    out += rewriter.finish()
    assert out == expected
    assert rewriter.size_delta == len(out) - len(body)
    facts = rewriter.facts()
    assert facts.query_id == "20260101_000000_00001_abcde"
    assert facts.has_next
    assert facts.state == "RUNNING"
    assert facts.stats["processedRows"] == 42


def test_strings_with_escapes_in_the_head_are_handled():
    body = (
        b'{"id":"q\\"1","infoUri":"http:\\/\\/c\\/ui\\/query.html?q",'
        b'"nextUri":"http://c/v1/statement/queued/q/s/1","stats":{"state":"QUEUED"}}'
    )
    doc = json.loads(rewrite.rewrite_page(body, to_gateway))
    assert doc["id"] == 'q"1'
    assert doc["infoUri"] == to_gateway("http://c/ui/query.html?q")
    assert doc["nextUri"] == to_gateway("http://c/v1/statement/queued/q/s/1")


def test_whitespace_between_tokens_is_tolerated():
    body = b'{ "id" : "q1" ,\n "nextUri" : "http://c/v1/statement/queued/q1/s/1" , "stats":{}}'
    doc = json.loads(rewrite.rewrite_page(body, to_gateway))
    assert doc["nextUri"] == to_gateway("http://c/v1/statement/queued/q1/s/1")


def test_a_page_in_another_key_order_is_rewritten_by_the_general_path():
    # nextUri after an unknown non-string key: the head scan cannot vouch for the rest.
    body = compact({"id": "q", "extra": {"a": 1}, "nextUri": "http://c/v1/statement/x/q/s/1"})
    rewriter = ResultRewriter(to_gateway)
    out = rewriter.feed(body) + rewriter.finish()
    doc = json.loads(out)
    assert doc["nextUri"] == to_gateway("http://c/v1/statement/x/q/s/1")
    assert rewriter.facts().has_next


def test_a_body_that_is_not_json_passes_unchanged():
    for body in (b"Query not found", b"<html>502</html>", b"[1,2]"):
        assert rewrite.rewrite_page(body, to_gateway) == body


def test_tail_facts_find_the_real_stats_after_data_with_look_alikes():
    page = trino_page(
        data=[[{"stats": {"state": "FAKE"}}]],
        stats={"state": "FAILED", "cpuTimeMillis": 3},
        error={"message": "boom", "errorName": "X", "errorType": "USER_ERROR"},
    )
    stats, error = rewrite.tail_facts(compact(page))
    assert stats["state"] == "FAILED"
    assert error["message"] == "boom"


def test_facts_of_a_large_page_come_from_the_tail_window():
    page = trino_page(data=[[i, "x" * 100] for i in range(20_000)])  # about 2.5 MB
    body = compact(page)
    rewriter = ResultRewriter(to_gateway)
    for i in range(0, len(body), 65536):
        rewriter.feed(body[i : i + 65536])
    rewriter.finish()
    facts = rewriter.facts()
    assert facts.state == "RUNNING"
    assert facts.has_next


# -------------------------------------------------------------------------- errors


class _Response:
    """Just enough of requests.Response for TrinoRequest.process."""

    ok = True
    status_code = 200
    headers: dict = {}

    def __init__(self, body: bytes) -> None:
        self.text = body.decode()
        self.encoding = "utf-8"


def _process(body: bytes):
    return TrinoRequest.process(TrinoRequest.__new__(TrinoRequest), _Response(body))


def test_a_user_error_body_raises_trino_user_error_with_our_message():
    body = protocol.trino_error_body("Pick a catalog first.", *protocol.GENERIC_USER_ERROR)
    with pytest.raises(TrinoUserError) as raised:
        _process(body)
    assert raised.value.message == "Pick a catalog first."
    assert raised.value.error_name == "GENERIC_USER_ERROR"


def test_an_external_error_body_raises_trino_external_error():
    body = protocol.trino_error_body(
        "Cluster a is unreachable; try again shortly or ask an admin.",
        *wire.CLUSTER_UNREACHABLE,
        query_id="q1",
    )
    with pytest.raises(TrinoExternalError) as raised:
        _process(body)
    assert raised.value.query_id == "q1"
    doc = json.loads(body)
    assert doc["stats"]["state"] == "FAILED"
    assert doc["error"]["failureInfo"]["stack"] == []


def test_http_reason_is_a_single_printable_line():
    assert protocol.http_reason("a\r\nb\u00e9") == "a  b "


# ------------------------------------------------------------------ pages that say "not yet"


def test_a_queued_page_carries_nothing_for_the_client():
    page = {
        "id": "q1",
        "infoUri": "https://t/ui/query.html?q1",
        "nextUri": "https://t/v1/statement/queued/q1/x/1",
        "stats": {"state": "QUEUED"},
        "warnings": [],
    }
    assert collapse.carries_nothing(page, [("Content-Type", "application/json")])
    # Columns alone come again with the first rows.
    columns = {**page, "columns": [{"name": "x", "type": "integer"}]}
    assert collapse.carries_nothing(columns, [])
    # A spooled query's pages all name its encoding: that header changes nothing.
    assert collapse.carries_nothing(page, [("X-Trino-Query-Data-Encoding", "json+zstd")])


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({"data": [[1]]}, []),
        ({"error": {"message": "boom"}}, []),
        ({"updateType": "SET SESSION"}, []),
        ({"warnings": [{"message": "deprecated"}]}, []),
        ({}, [("X-Trino-Set-Session", "a=1")]),
        ({}, [("X-Trino-Query-Data-Encoding", "json"), ("X-Trino-Added-Prepare", "q=SELECT+1")]),
    ],
)
def test_pages_with_anything_for_the_client_are_always_delivered(extra, headers):
    page = {"id": "q1", "nextUri": "https://t/v1/statement/executing/q1/x/2", "stats": {}}
    assert not collapse.carries_nothing({**page, **extra}, headers)


def test_a_final_page_is_never_skipped():
    final = {"id": "q1", "stats": {"state": "FINISHED"}}
    assert not collapse.carries_nothing(final, [])


# ------------------------------------------------------------------ queued queries


def test_a_queued_uri_is_signed_for_its_user_and_parses_back():
    uri = SIGNER.queued_uri(GATEWAY, "alice", "datahub_0123456789abcdef0123", "0-17")
    path = uri.removeprefix(GATEWAY)
    assert path.startswith(signing.QUEUED_PREFIX + "datahub_0123456789abcdef0123/0-17/")
    queued = signing.parse_queued(path)
    assert (queued.query_id, queued.place) == ("datahub_0123456789abcdef0123", "0-17")
    assert SIGNER.verify_queued(queued, "alice")
    assert not SIGNER.verify_queued(queued, "bob")
    other = signing.Queued(queued.query_id, "0-18", queued.signature)
    assert not SIGNER.verify_queued(other, "alice")


def test_a_queued_signature_never_passes_as_a_follow_up_signature():
    queued = signing.parse_queued(
        SIGNER.queued_uri("", "alice", "datahub_0123456789abcdef0123", "0-17")
    )
    assert not SIGNER.verify("~queued", "alice", "/v1/statement/queued/x", queued.signature)
    assert SIGNER.sign("~queued", "alice", "datahub_0123456789abcdef0123/0-17") == (
        queued.signature
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/dh-queued/datahub_0123456789abcdef0123/0-17",
        "/v1/dh-queued/20260101_000000_00001_abcde/0-17/" + "a" * 22,
        "/v1/dh-queued/datahub_0123456789abcdef0123/../" + "a" * 22,
        "/v1/dh-queued/datahub_0123456789abcdef0123/0-17/" + "a" * 22 + "/x",
    ],
)
def test_malformed_queued_uris_are_refused(path):
    with pytest.raises(FollowupError):
        signing.parse_queued(path)


def test_a_queued_page_is_a_trino_queued_page_with_the_reason():
    body = protocol.queued_page(
        "datahub_0123456789abcdef0123", "http://gw/info", "http://gw/next", "Queued: why.", 1500
    )
    status = _process(body)
    assert (status.id, status.next_uri, status.info_uri) == (
        "datahub_0123456789abcdef0123",
        "http://gw/next",
        "http://gw/info",
    )
    assert status.stats["state"] == "QUEUED" and status.stats["queued"] is True
    assert status.stats[protocol.QUEUE_REASON_KEY] == "Queued: why."
    assert status.stats["elapsedTimeMillis"] == 1500
    assert status.rows == [] and status.columns is None


def test_session_headers_keep_what_trino_needs_and_never_identity():
    kept = protocol.session_headers(
        [
            ("Authorization", "Bearer t"),
            ("X-Trino-User", "mallory"),
            ("X-Trino-Catalog", "tpch"),
            ("X-Trino-Session", "a=1"),
            ("X-Trino-Session", "b=2"),
            ("Cookie", "x"),
            ("User-Agent", "trino-python"),
            ("X-Trino-Query-Data-Encoding", "json"),
        ]
    )
    assert kept == [
        ("X-Trino-Catalog", "tpch"),
        ("X-Trino-Session", "a=1"),
        ("X-Trino-Session", "b=2"),
        ("User-Agent", "trino-python"),
    ]


def test_a_limit_error_gets_the_message_given_for_its_name_and_keeps_its_code():
    page = {
        "id": "q1",
        "stats": {"state": "FAILED"},
        "error": {
            "message": "Query exceeded the maximum CPU time limit of 2.00s",
            "errorCode": 131075,
            "errorName": "EXCEEDED_CPU_LIMIT",
            "errorType": "INSUFFICIENT_RESOURCES",
            "failureInfo": {"type": "io.trino.ExceededCpuLimitException", "message": "x"},
        },
    }
    out = copy.deepcopy(page)
    rewrite.put_error_message(out, {"EXCEEDED_CPU_LIMIT": "Your quota."})
    assert out["error"] == {
        **page["error"],
        "message": "Your quota.",
        "failureInfo": {"type": "io.trino.ExceededCpuLimitException", "message": "Your quota."},
    }
    assert out["id"] == "q1" and out["stats"] == page["stats"]
    # Other errors, pages without one, and no messages: unchanged.
    for messages in ({"EXCEEDED_TIME_LIMIT": "x"}, {}, None):
        kept = copy.deepcopy(page)
        rewrite.put_error_message(kept, messages)
        assert kept == page
    plain = {"id": "q1", "stats": {"state": "RUNNING"}}
    rewrite.put_error_message(plain, {"EXCEEDED_CPU_LIMIT": "x"})
    assert plain == {"id": "q1", "stats": {"state": "RUNNING"}}
