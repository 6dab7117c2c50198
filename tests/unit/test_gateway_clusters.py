"""Cluster configuration and the routing choice."""

from __future__ import annotations

import pytest

from datahub.gateway.clusters import Cluster, ClusterConfigError, choose_cluster, load_clusters
from datahub.identity import Identity


def test_a_cluster_entry_becomes_a_cluster_without_showing_its_password(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cluster = Cluster.from_config(
        {"name": "main", "url": "https://trino:8443/", "user": "datahub", "password_file": secret}
    )
    assert cluster.url == "https://trino:8443"
    assert cluster.password == "s3cret"
    assert "s3cret" not in repr(cluster)
    assert cluster.authorization == "Basic ZGF0YWh1YjpzM2NyZXQ="


def test_a_cluster_without_password_sends_no_authorization():
    assert Cluster.from_config({"name": "dev", "url": "http://t:8080"}).authorization is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a b", "url": "http://t"}, "letters, digits"),
        ({"name": "a", "url": "t:8080"}, "needs a url"),
        ({"name": "a", "url": "http://t", "password": "x", "user": "u"}, "no https"),
        ({"name": "a", "url": "http://t", "pasword": "x"}, "Unknown cluster setting"),
    ],
)
def test_unusable_cluster_entries_are_refused_with_a_sentence(entry, message):
    with pytest.raises(ClusterConfigError, match=message):
        Cluster.from_config(entry)


def test_duplicate_cluster_names_are_refused():
    with pytest.raises(ClusterConfigError, match="used twice"):
        load_clusters([{"name": "a", "url": "http://t"}, {"name": "a", "url": "http://u"}])


def test_the_first_configured_cluster_is_chosen():
    clusters = load_clusters([{"name": "a", "url": "http://t"}, {"name": "b", "url": "http://u"}])
    assert choose_cluster(Identity("alice"), clusters, {}).name == "a"


def test_no_cluster_is_a_clear_error():
    with pytest.raises(LookupError, match="No Trino cluster is configured"):
        choose_cluster(Identity("alice"), {}, {})
