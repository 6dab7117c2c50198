"""The local stack's Kafka: a real KRaft node from Maven Central, started and stopped cleanly."""

from __future__ import annotations

import pytest

from datahub.stack.kafka import answers_api_versions


def test_the_broker_answers_on_its_bootstrap_address(kafka):
    assert kafka.running
    assert answers_api_versions(kafka.host, kafka.port)


def test_a_stopped_broker_starts_again_on_the_same_address_with_its_data(kafka):
    cluster = (kafka.data_dir / "meta.properties").read_text()
    kafka.stop()
    try:
        assert not kafka.running
        with pytest.raises(OSError):
            answers_api_versions(kafka.host, kafka.port)
    finally:
        kafka.start()
    assert answers_api_versions(kafka.host, kafka.port)
    # Not formatted again: the same cluster, so its topics and records are still there.
    assert (kafka.data_dir / "meta.properties").read_text() == cluster
