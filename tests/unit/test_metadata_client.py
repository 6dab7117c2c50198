"""The kernel's metadata client: answers parsed once and cached, failures answered with
nothing, and Trino's slow function list never holding up a completion."""

from __future__ import annotations

import threading

from datahub.extensions.completion import Column, Function, Table
from datahub.extensions.metadata_client import MetadataClient
from datahub.extensions.service_client import ServiceError

FUNCTIONS = [{"name": "abs", "signature": "abs(bigint) → bigint", "description": "Absolute"}]


class Service:
    """The DataHub service's metadata API as the client sees it; counts the requests.
    ``functions_ready`` holds the function list back until set."""

    def __init__(self, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail
        self.functions_ready = threading.Event()
        self.functions_ready.set()

    def metadata(self, kind, params):
        self.asked.append(kind)
        if self.fail:
            raise ServiceError("The DataHub service refused to list tables for completion.")
        if kind == "tables":
            return [{"name": "orders", "type": "BASE TABLE"}, {"name": "v", "type": "VIEW"}, 7]
        if kind == "columns":
            return [{"name": "address", "type": "row(city varchar)"}]
        if kind == "functions":
            assert self.functions_ready.wait(30)
            return FUNCTIONS
        return ["tpch"]


def test_answers_are_parsed_once_and_kept_for_the_ttl():
    now = [0.0]
    service = Service()
    client = MetadataClient(service, ttl=60, clock=lambda: now[0])
    tables = client.tables("tpch", "tiny")
    assert tables == (Table("orders", "BASE TABLE"), Table("v", "VIEW"))
    assert client.tables("tpch", "tiny") is tables  # not parsed again per key press
    (address,) = client.columns("tpch", "tiny", "t")
    assert address == Column("address", "row(city varchar)", (Column("city", "varchar"),))
    assert service.asked == ["tables", "columns"]
    now[0] = 61
    client.tables("tpch", "tiny")
    assert service.asked == ["tables", "columns", "tables"]


def test_a_refusal_is_an_empty_answer_with_its_sentence_asked_again_later():
    now = [0.0]
    service = Service(fail=True)
    client = MetadataClient(service, failure_ttl=10, clock=lambda: now[0])
    assert client.tables("tpch", "tiny") == ()
    assert client.last_error == "The DataHub service refused to list tables for completion."
    assert client.tables("tpch", "tiny") == ()
    assert service.asked == ["tables"]
    now[0] = 11
    client.tables("tpch", "tiny")
    assert service.asked == ["tables", "tables"]


def test_a_slow_function_list_does_not_hold_up_completion_and_comes_for_the_next():
    service = Service()
    service.functions_ready.clear()
    client = MetadataClient(service, functions_wait=0.01)
    assert client.functions() == ()  # Trino still listing: the completion goes on
    client.functions_wait = 3600  # only the completion that started the fetch waits
    assert client.functions() == ()  # ... and the next does not ask again meanwhile
    service.functions_ready.set()
    client._functions.result(timeout=30)
    assert client.functions() == (Function("abs", "abs(bigint) → bigint", "Absolute"),)
    assert service.asked == ["functions"]


def test_functions_at_hand_are_answered_at_once():
    client = MetadataClient(Service(), functions_wait=30)
    assert [f.name for f in client.functions()] == ["abs"]
