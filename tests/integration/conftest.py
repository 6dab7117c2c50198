"""Fixtures for the integration tests of the %%sql magic."""

from __future__ import annotations

import pytest
from IPython.testing import globalipapp


@pytest.fixture(scope="module")
def ip(stack, users):
    """An IPython shell with the SQL extension, querying through the stack's gateway as
    alice with a hub token of hers (the shell is per process; settings per module)."""
    globalipapp.start_ipython()  # once per process; later calls return None
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    shell.run_line_magic("config", f"SqlMagic.gateway_url = {stack.settings['gateway_url']!r}")
    shell.run_line_magic("config", f"SqlMagic.token = {users.token('alice')!r}")
    shell.run_line_magic("config", "SqlMagic.user = 'alice'")
    return shell
