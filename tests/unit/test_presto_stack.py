"""The local PrestoDB's pure parts: its access rules, password file and choice of Java."""

import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from datahub.stack import demo
from datahub.stack import presto as presto_module
from datahub.stack.local import LocalStack
from datahub.stack.presto import PrestoServer, access_rules, find_java, password_file_line

REPO = Path(__file__).resolve().parents[2]


def principal_may_become(rules, principal, user):
    """PrestoDB's reading of ``principals`` rules: the first rule whose principal and
    user patterns both match decides; no match denies."""
    for rule in rules["principals"]:
        if re.fullmatch(rule["principal"], principal) and re.fullmatch(rule["user"], user):
            return rule["allow"]
    return False


def catalog_access(rules, user, catalog):
    for rule in rules["catalogs"]:
        if re.fullmatch(rule.get("user", ".*"), user) and re.fullmatch(
            rule.get("catalog", ".*"), catalog
        ):
            return rule["allow"]
    return "all" if catalog == "system" else "none"  # PrestoDB's own last rule


def test_service_account_may_act_as_employees_and_itself_only():
    rules = access_rules()
    service = demo.TRINO_SERVICE_ACCOUNT
    for person in demo.PEOPLE:
        assert principal_may_become(rules, service, person.uid)
    assert principal_may_become(rules, service, service)
    assert not principal_may_become(rules, service, demo.HUB_SERVICE_ACCOUNT)
    assert not principal_may_become(rules, demo.HUB_SERVICE_ACCOUNT, "alice")
    assert not principal_may_become(rules, "alice", "alice")


def test_only_full_readers_get_tpch_and_only_the_service_account_system():
    rules = access_rules()
    assert catalog_access(rules, "alice", "tpch") == "read-only"
    for uid in ("bob", "carol", "dave", "eve"):
        assert catalog_access(rules, uid, "tpch") == "none"
        assert catalog_access(rules, uid, "system") == "none"
    assert catalog_access(rules, demo.TRINO_SERVICE_ACCOUNT, "system") == "read-only"
    assert catalog_access(rules, "alice", "memory") == "none"


def test_names_are_matched_literally():
    rules = access_rules("svc.1", protected_accounts=("svc.1", "hub.x"), tpch_readers=("a.b",))
    assert principal_may_become(rules, "svc.1", "hub.x") is False
    assert not principal_may_become(rules, "svcx1", "alice")
    assert catalog_access(rules, "a.b", "tpch") == "read-only"
    assert catalog_access(rules, "aXb", "tpch") == "none"


def test_password_file_holds_a_pbkdf2_hash_not_the_password():
    line = password_file_line("datahub-trino", "s3cret", salt=b"\x01" * 16)
    user, iterations, salt, digest = line.rstrip("\n").split(":")
    assert user == "datahub-trino"
    assert "s3cret" not in line
    expected = hashlib.pbkdf2_hmac("sha256", b"s3cret", bytes.fromhex(salt), int(iterations))
    assert digest == expected.hex()
    assert int(iterations) >= 100_000


def test_password_file_refuses_names_that_break_its_format():
    with pytest.raises(ValueError, match="Unusable account name"):
        password_file_line("a:b", "x")


def fake_jdk(root, name, version):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_java_newer_than_presto_supports_is_passed_over(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    fake_jdk(tmp_path, "temurin-25", "25.0.1")
    seventeen = fake_jdk(tmp_path, "openjdk-17", "17.0.13")
    assert find_java([tmp_path]) == seventeen


def test_java_home_within_range_wins(tmp_path, monkeypatch):
    fake_jdk(tmp_path, "openjdk-17", "17.0.13")
    twenty_one = fake_jdk(tmp_path / "other", "openjdk-21", "21.0.5")
    monkeypatch.setenv("JAVA_HOME", str(twenty_one))
    assert find_java([tmp_path]) == twenty_one


def test_no_supported_java_says_which_are_needed(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    fake_jdk(tmp_path, "temurin-25", "25.0.1")
    with pytest.raises(FileNotFoundError, match=r"needs Java 17 to 23 and found Java 25"):
        find_java([tmp_path])
    assert presto_module.MAX_JAVA < 25


def test_stack_settings_carry_each_clusters_engine(tmp_path):
    stack = LocalStack(tmp_path / "state", REPO / "jupyterhub_config.py", presto=True)
    stack.slapd = SimpleNamespace(url="ldap://127.0.0.1:1", port=1)
    stack.trinos = stack._make_trinos()
    stack.presto = PrestoServer(stack.state_dir / "presto", secrets=stack.secrets["services"])
    stack._write_settings()
    clusters = json.loads(stack.stack_file.read_text())["clusters"]
    assert [(c["name"], c["engine"], c["routing_group"]) for c in clusters] == [
        ("trino", "trino", "default"),
        ("presto", "presto", "presto"),
    ]
    presto = clusters[1]
    assert presto["url"] == stack.presto.url and presto["url"].startswith("https://")
    assert presto["user"] == demo.TRINO_SERVICE_ACCOUNT
    assert presto["password"] == stack.secrets["services"][demo.TRINO_SERVICE_ACCOUNT]


class FakePresto(PrestoServer):
    """A PrestoServer that records starts and stops instead of running Java."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, secrets={demo.TRINO_SERVICE_ACCOUNT: "pw"})
        self.calls: list[str] = []

    def start(self, timeout: float = 0) -> PrestoServer:
        self.calls.append("start")
        return self

    def stop(self) -> None:
        self.calls.append("stop")


def test_a_running_presto_joins_the_stack_which_neither_starts_nor_stops_it(tmp_path):
    server = FakePresto(tmp_path / "presto")
    stack = LocalStack(tmp_path / "state", REPO / "jupyterhub_config.py", presto=server)
    assert stack.presto is server and stack.with_presto
    stack.slapd = SimpleNamespace(url="ldap://127.0.0.1:1", port=1)
    stack.trinos = stack._make_trinos()
    stack._write_settings()
    (entry,) = [
        c for c in json.loads(stack.stack_file.read_text())["clusters"] if c["engine"] == "presto"
    ]
    assert entry == server.cluster_entry(routing_group="presto")  # its own password
    stack.trinos, stack.slapd = [], None
    stack.stop()
    assert server.calls == []
    owned = LocalStack(tmp_path / "owned", REPO / "jupyterhub_config.py", presto=True)
    owned.presto = FakePresto(tmp_path / "owned-presto")
    owned.stop()
    assert owned.presto.calls == ["stop"]


def test_a_presto_cluster_gets_the_client_tag_rule_of_jupyterhub_config(tmp_path, monkeypatch):
    from datahub.service.app import DataHubService
    from datahub.stack.local import STACK_FILE_ENV

    stack = LocalStack(tmp_path / "state", REPO / "jupyterhub_config.py", presto=True)
    stack.slapd = SimpleNamespace(url="ldap://127.0.0.1:1", port=1)
    stack.trinos = stack._make_trinos()
    stack.presto = PrestoServer(stack.state_dir / "presto", secrets=stack.secrets["services"])
    stack._write_settings()
    monkeypatch.setenv(STACK_FILE_ENV, str(stack.stack_file))
    monkeypatch.chdir(tmp_path)
    service = DataHubService()
    service.initialize(["-f", str(REPO / "jupyterhub_config.py")])
    assert service.router.routing_groups == ["default", "presto"]
    (rule,) = service.router.rules
    assert (rule.name, set(rule.client_tags), rule.engine) == (
        "presto client tag",
        {"presto"},
        "presto",
    )
