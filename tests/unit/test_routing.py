"""Routing decisions: hints, rules, the hook, catalogs read."""

from __future__ import annotations

import pytest

from datahub.gateway.routing import (
    Router,
    RoutingConfigError,
    RoutingError,
    RoutingRequest,
    RoutingRule,
    catalogs_referenced,
    parse_client_tags,
)

CLUSTERS = {"adhoc-1": "adhoc", "adhoc-2": "adhoc", "etl-1": "etl", "sandbox-1": "sandbox"}

RULES = [
    {"name": "jobs", "source": "airflow|dbt.*", "routing_group": "etl"},
    {"name": "contractors", "groups": ["contractors"], "routing_group": "sandbox"},
    {"name": "lake", "catalogs": ["hive"], "routing_group": "etl"},
    {"name": "batch", "client_tags": ["batch", "nightly"], "routing_group": "etl"},
    {"name": "carol", "users": ["carol"], "hint": "fast", "routing_group": "adhoc"},
]


def router(**kwargs) -> Router:
    config = {
        "clusters": CLUSTERS,
        "rules": RULES,
        "default_group": "adhoc",
    }
    config.update(kwargs)
    return Router.from_config(**config)


def route(r: Router | None = None, **request):
    request.setdefault("user", "bob")
    return (r or router()).route(RoutingRequest(**request))


def test_without_hint_or_matching_rule_queries_go_to_the_default_group():
    assert route(sql="SELECT 1") == route(sql="SELECT 1")
    decision = route(sql="SELECT 1")
    assert (decision.routing_group, decision.reason, decision.cluster) == ("adhoc", "default", None)


def test_rules_match_source_group_tags_and_catalogs_in_order():
    assert route(source="airflow").routing_group == "etl"
    assert route(source="dbt-core").reason == "rule:jobs"
    assert route(source="airflow-ish").routing_group == "adhoc"  # the whole source must match
    assert route(groups=("contractors",)).reason == "rule:contractors"
    assert route(client_tags=frozenset({"batch", "nightly", "x"})).reason == "rule:batch"
    assert route(client_tags=frozenset({"batch"})).reason == "default"  # all tags needed
    assert route(sql="SELECT * FROM hive.sales.orders").reason == "rule:lake"
    # First match wins: a contractor's airflow job goes where the jobs rule says.
    assert route(source="airflow", groups=("contractors",)).reason == "rule:jobs"


def test_a_hint_picks_a_routing_group_and_whether_one_may_use_it_is_the_quotas_call():
    decision = route(user="alice", hint="etl")
    assert (decision.routing_group, decision.reason) == ("etl", "hint")
    assert route(hint="sandbox").routing_group == "sandbox"
    # whether bob may use etl is not routing's call: the quota policy decides at admission
    # (one place, one refusal sentence), where an admin's policy may grant it.
    assert route(user="bob", hint="etl-1").routing_group == "etl"


def test_a_hint_naming_a_cluster_pins_the_query_to_it():
    decision = route(hint="adhoc-2")
    assert (decision.routing_group, decision.reason, decision.cluster) == (
        "adhoc",
        "cluster-hint",
        "adhoc-2",
    )


def test_an_unknown_hint_lists_the_routing_groups():
    with pytest.raises(RoutingError) as e:
        route(user="alice", hint="gpu")
    assert e.value.message == (
        "There is no routing group or cluster named 'gpu'; use one of: adhoc, etl, sandbox."
    )
    assert e.value.error[0] == "INVALID_ROUTING_GROUP"


def test_rules_may_match_the_hint_and_override_it():
    assert route(user="carol", hint="fast").reason == "rule:carol"
    # A contractor asking for adhoc still lands in the sandbox: rules are the admins' policy.
    decision = route(groups=("contractors",), hint="adhoc")
    assert (decision.routing_group, decision.cluster) == ("sandbox", None)


def test_the_hook_decides_before_the_rules_and_may_pass():
    seen = []

    def hook(request):
        seen.append(request.user)
        return "sandbox" if "JOIN" in request.sql else None

    r = router(hook=hook)
    assert route(r, source="airflow", sql="SELECT * FROM a JOIN b").reason == "hook"
    assert route(r, source="airflow", sql="SELECT 1").reason == "rule:jobs"
    assert seen == ["bob", "bob"]


def test_catalog_rules_parse_the_sql_only_when_needed():
    r = router(rules=[{"name": "jobs", "source": "airflow", "routing_group": "etl"}])
    # Unparsable SQL is fine when no rule looks at catalogs.
    assert route(r, source="airflow", sql="THIS IS NOT SQL (").routing_group == "etl"
    assert route(sql="THIS IS NOT SQL (").routing_group == "adhoc"


@pytest.mark.parametrize(
    ("sql", "catalog", "expected"),
    [
        ("SELECT * FROM hive.s.t JOIN tpch.tiny.nation n ON true", None, {"hive", "tpch"}),
        ("SELECT * FROM orders", "hive", {"hive"}),
        ("SELECT * FROM tiny.orders", "tpch", {"tpch"}),
        ("SELECT * FROM orders", None, set()),
        ("WITH x AS (SELECT * FROM Memory.default.t) SELECT * FROM x", "tpch", {"memory"}),
        ("INSERT INTO memory.default.t SELECT * FROM tpch.tiny.region", None, {"memory", "tpch"}),
        ("SELECT 1", "tpch", set()),
        ("not sql at all (", "tpch", set()),
    ],
)
def test_catalogs_referenced_by_the_sql(sql, catalog, expected):
    assert catalogs_referenced(sql, catalog) == expected


def test_routing_rules_in_the_configuration_are_checked():
    with pytest.raises(RoutingConfigError, match="needs a routing_group"):
        RoutingRule.from_config({"users": ["a"]}, 0)
    with pytest.raises(RoutingConfigError, match="unknown condition"):
        RoutingRule.from_config({"user": ["a"], "routing_group": "x"}, 0)
    with pytest.raises(RoutingConfigError, match="no condition"):
        RoutingRule.from_config({"routing_group": "x"}, 0)
    with pytest.raises(RoutingConfigError, match="is not a regex"):
        RoutingRule.from_config({"source": "(", "routing_group": "x"}, 0)
    with pytest.raises(RoutingConfigError, match="list of names"):
        RoutingRule.from_config({"groups": [1], "routing_group": "x"}, 0)


def test_rules_and_defaults_without_clusters_are_reported():
    r = router(
        rules=[{"name": "gpu", "users": ["x"], "routing_group": "gpu"}], default_group="none"
    )
    assert r.config_warnings() == [
        "Routing rule 'gpu' sends queries to routing group 'gpu', which has no cluster.",
        "The default routing group 'none' has no cluster; queries that no rule routes will fail.",
    ]


def test_client_tags_come_comma_separated_in_one_or_more_headers():
    assert parse_client_tags(["a, b", "c", ""]) == {"a", "b", "c"}


# ------------------------------------------------------------------------- engines

ENGINE_CLUSTERS = {**CLUSTERS, "presto-1": "lake", "presto-2": "lake-2"}
ENGINES = {"adhoc": "trino", "etl": "trino", "sandbox": "trino", "lake": "presto"}
ENGINES["lake-2"] = "presto"


def engine_router(**kwargs) -> Router:
    return router(clusters=ENGINE_CLUSTERS, engines=ENGINES, **kwargs)


def test_a_hint_may_name_an_engine():
    r = engine_router()
    assert route(r, hint="presto").routing_group == "lake"  # the first presto group
    assert route(r, hint="Trino").routing_group == "adhoc"  # the default group runs Trino
    assert route(r, hint="presto-2").cluster == "presto-2"  # a cluster's name still pins
    assert r.engine_of("lake") == "presto" and r.engine_of("adhoc") == "trino"
    assert r.engine_of("unknown") == "trino"


def test_an_engine_no_cluster_runs_is_one_sentence():
    with pytest.raises(RoutingError) as e:
        route(hint="presto")  # the plain router has Trino clusters only
    assert e.value.message.startswith("No cluster runs Presto; use one of: adhoc, etl")


def test_a_rule_may_send_queries_to_an_engine():
    rules = [{"name": "presto users", "groups": ["presto-fans"], "engine": "presto"}]
    r = engine_router(rules=rules)
    decision = route(r, groups=("presto-fans",))
    assert (decision.routing_group, decision.reason) == ("lake", "rule:presto users")
    assert route(r).routing_group == "adhoc"
    assert router(rules=rules).config_warnings() == [
        "Routing rule 'presto users' sends queries to engine 'presto', which no cluster runs."
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "x", "users": ["a"], "engine": "hive"},
        {"name": "x", "users": ["a"], "engine": "presto", "routing_group": "lake"},
        {"name": "x", "users": ["a"]},
    ],
)
def test_a_rule_names_one_known_engine_or_a_routing_group(entry):
    with pytest.raises(RoutingConfigError):
        RoutingRule.from_config(entry, 0)
