"""A cluster's redirect of a segment download (Trino's COORDINATOR_STORAGE_REDIRECT mode):
which ones the gateway passes on to the client (`spooled.storage_redirect`)."""

from __future__ import annotations

import pytest

from datahub.gateway.spooled import storage_redirect

CLUSTER = "https://trino.example:8443"
PRESIGNED = (
    "https://s3.example/spooling/01M8Y6.json%2Bzstd?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Expires=3600&X-Amz-Signature=6e98"
)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_the_storage_is_passed_on_untouched(status):
    assert storage_redirect(status, PRESIGNED, CLUSTER) == PRESIGNED


@pytest.mark.parametrize(
    "location",
    [
        "https://trino.example:8443/v1/spooled/download/abc",
        "https://TRINO.example:8443/v1/spooled/download/abc",
        "/v1/spooled/download/abc",
        "ftp://s3.example/spooling/x",
        "https:///no-host",
        "",
        None,
    ],
)
def test_a_redirect_back_to_the_cluster_or_to_no_web_address_is_not(location):
    assert storage_redirect(303, location, CLUSTER) is None


def test_the_default_port_is_the_schemes():
    assert storage_redirect(303, "https://trino.example/x", "https://trino.example:443") is None
    assert (
        storage_redirect(303, "http://trino.example:8443/x", "https://trino.example:8443") is None
    )
    assert storage_redirect(303, "https://trino.example:9000/x", CLUSTER) is not None


@pytest.mark.parametrize("status", [200, 304, 404, 500])
def test_other_answers_are_not_redirects(status):
    assert storage_redirect(status, PRESIGNED, CLUSTER) is None
