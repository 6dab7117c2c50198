"""One client request's exchange with a cluster: forward it, relay the answer, follow pages.

No HTTP server here: the answer goes to a `Client` (the tornado handler implements it),
so the steps of a query (``submit.py``, ``followup.py``) read as plain code over values.
Relaying keeps a page's promise to the client: URIs rewritten to signed gateway URIs
(`FollowupSigner`), Trino's stack frames dropped, a quota limit's error in the quota's
words, a cluster's non-Trino answer as one sentence (`protocol.upstream_failure`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from ..identity import Identity
from ..query import QueryRecord
from ..wire import CLUSTER_UNREACHABLE, QUERY_LOST, QUOTA_EXCEEDED, STATEMENT_PATH
from . import carry as carrying
from . import pagejson, protocol, rewrite, spooled
from .carry import Carried
from .client import Client, ClientGone, Relayed, lost_message
from .clusters import Cluster
from .core import Gateway
from .tracker import stop_message
from .upstream import ClusterUnreachable, UpstreamResponse
from .whole import LOOP_PAGE, WholePage, prepare_whole

#: A streamed page goes to the client in writes of at least this many bytes (its last
#: one excepted), whatever the sizes of the cluster's reads: one 1 MB page of Trino's
#: came as dozens of small reads, each a flush of its own and a chunk the client parses.
RELAY_WRITE = 256 * 1024


class Exchange:
    """Requests to clusters on behalf of *identity*, answered to *client*.

    *client_headers* are the headers of the client's request (what reaches a cluster is
    `protocol.upstream_request_headers` of them); *base_url* is where the client reaches
    the gateway, for the rewritten URIs.
    """

    def __init__(
        self,
        gateway: Gateway,
        client: Client,
        identity: Identity,
        client_headers: tuple[tuple[str, str], ...],
        base_url: str,
    ) -> None:
        self.gateway = gateway
        self.client = client
        self.identity = identity
        self.client_headers = client_headers
        self.base_url = base_url
        #: Answering a POST: the last page followed on the client's behalf, as it would
        #: have been sent (status, headers, page).
        self._followed: tuple[int, list[tuple[str, str]], WholePage] | None = None
        #: The headers of this client's requests to each cluster (by name), built once
        #: for the pages followed on its behalf.
        self._upstream_headers: dict[str, tuple[tuple[str, str], ...]] = {}
        #: A page of rows held while the gateway follows the pages after it (`carry`).
        self._carried: Carried | None = None

    @property
    def log(self) -> logging.Logger:
        return self.gateway.log

    async def send(
        self,
        cluster: Cluster,
        method: str,
        path: str,
        body: bytes | None = None,
        client_headers: tuple[tuple[str, str], ...] | None = None,
    ) -> UpstreamResponse:
        """Send the client's request (or a queued query's stored *client_headers*) on to
        *cluster* as the service account, impersonating the hub user. Raises
        ClusterUnreachable."""
        headers = self._upstream_headers.get(cluster.name) if client_headers is None else None
        if headers is None:
            headers = tuple(
                protocol.upstream_request_headers(
                    self.client_headers if client_headers is None else client_headers,
                    self.identity.name,
                    cluster.authorization,
                    allow_spooling=self.gateway.allow_spooling,
                )
            )
            if client_headers is None:
                self._upstream_headers[cluster.name] = headers
        return await self.gateway.upstream.send(cluster, method, path, headers, body)

    async def relay(
        self,
        cluster: Cluster,
        response: UpstreamResponse,
        before_finish: Callable[[protocol.PageFacts], None] | None = None,
        *,
        collapse: bool = False,
        carry: bool = False,
        limit_messages: Mapping[str, str] | None = None,
    ) -> Relayed:
        """Stream *response* to the client with its URIs rewritten.

        *before_finish* is called with the page's facts just before the client can
        have the whole page (so the query is known before the client can follow it).
        With *collapse*, a page that carries nothing for the client (see
        `collapse.carries_nothing`) is not sent: the result says which URI to follow.
        A failed query's error gets the message of *limit_messages* for its error name.

        Answering a POST, a spooled page's small inline rows go as direct-protocol rows
        (`spooled.inline_rows`): the ``trino`` client reads the POST's answer as the
        direct protocol. A spooled page that cannot (spooled segments, large or
        compressed rows) is held back and the client gets the page followed before it,
        whose nextUri is this page's URI: Trino answers a repeated request for its last
        page with that page again. With *carry*, a small page of rows may be held while
        the pages after it are followed (``carry.py``).
        """
        client = self.client
        status = response.status_code
        content_type = response.headers.get("content-type", "")
        if self._carried is not None and (
            status != 200 or not content_type.startswith("application/json")
        ):
            # The rows go now; the client asks for this answer itself.
            return self._rows_now(cluster, None)
        if status == 401:
            self.log.error(
                "Cluster %s refused the service account %r (HTTP 401); check its password.",
                cluster.name,
                cluster.user,
            )
            message = f"Cluster {cluster.name} refused the DataHub service account; ask an admin."
            client.fail(message, CLUSTER_UNREACHABLE)
            return Relayed(failure=message, error=CLUSTER_UNREACHABLE)
        if status != 200 or not content_type.startswith("application/json"):
            body = await response.read()
            if status == 204:  # a DELETE taken
                client.begin(status, protocol.client_response_headers(response.header_items()))
                client.end()
                return Relayed()
            # A stack trace (a refused X-Trino-Role is an HTTP 500 with one), an HTML
            # error page, a 4xx text: never relayed as it is.
            return self._upstream_failed(cluster, response, body)

        signer, base, user = self.gateway.signer, self.base_url, self.identity.name

        def rewrite_uri(uri: str) -> str:
            return signer.gateway_uri(base, cluster.name, user, uri)

        # A small page (queued, planning, an error) is read whole: skipped if it carries
        # nothing for the client, and Trino's stack frames kept to ourselves. So is any
        # page without rows (a failed query's, its message as long as the user made it),
        # and a spooled page, for its segments (`spooled.read_page`).
        spooling = self.gateway.allow_spooling
        try:
            body, whole = await spooled.read_page(response, rewrite.WHOLE_PAGE)
        except ClusterUnreachable as e:
            return self._broken_off(cluster, e, started=False)
        if self._carried is not None and not whole:
            return self._rows_now(cluster, None)
        if not whole and body and not spooled.has_rows(body):
            # Larger than is read whole: its frames or cluster URIs must not go out.
            return self._upstream_failed(cluster, response, body)
        if whole:
            headers = response.header_items()
            segments = spooled.uri_rewriter(self.gateway, base, cluster.name, user)
            large = len(body) > LOOP_PAGE
            work = functools.partial(
                prepare_whole,
                body,
                rewrite_uri,
                limit_messages=limit_messages,
                rewrite_segment=segments if spooling else None,
                post=client.method == "POST",
                collapse_headers=headers if collapse else None,
                write=large,
            )
            # A large page is parsed, and written, off the event loop.
            ready = await asyncio.to_thread(work) if large else work()
            if ready is None:
                return self._upstream_failed(cluster, response, body)
            facts = ready.facts
            if before_finish is not None:
                before_finish(facts)
            client_headers = protocol.client_response_headers(headers)
            if self._carried is not None:
                return self._carry_on(cluster, status, client_headers, ready)
            if ready.hold_back and self._followed is not None and facts.has_next:
                followed_status, followed_headers, followed = self._followed
                self._answer(followed_status, followed_headers, followed.out())
                return Relayed(facts=facts, held_back=True)
            if ready.carries_nothing:
                if client.method == "POST":
                    self._followed = (status, client_headers, ready)
                return Relayed(facts=facts, follow=facts.next_uri)
            if carry and carrying.carriable(ready.client_page(), headers):
                until = time.monotonic() + self.gateway.page_carry_seconds
                self._carried = Carried(ready.client_page(), ready.dumps, client_headers, until)
                return Relayed(facts=facts, follow=facts.next_uri)
            self._answer(status, client_headers, ready.out())
            return Relayed(facts=facts)
        rewriter = rewrite.ResultRewriter(rewrite_uri)
        upstream_length = response.headers.get("content-length")
        client.begin(status, protocol.client_response_headers(response.header_items()))
        started = False
        held: list[bytes] = []
        held_size = 0

        async def rest() -> AsyncIterator[bytes]:
            if body:
                yield body
            async for chunk in response.chunks():
                yield chunk

        try:
            async for chunk in rest():
                out = rewriter.feed(chunk)
                if not out:
                    continue
                held.append(out)
                held_size += len(out)
                # The rewritten head goes at once; the rest in writes of RELAY_WRITE
                # bytes, not in the cluster's small reads: each write is a chunk of the
                # client's chunked body and a flush here.
                if started and held_size < RELAY_WRITE:
                    continue
                if not started and upstream_length and rewriter.size_delta is not None:
                    client.set_length(int(upstream_length) + rewriter.size_delta)
                started = True
                await client.send(b"".join(held))
                held, held_size = [], 0
            held.append(rewriter.finish())
            out = b"".join(held)
        except ClusterUnreachable as e:
            return self._broken_off(cluster, e, started=started)
        except ClientGone:
            self.log.debug("Client went away during a result page for %s", user)
            return Relayed()
        if rewriter.not_json and not started:
            return self._upstream_failed(cluster, response, out)
        facts = rewriter.facts()
        if before_finish is not None:
            before_finish(facts)
        if not started:
            client.set_length(len(out))
        client.end(out)
        return Relayed(facts=facts)

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.client.begin(status, headers)
        self.client.set_length(len(body))
        self.client.end(body)

    def _carry_on(
        self, cluster: Cluster, status: int, headers: list[tuple[str, str]], ready: WholePage
    ) -> Relayed:
        """Go on from a page (*ready*) fetched while rows are held: follow it, answer it
        with the rows (the query's last page), or send the rows now."""
        carried = self._carried
        assert carried is not None
        facts = ready.facts
        if ready.carries_nothing and time.monotonic() < carried.until:
            return Relayed(facts=facts, follow=facts.next_uri)
        if (page := carrying.merged(carried.page, ready.client_page())) is not None:
            self._carried = None
            self._answer(status, headers, pagejson.common(carried.dumps, ready.dumps)(page))
            return Relayed(facts=facts)
        return self._rows_now(cluster, facts)

    def _rows_now(self, cluster: Cluster, facts: protocol.PageFacts | None) -> Relayed:
        """Send the rows held (`carry.with_next`); the page fetched last (its *facts*)
        is the client's to ask for again."""
        carried, self._carried = self._carried, None
        assert carried is not None
        user = self.identity.name
        uri = self.gateway.signer.gateway_uri(self.base_url, cluster.name, user, carried.fetched)
        self._answer(200, carried.headers, carried.dumps(carrying.with_next(carried.page, uri)))
        return Relayed(facts=facts, held_back=True)

    def _upstream_failed(
        self, cluster: Cluster, response: UpstreamResponse, body: bytes
    ) -> Relayed:
        """Answer a cluster's non-Trino answer with a one-sentence Trino error; the whole
        answer goes to the log, for admins."""
        status = response.status_code
        method = self.client.method
        message, error = protocol.upstream_failure(cluster.name, status, body)
        self.log.log(
            logging.ERROR if status >= 500 else logging.WARNING,
            "Cluster %s answered %s %s for %s with HTTP %d (%s), told the user %r: %s",
            cluster.name,
            method,
            STATEMENT_PATH if method == "POST" else "a follow-up",
            self.identity.name,
            status,
            response.headers.get("content-type", "no content type"),
            message,
            body[:4000].decode("utf-8", "replace"),
        )
        # Clients retry a 502/503/504 and check a DELETE's status; any other failure is a
        # failed query (HTTP 200), which every client shows as a query error.
        keep = method == "DELETE" or status in (502, 503, 504)
        self.client.fail(message, error, status=status if keep else 200)
        return Relayed(failure=message, error=error)

    def _broken_off(self, cluster: Cluster, error: ClusterUnreachable, *, started: bool) -> Relayed:
        self.log.warning(
            "Cluster %s broke off a result page for %s: %s",
            cluster.name,
            self.identity.name,
            error.reason,
        )
        self.gateway.monitor.mark_unreachable(
            cluster.name, f"broke off a page: {error.reason}", down=error.refused
        )
        message = lost_message(cluster)
        if started:
            # Too late for an error body: close so the client sees a failed read
            # rather than a truncated page.
            self.client.abort()
        else:
            self.client.fail(message, QUERY_LOST)
        return Relayed(failure=message, error=QUERY_LOST, broken=True)

    async def pages(
        self, cluster: Cluster, active: QueryRecord, relayed: Relayed, deadline: float
    ) -> None:
        """Tell the tracker about the page *relayed*, and while pages carry nothing for
        the client (and the monotonic *deadline* has not passed), follow them on its
        behalf."""
        tracker = self.gateway.tracker
        while True:
            if relayed.broken:
                tracker.lost(active, relayed.failure or "")
                return
            if relayed.facts is not None:
                delivered = relayed.follow is None and not relayed.held_back
                await tracker.page(active, relayed.facts, delivered=delivered)
            if relayed.follow is None:
                return
            if active.stop_reason:
                self.client.fail(
                    stop_message(active.query_id, active.stop_reason),
                    QUOTA_EXCEEDED,
                    query_id=active.query_id,
                )
                return
            path = protocol.upstream_path(relayed.follow)
            carried = self._carried
            if carried is not None:
                carried.fetched = relayed.follow
                path = carrying.look_ahead(path, carried.until - time.monotonic())
            try:
                response = await self.send(cluster, "GET", path)
            except ClusterUnreachable as e:
                self.unreachable(cluster, "GET", active.query_id, e)
                tracker.lost(active, lost_message(cluster))
                return
            try:
                relayed = await self.relay(
                    cluster,
                    response,
                    collapse=carried is not None or time.monotonic() < deadline,
                    carry=self.gateway.page_carry_seconds > 0,
                    limit_messages=active.limit_messages,
                )
            finally:
                await response.aclose()

    def unreachable(
        self, cluster: Cluster, method: str, query_id: str | None, error: ClusterUnreachable
    ) -> None:
        """Answer that *cluster* went away during a follow-up of *query_id*."""
        self.log.warning(
            "Cluster %s unreachable for %s of query %s (user %s): %s",
            cluster.name,
            method,
            query_id or "(stage)",
            self.identity.name,
            error.reason,
        )
        self.gateway.monitor.mark_unreachable(cluster.name, error.reason, down=error.refused)
        self.client.fail(lost_message(cluster), QUERY_LOST, query_id=query_id)
