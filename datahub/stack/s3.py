"""Local S3-compatible storage for Trino's spooled results (the spooling protocol).

Trino 476's ``spooling-filesystem`` plugin (in the core tarball) writes segments to S3,
Google Cloud Storage or Azure only: it has no local file system (``fs.s3.enabled``,
``fs.gcs.enabled``, ``fs.azure.enabled`` are its choices). The local stack therefore runs
S3Proxy (``org.gaul:s3proxy``, one jar from Maven Central, cached like Trino) over a
directory of its state: an S3 endpoint on 127.0.0.1 whose buckets are folders.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path

from .maven import cached_artifact
from .process import ManagedProcess, ManagedServer, Progress, free_port, write_private
from .trino import find_java, render_properties

#: The one place S3Proxy's version lives.
S3PROXY_VERSION = "2.6.0"
#: S3Proxy 2.x runs on Java 17 or newer.
MIN_JAVA = 17
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "datahub" / f"s3proxy-{S3PROXY_VERSION}"
#: The bucket Trino spools into.
BUCKET = "spooling"


def ensure_s3proxy(cache_dir: Path = DEFAULT_CACHE_DIR, step=print) -> Path:
    """The S3Proxy jar (with its dependencies) under ``cache_dir``, downloaded once (41 MB)."""
    return cached_artifact(
        f"org.gaul:s3proxy:{S3PROXY_VERSION}:jar:jar-with-dependencies",
        Path(cache_dir).expanduser() / f"s3proxy-{S3PROXY_VERSION}-jar-with-dependencies.jar",
        step,
        f"Downloading S3Proxy {S3PROXY_VERSION} with Maven (about 40 MB, once)",
    )


class S3Storage(ManagedServer):
    """One S3Proxy on 127.0.0.1 storing objects under ``state_dir/objects``.

    Its credentials are made on first start and kept in ``state_dir``; the ``spooling``
    bucket is a folder made before start. Trino reaches it with
    :meth:`spooling_properties`.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        cache_dir: Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.progress = progress or Progress()
        self.objects = self.state_dir / "objects"
        self.access_key = "datahub-spooling"
        self._secret_file = self.state_dir / "secret-key"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def secret_key(self) -> str:
        if not self._secret_file.exists():
            write_private(self._secret_file, secrets.token_urlsafe(24))
        return self._secret_file.read_text().strip()

    def spooling_properties(self, prefix: str = "") -> dict[str, object]:
        """Trino's ``etc/spooling-manager.properties`` for spooling into this storage,
        under *prefix* (a folder such as ``"b/"``: clusters sharing the storage each prune
        only their own expired segments).

        Segment encryption (SSE-C) is off: S3Proxy's file store has none, and the
        segments live in this stack's private state directory. It matters for Trino's
        ``STORAGE`` retrieval mode too: an encrypted segment's pre-signed URI is usable
        only with the key in the segment's ``headers``; a plain one is a bare URI, valid
        until Trino's ``fs.segment.direct.ttl`` (default one hour) or the segment's
        ``fs.segment.ttl``, whichever comes first.
        """
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"A spooling prefix is a folder ending in '/', not {prefix!r}.")
        return {
            "spooling-manager.name": "filesystem",
            "fs.s3.enabled": "true",
            "fs.location": f"s3://{BUCKET}/{prefix}",
            "fs.segment.encryption": "false",
            "s3.endpoint": self.url,
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
            "s3.aws-access-key": self.access_key,
            "s3.aws-secret-key": self.secret_key,
        }

    def start(self, timeout: float = 60) -> S3Storage:
        """Start S3Proxy (downloading it if needed) and wait until it answers."""
        if self.running:
            return self
        jar = ensure_s3proxy(self.cache_dir, self.progress.step)
        java = find_java(minimum=MIN_JAVA, needed_by="S3Proxy") / "bin" / "java"
        (self.objects / BUCKET).mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "s3proxy.properties"
        write_private(
            config,
            render_properties(
                {
                    "s3proxy.endpoint": self.url,
                    "s3proxy.authorization": "aws-v2-or-v4",
                    "s3proxy.identity": self.access_key,
                    "s3proxy.credential": self.secret_key,
                    "jclouds.provider": "filesystem",
                    "jclouds.filesystem.basedir": self.objects,
                }
            ),
        )
        self.progress.step(f"Starting the spooling storage (S3Proxy) on {self.url}")
        process = ManagedProcess(
            "s3proxy",
            [java, "-Xmx256m", "-jar", jar, "--properties", config],
            log_file=self.state_dir / "s3proxy.log",
            cwd=self.state_dir,
        )
        self._launch(process, (self._answers, timeout, "S3Proxy to answer"), interval=0.3)
        return self

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/", timeout=2)  # noqa: S310 - loopback only
        except urllib.error.HTTPError:
            return True  # 403 to an unsigned request: it is up
        return True
