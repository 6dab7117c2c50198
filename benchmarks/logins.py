"""100 parallel logins through the hub's login form: DataHub's authenticator against the
stock ldapauthenticator configuration, in the same run, against the same slapd.

    /opt/datahub/venv/bin/python benchmarks/logins.py [--users 100] [--transport plain]

It starts one private slapd with ``--users`` people (all in the allowed group) and two
JupyterHubs that differ only in their authenticator:

* ``datahub``: ``DataHubLDAPAuthenticator`` configured like jupyterhub_config.py (all
  groups synced, admin group, memberOf, disabled check);
* ``stock``: ``ldapauthenticator.LDAPAuthenticator`` with the usual lookup_dn setup and
  the same ``allowed_groups`` (no group sync: it cannot).

Each person signs in once at the same moment (one thread and one HTTP session each: GET
the form, then POST it; the POST is timed), first as new hub users, then ``--repeat``
more times as returning ones (medians shown); the two hubs take turns. No server is
spawned. Every login must succeed (302 away from the login
page), or the benchmark fails. ``--transport starttls`` runs both over StartTLS with a
test CA (certificates verified by both).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from datahub.stack import demo
from datahub.stack.hub import HubProcess, login_form, login_session, post_login, signed_in
from datahub.stack.ldap import Slapd
from datahub.stack.tls import LocalCA

REPO = Path(__file__).resolve().parents[1]

# What both hubs set alike (``a`` is the authenticator's config section).
SAME_LDAP = """\
a.server_address = "127.0.0.1"
a.server_port = {ldap_port}
a.tls_strategy = {tls_strategy!r}
a.lookup_dn_search_user = {search_user!r}
a.lookup_dn_search_password = {search_password!r}
a.user_search_base = {people!r}
a.user_attribute = "uid"
a.lookup_dn_user_dn_attribute = "uid"
a.allowed_groups = [{allowed!r}]
"""

DATAHUB = (
    """\
c.JupyterHub.authenticator_class = "datahub-ldap"
a = c.DataHubLDAPAuthenticator
a.tls_ca_file = {ca_file!r}
a.group_search_base = {groups!r}
a.admin_groups = [{admins!r}]
"""
    + SAME_LDAP
)

STOCK = (
    """\
import ssl
c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
a = c.LDAPAuthenticator
if {ca_file!r}:
    a.tls_kwargs = {{"ca_certs_file": {ca_file!r}, "validate": ssl.CERT_REQUIRED}}
a.lookup_dn = True
"""
    + SAME_LDAP
)


def login(
    url: str, username: str, password: str, start: threading.Barrier
) -> tuple[bool, float, float]:
    """GET the form, wait for everyone, POST it; return (succeeded, POST start, POST end)."""
    session = login_session()
    xsrf = login_form(session, url)
    start.wait()
    began = time.perf_counter()
    response = post_login(session, url, username, password, xsrf)
    ended = time.perf_counter()
    return signed_in(response), began, ended


def parallel_logins(url: str, people: list[demo.Person]) -> dict:
    start = threading.Barrier(len(people))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(people)) as pool:
        results = list(pool.map(lambda p: login(url, p.uid, p.password, start), people))
    times = sorted(ended - began for _, began, ended in results)
    wall = max(e for _, _, e in results) - min(b for _, b, _ in results)
    failed = [p.uid for p, (ok, _, _) in zip(people, results, strict=True) if not ok]
    return {
        "failed": failed,
        "p50": statistics.median(times),
        "p95": times[max(0, round(0.95 * len(times)) - 1)],
        "max": times[-1],
        "wall": wall,
    }


def median_result(runs: list[dict]) -> dict:
    """Each measure's median over several rounds."""
    return {key: statistics.median(r[key] for r in runs) for key in ("p50", "p95", "max", "wall")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--transport", choices=["plain", "starttls"], default="plain")
    parser.add_argument(
        "--repeat", type=int, default=3, help="returning-user rounds per hub (medians shown)"
    )
    args = parser.parse_args()

    people = [
        demo.Person(f"user{i:03d}", f"User {i}", (demo.ALLOWED_GROUP,), 50000 + i)
        for i in range(args.users)
    ]
    admin = demo.Person("boss", "Boss Admin", (demo.ALLOWED_GROUP, demo.ADMIN_GROUP), 49999)
    all_people = (admin, *people)
    with tempfile.TemporaryDirectory(prefix="datahub-bench-logins-") as tmp:
        state = Path(tmp)
        slapd = Slapd(
            state / "ldap",
            demo.new_service_secrets(),
            people=all_people,
            ca=LocalCA() if args.transport == "starttls" else None,
        )
        slapd.start()
        settings = {
            "ldap_port": slapd.port,
            "tls_strategy": "before_bind" if args.transport == "starttls" else "insecure",
            "ca_file": str(slapd.ca_file) if slapd.ca_file else "",
            "search_user": demo.service_dn(demo.HUB_SERVICE_ACCOUNT),
            "search_password": slapd.secrets[demo.HUB_SERVICE_ACCOUNT],
            "people": demo.PEOPLE_DN,
            "groups": demo.GROUPS_DN,
            "allowed": demo.group_dn(demo.ALLOWED_GROUP),
            "admins": demo.group_dn(demo.ADMIN_GROUP),
        }
        hubs = {
            name: HubProcess(
                state / name,
                'c.JupyterHub.log_level = "WARN"\n' + config.format(**settings),
                checkout=REPO,
                scopes=["read:users", "admin:users"],
                name=f"jupyterhub-{name}",
            )
            for name, config in (("datahub", DATAHUB), ("stock", STOCK))
        }
        rows = []
        try:
            for hub in hubs.values():
                hub.start()
            for name, hub in hubs.items():
                # One login first so imports and connections are warm in both hubs.
                ok, _, _ = login(hub.url, admin.uid, admin.password, threading.Barrier(1))
                assert ok, f"{name}: the warm-up login failed; see {hub.log_file}"
            # The hubs take turns, so a busy moment on the machine hits both alike.
            rounds = [("new users", 1), ("returning users", args.repeat)]
            for round_name, times in rounds:
                runs: dict[str, list[dict]] = {name: [] for name in hubs}
                for _ in range(times):
                    for name, hub in hubs.items():
                        result = parallel_logins(hub.url, people)
                        if result["failed"]:
                            raise SystemExit(
                                f"{name}: {len(result['failed'])} logins failed "
                                f"({', '.join(result['failed'][:5])}…); see {hub.log_file}"
                            )
                        runs[name].append(result)
                for name in hubs:
                    rows.append((name, round_name, median_result(runs[name])))
            groups = hubs["datahub"].user(people[0].uid)["groups"]
            stock_groups = hubs["stock"].user(people[0].uid)["groups"]
        finally:
            for hub in hubs.values():
                hub.stop()
            slapd.stop()

    versions = ", ".join(
        f"{pkg} {importlib.metadata.version(pkg)}"
        for pkg in ("jupyterhub", "jupyterhub-ldapauthenticator", "ldap3")
    )
    print(
        f"\n{args.users} parallel logins, transport {args.transport}, returning-user rounds: "
        f"median of {args.repeat}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {versions}\n"
    )
    print("| authenticator | round | p50 (s) | p95 (s) | max (s) | wall (s) | ok |")
    print("|---|---|---|---|---|---|---|")
    for name, round_name, r in rows:
        print(
            f"| {name} | {round_name} | {r['p50']:.3f} | {r['p95']:.3f} | {r['max']:.3f} "
            f"| {r['wall']:.2f} | {args.users}/{args.users} |"
        )
    by_key = {(name, round_name): r for name, round_name, r in rows}
    for round_name in ("new users", "returning users"):
        ours, stock = by_key[("datahub", round_name)], by_key[("stock", round_name)]
        print(
            f"\n{round_name}: stock/datahub p50 ×{stock['p50'] / ours['p50']:.2f}, "
            f"p95 ×{stock['p95'] / ours['p95']:.2f}"
        )
    print(f"\nhub groups of {people[0].uid}: datahub {groups}, stock {stock_groups}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
