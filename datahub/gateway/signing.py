"""Signed follow-up URIs: how a client's next request finds its cluster, and only its user.

Trino's ``nextUri``/``partialCancelUri``/``infoUri`` point at the cluster. The gateway
rewrites them to point at itself, with the cluster name and an HMAC signature over
(cluster, user, path) in the path (``/v1/dh/{cluster}/{sig}/v1/statement/...``), so any
gateway process sharing the secret can serve the follow-up and no other user can. A query
waiting for a quota slot gets a signed URI of its own (``/v1/dh-queued/...``), and a spooled
result segment one that also names the user and expires (``/v1/dh-segment/...``, see
`segment_uri`). Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ..wire import CLUSTER_NAME_PATTERN, FOLLOWUP_PREFIX, QUEUED_PREFIX, SEGMENT_PREFIX

#: Trino paths a signed follow-up may reach. Anything else (``/v1/query``,
#: ``/v1/node``, the web UI...) stays out of reach even with a valid signature.
FOLLOWUP_ALLOWED_PATHS = ("/v1/statement/", "/v1/stage/")

_NAME_RE = re.compile(f"^{CLUSTER_NAME_PATTERN}$")
_SIG_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_SIG_BYTES = 16  # 128 bits: unguessable, and keeps every follow-up URI short


class FollowupError(ValueError):
    """A follow-up URI is malformed, not signed for this user, or not allowed."""


def is_valid_cluster_name(name: str) -> bool:
    """Whether *name* can be a cluster name (it is embedded in URIs unescaped)."""
    return bool(_NAME_RE.match(name))


class FollowupSigner:
    """Signs and checks follow-up URIs with a secret shared by all gateway processes.

    The signature covers the cluster, the user and the exact upstream path (with its
    query string), so a URI only works for the user it was issued to and only on the
    cluster and statement it came from.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("The gateway secret must be at least 16 bytes long.")
        self._secret = secret

    def sign(self, cluster: str, user: str, path: str) -> str:
        """The URL-safe signature of (cluster, user, path)."""
        message = "\x00".join((cluster, user, path)).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, cluster: str, user: str, path: str, signature: str) -> bool:
        """Whether *signature* was issued for (cluster, user, path)."""
        return hmac.compare_digest(self.sign(cluster, user, path), signature)

    def gateway_uri(self, base_url: str, cluster: str, user: str, upstream_uri: str) -> str:
        """Rewrite a cluster URI (``https://trino:8443/v1/statement/...``) to the gateway.

        Only the path and query of *upstream_uri* are kept: follow-ups always go to
        the configured cluster URL, never to a host named in a response.
        """
        parts = urlsplit(upstream_uri)
        path = parts.path + ("?" + parts.query if parts.query else "")
        signature = self.sign(cluster, user, path)
        return f"{base_url.rstrip('/')}{FOLLOWUP_PREFIX}{cluster}/{signature}{path}"

    def queued_uri(self, base_url: str, user: str, query_id: str, place: str) -> str:
        """The gateway URI a queued query's client polls (GET) or cancels (DELETE)."""
        path = f"{query_id}/{place}"
        signature = self.sign(_QUEUED_SCOPE, user, path)
        return f"{base_url.rstrip('/')}{QUEUED_PREFIX}{path}/{signature}"

    def verify_queued(self, queued: Queued, user: str) -> bool:
        """Whether *queued* (a parsed queued URI) was issued to *user*."""
        return self.verify(
            _QUEUED_SCOPE, user, f"{queued.query_id}/{queued.place}", queued.signature
        )

    def segment_uri(
        self, base_url: str, cluster: str, user: str, upstream_uri: str, expires: int
    ) -> str:
        """Rewrite a cluster's spooled-segment URI (``.../v1/spooled/download/ID`` or
        ``.../ack/ID``) to the gateway, for *user* until *expires* (Unix seconds).

        Clients download segments without credentials (Trino's own segment URIs are
        capabilities too), so the URI carries the user it was issued to: the gateway
        accounts the download to that user and refuses it to anyone else who signs in.
        """
        parts = urlsplit(upstream_uri)
        path = parts.path + ("?" + parts.query if parts.query else "")
        signature = self.sign(_SEGMENT_SCOPE + cluster, user, f"{expires}{path}")
        name = quote(user, safe="")
        return f"{base_url.rstrip('/')}{SEGMENT_PREFIX}{cluster}/{name}/{expires}/{signature}{path}"

    def verify_segment(self, segment: Segment) -> bool:
        """Whether *segment* (a parsed segment URI) was issued by a gateway (for its user,
        cluster, path and expiry; whether it has expired is `Segment.expired`)."""
        message = f"{segment.expires}{segment.path}"
        return self.verify(
            _SEGMENT_SCOPE + segment.cluster, segment.user, message, segment.signature
        )


@dataclass(frozen=True)
class Followup:
    """A parsed gateway follow-up URI: which cluster, the signature, the Trino path."""

    cluster: str
    signature: str
    path: str  # path and query on the cluster, e.g. /v1/statement/executing/ID/SLUG/3


def parse_followup(raw_path: str, query: str = "") -> Followup:
    """Parse ``/v1/dh/{cluster}/{sig}/v1/statement/...`` (still percent-encoded).

    Raises FollowupError if the URI is malformed or leads outside the Trino paths a
    follow-up may reach. The signature is checked separately (it needs the user).
    """
    if not raw_path.startswith(FOLLOWUP_PREFIX):
        raise FollowupError("This is not a DataHub follow-up URI.")
    cluster, _, rest = raw_path[len(FOLLOWUP_PREFIX) :].partition("/")
    signature, _, upstream = rest.partition("/")
    upstream = "/" + upstream
    if not _NAME_RE.match(cluster) or not _SIG_RE.match(signature):
        raise FollowupError("This DataHub follow-up URI is malformed.")
    if not upstream.startswith(FOLLOWUP_ALLOWED_PATHS) or _has_traversal(upstream):
        raise FollowupError(
            "Only Trino statement URIs can be followed through the DataHub gateway."
        )
    if query:
        upstream += "?" + query
    return Followup(cluster, signature, upstream)


def _has_traversal(path: str) -> bool:
    # The signature already pins the path Trino issued; this is defence in depth
    # against a path that a proxy or Trino would normalise to somewhere else.
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%2e" in lowered or "\\" in path:
        return True
    return any(segment in (".", "..") for segment in path.split("/")) or "//" in path


#: Signed in place of a cluster name (which cannot contain "~"), so a queued URI's
#: signature can never pass as a follow-up's, nor the reverse.
_QUEUED_SCOPE = "~queued"
_QUEUED_RE = re.compile(
    "^"
    + re.escape(QUEUED_PREFIX)
    + r"(datahub_[0-9a-f]{20})/([A-Za-z0-9_-]{1,80})/([A-Za-z0-9_-]{22})$"
)


@dataclass(frozen=True)
class Queued:
    """A parsed queued-query URI: the gateway's query id, the place, the signature."""

    query_id: str
    place: str
    signature: str


def parse_queued(raw_path: str) -> Queued:
    """Parse ``/v1/dh-queued/{query id}/{place}/{sig}``; raises FollowupError if malformed
    (the signature is checked separately, it needs the user)."""
    match = _QUEUED_RE.match(raw_path)
    if not match:
        raise FollowupError("This DataHub queued-query URI is malformed.")
    return Queued(*match.groups())


_QUERY_ID_RE = re.compile(r"^/v1/statement/(?:queued|executing)/(?:partialCancel/)?(\w+)/")


def query_id_from_path(path: str) -> str | None:
    """The query id in a Trino statement path (``/v1/statement/executing/ID/...``)."""
    match = _QUERY_ID_RE.match(path)
    return match.group(1) if match else None


#: Prefixed to the cluster name (which cannot contain "~") in a segment URI's signature,
#: so it can never pass as a follow-up's or a queued URI's, nor the reverse.
_SEGMENT_SCOPE = "~segment/"
_SEGMENT_RE = re.compile(
    "^"
    + re.escape(SEGMENT_PREFIX)
    + f"({CLUSTER_NAME_PATTERN})/([^/]{{1,200}})/([0-9]{{1,12}})/([A-Za-z0-9_-]{{22}})"
    + r"(/v1/spooled/(?:download|ack)/[A-Za-z0-9_=-]{1,512})$"
)


@dataclass(frozen=True)
class Segment:
    """A parsed spooled-segment URI: cluster, user, expiry, signature and Trino path."""

    cluster: str
    user: str
    expires: int  # Unix seconds
    signature: str
    path: str  # on the cluster: /v1/spooled/download/ID or /v1/spooled/ack/ID

    def expired(self, now: float) -> bool:
        """Whether the URI's time is up at *now* (Unix seconds)."""
        return now > self.expires


def parse_segment(raw_path: str) -> Segment:
    """Parse ``/v1/dh-segment/{cluster}/{user}/{expires}/{sig}/v1/spooled/...`` (still
    percent-encoded); raises FollowupError if malformed or not a segment path. The
    signature and the expiry are checked separately."""
    match = _SEGMENT_RE.match(raw_path)
    if not match:
        raise FollowupError("This DataHub segment URI is malformed.")
    cluster, user, expires, signature, path = match.groups()
    return Segment(cluster, unquote(user), int(expires), signature, path)
