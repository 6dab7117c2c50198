"""The configuration reference (docs/configuration.md) says what the traitlets help says."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap
from pathlib import Path

import pytest
from traitlets.config import Configurable

import datahub
from datahub import cli, configref

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"

#: Configurable classes that are not options of a deployment.
NOT_DOCUMENTED = {"StaticIdentityResolver"}  # datahub.testing: a test double


@pytest.fixture(scope="module")
def reference() -> str:
    return configref.render()


def _datahub_classes() -> set[type[Configurable]]:
    """Every Configurable class defined in the installed datahub package (with extensions
    and spawners) that has config options of its own."""
    found = set()
    for module_info in pkgutil.walk_packages(datahub.__path__, "datahub."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module.__name__
                and issubclass(cls, Configurable)
                and any(t.this_class is cls for t in cls.class_traits(config=True).values())
            ):
                found.add(cls)
    return found


def _traitlets_help(cls: type[Configurable], name: str) -> tuple[str, str | None]:
    """(help, default) as ``cls.class_get_trait_help`` prints them."""
    lines = cls.class_get_trait_help(cls.class_traits()[name]).splitlines()[1:]
    default = None
    if lines and lines[-1].startswith("    Default: "):
        default = lines.pop().removeprefix("    Default: ")
    if lines and lines[-1].startswith("    Choices: "):
        lines.pop()
    return textwrap.dedent("\n".join(lines)).strip("\n"), default


def test_the_committed_reference_is_the_generated_one(reference):
    assert DOC.exists(), f"docs/configuration.md is missing; run `{configref.REGENERATE}`."
    assert DOC.read_text() == reference, (
        f"docs/configuration.md is out of date with the traitlets help; run "
        f"`{configref.REGENERATE}` and commit the result."
    )


def test_every_configurable_class_of_datahub_is_in_the_reference():
    documented = configref.reference_classes()
    missing = sorted(
        cls.__name__
        for cls in _datahub_classes()
        # A mixin's options are documented with the classes it is mixed into.
        if not any(issubclass(d, cls) for d in documented) and cls.__name__ not in NOT_DOCUMENTED
    )
    assert not missing, f"add these classes to datahub.configref.GROUPS: {missing}"


def test_every_datahub_option_appears_once_with_its_class(reference):
    for cls in configref.reference_classes():
        for name, trait in cls.class_traits(config=True).items():
            if trait.this_class.__module__.startswith("datahub."):
                heading = f"#### `c.{cls.__name__}.{name}`\n"
                assert reference.count(heading) == 1, heading


def test_the_upstream_options_a_deployment_sets_are_listed(reference):
    for name in ("server_address", "tls_strategy", "user_search_base", "allowed_groups"):
        assert f"#### `c.DataHubLDAPAuthenticator.{name}`\n" in reference


def test_every_option_has_help():
    for group in configref.GROUPS:
        for _, options in configref.options(group):
            empty = [option.name for option in options if not option.help.strip()]
            assert not empty, f"add help= to {empty}"


@pytest.mark.parametrize(
    "target, name",
    [
        ("datahub.service.app:DataHubService", "clusters"),
        ("datahub.service.app:DataHubService", "routing_rules"),
        ("datahub.ldap.authenticator:DataHubLDAPAuthenticator", "admin_groups"),
        ("datahub.ldap.authenticator:DataHubLDAPAuthenticator", "server_address"),
        ("datahub.quotas.manager:QuotaManager", "timezone"),
        ("datahub.spawners.local:DataHubLocalSpawner", "gateway_url"),
        ("datahub.spawners.local:DataHubLocalSpawner", "limit_enforcement"),
        ("datahub.extensions.sql:SqlMagic", "display_rows"),
    ],
)
def test_an_entry_shows_the_help_and_default_traitlets_prints(reference, target, name):
    cls = configref.Part(target).load()
    help_text, default = _traitlets_help(cls, name)
    entry = reference.split(f"#### `c.{cls.__name__}.{name}`\n", 1)[1].split("\n#### ", 1)[0]
    assert help_text and f"\n{help_text}\n" in entry
    assert f"Default: `{default}`" in entry


def test_settings_in_the_readme_and_the_hub_config_name_real_options():
    for path in ("README.md", "jupyterhub_config.py", "docs/configuration.md"):
        problems = configref.unknown_settings((REPO / path).read_text())
        assert not problems, f"{path}: {problems}"


def test_a_setting_of_an_unknown_class_or_option_is_reported():
    text = "c.DataHubService.clusters = []\nc.Nope.x = 1\n%config SqlMagic.rows = 5\n"
    assert configref.unknown_settings(text) == [
        "line 2: Nope.x: no such configurable class",
        "line 3: SqlMagic.rows: SqlMagic has no config option rows",
    ]


def test_the_cli_prints_and_writes_the_reference(reference, capsys, tmp_path):
    assert cli.main(["config-reference"]) == 0
    assert capsys.readouterr().out == reference
    target = tmp_path / "configuration.md"
    assert cli.main(["config-reference", "--write", str(target)]) == 0
    assert target.read_text() == reference
