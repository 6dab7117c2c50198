"""What DataHub's processes say to each other on the wire: header names, URL paths, the
environment variable that carries the gateway's address, and the Trino error names the
gateway itself emits.

The gateway (in the service) and the kernel side (``%%sql`` and the other magics, in
every user's server) are separate processes that must agree on these values; this module
is the one place that holds them. It imports only the standard library (nothing from
``datahub``), so a kernel can import it without loading the hub's or the gateway's
libraries.

Header names are written in their canonical case; HTTP header names are
case-insensitive, so compare them with ``.lower()`` on both sides.
"""

from __future__ import annotations

__all__ = [
    "ACT_AS_HEADER",
    "API_CLUSTERS",
    "API_HEALTH",
    "API_ME",
    "API_METADATA",
    "API_METADATA_REFRESH",
    "API_NOTEBOOKS",
    "API_QUERIES",
    "API_QUOTA_ME",
    "CLUSTER_ERROR",
    "CLUSTER_NAME_PATTERN",
    "CLUSTER_UNREACHABLE",
    "DATAHUB_ERRORS",
    "DATAHUB_ERROR_NAMES",
    "FOLLOWUP_PREFIX",
    "GATEWAY_URL_ENV",
    "HUB_TOKEN_ENV",
    "HUB_USER_ENV",
    "HUB_UNAVAILABLE",
    "INFO_PATH",
    "INVALID_ROUTING_GROUP",
    "NO_CLUSTER_AVAILABLE",
    "PERMISSION_DENIED",
    "PREPARED_STATEMENT_HEADER",
    "QUERY_DATA_ENCODING_HEADER",
    "QUERY_LOST",
    "QUEUED_PREFIX",
    "QUEUED_QUERY_EXPIRED",
    "QUOTA_EXCEEDED",
    "QUOTA_UNAVAILABLE",
    "ROUTING_HEADER",
    "SERVICE_API",
    "SEGMENT_PREFIX",
    "SERVICE_PREFIX",
    "STATEMENT_PATH",
    "TRINO_CATALOG_HEADER",
    "TRINO_CLIENT_TAGS_HEADER",
    "TRINO_SCHEMA_HEADER",
    "TRINO_SESSION_HEADER",
    "TRINO_SOURCE_HEADER",
    "TRINO_USER_HEADER",
    "service_api_url",
]

# --------------------------------------------------------------------------- headers

#: The routing group (cluster) a client asks the gateway for (``%%sql --cluster``).
ROUTING_HEADER = "X-DataHub-Routing-Group"
#: The user a hub admin asks the gateway to run a query as (``%%sql --as``).
ACT_AS_HEADER = "X-DataHub-Act-As"

#: Trino's client protocol headers DataHub reads or sets itself.
TRINO_USER_HEADER = "X-Trino-User"
TRINO_SOURCE_HEADER = "X-Trino-Source"
TRINO_CATALOG_HEADER = "X-Trino-Catalog"
TRINO_SCHEMA_HEADER = "X-Trino-Schema"
TRINO_SESSION_HEADER = "X-Trino-Session"
TRINO_CLIENT_TAGS_HEADER = "X-Trino-Client-Tags"
#: Carries the client's prepared statements (``name=urlencoded SQL``, comma-separated).
PREPARED_STATEMENT_HEADER = "X-Trino-Prepared-Statement"
#: Asks Trino for the spooling protocol (the gateway forwards it only when allowed).
QUERY_DATA_ENCODING_HEADER = "X-Trino-Query-Data-Encoding"

# --------------------------------------------------------------------------- gateway paths

#: Where a client submits a statement (Trino's own path, served by the gateway).
STATEMENT_PATH = "/v1/statement"
#: Trino's server information (the gateway answers it too; clients probe it).
INFO_PATH = "/v1/info"
#: The gateway's signed follow-up URIs: ``/v1/dh/{cluster}/{signature}/v1/…``.
FOLLOWUP_PREFIX = "/v1/dh/"
#: The gateway's signed URIs of queries it holds in a user's queue.
QUEUED_PREFIX = "/v1/dh-queued/"
#: The gateway's signed, expiring URIs of spooled result segments:
#: ``/v1/dh-segment/{cluster}/{user}/{expires}/{signature}/v1/spooled/…``.
SEGMENT_PREFIX = "/v1/dh-segment/"
#: What a cluster name may be: it travels as one segment of a follow-up URI.
CLUSTER_NAME_PATTERN = r"[A-Za-z0-9_-]{1,64}"

# --------------------------------------------------------------------------- service REST API

#: The DataHub service's URL prefix on the gateway's listener (the JupyterHub service
#: named "datahub"; the service's ``service_prefix`` default).
SERVICE_PREFIX = "/services/datahub/"
#: The REST API under the service prefix.
SERVICE_API = SERVICE_PREFIX + "api/"

#: Paths of the REST API, relative to :data:`SERVICE_API`.
API_ME = "me"  # who the token's owner is
API_HEALTH = "health"
API_QUERIES = "queries"  # ?user=me&limit=N: query history, newest first
API_CLUSTERS = "clusters"  # the clusters, their routing group and health
API_QUOTA_ME = "quota/me"  # the caller's quota and today's usage
API_NOTEBOOKS = "notebooks"  # POST: publish a shared notebook (or a version)
API_METADATA = "metadata/"  # + catalogs|schemas|tables|columns|functions
API_METADATA_REFRESH = "metadata/refresh"  # POST: drop the caller's cached metadata


def service_api_url(gateway_url: str) -> str:
    """The base URL of the service's REST API on the listener at *gateway_url*
    (``http://gw:8765`` → ``http://gw:8765/services/datahub/api``)."""
    return gateway_url.rstrip("/") + SERVICE_API.rstrip("/")


# --------------------------------------------------------------------------- environment

#: Where the spawner tells a user's server (and so its kernels) the gateway listens.
GATEWAY_URL_ENV = "DATAHUB_GATEWAY_URL"
#: The server's hub token and user name, set by JupyterHub in every server.
HUB_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
HUB_USER_ENV = "JUPYTERHUB_USER"

# --------------------------------------------------------------------------- error names

#: Trino errors as ``(errorName, errorType, errorCode)``. PERMISSION_DENIED is Trino's
#: own; the others are DataHub's (codes in Trino's EXTERNAL range, from 0x0100_0000, or
#: its USER_ERROR range, below 0x0001_0000, chosen so no engine error has them).
PERMISSION_DENIED = ("PERMISSION_DENIED", "USER_ERROR", 4)
CLUSTER_UNREACHABLE = ("CLUSTER_UNREACHABLE", "EXTERNAL", 0x0100_DA01)
HUB_UNAVAILABLE = ("HUB_UNAVAILABLE", "EXTERNAL", 0x0100_DA02)
NO_CLUSTER_AVAILABLE = ("NO_CLUSTER_AVAILABLE", "EXTERNAL", 0x0100_DA03)
QUERY_LOST = ("QUERY_LOST", "EXTERNAL", 0x0100_DA04)
CLUSTER_ERROR = ("CLUSTER_ERROR", "EXTERNAL", 0x0100_DA05)
QUOTA_UNAVAILABLE = ("QUOTA_UNAVAILABLE", "EXTERNAL", 0x0100_DA10)
QUOTA_EXCEEDED = ("QUOTA_EXCEEDED", "USER_ERROR", 0xDA10)
INVALID_ROUTING_GROUP = ("INVALID_ROUTING_GROUP", "USER_ERROR", 0xDA12)
QUEUED_QUERY_EXPIRED = ("QUEUED_QUERY_EXPIRED", "USER_ERROR", 0xDA13)

#: The errors the gateway itself emits; each message is already one sentence for a user.
DATAHUB_ERRORS = (
    PERMISSION_DENIED,
    CLUSTER_UNREACHABLE,
    HUB_UNAVAILABLE,
    NO_CLUSTER_AVAILABLE,
    QUERY_LOST,
    CLUSTER_ERROR,
    QUOTA_UNAVAILABLE,
    QUOTA_EXCEEDED,
    INVALID_ROUTING_GROUP,
    QUEUED_QUERY_EXPIRED,
)
DATAHUB_ERROR_NAMES = frozenset(name for name, _type, _code in DATAHUB_ERRORS)
