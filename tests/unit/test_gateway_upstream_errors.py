"""A cluster's answers that are not Trino pages become one sentence (protocol.upstream_failure)."""

from __future__ import annotations

import copy
import json

import pytest

from datahub import wire
from datahub.gateway import protocol, rewrite

ROLE_TRACE = (
    b"io.trino.spi.security.AccessDeniedException: Access Denied: Cannot set role admin\n"
    b"\tat io.trino.spi.security.AccessDeniedException.denySetRole(ADE.java:708)\n"
    b"\tat io.trino.server.HttpRequestSessionContextFactory.addEnabledRoles(Http.java:243)\n"
)
OTHER_TRACE = (
    b"java.lang.IllegalArgumentException: Multiple entries with same key: r=SELECT secret\n"
    b"\tat com.google.common.collect.ImmutableMap.conflictException(ImmutableMap.java:382)\n"
)


def test_a_refused_role_is_trinos_access_denied_sentence_without_the_trace():
    message, error = protocol.upstream_failure("trino", 500, ROLE_TRACE)
    assert (message, error) == ("Access Denied: Cannot set role admin.", wire.PERMISSION_DENIED)


@pytest.mark.parametrize(
    "body",
    [OTHER_TRACE, b"<html><body>Bad gateway at trino-7.internal:8443</body></html>", b""],
)
def test_any_other_server_failure_is_our_sentence_naming_no_internals(body):
    message, error = protocol.upstream_failure("trino", 500, body)
    assert message == (
        "Cluster trino failed on this request (HTTP 500); try again, or ask an admin (the "
        "details are in the DataHub log)."
    )
    assert error == wire.CLUSTER_ERROR


def test_a_bad_request_keeps_trinos_first_line():
    message, error = protocol.upstream_failure(
        "trino", 400, b"Error 400 Bad Request: Invalid X-Trino-Role header"
    )
    assert message == "Cluster trino refused the request: Invalid X-Trino-Role header."
    assert error == protocol.GENERIC_USER_ERROR
    # ...but never a trace or markup, even on a 4xx.
    assert protocol.upstream_failure("trino", 400, OTHER_TRACE)[1] == wire.CLUSTER_ERROR
    assert protocol.upstream_failure("trino", 400, b"<html>x</html>")[1] == wire.CLUSTER_ERROR


def test_a_forgotten_query_says_so():
    message, error = protocol.upstream_failure("trino", 410, b"Query not found")
    assert message.startswith("Cluster trino no longer knows this query")
    assert error == protocol.NOT_FOUND


def test_a_body_that_is_no_json_object_is_flagged_by_the_rewriter():
    rewriter = rewrite.ResultRewriter(lambda uri: uri)
    assert rewriter.feed(b"java.lang.NullPointerException\n\tat x") == b""
    rewriter.finish()
    assert rewriter.not_json
    page = rewrite.ResultRewriter(lambda uri: uri)
    page.feed(b'{"id":"q","stats":{"state":"FINISHED"}}')
    page.finish()
    assert not page.not_json


def test_a_failed_querys_page_keeps_its_error_but_not_trinos_stack_frames():
    failure = {
        "type": "io.trino.sql.parser.ParsingException",
        "message": "line 1:1: mismatched input 'SELEC'",
        "cause": {"type": "x", "stack": ["io.trino.Inner.run(Inner.java:3)"], "suppressed": []},
        "suppressed": [{"type": "y", "stack": ["io.trino.S.run(S.java:4)"]}],
        "stack": ["io.trino.sql.parser.ErrorHandler.syntaxError(ErrorHandler.java:1)"],
        "errorLocation": {"lineNumber": 1, "columnNumber": 1},
    }
    page = {
        "id": "q1",
        "stats": {"state": "FAILED"},
        "error": {"message": "line 1:1: mismatched input 'SELEC'", "failureInfo": failure},
    }
    cleaned = copy.deepcopy(page)
    rewrite.clear_stack_frames(cleaned)
    assert ".java:" not in json.dumps(cleaned)
    kept = cleaned["error"]["failureInfo"]
    assert kept["message"] == failure["message"]
    assert kept["errorLocation"] == failure["errorLocation"] and kept["stack"] == []
    assert kept["cause"]["stack"] == [] and kept["suppressed"][0]["stack"] == []
    data_page = {"id": "q1", "data": [["failureInfo"]], "stats": {"state": "RUNNING"}}
    rewrite.clear_stack_frames(data_page)
    assert data_page == {"id": "q1", "data": [["failureInfo"]], "stats": {"state": "RUNNING"}}
