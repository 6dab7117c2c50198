"""Trino's spooling protocol through the gateway: segment URIs, segment downloads, heartbeats.

With spooling, a result page's ``data`` is ``{"encoding": "json+zstd", "segments": [...]}``:
*inline* segments carry their rows (base64), *spooled* ones a download ``uri`` and an
``ackUri`` on the cluster (``/v1/spooled/download/ID``, ``/v1/spooled/ack/ID``). The gateway
rewrites those to signed, expiring URIs of its own that name the cluster and the user
(`FollowupSigner.segment_uri`), and relays their ``GET``/``HEAD``/``DELETE`` to that cluster
as the service account. URIs on other hosts (an object store's pre-signed URIs, Trino's
``STORAGE`` retrieval mode) stay as they are: the client reads the storage directly.
Such a URI is the storage's capability, not the gateway's: whoever holds it reads the
object until it expires (Trino 476 signs it for ``fs.segment.direct.ttl``, an hour by
default, or less when the segment's ``fs.segment.ttl`` ends sooner), signed in or not;
the gateway cannot bind it to the user or shorten it, so it passes it on untouched to
the user the page is for and logs no page; it never contacts the storage itself, and
``%%sql`` sends it no credentials. The segment's ``ackUri`` stays on the cluster and so
comes through the gateway, signed for the user. A deployment that wants every segment
bound to its user keeps ``COORDINATOR_PROXY`` (the local stack's default). In Trino's
``COORDINATOR_STORAGE_REDIRECT`` mode the segment URIs are the cluster's, so the gateway
signs and checks them as in proxy mode, and passes the cluster's redirect to the
storage's pre-signed URI on to the client (`spooled.storage_redirect`): the URI then
reaches only the user the gateway checked, and the client follows it without
credentials (HTTP clients drop them on a redirect to another host).

Clients download segments without credentials (the ``trino`` client strips them; Trino's
own segment URIs are capabilities), so a segment URI is a capability too: valid for its
user until it expires, and refused to anyone signed in as someone else. A page's
statistics, and so the audit and the quotas, come from its ``stats`` as for direct pages.

The client's heartbeat (``HEAD nextUri`` while it downloads) is relayed here too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from ..identity import AuthError, Identity, IdentityUnavailable
from ..wire import ACT_AS_HEADER, HUB_UNAVAILABLE, PERMISSION_DENIED, SEGMENT_PREFIX
from . import protocol, spooled
from .client import Client, ClientGone
from .clusters import Cluster
from .core import Gateway
from .exchange import Exchange
from .followup import NOT_ISSUED_TO_YOU
from .signing import FollowupError, parse_followup, parse_segment
from .upstream import ClusterUnreachable, UpstreamResponse

NOT_YOURS = "This result segment URI was not issued to you; run the query yourself."
EXPIRED = "This result segment URI has expired; run the query again."
GONE = (
    "Cluster {cluster} no longer has this result segment (it was acknowledged or "
    "expired); run the query again."
)


#: The route of segment URIs on the gateway's listener.
ROUTE = re.escape(SEGMENT_PREFIX) + ".*"


async def download(
    gateway: Gateway, client: Client, raw_path: str, headers: Iterable[tuple[str, str]]
) -> None:
    """Serve ``GET``/``HEAD``/``DELETE`` on a signed segment URI: check it, relay it.

    A request with credentials must come from the URI's user (an admin acting as that
    user included); one without is served on the strength of the signature alone.
    """
    method = client.method
    try:
        segment = parse_segment(raw_path)
    except FollowupError as e:
        client.fail(str(e), protocol.NOT_FOUND, status=404)
        return
    if not gateway.signer.verify_segment(segment):
        gateway.log.warning("Refused a segment URI with a bad signature (%s)", segment.cluster)
        client.fail(NOT_YOURS, PERMISSION_DENIED, status=403)
        return
    headers = tuple(headers)
    sent = {name.lower(): value for name, value in headers}
    if "authorization" in sent:
        try:
            identity = await gateway.identity_resolver.resolve(
                sent["authorization"],
                sent.get(ACT_AS_HEADER.lower()),
                allow_act_as=gateway.allow_admin_act_as,
            )
        except AuthError as e:
            client.fail(e.message, PERMISSION_DENIED, status=e.status)
            return
        except IdentityUnavailable as e:
            client.fail(str(e), HUB_UNAVAILABLE, status=503)
            return
        if identity.name != segment.user:
            gateway.log.warning(
                "Refused %s a segment URI issued to %s", identity.name, segment.user
            )
            client.fail(NOT_YOURS, PERMISSION_DENIED, status=403)
            return
    if segment.expired(time.time()):
        client.fail(EXPIRED, PERMISSION_DENIED, status=410)
        return
    cluster = gateway.clusters.get(segment.cluster)
    if cluster is None:
        message = f"Cluster {segment.cluster} is no longer configured; run the query again."
        client.fail(message, protocol.NOT_FOUND, status=404)
        return
    exchange = Exchange(gateway, client, Identity(segment.user), headers, "")
    try:
        response = await exchange.send(cluster, method, segment.path)
    except ClusterUnreachable as e:
        exchange.unreachable(cluster, method, None, e)
        return
    try:
        await _relay(gateway, client, cluster, response)
    finally:
        await response.aclose()


async def _relay(
    gateway: Gateway, client: Client, cluster: Cluster, response: UpstreamResponse
) -> None:
    status = response.status_code
    storage = spooled.storage_redirect(status, response.headers.get("location"), cluster.url)
    if storage is not None:
        client.begin(status, [("Location", storage)])
        client.end()
        return
    if status >= 300:
        body = await response.read()
        gateway.log.warning(
            "Cluster %s answered a segment %s with HTTP %d: %s",
            cluster.name,
            client.method,
            status,
            body[:2000].decode("utf-8", "replace"),
        )
        # Trino answers a segment it no longer has with HTTP 500 and a stack trace.
        client.fail(GONE.format(cluster=cluster.name), protocol.NOT_FOUND, status=404)
        return
    selected = [
        (name, value)
        for name, value in response.header_items()
        if name.lower() in ("content-type", "content-length")
    ]
    client.begin(status, [h for h in selected if h[0].lower() != "content-length"])
    length = response.headers.get("content-length")
    if length is not None and client.method != "HEAD":
        client.set_length(int(length))
    try:
        async for chunk in response.chunks():
            await client.send(chunk)
    except ClusterUnreachable as e:
        gateway.log.warning("Cluster %s broke off a segment: %s", cluster.name, e.reason)
        client.abort()
        return
    except ClientGone:
        return
    client.end()


async def heartbeat(exchange: Exchange, raw_path: str, query: str) -> None:
    """``HEAD`` on a signed follow-up URI: the client's heartbeat while it downloads
    segments, relayed so the cluster keeps the query; nothing is tracked."""
    gateway, client = exchange.gateway, exchange.client
    try:
        followup = parse_followup(raw_path, query)
    except FollowupError as e:
        client.fail(str(e), protocol.NOT_FOUND, status=404)
        return
    user = exchange.identity.name
    cluster = gateway.clusters.get(followup.cluster)
    if cluster is None or not gateway.signer.verify(
        followup.cluster, user, followup.path, followup.signature
    ):
        client.fail(NOT_ISSUED_TO_YOU, PERMISSION_DENIED, status=403)
        return
    try:
        response = await exchange.send(cluster, "HEAD", followup.path)
    except ClusterUnreachable as e:
        exchange.unreachable(cluster, "HEAD", None, e)
        return
    try:
        client.begin(response.status_code, [])
        client.end()
    finally:
        await response.aclose()
