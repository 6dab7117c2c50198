"""The kernel's completion reply carries each SQL candidate's detail (a column's Trino type,
a function's signature) in the ``signature`` of its ``_jupyter_types_experimental``
metadata, where DataHub's JupyterLab extension reads it: ipykernel's own reply code in a
real IPython shell, with an in-memory catalog in place of the service."""

from __future__ import annotations

import pytest
from ipykernel.ipkernel import IPythonKernel
from IPython.testing import globalipapp

from datahub.extensions.completer import add_details, detail_sql_completions
from datahub.extensions.completion import Column, Function, Table


class MemoryCatalog:
    def catalogs(self):
        return ["tpch"]

    def schemas(self, catalog):
        return ["tiny"] if catalog == "tpch" else []

    def tables(self, catalog, schema):
        return [Table("orders")] if (catalog, schema) == ("tpch", "tiny") else []

    def columns(self, catalog, schema, table):
        if table != "orders":
            return []
        return [Column("orderkey", "bigint"), Column("orderstatus", "varchar(1)")]

    def functions(self):
        return [Function("abs", "abs(bigint) → bigint", "Absolute value")]


class Kernel:
    """ipykernel's completion handler (its own code) on the test's IPython shell."""

    def __init__(self, shell):
        self.shell = shell

    def do_complete(self, code, cursor_pos):
        return IPythonKernel._experimental_do_complete(self, code, cursor_pos)


@pytest.fixture(scope="module")
def shell():
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "datahub.extensions.sql")
    magic = ip.magics_manager.registry["SqlMagic"]
    original = magic.completer.client
    magic.completer.client = lambda hint: MemoryCatalog()
    yield ip
    magic.completer.client = original


def typed(reply):
    return [
        (m["text"], m["type"], m["signature"])
        for m in reply["metadata"]["_jupyter_types_experimental"]
    ]


def test_the_reply_carries_column_types_in_the_kernels_order(shell):
    magic = shell.magics_manager.registry["SqlMagic"]
    kernel = Kernel(shell)
    detail_sql_completions(kernel, magic)
    detail_sql_completions(kernel, magic)  # a reload wraps the original, not the wrapper
    text = "%%sql\nSELECT o.ord FROM tpch.tiny.orders o"
    reply = kernel.do_complete(text, text.index(" FROM"))
    assert reply["matches"] == ["orderkey", "orderstatus"]
    assert typed(reply) == [
        ("orderkey", "column", "bigint"),
        ("orderstatus", "column", "varchar(1)"),
    ]
    text = "%%sql\nSELECT ab"
    assert typed(kernel.do_complete(text, len(text)))[0] == (
        "abs",
        "function",
        "abs(bigint) → bigint",
    )


def test_python_completion_is_left_as_ipython_makes_it(shell):
    magic = shell.magics_manager.registry["SqlMagic"]
    kernel = Kernel(shell)
    detail_sql_completions(kernel, magic)
    shell.user_ns["orderkey_in_python"] = 1
    text = "%%sql\nSELECT orderkey FROM tpch.tiny.orders"
    kernel.do_complete(text, len(text))  # SQL first: its details must not leak below
    reply = kernel.do_complete("orderkey_in_py", 14)
    assert ("orderkey_in_python", "instance", "") in typed(reply)


def test_add_details_fills_only_missing_signatures():
    reply = {
        "metadata": {
            "_jupyter_types_experimental": [
                {"text": "a", "type": "column", "signature": ""},
                {"text": "f", "type": "function", "signature": "f(x)"},
                {"text": "b", "type": "column", "signature": ""},
            ]
        }
    }
    add_details(reply, {"a": "bigint", "f": "f(y)"})
    assert [m["signature"] for m in reply["metadata"]["_jupyter_types_experimental"]] == [
        "bigint",
        "f(x)",
        "",
    ]
    add_details({"status": "ok"}, {"a": "bigint"})  # no metadata: nothing to fill
