"""Quota policies as pure logic: values, precedence, the calendar, the messages."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from datahub.quotas import messages
from datahub.quotas.counters import Rules
from datahub.quotas.days import UsageDays
from datahub.quotas.manager import configured_routing_groups
from datahub.quotas.policy import (
    LIMITS,
    Policy,
    PolicyError,
    effective_policy,
    format_limit,
    parse_limit,
    parse_limits,
)

# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("concurrent_queries", 3, 3),
        ("concurrent_queries", "3", 3),
        ("queued_queries", 0, 0),
        ("queries_per_day", None, None),
        ("queries_per_day", "unlimited", None),
        ("bytes_scanned_per_day", "10GB", 10_000_000_000),
        ("bytes_scanned_per_day", "512MiB", 512 * 2**20),
        ("server_memory", "2G", 2_000_000_000),
        ("server_memory", 1.5e9, 1_500_000_000),
        ("query_runtime_seconds", "5m", 300.0),
        ("query_runtime_seconds", "90", 90.0),
        ("query_cpu_seconds", "500ms", 0.5),
        ("cpu_seconds_per_day", 3600, 3600.0),
        ("server_cpu", "0.5", 0.5),
        ("routing_groups", "adhoc, etl", ("adhoc", "etl")),
        ("routing_groups", ["etl", "adhoc", "etl"], ("adhoc", "etl")),
        ("routing_groups", [], ()),
    ],
)
def test_limit_values_are_normalized(name, value, expected):
    assert parse_limit(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("concurrent_queries", -1, "zero or more"),
        ("concurrent_queries", 1.5, "whole number"),
        ("concurrent_queries", True, "number"),
        ("server_memory", "lots", "like '10GB'"),
        ("query_runtime_seconds", "5 weeks", "'5m'"),
        ("routing_groups", ["a b"], "letters, digits"),
        ("max_fun", 1, "Unknown limit 'max_fun'"),
    ],
)
def test_bad_limit_values_get_one_actionable_sentence(name, value, needle):
    with pytest.raises(PolicyError, match=needle.replace("(", r"\(")) as info:
        parse_limit(name, value)
    assert str(info.value).endswith(".")


def test_a_policy_must_be_an_object_of_limits():
    with pytest.raises(PolicyError):
        parse_limits(["concurrent_queries", 3])


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("queries_per_day", None, "unlimited"),
        ("queries_per_day", 5000, "5,000"),
        ("bytes_scanned_per_day", 10_000_000_000, "10 GB"),
        ("query_runtime_seconds", 300.0, "300 s"),
        ("query_runtime_seconds", 7200.0, "120 min"),
        ("server_cpu", 1.0, "1 core"),
        ("server_cpu", 2.5, "2.5 cores"),
        ("routing_groups", ("adhoc", "etl"), "adhoc, etl"),
    ],
)
def test_limits_are_shown_in_human_units(name, value, text):
    assert format_limit(name, value) == text


# ------------------------------------------------------------------ precedence


def _policies():
    return [
        Policy("default", "default", {"concurrent_queries": 2, "queries_per_day": 100}),
        Policy("group", "analysts", {"concurrent_queries": 4, "routing_groups": ("adhoc",)}),
        Policy(
            "group",
            "etl",
            {"concurrent_queries": 3, "queries_per_day": None, "routing_groups": ("etl",)},
        ),
        Policy("group", "contractors", {"server_memory": 1_000_000_000}),
        Policy("user", "alice", {"concurrent_queries": 1}),
        Policy("user", "bob", {"queries_per_day": 5}),
    ]


def test_a_users_own_policy_wins_even_when_stricter_than_the_groups():
    policy = effective_policy("alice", ["analysts", "etl"], _policies())
    assert policy["concurrent_queries"] == 1
    assert policy.sources["concurrent_queries"] == "user alice"


def test_otherwise_the_most_generous_group_wins_per_limit():
    policy = effective_policy("carol", ["analysts", "etl"], _policies())
    assert policy["concurrent_queries"] == 4
    assert policy.sources["concurrent_queries"] == "group analysts"
    # Unlimited (None) is the most generous value of all.
    assert policy["queries_per_day"] is None
    assert policy.sources["queries_per_day"] == "group etl"
    # Routing group lists are merged.
    assert policy["routing_groups"] == ("adhoc", "etl")
    assert policy.sources["routing_groups"] == "groups analysts, etl"


def test_otherwise_the_default_then_the_configuration_then_unlimited():
    configured = {"queued_queries": 7, "queries_per_day": 1}
    policy = effective_policy("dave", ["contractors"], _policies(), configured)
    assert (policy["concurrent_queries"], policy.sources["concurrent_queries"]) == (2, "default")
    assert (policy["queries_per_day"], policy.sources["queries_per_day"]) == (100, "default")
    assert (policy["queued_queries"], policy.sources["queued_queries"]) == (7, "configuration")
    assert (policy["query_cpu_seconds"], policy.sources["query_cpu_seconds"]) == (
        None,
        "built-in",
    )
    assert policy["server_memory"] == 1_000_000_000


def test_a_user_limit_set_to_unlimited_overrides_the_groups():
    policies = [*_policies(), Policy("user", "erin", {"server_memory": None})]
    policy = effective_policy("erin", ["contractors"], policies)
    assert policy["server_memory"] is None
    assert policy.sources["server_memory"] == "user erin"


def test_policies_of_other_users_and_groups_do_not_apply():
    policy = effective_policy("zoe", ["nobody"], _policies())
    assert policy["concurrent_queries"] == 2
    assert policy["queries_per_day"] == 100


def test_the_effective_policy_serializes_every_limit():
    doc = effective_policy("alice", ["analysts"], _policies()).to_json()
    assert set(doc["limits"]) == set(doc["sources"]) == set(LIMITS)
    assert doc["limits"]["routing_groups"] == ["adhoc"]


# ------------------------------------------------------------------ the calendar

UTC = dt.UTC


def test_usage_days_start_at_midnight_utc_by_default():
    days = UsageDays()
    assert days.day_of(dt.datetime(2025, 3, 1, 23, 59, tzinfo=UTC)) == dt.date(2025, 3, 1)
    assert days.day_of(dt.datetime(2025, 3, 2, 0, 0, tzinfo=UTC)) == dt.date(2025, 3, 2)
    assert days.describe_reset(dt.datetime(2025, 3, 1, 12, tzinfo=UTC)) == "00:00 UTC"


def test_usage_days_roll_at_the_configured_boundary_and_time_zone():
    days = UsageDays.from_config("Europe/Berlin", "06:00")
    berlin = ZoneInfo("Europe/Berlin")
    before = dt.datetime(2025, 7, 2, 5, 59, tzinfo=berlin)
    after = dt.datetime(2025, 7, 2, 6, 0, tzinfo=berlin)
    assert days.day_of(before) == dt.date(2025, 7, 1)
    assert days.day_of(after) == dt.date(2025, 7, 2)
    # 03:59 UTC is 05:59 in Berlin in summer: still the previous usage day.
    assert days.day_of(dt.datetime(2025, 7, 2, 3, 59, tzinfo=UTC)) == dt.date(2025, 7, 1)
    assert days.resets_at(before) == after
    assert days.describe_reset(before) == "06:00 CEST"
    assert days.describe_reset(dt.datetime(2025, 1, 10, 12, tzinfo=UTC)) == "06:00 CET"


def test_usage_days_survive_daylight_saving_changes():
    days = UsageDays.from_config("Europe/Berlin", "00:00")
    # The night clocks go forward (30 March 2025) the day is 23 hours long.
    start = days.start_of(dt.date(2025, 3, 30))
    end = days.resets_at(start)
    assert end.astimezone(UTC) - start.astimezone(UTC) == dt.timedelta(hours=23)


@pytest.mark.parametrize(("zone", "start"), [("Mars/Olympus", "00:00"), ("UTC", "25:00")])
def test_a_bad_calendar_is_refused_with_a_clear_message(zone, start):
    with pytest.raises(ValueError, match="IANA|HH:MM"):
        UsageDays.from_config(zone, start)


# ------------------------------------------------------------------ messages

ADMINS = "your DataHub admin (datahub-admins)"


def test_the_daily_refusal_names_the_limit_the_usage_the_reset_and_whom_to_ask():
    assert messages.daily_limit_reached("queries_per_day", 50, 50, "00:00 UTC", ADMINS) == (
        "QuotaExceeded: 50 of 50 queries used today; resets 00:00 UTC; "
        "ask your DataHub admin (datahub-admins) for more."
    )
    assert messages.daily_limit_reached(
        "cpu_seconds_per_day", 3612.4, 3600.0, "06:00 CEST", ADMINS
    ).startswith("QuotaExceeded: 3,612 of 3,600 CPU seconds used today; resets 06:00 CEST;")
    assert messages.daily_limit_reached(
        "bytes_scanned_per_day", 10_200_000_000, 10_000_000_000, "00:00 UTC", ADMINS
    ).startswith("QuotaExceeded: 10.2 GB of 10 GB scanned today;")


def test_the_queue_refusal_says_how_many_run_and_wait():
    assert messages.queue_full(3, 3, 10, 10, ADMINS) == (
        "QuotaExceeded: 3 of 3 concurrent queries running and 10 of 10 queued; "
        "wait for one to finish, or ask your DataHub admin (datahub-admins) for more."
    )
    assert "no queueing allowed" in messages.queue_full(1, 1, 0, 0, ADMINS)
    assert "allows no queries" in messages.queue_full(0, 0, 0, 5, ADMINS)


def test_a_queued_query_hears_why_it_waits():
    assert messages.waiting(3, 3, 3) == (
        "Queued: waiting for one of your 3 concurrent query slots (3 in use); "
        "2 of your queries ahead of it."
    )
    assert messages.waiting(1, 1, 1) == (
        "Queued: waiting for your only concurrent query slot (1 in use); yours is next."
    )


def test_routing_group_access_is_the_configured_default_that_policies_override():
    rules = Rules(
        days=UsageDays(),
        configured={"concurrent_queries": 5},
        contact=ADMINS,
        routing_access=configured_routing_groups(
            {"etl": {"groups": ["engineers"]}}, ["adhoc", "etl"]
        ),
    )
    configured = rules.configured_for("bob", ("analysts",))
    assert configured == {"concurrent_queries": 5, "routing_groups": ("adhoc",)}
    assert rules.configured_for("dan", ("engineers",))["routing_groups"] == ("adhoc", "etl")
    by_default = effective_policy("bob", ("analysts",), [], configured)
    assert (by_default["routing_groups"], by_default.sources["routing_groups"]) == (
        ("adhoc",),
        "configuration",
    )
    granted = Policy("group", "analysts", {"routing_groups": ("adhoc", "etl")})
    policy = effective_policy("bob", ("analysts",), [granted], configured)
    assert (policy["routing_groups"], policy.sources["routing_groups"]) == (
        ("adhoc", "etl"),
        "group analysts",
    )
    without = Rules(days=UsageDays(), configured={"concurrent_queries": 5}, contact=ADMINS)
    assert without.configured_for("bob", ()) == {"concurrent_queries": 5}


def test_the_cancel_message_says_what_the_query_used_and_the_limit():
    text = messages.per_query_limit_passed("query_cpu_seconds", 2.5, 1.0, ADMINS)
    assert text == (
        "QuotaExceeded: this query used 2.5 s of CPU, over your limit of 1 s per query, "
        "so it was cancelled; ask your DataHub admin (datahub-admins) for more."
    )
