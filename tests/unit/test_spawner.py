"""Pure parts of the DataHub spawners."""

import json

import pytest

from datahub.spawners.local import system_username
from datahub.spawners.mixin import SHARE_DIR, WELCOME_NOTEBOOK


@pytest.mark.parametrize(
    ("hub_name", "expected"),
    [("alice", "jupyter-alice"), ("a.b-c_d", "jupyter-a.b-c_d"), ("x1", "jupyter-x1")],
)
def test_each_hub_user_gets_a_prefixed_system_account(hub_name, expected):
    assert system_username("jupyter-{username}", hub_name) == expected


@pytest.mark.parametrize("hub_name", ["", "../root", "Alice", "a b", "-rf", "a/b", "x" * 40])
def test_names_that_are_not_safe_account_names_are_refused(hub_name):
    with pytest.raises(ValueError):
        system_username("jupyter-{username}", hub_name)


def test_the_default_kernel_loads_the_sql_extension():
    spec = json.loads((SHARE_DIR / "kernels" / "python3" / "kernel.json").read_text())
    assert "--ext=datahub.extensions.sql" in spec["argv"]
    # jupyter_client swaps a bare "python" for the server's own interpreter.
    assert spec["argv"][0] == "python"


def test_the_welcome_notebook_is_valid_and_runs_sql():
    import nbformat

    nb = nbformat.read(WELCOME_NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert any(c.source.startswith("%%sql") for c in nb.cells if c.cell_type == "code")
