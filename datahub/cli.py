"""The `datahub` command.

datahub up [--kafka] [--presto] [--spooling MODE]
                               start slapd, Trino and JupyterHub (with the gateway) here,
                               and Kafka for the query events with --kafka, and a PrestoDB
                               cluster (routing group presto) with --presto; --spooling
                               says how clients reach Trino's spooled results
datahub quota show|set|reset   quota policies and usage, through the REST API (an admin's
                               hub token); see datahub.quotas.cli
datahub events watch           crash detection from the query events on Kafka, in the
                               foreground; see datahub.events.cli
datahub config-reference       every configuration option, from the traitlets help
                               (--write docs/configuration.md); see datahub.configref
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .events import cli as events_cli
from .quotas import cli as quota_cli
from .stack import demo
from .stack.process import Progress

#: ``datahub up --spooling``: how clients reach the local Trino's spooled result segments
#: (Trino's ``protocol.spooling.retrieval-mode``), or ``off`` (direct protocol only).
SPOOLING = {
    "proxy": "COORDINATOR_PROXY",
    "storage": "STORAGE",
    "redirect": "COORDINATOR_STORAGE_REDIRECT",
    "off": None,
}


def stack_options(args: argparse.Namespace) -> dict[str, Any]:
    """`LocalStack`'s options from ``datahub up``'s arguments."""
    mode = SPOOLING[args.spooling]
    return {
        "hub_port": args.port or None,
        "kafka": args.kafka,
        "presto": args.presto,
        "spooling": mode is not None,
        "spooling_retrieval_mode": mode or "COORDINATOR_PROXY",
    }


def _up(args: argparse.Namespace) -> int:
    from .stack.local import LocalStack

    progress = Progress()
    stack = LocalStack(args.state_dir, args.config, progress=progress, **stack_options(args))
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        print(
            f"\nDataHub is running at {stack.hub_url}/\n\n"
            "Sign in with one of the demo accounts:\n"
            + "\n".join(
                f"  {p.uid:<6} {p.password:<11} {p.full_name} ({', '.join(p.groups)})"
                for p in demo.PEOPLE
            )
            + (
                f"\n\nKafka (query events): {stack.kafka.bootstrap_servers}"
                if stack.kafka is not None
                else ""
            )
            + (
                f"\n\nPrestoDB (%%sql --cluster presto): {stack.presto.url}"
                if stack.presto is not None
                else ""
            )
            + f"\n\nState and logs: {stack.state_dir}\nPress Ctrl-C to stop everything.",
            flush=True,
        )
        stopping.wait()
    finally:
        progress.step("Stopping DataHub")
        stack.stop()
    return 0


def _events(args: argparse.Namespace) -> int:
    from .service.app import DataHubService

    return events_cli.run(args, lambda config: DataHubService(config=config).store_url)


def _config_reference(args: argparse.Namespace) -> int:
    from . import configref

    text = configref.render()
    if args.write is None:
        sys.stdout.write(text)
    else:
        args.write.write_text(text)
        print(f"Wrote {args.write}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``datahub`` command's arguments, with its subcommands'."""
    parser = argparse.ArgumentParser(
        prog="datahub", description="DataHub: a Jupyter-centric self-service data hub."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        help="run the whole DataHub on this machine (slapd, Trino, JupyterHub, gateway)",
        description="Start the local DataHub stack with demo users; Ctrl-C stops all of it.",
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".datahub"),
        help="directory for data, settings and logs (default: ./.datahub)",
    )
    up.add_argument(
        "--config",
        type=Path,
        default=Path("jupyterhub_config.py"),
        help="the hub configuration file (default: ./jupyterhub_config.py)",
    )
    up.add_argument("--port", type=int, default=8000, help="hub port (default 8000; 0 = any)")
    up.add_argument(
        "--kafka",
        action="store_true",
        help="also start a Kafka broker for the query events (its address goes to the "
        "settings file as kafka.bootstrap_servers; first run downloads it from Maven Central)",
    )
    up.add_argument(
        "--presto",
        action="store_true",
        help="also start a PrestoDB cluster, named presto in routing group presto (first run "
        "downloads it from Maven Central; it runs on Java 17)",
    )
    up.add_argument(
        "--spooling",
        choices=tuple(SPOOLING),
        default="proxy",
        help="how clients that ask for Trino's spooling protocol (%%%%sql does) reach the "
        "result segments Trino writes to the local S3 storage: proxy = through Trino's "
        "coordinator, which the gateway relays as the user (COORDINATOR_PROXY); storage = "
        "straight from the storage with pre-signed URIs, valid for an hour and bound to no "
        "user (STORAGE); redirect = through the coordinator, which redirects to the storage "
        "(COORDINATOR_STORAGE_REDIRECT); off = no spooling, every query on the direct "
        "protocol (default: proxy)",
    )
    quota_cli.add_parser(sub)
    events_cli.add_parser(sub)
    reference = sub.add_parser(
        "config-reference",
        help="print the reference of every configuration option (Markdown)",
        description="Print the reference of DataHub's configuration options, generated from "
        "their traitlets help, as Markdown.",
    )
    reference.add_argument(
        "--write",
        type=Path,
        metavar="PATH",
        help="write it to this file instead (the repository's copy: docs/configuration.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "quota":
        return quota_cli.run(args)
    if args.command == "events":
        return _events(args)
    if args.command == "config-reference":
        return _config_reference(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
