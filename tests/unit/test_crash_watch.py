"""The crash watcher around the detector, without a broker: incidents saved in the store
and a restarted watcher resuming from them, records merged in order, one owner of every
partition, the metrics, and the page's counts and charts. The real broker:
tests/integration/test_gateway_crash_watch.py."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from prometheus_client import CollectorRegistry, generate_latest
from traitlets.config import Config

from datahub.events import crash_charts, incidents
from datahub.events.crashes import CrashRules, Incident
from datahub.events.event import encode
from datahub.events.handlers import IncidentsAPI, IncidentsPage
from datahub.events.watch import CrashWatcher, OneOwnerAssignor, decode, in_time_order
from datahub.service.app import DataHubService
from datahub.store import Store

from .test_crash_detector import T0, at, finished, lost, submitted


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'datahub.sqlite'}")
    store.migrate()
    yield store
    store.dispose()


def records(*events, partition=0):
    return [
        SimpleNamespace(
            value=encode(e).encode(),
            partition=partition,
            offset=i,
            timestamp=int(dt.datetime.fromisoformat(e["time"]).timestamp() * 1000),
        )
        for i, e in enumerate(events)
    ]


def watcher(store, now=T0, rules: CrashRules | None = None) -> CrashWatcher:
    return CrashWatcher(
        store,
        bootstrap_servers="kafka:9092",
        topic="events",
        group_id="g",
        rules=rules,
        now=lambda: now,
    )


def saved(store) -> list[Incident]:
    return store.transaction(incidents.recent, T0 - dt.timedelta(days=1))


def test_a_batch_is_saved_and_a_restarted_watcher_resumes_from_the_store(store):
    first = watcher(store)
    batch = records(
        submitted("q1", 0), submitted("q2", 5, user="bob"), submitted("q3", 6), lost("q1", 60, 0)
    )
    asyncio.run(first.process(batch))
    (incident,) = saved(store)
    assert (incident.cluster, list(incident.queries), incident.users) == ("a", ["q1"], ["alice"])
    assert first.lost == {"a": 1} and first.incidents_found == {"a": 1}

    # A new watcher (the old one stopped before committing): it reads the batch again,
    # then the rest; nothing is counted or saved twice.
    second = watcher(store, now=at(70))
    asyncio.run(second.process(batch))
    assert second.lost == {} and len(saved(store)) == 1
    assert set(second.detector.open) == {"q2", "q3"}
    asyncio.run(second.process(records(lost("q2", 65, 5, user="bob"), finished("q3", 66, 6))))
    (incident,) = saved(store)
    assert set(incident.queries) == {"q1", "q2"} and incident.users == ["alice", "bob"]
    assert store.transaction(incidents.load, at(70))[0] == []  # no query open any more


def test_when_caught_up_the_wall_clock_moves_the_detector(store):
    rules = CrashRules(lost_grace=300, quiet_period=600)
    w = watcher(store, rules=rules)
    asyncio.run(w.process(records(submitted("q1", 0), submitted("q2", 1), lost("q1", 60, 0))))
    w.now = lambda: at(60 + 300)
    asyncio.run(w.process([]))  # nothing new: the reader has caught up
    (incident,) = saved(store)
    assert set(incident.queries) == {"q1", "q2"}
    assert incident.queries["q2"].marked_by == "detector"
    w.now = lambda: at(60 + 600)
    asyncio.run(w.process([]))
    (incident,) = saved(store)
    assert (incident.ended_at, incident.end_reason) == (at(60), "quiet")


def test_a_query_the_detector_marked_that_finishes_is_removed_from_the_store(store):
    w = watcher(store)
    asyncio.run(w.process(records(submitted("q1", 0), submitted("q2", 1), lost("q1", 60, 0))))
    w.now = lambda: at(400)
    asyncio.run(w.process([]))
    assert set(saved(store)[0].queries) == {"q1", "q2"}
    asyncio.run(w.process(records(finished("q2", 500, 1))))
    assert set(saved(store)[0].queries) == {"q1"}


def test_a_record_that_is_not_an_event_is_skipped():
    assert decode(b"not json") is None and decode(b"[1]") is None
    assert decode(b'{"event": "query_submitted"}') == {"event": "query_submitted"}


def test_records_of_several_partitions_merge_by_time_keeping_each_partitions_order():
    p0 = records(submitted("q1", 0), finished("q1", 30, 0), partition=0)
    p1 = records(submitted("q2", 10), finished("q2", 20, 10), partition=1)
    merged = [decode(r.value)["query_id"] for r in in_time_order({0: p0, 1: p1})]
    assert merged == ["q1", "q2", "q2", "q1"]


def test_one_member_of_the_group_gets_every_partition():
    cluster = SimpleNamespace(partitions_for_topic=lambda topic: {0, 1, 2})
    members = {m: ConsumerProtocolMemberMetadata(0, ["events"], b"") for m in ("m2", "m1", "m3")}
    assignment = OneOwnerAssignor.assign(cluster, members)
    assert assignment["m1"].assignment == [("events", [0, 1, 2])]
    assert assignment["m2"].assignment == [] and assignment["m3"].assignment == []


def test_metrics_count_lost_queries_and_incidents_per_cluster(store):
    w = watcher(store)
    asyncio.run(
        w.process(
            records(
                submitted("q1", 0),
                submitted("q2", 1),
                submitted("q3", 2, cluster="b"),
                lost("q1", 60, 0),
                lost("q2", 61, 1),
            )
        )
    )
    registry = CollectorRegistry()
    registry.register(w)
    text = generate_latest(registry).decode()
    assert 'datahub_lost_queries_total{cluster="a"} 2.0' in text
    assert 'datahub_crash_incidents_total{cluster="a"} 1.0' in text
    assert 'datahub_crash_incidents_ongoing{cluster="a"} 1.0' in text
    assert 'datahub_open_queries{cluster="b"} 1.0' in text
    assert 'cluster="b"} 1.0' not in text.replace('datahub_open_queries{cluster="b"} 1.0', "")


def test_daily_counts_and_charts_per_cluster():
    day = T0.date()
    incident_a = Incident("i1", "a", at(60), at(60))
    incident_b = Incident("i2", "b", at(86_400), at(86_400))
    counts = crash_charts.daily_counts(
        [incident_a, incident_b],
        [("a", at(60)), ("a", at(61)), ("b", at(86_400)), ("b", at(-86_400 * 5))],
        day,
        day + dt.timedelta(days=1),
    )
    assert counts["days"] == [day.isoformat(), (day + dt.timedelta(days=1)).isoformat()]
    assert counts["clusters"] == {
        "a": {"incidents": [1, 0], "lost": [2, 0]},
        "b": {"incidents": [0, 1], "lost": [0, 1]},
    }
    incidents_chart, lost_chart = crash_charts.figures(counts)
    assert [t["name"] for t in lost_chart["data"]] == ["a", "b"]
    assert lost_chart["data"][0]["y"] == [2, 0]
    assert incidents_chart["layout"]["barmode"] == "stack"
    assert incidents_chart["layout"]["yaxis"]["dtick"] == 1  # whole numbers only
    assert crash_charts.figures({"days": [], "clusters": {}})[0]["data"] == []


def test_incidents_as_the_api_shows_them(store):
    w = watcher(store)
    asyncio.run(w.process(records(submitted("q1", 0), lost("q1", 60, 0))))
    (incident,) = saved(store)
    shown = incidents.incident_json(incident)
    assert shown["cluster"] == "a" and shown["users"] == ["alice"]
    assert shown["ended_at"] is None and shown["started_at"] == at(60).isoformat()
    assert [q["query_id"] for q in shown["queries"]] == ["q1"]


@pytest.mark.parametrize(
    ("kafka", "run_in_service", "watching"),
    [("127.0.0.1:9", True, True), ("127.0.0.1:9", False, False), ("", True, False)],
)
def test_the_service_runs_the_watcher_only_with_kafka_and_the_switch_on(
    tmp_path, monkeypatch, kafka, run_in_service, watching
):
    monkeypatch.chdir(tmp_path)
    config = Config()
    config.KafkaEvents.bootstrap_servers = kafka
    config.KafkaEvents.topic = "events"
    config.CrashWatch.run_in_service = run_in_service
    config.CrashWatch.quiet_period = 60.0
    service = DataHubService(config=config, store_threads=2)
    service.init()
    try:
        crash_watcher = service.crash_watcher
        assert (crash_watcher is not None) == watching
        if watching:
            assert (crash_watcher.topic, crash_watcher.rules.quiet_period) == ("events", 60.0)
            assert b"datahub_lost_queries" in service.metrics.render()
        # The page and API read the store, so every service process serves them.
        targets = {rule.target for rule in service.make_app().wildcard_router.rules}
        assert {IncidentsPage, IncidentsAPI} <= targets
    finally:
        service.store.dispose()
