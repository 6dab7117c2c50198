"""Named parts, JupyterHub style: `DataHubService` builds each feature's part once and
puts it in the tornado settings; handlers read typed properties over those settings, and
the features never reach for the service (nor import it)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from unittest import mock

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from traitlets import TraitError
from traitlets.config import Config

import datahub
from datahub.audit.handlers import MyQueriesPage
from datahub.catalog.handlers import MetadataAPI
from datahub.gateway.routing import RoutingConfigError
from datahub.quotas.handlers import QuotaPage
from datahub.quotas.manager import configured_routing_groups
from datahub.service.app import DataHubService
from datahub.sharing.handlers import GalleryPage
from datahub.web.pages import HomePage

PACKAGE = Path(datahub.__file__).parent
FEATURES = ("audit", "catalog", "quotas", "sharing", "store", "web")


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    built = DataHubService(
        clusters=[
            {"name": "a", "url": "http://a:8080", "routing_group": "adhoc"},
            {"name": "e", "url": "http://e:8080", "routing_group": "etl"},
        ],
        default_routing_group="adhoc",
        store_threads=3,
    )
    built.init()
    yield built
    built.store.dispose()


def handler(app, cls):
    start = RequestStartLine("GET", "/services/datahub/", "HTTP/1.1")
    headers = HTTPHeaders({"Host": "127.0.0.1"})
    request = HTTPServerRequest(connection=mock.Mock(), start_line=start, headers=headers)
    return cls(app, request)


def test_the_service_builds_each_part_once_and_handlers_read_them_from_the_settings(service):
    app = service.make_app()
    settings = app.settings
    assert settings["datahub_store"] is service.store
    assert settings["datahub_quotas"] is service.quotas
    assert settings["datahub_sharing"] is service.sharing
    assert settings["datahub_audit"] is service.audit
    assert settings["datahub_catalog"] is service.metadata_catalog
    assert settings["datahub_prefix"] == "/services/datahub/"
    # The parts share the service's store; nothing is stashed on the service.
    assert service.quotas.store is service.store
    assert service.sharing.notebooks.store is service.store
    assert not hasattr(service, "_datahub_quota_manager")

    quota_page = handler(app, QuotaPage)
    assert quota_page.quotas is service.quotas and quota_page.store is service.store
    gallery = handler(app, GalleryPage)
    assert gallery.sharing is service.sharing and gallery.notebooks is service.sharing.notebooks
    history = handler(app, MyQueriesPage)
    assert history.audit is service.audit and history.cluster_names == ["a", "e"]
    assert handler(app, MetadataAPI).metadata is service.metadata_catalog
    home = handler(app, HomePage)
    assert home.prefix == "/services/datahub/"
    assert [c.name for c in home.clusters] == ["a", "e"]
    # A second app (a second listener) gets the same parts, not new ones.
    assert service.make_app().settings["datahub_quotas"] is service.quotas


def test_store_threads_sizes_the_stores_pool(service):
    assert service.store.threads == 3
    with pytest.raises(TraitError, match="store_threads must be at least 1"):
        DataHubService(store_threads=0)


def test_the_metadata_catalog_reads_through_the_services_own_listener(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    service = DataHubService(clusters=[], ip="0.0.0.0", port=10555)
    service.init()
    assert service.metadata_catalog.gateway_url == "http://127.0.0.1:10555"
    service.store.dispose()


def test_routing_group_access_is_a_deprecated_default_of_the_quota_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    service = DataHubService(
        clusters=[
            {"name": "a", "url": "http://a:8080", "routing_group": "adhoc"},
            {"name": "e", "url": "http://e:8080", "routing_group": "etl"},
        ],
        default_routing_group="adhoc",
        routing_group_access={"etl": {"groups": ["engineers"], "users": ["carol"]}},
    )
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    service.log.addHandler(handler)
    try:
        service.init()
    finally:
        service.log.removeHandler(handler)
    assert any(
        "routing_group_access is deprecated" in w and "c.QuotaManager.default_limits" in w
        for w in warnings
    )
    rules = service.quotas.rules
    assert rules.configured_for("bob", ("analysts",))["routing_groups"] == ("adhoc",)
    assert rules.configured_for("dan", ("engineers",))["routing_groups"] == ("adhoc", "etl")
    assert rules.configured_for("carol", ())["routing_groups"] == ("adhoc", "etl")
    service.store.dispose()


def test_routing_groups_are_set_in_one_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    service = DataHubService(
        clusters=[{"name": "e", "url": "http://e:8080", "routing_group": "etl"}],
        routing_group_access={"etl": {"users": ["carol"]}},
        config=Config({"QuotaManager": {"default_limits": {"routing_groups": ["etl"]}}}),
    )
    with pytest.raises(ValueError, match="in one place"):
        service.init()


def test_without_routing_group_access_the_quota_policy_alone_decides(service):
    assert service.quotas.routing_access is None
    assert "routing_groups" not in service.quotas.rules.configured_for("bob", ())


def test_configured_routing_groups_opens_what_it_does_not_list():
    allowed = configured_routing_groups(
        {"etl": {"groups": ["engineers"]}, "gpu": {"users": ["ann"]}},
        ["adhoc", "etl", "gpu", "etl"],
    )
    assert allowed("bob", ()) == ["adhoc"]
    assert allowed("bob", ("engineers",)) == ["adhoc", "etl"]
    assert allowed("ann", ()) == ["adhoc", "gpu"]
    with pytest.raises(RoutingConfigError, match="must be a dict"):
        configured_routing_groups({"etl": ["engineers"]}, ["etl"])
    with pytest.raises(RoutingConfigError, match="list of names"):
        configured_routing_groups({"etl": {"users": [1]}}, ["etl"])


def _imports(path: Path) -> set[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("feature", FEATURES)
def test_features_never_import_the_service(feature):
    for path in sorted((PACKAGE / feature).rglob("*.py")):
        service_imports = {m for m in _imports(path) if m.startswith("datahub.service")}
        assert not service_imports, f"{path.relative_to(PACKAGE)} imports {service_imports}"


@pytest.mark.parametrize("feature", FEATURES)
def test_handlers_need_no_attr_defined_ignores(feature):
    for path in sorted((PACKAGE / feature).rglob("*.py")):
        assert "type: ignore[attr-defined]" not in path.read_text(), path.relative_to(PACKAGE)


@pytest.mark.parametrize("base", ["web", "store"])
def test_the_web_layer_and_the_store_depend_on_no_feature(base):
    features = ("datahub.audit", "datahub.quotas", "datahub.sharing", "datahub.catalog")
    for path in sorted((PACKAGE / base).rglob("*.py")):
        reached = {m for m in _imports(path) if m.startswith(features)}
        assert not reached, f"{path.relative_to(PACKAGE)} imports {reached}"


def test_the_admin_pages_notice_about_server_limits_comes_from_the_hubs_spawner_config(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = Config()
    config.JupyterHub.spawner_class = "datahub.spawners.local.DataHubLocalSpawner"
    config.DataHubLocalSpawner.limit_enforcement = "none"
    service = DataHubService(clusters=[], config=config)
    service.init()
    assert "Server limits are not enforced on this host" in service.quotas.server_limits_notice()
    service.store.dispose()
    plain = DataHubService(clusters=[])
    plain.init()
    assert plain.quotas.server_limits_notice() is None
    plain.store.dispose()
