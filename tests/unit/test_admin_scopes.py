"""DataHub's admin scopes: their definitions as JupyterHub reads them, what grants them,
what servers' tokens carry, and who sees the admin items of the nav bar. The attacks
through the real stack are in tests/e2e/test_admin_scopes.py."""

from __future__ import annotations

from types import SimpleNamespace

from jupyterhub import scopes as hub_scopes

from datahub import scopes
from datahub.spawners.local import DataHubLocalSpawner
from datahub.web.nav import hub_template_nav


def test_the_custom_scopes_are_valid_jupyterhub_custom_scopes():
    for name, definition in scopes.CUSTOM_SCOPES.items():
        assert hub_scopes._custom_scope_pattern.match(name), name
        assert definition["description"]
    assert set(scopes.ALL) == set(scopes.CUSTOM_SCOPES)


def test_the_admin_scope_holds_quotas_audit_and_act_as():
    assert set(scopes.CUSTOM_SCOPES[scopes.ADMIN]["subscopes"]) == {
        scopes.QUOTAS,
        scopes.AUDIT,
        scopes.ACT_AS,
    }


def test_a_filtered_scope_grants_nothing():
    assert scopes.holds([scopes.ACT_AS], scopes.ACT_AS)
    assert not scopes.holds([f"{scopes.ACT_AS}!user=bob"], scopes.ACT_AS)
    assert not scopes.holds(None, scopes.ADMIN)
    assert not scopes.holds(["admin:users", "access:services"], scopes.ADMIN)


def test_servers_tokens_carry_no_datahub_scope_unless_act_as_is_turned_on():
    off = DataHubLocalSpawner().server_token_scopes
    assert not [s for s in off if s.startswith("custom:")]
    on = DataHubLocalSpawner(server_token_act_as=True).server_token_scopes
    assert set(on) - set(off) == {scopes.ACT_AS}


def test_hub_pages_show_admin_items_by_the_given_rule_not_the_flag():
    nav = hub_template_nav(is_admin=lambda user: user.name == "carol")
    flagged = SimpleNamespace(name="mallory", admin=True)
    carol = SimpleNamespace(name="carol", admin=False)

    def labels(user):
        return [item.label for item in nav(user)("hub:home").items]

    assert "Admin" not in labels(flagged)
    assert "Admin" in labels(carol)
    assert nav(None)("hub:login").items == ()
