"""Where the gateway's answer to one client request goes: the `Client` interface (the
tornado handler implements it), so that ``exchange.py``, ``submit.py`` and ``followup.py``
answer through plain calls, and the tests through a stand-in; and what relaying a
cluster's answer to it came to (`Relayed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from . import protocol
from .clusters import Cluster

#: A Trino error: its name, type and code (``("NOT_FOUND", "USER_ERROR", 44)``).
Error = tuple[str, str, int]


class ClientGone(Exception):
    """The client closed its connection while a page was on its way."""


class Client(Protocol):
    """Where the gateway's answer to one request goes (the client's HTTP response)."""

    #: The client's request method (``POST``, ``GET``, ``DELETE``).
    method: str

    def fail(
        self,
        message: str,
        error: Error,
        *,
        status: int = 200,
        query_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with a Trino-format error carrying *message*, and finish."""

    def begin(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Take a cluster's status and the response headers the client may see."""

    def set_length(self, length: int) -> None:
        """Announce the body's length (before the first byte of it)."""

    async def send(self, chunk: bytes) -> None:
        """Send part of the body now; raises ClientGone."""

    def end(self, body: bytes = b"") -> None:
        """Send the rest of the body and finish."""

    def abort(self) -> None:
        """Close the connection (too late for an error: the client sees a failed read)."""


@dataclass
class Relayed:
    """What relaying one cluster response to the client came to."""

    #: Facts of the Trino page the client received (None if it was no Trino page).
    facts: protocol.PageFacts | None = None
    #: Set when the gateway answered with its own error instead: the message and error.
    failure: str | None = None
    error: Error | None = None
    #: The cluster broke off in the middle of the page (it died, or the network did).
    broken: bool = False
    #: Set instead of answering: the page carried nothing for the client, follow this
    #: (the cluster's own nextUri) on its behalf.
    follow: str | None = None
    #: The client got the page before this one instead (see `Exchange.relay`), or the
    #: rows held before it (``carry.py``): this page's facts are the latest, but the
    #: page is the client's to ask for again.
    held_back: bool = False


def lost_message(cluster: Cluster) -> str:
    """The user's sentence when *cluster* went away under a running query."""
    return (
        f"Cluster {cluster.name} became unreachable while your query ran; its outcome is "
        "unknown. Run it again."
    )
