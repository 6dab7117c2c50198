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
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from datahub.stack import demo
from datahub.stack.ldap import Slapd
from datahub.stack.process import ManagedProcess, free_port
from datahub.stack.tls import LocalCA

REPO = Path(__file__).resolve().parents[1]

COMMON = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.log_level = "WARN"
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "bench", "services": ["bench"], "scopes": ["read:users", "admin:users"]}},
]
"""

DATAHUB = """\
c.JupyterHub.authenticator_class = "datahub-ldap"
a = c.DataHubLDAPAuthenticator
a.server_address = "127.0.0.1"
a.server_port = {ldap_port}
a.tls_strategy = {tls_strategy!r}
a.tls_ca_file = {ca_file!r}
a.lookup_dn_search_user = {search_user!r}
a.lookup_dn_search_password = {search_password!r}
a.user_search_base = {people!r}
a.user_attribute = "uid"
a.lookup_dn_user_dn_attribute = "uid"
a.group_search_base = {groups!r}
a.allowed_groups = [{allowed!r}]
a.admin_groups = [{admins!r}]
"""

STOCK = """\
import ssl
c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
a = c.LDAPAuthenticator
a.server_address = "127.0.0.1"
a.server_port = {ldap_port}
a.tls_strategy = {tls_strategy!r}
if {ca_file!r}:
    a.tls_kwargs = {{"ca_certs_file": {ca_file!r}, "validate": ssl.CERT_REQUIRED}}
a.lookup_dn = True
a.lookup_dn_search_user = {search_user!r}
a.lookup_dn_search_password = {search_password!r}
a.user_search_base = {people!r}
a.user_attribute = "uid"
a.lookup_dn_user_dn_attribute = "uid"
a.allowed_groups = [{allowed!r}]
"""


def proxy_command() -> str:
    local = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else "configurable-http-proxy"


class BenchHub:
    """A JupyterHub with one of the two authenticator configurations."""

    def __init__(self, name: str, state: Path, authenticator_config: str, settings: dict):
        self.name = name
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token = secrets.token_hex(32)
        self.headers = {"Authorization": f"token {token}"}
        state.mkdir(parents=True, exist_ok=True)
        config = state / "jupyterhub_config.py"
        common = COMMON.format(
            port=self.port,
            hub_port=free_port(),
            proxy_port=free_port(),
            proxy=proxy_command(),
            state=state,
            token=token,
        )
        config.write_text(common + authenticator_config.format(**settings))
        self.process = ManagedProcess(
            f"jupyterhub-{name}",
            [Path(sys.executable).with_name("jupyterhub"), "-f", config],
            log_file=state / "jupyterhub.log",
            cwd=state,
        )

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(
            lambda: requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200, 90
        )

    def stop(self) -> None:
        self.process.stop()

    def user(self, name: str) -> dict:
        return requests.get(
            f"{self.url}/hub/api/users/{name}", headers=self.headers, timeout=30
        ).json()


def login(
    url: str, username: str, password: str, start: threading.Barrier
) -> tuple[bool, float, float]:
    """GET the form, wait for everyone, POST it; return (succeeded, POST start, POST end)."""
    session = requests.Session()
    session.trust_env = False
    page = session.get(f"{url}/hub/login", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    start.wait()
    began = time.perf_counter()
    response = session.post(
        f"{url}/hub/login",
        data={"username": username, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=300,
    )
    ended = time.perf_counter()
    ok = response.status_code == 302 and "/login" not in response.headers.get("Location", "")
    return ok, began, ended


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
        hubs = [
            BenchHub("datahub", state / "datahub", DATAHUB, settings),
            BenchHub("stock", state / "stock", STOCK, settings),
        ]
        rows = []
        try:
            for hub in hubs:
                hub.start()
            for hub in hubs:
                # One login first so imports and connections are warm in both hubs.
                ok, _, _ = login(hub.url, admin.uid, admin.password, threading.Barrier(1))
                assert ok, f"{hub.name}: the warm-up login failed; see {hub.process.log_file}"
            # The hubs take turns, so a busy moment on the machine hits both alike.
            rounds = [("new users", 1), ("returning users", args.repeat)]
            for round_name, times in rounds:
                runs: dict[str, list[dict]] = {hub.name: [] for hub in hubs}
                for _ in range(times):
                    for hub in hubs:
                        result = parallel_logins(hub.url, people)
                        if result["failed"]:
                            raise SystemExit(
                                f"{hub.name}: {len(result['failed'])} logins failed "
                                f"({', '.join(result['failed'][:5])}…); "
                                f"see {hub.process.log_file}"
                            )
                        runs[hub.name].append(result)
                for hub in hubs:
                    rows.append((hub.name, round_name, median_result(runs[hub.name])))
            groups = hubs[0].user(people[0].uid)["groups"]
            stock_groups = hubs[1].user(people[0].uid)["groups"]
        finally:
            for hub in hubs:
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
