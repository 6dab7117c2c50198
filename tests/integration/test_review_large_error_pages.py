"""Attack: a user makes their query fail with a message as long as they like, so Trino's
failed page (which carries Trino's Java stack frames) is larger than the pages the
gateway reads whole; it still reaches them without the frames, with spooling on or off."""

from __future__ import annotations

import pytest
import requests

from datahub.gateway import rewrite
from datahub.testing import BackgroundGateway, cluster_api, user_token

SECRET = b"review-large-error-pages-secret-0123456789"
TOKENS = {"alice-token": user_token("alice", "analysts")}
#: Spooled where the gateway allows it (the failed page is the same).
BEARER = {"Authorization": "Bearer alice-token", "X-Trino-Query-Data-Encoding": "json"}
LONG_FAILURE = "SELECT fail(lpad('', 100000, 'x'))"


def last_page(url: str) -> requests.Response:
    response = requests.post(f"{url}/v1/statement", data=LONG_FAILURE, headers=BEARER, timeout=60)
    while "error" not in response.json() and response.json().get("nextUri"):
        response = requests.get(response.json()["nextUri"], headers=BEARER, timeout=60)
    return response


@pytest.fixture(scope="module", params=[False, True], ids=["direct", "spooling"])
def gateway(request, stack, tmp_path_factory):
    running = BackgroundGateway.signing_in(
        TOKENS,
        clusters=[{**stack.settings["clusters"][0], "name": "main"}],
        state_dir=tmp_path_factory.mktemp("review-large-errors"),
        secret=SECRET,
        allow_spooling=request.param,
    )
    yield running
    running.close()


def test_trinos_own_page_for_the_attack_is_large_and_carries_frames(stack):
    server = stack.trino
    session = cluster_api(server)
    response = session.post(f"{server.url}/v1/statement", data=LONG_FAILURE, timeout=60)
    while "error" not in response.json() and response.json().get("nextUri"):
        response = session.get(response.json()["nextUri"], timeout=60)
    assert len(response.content) > rewrite.WHOLE_PAGE and ".java:" in response.text


def test_a_long_failure_message_reaches_the_user_without_trinos_stack_frames(gateway):
    response = last_page(gateway.url)
    assert ".java:" not in response.text and "io.trino.operator" not in response.text
    error = response.json()["error"]
    assert error["message"] == "x" * 100000 and error["errorName"] == "GENERIC_USER_ERROR"
    assert error["failureInfo"]["stack"] == []
