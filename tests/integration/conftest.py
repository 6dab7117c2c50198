"""Fixtures for the integration tests: the %%sql magic's shell, a second Trino cluster,
reading a Kafka topic; and the one rule of this directory's order (modules that stop or
kill the second Trino run last)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from IPython.testing import globalipapp

from datahub.stack import demo
from datahub.stack.trino import TrinoServer

HERE = Path(__file__).parent
#: The mark of a module some test (or fixture) of which stops or kills `trino_b`.
STOPS_TRINO_B = "stops_trino_b"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{STOPS_TRINO_B}: the module stops or kills the session's second Trino (`trino_b`); "
        "it runs after this directory's other modules",
    )


def pytest_collection_modifyitems(items):
    """The modules marked ``stops_trino_b`` run after this directory's other modules (both
    groups keep their order), so that the modules which only use the session's second
    Trino find it running once the first of them started it, instead of each starting it
    again (~20 s) after a module that stopped or killed it. Only the order changes:
    `trino_b` still starts it wherever it is not running."""
    stopping = [item for item in items if _stops_trino_b(item)]
    if not stopping:
        return
    others = [item for item in items if not _stops_trino_b(item)]
    ends_here = [i + 1 for i, item in enumerate(others) if item.path.parent == HERE]
    at = ends_here[-1] if ends_here else items.index(stopping[0])
    items[:] = others[:at] + stopping + others[at:]


def _stops_trino_b(item: pytest.Item) -> bool:
    return item.path.parent == HERE and item.get_closest_marker(STOPS_TRINO_B) is not None


@pytest.fixture(scope="module")
def ip(stack, users):
    """An IPython shell with the SQL extension, querying through the stack's gateway as
    alice with a hub token of hers (the shell is per process; settings per module)."""
    globalipapp.start_ipython()  # once per process; later calls return None
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "datahub.extensions.sql")
    shell.run_line_magic("config", f"SqlMagic.gateway_url = {stack.settings['gateway_url']!r}")
    shell.run_line_magic("config", f"SqlMagic.token = {users.token('alice')!r}")
    shell.run_line_magic("config", "SqlMagic.user = 'alice'")
    return shell


@pytest.fixture(scope="session")
def second_trino(stack, stop_at_the_end):
    """A second Trino cluster beside the stack's (its LDAP directory, service accounts and
    groups), for the tests of two clusters; not started here (see `trino_b`). It spools
    into the stack's S3 storage (under ``b/``) in Trino's ``STORAGE`` retrieval mode:
    clients read its segments straight from the storage with pre-signed URIs."""
    server = TrinoServer(
        stack.state_dir / "trino-b",
        name="b",
        ldap_url=stack.slapd.url,
        secrets=stack.secrets["services"],
        groups=demo.group_members(),
        spooling=stack.storage.spooling_properties("b/"),
        spooling_retrieval_mode="STORAGE",
    )
    yield server
    stop_at_the_end(server.stop)


@pytest.fixture(scope="module")
def trino_b(second_trino):
    """The session's second Trino, running: started once (each start takes ~20 s and
    ~1.5 GB) and shared by the modules that need two clusters; started again here when
    a module before stopped or killed it (the modules that do are marked
    ``stops_trino_b`` and run last, so that happens only between them)."""
    second_trino.start()
    return second_trino


#: How long a test waits for what must happen before its assertions say what is missing:
#: a bound against hanging, not a measure of speed.
GIVE_UP_AFTER = 120


@pytest.fixture
def read_topic(kafka):
    """``await read_topic(topic, enough)``: the topic's records from its start, in each
    partition's order, read until ``enough(records)`` holds (or GIVE_UP_AFTER seconds
    passed: the caller's assertions then name what is missing)."""

    async def read(topic: str, enough: Callable[[list], bool]) -> list:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        records: list = []
        try:
            async with asyncio.timeout(GIVE_UP_AFTER):
                while not enough(records):
                    for batch in (await consumer.getmany(timeout_ms=500)).values():
                        records.extend(batch)
        except TimeoutError:
            pass
        finally:
            await consumer.stop()
        return sorted(records, key=lambda r: (r.partition, r.offset))

    return read
