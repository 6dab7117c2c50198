"""``datahub quota show|set|reset``: quota policies from the command line.

The CLI talks to the DataHub REST API with an admin's hub token rather than to the store,
so it needs no database credentials, works from any machine that reaches the hub, and
every change is checked (admins only) and audited under the admin's name exactly like an
edit in the admin pages::

    export DATAHUB_URL=https://hub.example.com/services/datahub/
    export DATAHUB_TOKEN=…            # an admin's token from the hub's Token page
    datahub quota show                      # every policy, and users' usage today
    datahub quota show user alice           # alice's limits, where each comes from, usage
    datahub quota set group analysts concurrent_queries=5 queries_per_day=1000
    datahub quota set user alice bytes_scanned_per_day=50GB query_runtime_seconds=10m
    datahub quota set default server_memory=4G --replace
    datahub quota reset user alice          # delete alice's policy: she inherits again
    datahub quota reset user alice --usage  # zero alice's counters of today
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from ..tls import pinned_context
from .policy import LIMITS, PolicyError, parse_limit

DEFAULT_URL = "http://127.0.0.1:8000/services/datahub/"


class CLIError(Exception):
    """A problem to print as one line (exit status 1)."""


def parse_subject(words: Sequence[str]) -> tuple[str, str | None, list[str]]:
    """``["user", "alice", "a=1"]`` → ("user", "alice", ["a=1"]); ``["default", …]`` →
    ("default", None, […])."""
    if not words:
        raise CLIError("Say whose policy: default, group NAME or user NAME.")
    scope, rest = words[0], list(words[1:])
    if scope == "default":
        return scope, None, rest
    if scope not in ("group", "user"):
        raise CLIError(f"Unknown subject {scope!r}: use default, group NAME or user NAME.")
    if not rest:
        raise CLIError(f"Name the {scope}: datahub quota … {scope} NAME.")
    return scope, rest[0], rest[1:]


def parse_assignments(words: Sequence[str]) -> dict[str, Any]:
    """``["concurrent_queries=3", "server_memory=4G"]`` → limits for the API (values
    checked here, so mistakes are reported before anything is sent)."""
    limits: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            raise CLIError(f"Write limits as NAME=VALUE (e.g. concurrent_queries=3), not {word!r}.")
        try:
            parse_limit(name.strip(), value.strip())
        except PolicyError as e:
            raise CLIError(str(e)) from None
        limits[name.strip()] = value.strip()
    if not limits:
        raise CLIError("Give at least one limit: NAME=VALUE (e.g. queries_per_day=1000).")
    return limits


def policy_path(scope: str, name: str | None) -> str:
    return "policies/default" if scope == "default" else f"policies/{scope}/{name}"


class Client:
    """The quota API of a DataHub service, with a hub token."""

    def __init__(self, url: str, token: str, *, verify: bool | ssl.SSLContext = True) -> None:
        self.base = url.rstrip("/") + "/api/quota/"
        self.http = httpx.Client(
            headers={"Authorization": f"token {token}"}, timeout=30, verify=verify
        )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.http.request(method, self.base + path, json=body)
        except httpx.HTTPError as e:
            raise CLIError(f"Could not reach DataHub at {self.base}: {e}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message")
            except ValueError:
                message = None
            raise CLIError(message or f"DataHub answered HTTP {response.status_code}.")
        return response.json()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def format_user(report: dict[str, Any]) -> str:
    groups = ", ".join(report["groups"]) or "no groups"
    rows = [
        [line["label"], line["used_text"] or "", line["allowed_text"], line["source"] or ""]
        for line in report["lines"]
    ]
    return f"{report['user']} ({groups}); daily counters reset {report['resets']}\n" + _table(
        rows, ["limit", "used today", "allowed", "from"]
    )


def format_policy(scope: str, name: str | None, limits: dict[str, Any]) -> str:
    title = "default policy" if scope == "default" else f"policy of {scope} {name}"
    if not limits:
        return f"{title}: sets no limits"
    rows = [[key, "unlimited" if value is None else str(value)] for key, value in limits.items()]
    return f"{title}:\n" + _table(rows, ["limit", "value"])


def format_overview(policies: dict[str, Any], users: dict[str, Any]) -> str:
    out = []
    for policy in policies["policies"]:
        out.append(format_policy(policy["scope"], policy["name"], policy["limits"]))
    if not policies["policies"]:
        out.append("No stored policies.")
    configured = policies.get("configured_default") or {}
    out.append(
        "configured default (c.QuotaManager.default_limits): "
        + (", ".join(f"{k}={v}" for k, v in configured.items()) or "none")
    )
    rows = []
    for user in users["users"]:
        usage, limits = user["usage"], user["policy"]["limits"]
        rows.append(
            [
                user["name"],
                f"{usage['running']}/{limits['concurrent_queries'] or '∞'}",
                f"{usage['queued']}/{limits['queued_queries'] or '∞'}"
                if limits["queued_queries"] is not None
                else f"{usage['queued']}/∞",
                f"{usage['queries']}/{limits['queries_per_day'] or '∞'}"
                if limits["queries_per_day"] is not None
                else f"{usage['queries']}/∞",
                f"{usage['cpu_ms'] / 1000:.1f}",
                str(usage["refused"]),
            ]
        )
    out.append(
        f"users today ({users['day']}, resets {users['resets']}):\n"
        + _table(rows, ["user", "running", "queued", "queries", "cpu s", "refused"])
    )
    return "\n\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Run ``datahub quota …``; returns the exit status."""
    token = args.token or os.environ.get("DATAHUB_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    try:
        if not token:
            raise CLIError(
                "Give an admin's hub API token with --token or DATAHUB_TOKEN "
                "(create one on the hub's Token page)."
            )
        # A pinned CA is the only one trusted (SSL_CERT_FILE plays no part).
        client = Client(
            args.url, token, verify=pinned_context(args.ca_file) if args.ca_file else True
        )
        result, text = _dispatch(client, args)
    except CLIError as e:
        print(f"datahub quota: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str) if args.json else text)
    return 0


def _dispatch(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    if args.action == "show":
        if not args.subject:
            policies = client.call("GET", "policies")
            users = client.call("GET", "users")
            return {"policies": policies, "users": users}, format_overview(policies, users)
        scope, name, extra = parse_subject(args.subject)
        if extra:
            raise CLIError(f"Unexpected {' '.join(extra)!r} after the subject.")
        if scope == "user":
            report = client.call("GET", f"users/{name}")
            return report, format_user(report)
        try:
            policy = client.call("GET", policy_path(scope, name))
        except CLIError:
            policy = {"scope": scope, "name": name, "limits": {}}
        return policy, format_policy(scope, name, policy["limits"])
    scope, name, rest = parse_subject(args.subject)
    if args.action == "set":
        limits = parse_assignments(rest)
        method = "PUT" if args.replace else "PATCH"
        change = client.call(method, policy_path(scope, name), {"limits": limits})
        after = (change.get("after") or {}).get("limits", {})
        return change, "saved " + format_policy(scope, name, after)
    if rest:
        raise CLIError(f"Unexpected {' '.join(rest)!r} after the subject.")
    if args.usage:
        if scope != "user":
            raise CLIError(
                "Only a user's usage can be reset: datahub quota reset user NAME --usage."
            )
        change = client.call("POST", f"users/{name}/reset-usage")
        return change, f"today's usage of {name} reset (was {change['before']['queries']} queries)"
    change = client.call("DELETE", policy_path(scope, name))
    subject = "default policy" if scope == "default" else f"policy of {scope} {name}"
    return change, f"removed the {subject}; it inherits again"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``quota`` to the ``datahub`` command's subcommands."""
    limits = ", ".join(LIMITS)
    quota = sub.add_parser(
        "quota",
        help="show and change quota policies (through the DataHub REST API)",
        description=__doc__.split("\n", 2)[2].replace("::", ":"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Limits: {limits}. Values: numbers, sizes (10GB, 512MiB), durations "
        "(90s, 5m, 2h) or 'unlimited'.",
    )
    quota.add_argument(
        "--url",
        default=os.environ.get("DATAHUB_URL", DEFAULT_URL),
        help=f"the DataHub service URL (default: $DATAHUB_URL or {DEFAULT_URL})",
    )
    quota.add_argument(
        "--token",
        help="an admin's hub API token (default: $DATAHUB_TOKEN or $JUPYTERHUB_API_TOKEN)",
    )
    quota.add_argument("--ca-file", help="CA certificate (PEM) to verify an https URL with")
    quota.add_argument("--json", action="store_true", help="print the API's JSON answer")
    actions = quota.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="show policies and usage, or one subject's")
    show.add_argument("subject", nargs="*", help="default | group NAME | user NAME")
    set_ = actions.add_parser("set", help="set limits of a policy (others unchanged)")
    set_.add_argument(
        "subject", nargs="+", help="default | group NAME | user NAME, then NAME=VALUE…"
    )
    set_.add_argument(
        "--replace", action="store_true", help="replace the whole policy with the limits given"
    )
    reset = actions.add_parser("reset", help="delete a policy, or zero a user's usage of today")
    reset.add_argument("subject", nargs="+", help="default | group NAME | user NAME")
    reset.add_argument("--usage", action="store_true", help="zero today's counters instead")
