"""The local stack's clusters and routing settings, as jupyterhub_config.py reads them
(nothing is started here)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from datahub.service.app import DataHubService
from datahub.stack.local import STACK_FILE_ENV, LocalStack

REPO = Path(__file__).resolve().parents[2]


def settings_of(tmp_path: Path, groups: tuple[str, ...]) -> LocalStack:
    stack = LocalStack(
        tmp_path / "state", REPO / "jupyterhub_config.py", trino_routing_groups=groups
    )
    stack.slapd = SimpleNamespace(url="ldap://127.0.0.1:1", port=1)
    stack.trinos = stack._make_trinos()
    stack.trino = stack.trinos[0]
    stack._write_settings()
    return stack


def test_one_cluster_by_default_in_the_default_routing_group(tmp_path):
    stack = settings_of(tmp_path, ("default",))
    (cluster,) = json.loads(stack.stack_file.read_text())["clusters"]
    assert (cluster["name"], cluster["routing_group"]) == ("trino", "default")


def test_an_etl_cluster_gets_the_etl_routing_rules_of_jupyterhub_config(tmp_path, monkeypatch):
    stack = settings_of(tmp_path, ("default", "etl"))
    clusters = json.loads(stack.stack_file.read_text())["clusters"]
    assert [(c["name"], c["routing_group"]) for c in clusters] == [
        ("trino", "default"),
        ("trino-2", "etl"),
    ]
    monkeypatch.setenv(STACK_FILE_ENV, str(stack.stack_file))
    monkeypatch.chdir(tmp_path)
    service = DataHubService()
    service.initialize(["-f", str(REPO / "jupyterhub_config.py")])
    assert service.router.routing_groups == ["default", "etl"]
    assert [rule.name for rule in service.router.rules] == ["scheduled jobs", "batch tag"]
    assert service.quotas.routing_access("alice", ("analysts",)) == ["default"]
    assert service.quotas.routing_access("carol", ("datahub-admins",)) == ["default", "etl"]
    assert service.event_log_file.endswith("query-events.jsonl")


def test_the_stack_needs_a_cluster(tmp_path):
    with pytest.raises(ValueError, match="at least one Trino cluster"):
        LocalStack(tmp_path, REPO / "jupyterhub_config.py", trino_routing_groups=())
