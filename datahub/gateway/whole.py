"""A result page read whole, made ready for the client (pure, no I/O): Trino's stack frames
removed, its error in the quota's words, a spooled page's segment URIs signed, a POST's
small inline rows as direct-protocol rows, and whether it carries anything at all.

`Exchange.relay` reads a page whole when it is small, spooled, or has no rows (a failed
query's, however long the user made its message) and runs `prepare_whole` on the event loop,
or in a thread for a page over `LOOP_PAGE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import rewrite, spooled
from .collapse import carries_nothing

#: Whole pages larger than this are parsed in a thread, not on the event loop: a failed
#: query's page is read whole, however long the user made its message (16 MB parse in
#: about 140 ms).
LOOP_PAGE = rewrite.WHOLE_PAGE


@dataclass
class WholePage:
    """A page read whole, made ready for the client (`prepare_whole`)."""

    #: The page for the client: URIs signed, Trino's stack frames gone.
    out: bytes
    #: A spooled page's rows, counted from its segments.
    rows: int | None
    #: Answering a POST: the page cannot go as direct-protocol rows; send the one before.
    hold_back: bool
    #: The page carries nothing for the client (`collapse.carries_nothing`).
    carries_nothing: bool


def prepare_whole(
    body: bytes,
    rewriter: rewrite.ResultRewriter,
    *,
    limit_messages: Mapping[str, str] | None,
    rewrite_segment: Callable[[str], str] | None,
    post: bool,
    collapse_headers: list[tuple[str, str]] | None,
) -> WholePage:
    """Make a page read whole ready for the client (pure; *rewriter* signs its URIs and
    keeps its facts): without Trino's stack frames, its error in *limit_messages*' words,
    its segments' URIs rewritten with *rewrite_segment* (None: spooling is off) and, to
    a POST, its small inline rows as direct-protocol rows. *collapse_headers*: the
    page's headers, when a page that carries nothing may be skipped."""
    page = rewrite.with_error_message(rewrite.without_stack_frames(body), limit_messages)
    rows, hold_back = None, False
    if rewrite_segment is not None:
        page, rows = spooled.rewrite_segments(page, rewrite_segment)
        if post and spooled.is_spooled(page):
            direct = spooled.inline_rows(page)
            # Not rows the client can read here: the page before instead.
            page, hold_back = direct or page, direct is None
    out = rewriter.feed(page) + rewriter.finish()
    nothing = collapse_headers is not None and carries_nothing(body, collapse_headers)
    return WholePage(out, rows, hold_back, nothing)
