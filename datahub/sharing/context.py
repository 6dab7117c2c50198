"""The sharing feature's part of the service: its options and its notebook store, built
once by `DataHubService.init` and read by the handlers as ``self.sharing``."""

from __future__ import annotations

from dataclasses import dataclass

from traitlets.config import Configurable

from ..store import Store
from .config import SharedNotebooks
from .store import SharedNotebookStore


@dataclass(frozen=True)
class SharingContext:
    """What every handler of the gallery shares: ``c.SharedNotebooks.*`` and the store
    of shared notebooks (whose blocking methods handlers call through ``Store.run``)."""

    config: SharedNotebooks
    notebooks: SharedNotebookStore

    @classmethod
    def build(cls, parent: Configurable, store: Store) -> SharingContext:
        """The feature configured from *parent*'s configuration, on *store*."""
        return cls(SharedNotebooks(parent=parent), SharedNotebookStore(store))
