"""Cluster configuration, status, and the choice of a cluster within a routing group."""

from __future__ import annotations

import pytest

from datahub.gateway.clusters import (
    Attempt,
    Cluster,
    ClusterConfigError,
    ClusterStatus,
    failover,
    load_clusters,
    rank_clusters,
    routing_group_engines,
    unavailable_message,
)


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


def status(name, group="default", index=0, **kwargs):
    return ClusterStatus(name=name, routing_group=group, index=index, **kwargs)


def test_the_healthy_cluster_with_fewest_queued_then_running_queries_comes_first():
    statuses = [
        status("busy", index=0, healthy=True, running=5),
        status("queueing", index=1, healthy=True, queued=1),
        status("idle", index=2, healthy=True),
        status("other-group", group="etl", index=3, healthy=True),
    ]
    assert [s.name for s in rank_clusters(statuses, "default")] == ["idle", "busy", "queueing"]


def test_queries_sent_since_the_last_check_count_as_queued():
    a = status("a", index=0, healthy=True)
    b = status("b", index=1, healthy=True)
    assert rank_clusters([a, b], "default")[0].name == "a"
    a.submitted += 1
    assert rank_clusters([a, b], "default")[0].name == "b"
    a.record_success(running=0, queued=0, now=1.0)
    assert a.submitted == 0


def test_unhealthy_and_drained_clusters_get_no_new_queries_and_unchecked_ones_come_last():
    statuses = [
        status("down", index=0, healthy=False),
        status("drained", index=1, healthy=True, draining=True),
        status("unknown", index=2, healthy=None),
        status("up", index=3, healthy=True, running=9),
    ]
    assert [s.name for s in rank_clusters(statuses, "default")] == ["up", "unknown"]


def test_a_pinned_cluster_is_the_only_candidate():
    statuses = [status("a", index=0, healthy=True), status("b", index=1, healthy=True, running=3)]
    assert [s.name for s in rank_clusters(statuses, "default", pinned="b")] == ["b"]


def test_a_cluster_turns_unhealthy_at_once_and_comes_back_with_a_passing_check():
    s = status("a", healthy=True)
    assert s.record_failure("ConnectError", now=10.0) is True
    assert s.record_failure("ConnectError", now=11.0) is False  # already unhealthy
    assert (s.healthy, s.unhealthy_since, s.available) == (False, 10.0, False)
    assert s.record_success(running=1, queued=2, now=12.0) is True
    assert (s.healthy, s.unhealthy_since, s.running, s.queued) == (True, None, 1, 2)


def test_a_healthy_cluster_stays_in_routing_through_slow_answers_short_of_the_count():
    s = status("a", healthy=True)
    assert s.record_failure("TimeoutError", now=10.0, in_a_row=3) is False
    assert s.record_failure("TimeoutError", now=11.0, in_a_row=3) is False
    assert (s.healthy, s.available, s.last_error, s.failures) == (True, True, "TimeoutError", 2)
    assert s.record_failure("TimeoutError", now=12.0, in_a_row=3) is True
    assert (s.healthy, s.unhealthy_since) == (False, 12.0)


def test_a_passing_check_starts_the_count_of_failures_again():
    s = status("a", healthy=True)
    s.record_failure("TimeoutError", now=10.0, in_a_row=2)
    s.record_success(running=0, queued=0, now=11.0)
    assert s.record_failure("TimeoutError", now=12.0, in_a_row=2) is False
    assert s.healthy is True


def test_a_cluster_not_yet_seen_healthy_goes_out_at_its_first_failure():
    s = status("a")
    assert s.record_failure("TimeoutError", now=10.0, in_a_row=3) is True
    assert s.available is False


def test_why_no_cluster_is_available_is_one_sentence_per_case():
    statuses = [status("a", healthy=False), status("b", index=1, healthy=True, draining=True)]
    assert unavailable_message(statuses, "default") == (
        "No cluster of routing group 'default' is available right now (a unhealthy, b drained); "
        "try again shortly or ask an admin."
    )
    assert "no cluster serves routing group 'etl'" in unavailable_message(statuses, "etl").lower()
    assert "Cluster b is drained for maintenance" in unavailable_message(
        statuses, "default", pinned="b"
    )
    assert "Cluster a is not healthy" in unavailable_message(statuses, "default", pinned="a")


# ------------------------------------------------------------------ the failover rule


def test_a_cluster_that_answered_takes_the_query_whatever_it_said():
    for status in (200, 400, 401, 403, 404, 500):
        assert failover(status) is Attempt.TAKEN


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_cluster_starting_or_without_a_backend_did_not_take_it_so_the_next_one_is_tried(status):
    assert failover(status) is Attempt.NEXT


def test_a_request_that_never_reached_the_cluster_goes_to_the_next_one():
    assert failover(None, not_sent=True) is Attempt.NEXT


def test_a_cluster_that_may_have_the_query_is_never_followed_by_another():
    # The connection broke after the request went out: running it elsewhere could run
    # it twice.
    assert failover(None, not_sent=False) is Attempt.STOP
    assert failover(None) is Attempt.STOP


def test_a_cluster_runs_trino_unless_it_says_presto():
    assert Cluster.from_config({"name": "t", "url": "http://t:8080"}).engine == "trino"
    entry = {"name": "p", "url": "http://p:8080", "engine": "Presto"}
    assert Cluster.from_config(entry).engine == "presto"
    with pytest.raises(ClusterConfigError, match="engine 'hive'; use 'trino' or 'presto'"):
        Cluster.from_config({"name": "h", "url": "http://h", "engine": "hive"})


def test_a_routing_group_runs_one_engine():
    clusters = load_clusters(
        [
            {"name": "t1", "url": "http://t1", "routing_group": "adhoc"},
            {"name": "p1", "url": "http://p1", "routing_group": "lake", "engine": "presto"},
            {"name": "p2", "url": "http://p2", "routing_group": "lake", "engine": "presto"},
        ]
    )
    assert routing_group_engines(clusters) == {"adhoc": "trino", "lake": "presto"}
    with pytest.raises(ClusterConfigError, match="Routing group 'adhoc' mixes engines"):
        load_clusters(
            [
                {"name": "t1", "url": "http://t1", "routing_group": "adhoc"},
                {"name": "p1", "url": "http://p1", "routing_group": "adhoc", "engine": "presto"},
            ]
        )
