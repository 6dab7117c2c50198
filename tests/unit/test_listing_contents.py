"""Users' servers list a folder even while a file in it is renamed: JupyterLab renames a new
notebook on its first save while its file browser refreshes the folder, and Jupyter's own
contents manager then answers the whole listing 404, which JupyterLab shows as "Directory
not found". The race is made certain here by renaming the file at the moment the listing
asks for its model."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import nbformat
import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

from datahub.extensions.contents import LISTING_ATTEMPTS, ListingContentsManager
from datahub.spawners.mixin import SHARE_CONFIG_DIR


def renamed_while_listed(manager, root, old: str, new: str, times: int = 1):
    """Make *manager* rename *old* to *new* (and back, for later times) just as a listing
    asks for its model, *times* times; returns the list of renames done."""
    get, done = manager.get, []

    async def get_racing(path, content=True, **kwargs):
        name = path.rsplit("/", 1)[-1]
        if not content and len(done) < times and name in (old, new):
            source, target = (old, new) if name == old else (new, old)
            os.rename(root / source, root / target)
            done.append((source, target))
        return await get(path, content=content, **kwargs)

    manager.get = get_racing
    return done


@pytest.fixture
def folder(tmp_path):
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "Untitled.ipynb")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "sub").mkdir()
    return tmp_path


def names(model) -> set[str]:
    return {entry["name"] for entry in model["content"]}


def test_jupyters_own_manager_answers_404_for_a_folder_whose_file_is_renamed_while_listed(folder):
    manager = AsyncLargeFileManager(root_dir=str(folder))
    renamed_while_listed(manager, folder, "Untitled.ipynb", "Kept.ipynb")
    with pytest.raises(web.HTTPError) as raised:
        asyncio.run(manager.get(""))
    assert raised.value.status_code == 404


def test_a_folder_whose_file_is_renamed_while_listed_is_listed_as_it_is_after(folder):
    manager = ListingContentsManager(root_dir=str(folder))
    done = renamed_while_listed(manager, folder, "Untitled.ipynb", "Kept.ipynb")
    model = asyncio.run(manager.get(""))
    assert done == [("Untitled.ipynb", "Kept.ipynb")]
    assert model["type"] == "directory"
    assert names(model) == {"Kept.ipynb", "data.csv", "sub"}


def test_a_subfolder_is_listed_again_too(folder):
    nbformat.write(nbformat.v4.new_notebook(), folder / "sub" / "a.ipynb")
    manager = ListingContentsManager(root_dir=str(folder))
    renamed_while_listed(manager, folder / "sub", "a.ipynb", "b.ipynb")
    assert names(asyncio.run(manager.get("sub"))) == {"b.ipynb"}


def test_a_file_that_vanishes_at_every_listing_ends_in_404_after_the_last_attempt(folder):
    manager = ListingContentsManager(root_dir=str(folder))
    done = renamed_while_listed(manager, folder, "Untitled.ipynb", "Kept.ipynb", times=99)
    with pytest.raises(web.HTTPError) as raised:
        asyncio.run(manager.get(""))
    assert raised.value.status_code == 404
    assert len(done) == LISTING_ATTEMPTS


@pytest.mark.parametrize(("path", "listed"), [("missing", 0), (".hidden", 1)])
def test_a_folder_that_is_missing_or_hidden_is_404_at_once(folder, path, listed):
    (folder / ".hidden").mkdir()
    manager = ListingContentsManager(root_dir=str(folder))
    listings = []

    original = AsyncLargeFileManager._dir_model

    async def counted(self, path, content=True):
        listings.append(path)
        return await original(self, path, content=content)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AsyncLargeFileManager, "_dir_model", counted)
        with pytest.raises(web.HTTPError) as raised:
            asyncio.run(manager.get(path, type="directory"))
    assert raised.value.status_code == 404
    assert listings == [path] * listed


def test_users_servers_run_with_this_manager(tmp_path):
    """A Jupyter server with the config path the DataHub spawners give users' servers."""
    code = (
        "from jupyter_server.serverapp import ServerApp\n"
        "app = ServerApp()\n"
        "app.initialize(['--port=0', '--no-browser'])\n"
        "manager = type(app.contents_manager)\n"
        "print(manager.__module__ + '.' + manager.__qualname__)\n"
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(SHARE_CONFIG_DIR),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "datahub.extensions.contents.ListingContentsManager"
