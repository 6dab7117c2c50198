"""A page read whole, parsed once and made ready for the client (pure, no I/O): Trino's stack
frames removed, its error in the quota's words, a POST's small inline rows as
direct-protocol rows, its facts, and whether it carries anything at all.

Its URIs (and a spooled page's segment URIs) are signed, and the page written, only when
it goes to the client (`WholePage.out`): most pages the gateway reads whole while
following a short query's progress never do.

`Exchange.relay` reads a page whole when it is small, spooled, or has no rows (a failed
query's, however long the user made its message) and runs `prepare_whole` on the event loop,
or in a thread, with the page written there too, for a page over `LOOP_PAGE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import pagejson, rewrite, spooled
from .collapse import carries_nothing
from .protocol import PageFacts

#: Whole pages larger than this are parsed in a thread, not on the event loop: a failed
#: query's page is read whole, however long the user made its message (16 MB parse in
#: about 140 ms).
LOOP_PAGE = rewrite.WHOLE_PAGE


@dataclass
class WholePage:
    """A page read whole and parsed (`prepare_whole`)."""

    #: The page, parsed: the cluster's URIs until `client_page` signs them.
    page: dict[str, Any]
    #: What writes the page back (`pagejson.loads`).
    dumps: pagejson.Dumps
    #: The page's facts, as the cluster wrote it (spooled: with the rows its segments end at).
    facts: PageFacts
    #: Answering a POST: the page cannot go as direct-protocol rows; send the one before.
    hold_back: bool
    #: The page carries nothing for the client (`collapse.carries_nothing`).
    carries_nothing: bool
    rewrite_uri: Callable[[str], str]
    rewrite_segment: Callable[[str], str] | None
    _signed: bool = False
    _out: bytes | None = None

    def client_page(self) -> dict[str, Any]:
        """The page as the client gets it, parsed: its URIs signed (done once)."""
        if not self._signed:
            rewrite.rewrite_document(self.page, self.rewrite_uri)
            if self.rewrite_segment is not None:
                spooled.rewrite_segment_uris(self.page, self.rewrite_segment)
            self._signed = True
        return self.page

    def out(self) -> bytes:
        """The page as the client gets it (written once)."""
        if self._out is None:
            self._out = self.dumps(self.client_page())
        return self._out


def prepare_whole(
    body: bytes,
    rewrite_uri: Callable[[str], str],
    *,
    limit_messages: Mapping[str, str] | None,
    rewrite_segment: Callable[[str], str] | None,
    post: bool,
    collapse_headers: list[tuple[str, str]] | None,
    write: bool = False,
) -> WholePage | None:
    """Parse a page read whole and make it ready for the client (pure): without Trino's
    stack frames, its error in *limit_messages*' words and, to a POST, its small inline
    rows as direct-protocol rows. Its URIs will be rewritten with *rewrite_uri* and its
    segments' with *rewrite_segment* (None: spooling is off); with *write*, now (a large
    page, prepared off the event loop). *collapse_headers*: the page's headers, when a
    page that carries nothing may be skipped. None for a body that is not a JSON object.
    """
    parsed = pagejson.loads_page(body)
    if parsed is None:
        return None
    page, dumps = parsed
    nothing = collapse_headers is not None and carries_nothing(page, collapse_headers)
    rewrite.clear_stack_frames(page)
    rewrite.put_error_message(page, limit_messages)
    facts = rewrite.page_facts(page)
    hold_back = False
    if rewrite_segment is not None:
        facts.spooled_rows = spooled.segment_rows(page)
        if post and isinstance(page.get("data"), dict):
            rows = spooled.inline_rows(page)
            if rows is None:
                hold_back = True  # not rows the client can read here: the page before
            else:
                page["data"] = rows
    ready = WholePage(page, dumps, facts, hold_back, nothing, rewrite_uri, rewrite_segment)
    if write:
        ready.out()
    return ready
