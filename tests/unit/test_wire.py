"""The wire constants: one dependency-free module both the gateway and the kernel import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from datahub import wire

WIRE = Path(wire.__file__)


def test_the_wire_module_imports_only_the_standard_library():
    tree = ast.parse(WIRE.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_importing_it_loads_no_other_datahub_module():
    code = (
        "import sys, datahub.wire; "
        "print(sorted(m for m in sys.modules if m.startswith('datahub.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['datahub.wire']"


def test_every_exported_name_exists():
    assert [name for name in wire.__all__ if not hasattr(wire, name)] == []


def test_the_service_api_url_is_below_the_service_prefix():
    assert wire.service_api_url("http://gw:8765/") == "http://gw:8765/services/datahub/api"
    assert wire.service_api_url("https://gw") + "/" + wire.API_QUOTA_ME == (
        "https://gw/services/datahub/api/quota/me"
    )


def test_datahub_error_names_are_unique_and_codes_distinct():
    names = [name for name, _type, _code in wire.DATAHUB_ERRORS]
    codes = [code for _name, _type, code in wire.DATAHUB_ERRORS]
    assert len(set(names)) == len(names) == len(wire.DATAHUB_ERROR_NAMES)
    assert len(set(codes)) == len(codes)
    assert all(kind in ("USER_ERROR", "EXTERNAL") for _n, kind, _c in wire.DATAHUB_ERRORS)
