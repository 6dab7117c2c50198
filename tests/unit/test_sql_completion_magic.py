"""Where the SQL is in a cell (``%%sql`` cells, ``%sql`` lines), and the IPython matcher
in a real IPython shell with an in-memory catalog in place of the service."""

from __future__ import annotations

import pytest
from IPython.testing import globalipapp

from datahub.extensions.completer import inspect_sql_functions, sql_at_cursor
from datahub.extensions.completion import Column, Function, Table


def at(text_with_cursor: str):
    offset = text_with_cursor.index("|")
    return sql_at_cursor(text_with_cursor.replace("|", "", 1), offset)


def test_cell_magic_body_is_the_sql():
    found = at("%%sql\nSELECT * FROM tpch.|")
    assert (found.sql, found.offset, found.options) == ("SELECT * FROM tpch.", 19, "")


def test_cell_magic_options_are_returned_and_skipped():
    found = at("%%sql --catalog tpch --schema tiny -o out\nSELECT * FROM o|")
    assert found.sql == "SELECT * FROM o"
    assert found.options == "--catalog tpch --schema tiny -o out"


def test_sql_on_the_cell_magic_line_joins_the_body():
    found = at("%%sql --limit 5 SELECT *\nFROM tpch.|")
    assert found.sql == "SELECT *\nFROM tpch." and found.offset == len(found.sql)


@pytest.mark.parametrize(
    "text",
    ["%%sql --cata|", "%%s|ql\nSELECT", "SELECT * FROM tpch.|", "x = 1\ny = tpch.|"],
)
def test_no_sql_outside_the_magic_or_in_its_options(text):
    assert at(text) is None


def test_line_magic_sql_after_assignment():
    found = at("x = 1\ndf = %sql --catalog tpch SELECT * FROM tiny.|\nprint(df)")
    assert (found.sql, found.options) == ("SELECT * FROM tiny.", "--catalog tpch")


def test_line_magic_is_not_found_after_the_cursor():
    assert at("df = tpch.| ; %sql SELECT 1") is None


class MemoryCatalog:
    def catalogs(self):
        return ["tpch"]

    def schemas(self, catalog):
        return ["sf1", "tiny"] if catalog == "tpch" else []

    def tables(self, catalog, schema):
        return [Table("orders"), Table("nation")] if (catalog, schema) == ("tpch", "tiny") else []

    def columns(self, catalog, schema, table):
        return [Column("orderkey", "bigint")] if table == "orders" else []

    def functions(self):
        return [Function("abs", "abs(bigint) → bigint", "Absolute value")]


@pytest.fixture(scope="module")
def shell():
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "datahub.extensions.sql")
    magic = ip.magics_manager.registry["SqlMagic"]
    catalog = MemoryCatalog()
    original = magic.completer.client
    magic.completer.client = lambda hint: catalog
    yield ip
    magic.completer.client = original


def completions(ip, text):
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [
            (c.text, c.type, text[c.start : c.end])
            for c in ip.Completer.completions(text, len(text))
        ]


def test_ipython_completes_schemas_in_a_sql_cell_replacing_only_the_name(shell):
    assert completions(shell, "%%sql\nSELECT * FROM tpch.ti") == [("tiny", "schema", "ti")]


def test_ipython_completes_alias_columns_in_cells_and_lines(shell):
    text = "%%sql\nSELECT * FROM tpch.tiny.orders o WHERE o.ord"
    assert completions(shell, text) == [("orderkey", "column", "ord")]
    text = "df = %sql SELECT * FROM tpch.tiny.orders o WHERE o.ord"
    assert completions(shell, text) == [("orderkey", "column", "ord")]


def test_sql_after_a_comment_in_the_body_still_completes(shell):
    text = "%%sql\n-- orders of the day\nSELECT * FROM tpch.ti"
    assert completions(shell, text) == [("tiny", "schema", "ti")]


def test_ipython_keeps_python_completion_outside_sql(shell):
    shell.user_ns["my_variable"] = 1
    assert ("my_variable", "my_vari") in [(t, f) for t, _, f in completions(shell, "my_vari")]


def test_the_labextension_knows_the_magics_options():
    """The JupyterLab extension skips the magic's options to find the SQL it highlights;
    its lists must be the magic's own."""
    import re
    from pathlib import Path

    from datahub.extensions.sql import SqlMagic, _option_names

    source = (
        Path(__file__).resolve().parents[2] / "extensions" / "labextension" / "src" / "regions.ts"
    ).read_text()

    def ts_list(name: str) -> set[str]:
        body = re.search(rf"{name} = \[(.*?)\]", source, re.S).group(1)
        return set(re.findall(r"'([^']+)'", body))

    flags, valued = _option_names(SqlMagic.sql.parser)
    assert ts_list("VALUED_OPTIONS") == valued
    assert ts_list("FLAG_OPTIONS") == flags


def test_metadata_requests_trust_the_magics_ca_file_only(shell, tmp_path):
    """With SqlMagic.ca_file set, the completion's requests to the service are pinned to
    it like the magic's own (REQUESTS_CA_BUNDLE cannot widen the trust)."""
    magic = shell.magics_manager.registry["SqlMagic"]
    completer = type(magic.completer)(magic)
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    shell.run_line_magic("config", f"SqlMagic.ca_file = {str(ca)!r}")
    try:
        session = completer.client(None).service.session
        assert session.verify == str(ca) and session.trust_env is False
    finally:
        shell.run_line_magic("config", "SqlMagic.ca_file = ''")
    assert completer.client(None).service.session.verify is True


def test_a_schema_of_thousands_of_tables_offers_the_best_ranked_few(shell):
    magic = shell.magics_manager.registry["SqlMagic"]
    many = [Table(f"t{i:04d}") for i in range(3000)]
    original = magic.completer.client
    magic.completer.client = lambda hint: type(
        "Many", (MemoryCatalog,), {"tables": lambda self, catalog, schema: many}
    )()
    shell.run_line_magic("config", "SqlCompleter.max_candidates = 100")
    try:
        offered = completions(shell, "%%sql\nSELECT * FROM tpch.tiny.")
        assert [t for t, _, _ in offered] == [t.name for t in many[:100]]
        assert [t for t, _, _ in completions(shell, "%%sql\nSELECT * FROM tpch.tiny.t29")] == [
            t.name for t in many[2900:3000]
        ]
    finally:
        shell.run_line_magic("config", "SqlCompleter.max_candidates = 500")
        magic.completer.client = original


class Kernel:
    """ipykernel's inspection handler as the wrapper sees it."""

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        return {"status": "ok", "found": False, "data": {}, "metadata": {}, "python": code}


def test_inspecting_a_trino_function_in_sql_shows_its_documentation(shell):
    magic = shell.magics_manager.registry["SqlMagic"]
    kernel = Kernel()
    inspect_sql_functions(kernel, magic)
    inspect_sql_functions(kernel, magic)  # a reload wraps the original, not the wrapper
    text = "%%sql\nSELECT abs(orderkey) FROM tpch.tiny.orders"
    reply = kernel.do_inspect(text, text.index("orderkey"))
    assert reply == {
        "status": "ok",
        "found": True,
        "data": {"text/plain": "abs(bigint) → bigint\n\nAbsolute value"},
        "metadata": {},
    }
    # Not a function, or not SQL: IPython's own inspection answers.
    assert kernel.do_inspect(text, text.index("tiny"))["python"] == text
    assert kernel.do_inspect("abs(-1)", 2)["python"] == "abs(-1)"


def test_a_function_is_documented_when_asked_with_the_cursor_past_the_end_of_the_code(shell):
    # JupyterLab's own kernel completion provider (whose list shows when the kernel had
    # SQL candidates only by its request) documents the selected item by sending the cell
    # up to the item's start plus the item, with the cursor moved on by the item's length
    # from where it was: past the end of that code.
    magic = shell.magics_manager.registry["SqlMagic"]
    kernel = Kernel()
    inspect_sql_functions(kernel, magic)
    cell = "%%sql\nSELECT ab"
    code = cell[: -len("ab")] + "abs"
    reply = kernel.do_inspect(code, len(cell) + len("abs"))
    assert reply["data"] == {"text/plain": "abs(bigint) → bigint\n\nAbsolute value"}
