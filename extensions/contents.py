"""The contents manager of users' servers: Jupyter's own, with directory listings that
survive a file being renamed or removed while they are taken.

Jupyter Server lists a directory by reading its names and then asking for each one's
model; a file renamed or deleted in between (JupyterLab renames a new notebook on its
first save while its file browser refreshes the folder) makes the whole listing answer
404, "No such file or directory", and JupyterLab then shows the user "Directory not
found" for the folder they are in. This manager takes such a listing again, up to
:data:`LISTING_ATTEMPTS` times in all, while the directory itself exists: a listing
reflects the folder at one moment, never a file that has just gone.

Named by ``jupyter_server_config.d/jupyter-datahub.json`` in
``datahub/share/jupyter_config`` as ``ServerApp.contents_manager_class``.
"""

from __future__ import annotations

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

__all__ = ["LISTING_ATTEMPTS", "ListingContentsManager"]

#: How many times a listing is taken while its entries keep vanishing under it.
LISTING_ATTEMPTS = 5


class ListingContentsManager(AsyncLargeFileManager):
    """Jupyter's large-file contents manager with listings taken again when an entry
    vanishes while they are read."""

    async def _dir_model(self, path, content=True):
        attempt = 1
        while True:
            try:
                return await super()._dir_model(path, content=content)
            except web.HTTPError as e:
                if attempt == LISTING_ATTEMPTS or not (
                    content and e.status_code == 404 and await self._listable(path)
                ):
                    raise
            self.log.info("An entry of %r vanished while it was listed; listing it again", path)
            attempt += 1

    async def _listable(self, path: str) -> bool:
        """Whether *path* is a directory this manager lists (so a 404 came from one of
        its entries)."""
        return await self.dir_exists(path) and (self.allow_hidden or not await self.is_hidden(path))
