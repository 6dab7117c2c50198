"""``datahub events watch``: the crash watcher in the foreground.

It reads the same jupyterhub_config.py as the hub and the service: the store
(``c.DataHubService.store_url``), Kafka (``c.KafkaEvents``) and the watcher's periods
(``c.CrashWatch``), and logs each crash incident it finds to stderr until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from traitlets.config import Config, PyFileConfigLoader

DESCRIPTION = """\
Watch the query events on Kafka for crashes: keep, per cluster, the queries submitted
without an end; mark them lost (reported lost by the gateway, still open a grace period
after their cluster began losing queries, or open longer than c.CrashWatch.max_open);
group them into crash incidents (cluster, start, end, queries, users) in the store, where
the admin page /services/datahub/admin/incidents shows them. Runs until Ctrl-C; a watcher
started again goes on where it stopped. Several watchers (or service processes with
c.CrashWatch.run_in_service) share the work safely: one reads, the others stand by.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser(
        "events",
        help="query events on Kafka: crash detection (datahub events watch)",
        description="Query events on Kafka.",
    )
    commands = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    watch = commands.add_parser(
        "watch",
        help="detect crashes from the query events, in the foreground",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument(
        "-f",
        "--config",
        type=Path,
        default=Path("jupyterhub_config.py"),
        help="the configuration file with c.DataHubService.store_url, c.KafkaEvents and "
        "c.CrashWatch (default: ./jupyterhub_config.py)",
    )
    watch.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka's bootstrap servers (default: c.KafkaEvents.bootstrap_servers)",
    )
    watch.add_argument("--topic", help="the query events topic (default: c.KafkaEvents.topic)")
    watch.add_argument(
        "--store-url",
        metavar="URL",
        help="the store, where incidents are kept (default: c.DataHubService.store_url)",
    )


def load_config(path: Path) -> Config:
    """The configuration in ``path`` (empty when it does not exist)."""
    if not path.exists():
        return Config()
    return PyFileConfigLoader(path.name, str(path.parent.resolve())).load_config()


def run(args: argparse.Namespace, configured_store_url: Callable[[Config], str]) -> int:
    """Run ``datahub events watch``; ``configured_store_url(config)`` is the store the
    service would use (``c.DataHubService.store_url``; the service's part says so)."""
    from ..store import Store
    from .config import KafkaEvents
    from .watch import CrashWatch

    if args.config != Path("jupyterhub_config.py") and not args.config.exists():
        print(f"Configuration file {args.config} does not exist.", file=sys.stderr)
        return 2
    config = load_config(args.config)
    kafka = KafkaEvents(config=config)
    servers = (args.bootstrap_servers or kafka.bootstrap_servers).strip()
    if not servers:
        print(
            "No Kafka to read: set c.KafkaEvents.bootstrap_servers in the configuration "
            "file or pass --bootstrap-servers HOST:PORT.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    log = logging.getLogger("datahub.events")
    store = Store(args.store_url or configured_store_url(config))
    store.migrate()
    watcher = CrashWatch(config=config, log=log).watcher(
        store, servers, args.topic or kafka.topic, log
    )
    log.info("Watching %s at %s for crashes (Ctrl-C stops)", watcher.topic, servers)
    try:
        asyncio.run(_watch_until_signal(watcher))
    finally:
        store.dispose()
    return 0


async def _watch_until_signal(watcher) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    watcher.start()
    await stopping.wait()
    await watcher.stop()
