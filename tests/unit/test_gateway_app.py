"""The gateway application: configuration from jupyterhub_config.py and the environment."""

from __future__ import annotations

import logging
import stat

import pytest
from traitlets import TraitError

from datahub.service.app import DataHubService


@pytest.fixture
def service_env(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://10.0.0.5:10123/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_NAME", "gw")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/gw/")


def test_the_hubs_config_file_configures_the_gateway(tmp_path, monkeypatch, service_env):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c = get_config()\n"
        "c.JupyterHub.ip = '0.0.0.0'\n"
        "c.DataHubService.clusters = [{'name': 'main', 'url': 'http://trino:8080'}]\n"
        "c.DataHubService.read_timeout = 30\n"
    )
    service = DataHubService()
    service.initialize(["-f", str(config)])
    assert list(service.cluster_map) == ["main"]
    assert service.read_timeout == 30
    assert (service.ip, service.port) == ("10.0.0.5", 10123)
    assert service.service_name == "gw"
    assert service.identity_resolver.required_scopes == {"access:services!service=gw"}
    assert service.service_prefix == "/services/gw/"


def test_the_signing_secret_file_is_created_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = DataHubService(clusters=[])
    first.init()
    secret_file = tmp_path / "datahub_gateway_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    second = DataHubService(clusters=[])
    second.init()
    sig = first.signer.sign("c", "u", "/v1/statement/x")
    assert second.signer.verify("c", "u", "/v1/statement/x", sig)


def test_a_bad_cluster_entry_fails_at_configuration_time():
    with pytest.raises(TraitError, match="needs a url"):
        DataHubService(clusters=[{"name": "main", "url": "trino:8080"}])


def test_a_missing_config_file_named_on_the_command_line_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        DataHubService().initialize(["-f", str(tmp_path / "nope.py")])


def test_the_secret_may_be_given_as_hex_as_the_local_stack_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    service = DataHubService(clusters=[], secret="ab" * 32)
    service.init()
    assert service.secret == b"\xab" * 32
    assert not (tmp_path / "datahub_gateway_secret").exists()


@pytest.mark.parametrize("secret", ["not hex", b"short"])
def test_an_unusable_secret_is_refused(secret):
    with pytest.raises(TraitError, match="DataHubService.secret"):
        DataHubService(secret=secret)


def test_routing_is_configured_in_the_hubs_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c = get_config()\n"
        "c.DataHubService.clusters = [\n"
        "    {'name': 'a', 'url': 'http://a:8080', 'routing_group': 'adhoc'},\n"
        "    {'name': 'e', 'url': 'http://e:8080', 'routing_group': 'etl'},\n"
        "]\n"
        "c.DataHubService.default_routing_group = 'adhoc'\n"
        "c.DataHubService.routing_rules = [{'source': 'airflow', 'routing_group': 'etl'}]\n"
        "c.DataHubService.routing_group_access = {'etl': {'groups': ['engineers']}}\n"
        "c.DataHubService.routing_hook = lambda request: None\n"
        "c.DataHubService.event_log_file = 'events.jsonl'\n"
    )
    service = DataHubService()
    service.initialize(["-f", str(config)])
    assert service.router.routing_groups == ["adhoc", "etl"]
    assert service.quotas.routing_access("bob", ()) == ["adhoc"]
    assert service.audit.event_log.path.name == "events.jsonl"
    assert list(service.monitor.statuses) == ["a", "e"]


@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("routing_rules", [{"source": "x"}], "needs a routing_group"),
        ("routing_rules", [{"sorce": "x", "routing_group": "g"}], "unknown condition"),
        ("routing_group_access", {"etl": ["engineers"]}, "must be a dict"),
    ],
)
def test_bad_routing_settings_fail_at_configuration_time(trait, value, message):
    with pytest.raises(TraitError, match=message):
        DataHubService(**{trait: value})


def test_the_quotas_admit_and_listen_unless_an_admission_is_configured(tmp_path, monkeypatch):
    from datahub.gateway.admission import QueryAdmission, QueryListener
    from datahub.quotas.hooks import QuotaAdmission, QuotaListener

    monkeypatch.chdir(tmp_path)
    service = DataHubService(clusters=[])
    service.init()
    assert isinstance(service.tracker.admission, QuotaAdmission)
    # Listeners appended once the service is built are told too (the list itself is held).
    listener = QueryListener()
    service.query_listeners.append(listener)
    assert isinstance(service.tracker.listeners.listeners[-2], QuotaListener)
    assert service.tracker.listeners.listeners[-1] is listener

    mine = QueryAdmission()
    configured = DataHubService(clusters=[], admission=mine)
    configured.init()
    assert configured.tracker.admission is mine


def test_query_hooks_is_a_deprecated_name_of_query_listeners(tmp_path, monkeypatch, capfd):
    from datahub.gateway.admission import QueryListener

    monkeypatch.chdir(tmp_path)
    listener = QueryListener()
    service = DataHubService(clusters=[], query_hooks=[listener])
    service.init()
    assert service.tracker.listeners.listeners[0] is listener
    assert "query_hooks is deprecated" in capfd.readouterr().err


def recording(log: logging.Logger) -> list[logging.LogRecord]:
    """The records *log* makes from now on (until its handlers are configured again)."""
    made: list[logging.LogRecord] = []
    recorder = logging.Handler()
    recorder.emit = made.append
    log.addHandler(recorder)
    return made


def test_debug_records_are_made_only_when_the_log_level_asks_for_them(tmp_path):
    # traitlets filters in its handler and leaves the logger at DEBUG: each debug call on
    # a query's path would build a record only to drop it.
    try:
        service = DataHubService()
        made = recording(service.log)
        service.log.debug("not at INFO")
        service.log.info("at INFO")
        assert [r.getMessage() for r in made] == ["at INFO"]
        service.log_level = "DEBUG"
        made = recording(service.log)
        service.log.debug("asked for")
        assert [r.getMessage() for r in made] == ["asked for"]

        # A logging_config that wants debug records for a handler of its own says so.
        config = tmp_path / "jupyterhub_config.py"
        config.write_text(
            "c = get_config()\n"
            "c.DataHubService.logging_config = "
            "{'loggers': {'DataHubService': {'level': 'DEBUG'}}}\n"
        )
        configured = DataHubService()
        configured.initialize(["-f", str(config)])
        assert configured.log_level == logging.INFO
        made = recording(configured.log)
        configured.log.debug("to its handler")
        assert [r.getMessage() for r in made] == ["to its handler"]
    finally:
        DataHubService(log_level="INFO")
