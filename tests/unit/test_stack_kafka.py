"""The local stack's Kafka: its configuration, the readiness probe's request, the pom that
fetches it."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from xml.etree import ElementTree

from datahub.stack.kafka import ARTIFACTS, api_versions_request, new_cluster_id, server_properties
from datahub.stack.maven import runtime_pom


def test_one_node_is_broker_and_controller_on_loopback_only():
    props = server_properties(port=9092, controller_port=9093, log_dir=Path("/k/data"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["offsets.topic.replication.factor"] == 1


def test_a_cluster_id_is_sixteen_bytes_in_url_safe_base64():
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22 and "=" not in cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert new_cluster_id() != cluster_id


def test_a_cluster_id_never_starts_with_a_dash_which_the_storage_tool_takes_for_an_option():
    # 0xF8 makes the first base64 character "-"; the next draw is used instead.
    draws = iter([b"\xf8" + bytes(15), bytes(16)])
    assert (
        new_cluster_id(lambda: next(draws))
        == base64.urlsafe_b64encode(bytes(16)).rstrip(b"=").decode()
    )


def test_the_api_versions_request_is_size_prefixed_version_zero():
    request = api_versions_request(7, client_id="x")
    (size,) = struct.unpack(">i", request[:4])
    assert size == len(request) - 4
    assert struct.unpack(">hhih", request[4:14]) == (18, 0, 7, 1)
    assert request[14:] == b"x"


def test_the_pom_depends_on_kafka_and_the_log_binding_only():
    pom = ElementTree.fromstring(runtime_pom(ARTIFACTS))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = [
        ":".join(d.find(f"m:{part}", ns).text for part in ("groupId", "artifactId", "version"))
        for d in pom.iterfind("m:dependencies/m:dependency", ns)
    ]
    assert found == list(ARTIFACTS)
