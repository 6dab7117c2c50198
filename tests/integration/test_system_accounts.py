"""The local spawner's system accounts on a machine shared by several hubs: the first
spawn creates ``jupyter-<name>``, and two hubs (two test sessions, two checkouts) spawning
the same new user at once must both get the account instead of one failing on
``useradd: user already exists``."""

from __future__ import annotations

import pwd
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from datahub.spawners.local import DataHubLocalSpawner


@pytest.fixture
def new_user(tmp_path):
    name = f"race{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["userdel", "--remove", f"jupyter-{name}"], capture_output=True, check=False)


def test_two_hubs_creating_the_same_new_account_at_once_both_get_it(new_user, tmp_path):
    def spawner() -> DataHubLocalSpawner:
        return DataHubLocalSpawner(
            user=SimpleNamespace(name=new_user, groups=[], id=1), home_root=str(tmp_path)
        )

    with ThreadPoolExecutor(4) as pool:
        accounts = list(pool.map(lambda _: spawner().ensure_system_account(), range(4)))
    assert {account.pw_name for account in accounts} == {f"jupyter-{new_user}"}
    assert {account.pw_uid for account in accounts} == {pwd.getpwnam(f"jupyter-{new_user}").pw_uid}
